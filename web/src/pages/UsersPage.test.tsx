import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, json, meBody, mockFetch } from "../test/fetchMock";
import { page, user as userFixture } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

describe("Users page", () => {
  it("lists users, filters and sorts on the server, and changes a role and disables an account", async () => {
    const user = userEvent.setup({ delay: null });
    const bob = userFixture(2, "bob", { role: "viewer" });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/users": json(200, page([userFixture(1, "alice", { role: "admin" }), bob])),
      "PATCH /api/v1/users/2": json(200, { ...bob, role: "operator" }),
    });
    renderApp("/users");
    const table = await screen.findByRole("table", { name: "Users" });
    expect(table).toHaveTextContent("alice (you)");
    expect(within(table).getByRole("combobox", { name: "Role of alice" })).toHaveAttribute("aria-disabled", "true");

    await user.click(within(table).getByRole("combobox", { name: "Role of bob" }));
    await user.click(await screen.findByRole("option", { name: "operator" }));
    await waitFor(() => expect(mock.callsTo("PATCH /api/v1/users/2")).toHaveLength(1));
    expect(mock.callsTo("PATCH /api/v1/users/2")[0]!.body).toEqual({ role: "operator" });

    await user.click(screen.getByRole("button", { name: "Disable bob" }));
    const confirm = await screen.findByRole("dialog", { name: "Disable bob?" });
    await user.click(within(confirm).getByRole("button", { name: "Disable" }));
    await waitFor(() => expect(mock.callsTo("PATCH /api/v1/users/2")).toHaveLength(2));
    expect(mock.callsTo("PATCH /api/v1/users/2")[1]!.body).toEqual({ disabled: true });

    // (once the confirmation has closed and the page is no longer hidden behind it)
    await user.click(await screen.findByRole("combobox", { name: "Role" }));
    await user.click(await screen.findByRole("option", { name: "admin" }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/users").at(-1)!.query.get("role")).toBe("admin"));
    await user.click(screen.getByRole("button", { name: "Last sign-in" }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/users").at(-1)!.query.get("sort")).toBe("last_login_at"));
  });

  it("creates a user with a role and shows the generated password once", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/users": json(200, page([userFixture(1, "alice", { role: "admin" })])),
      "POST /api/v1/users": json(201, { user: userFixture(5, "carol", { role: "operator", must_change_password: true }), password: "Xy7-generated-pw" }),
    });
    renderApp("/users");
    await screen.findByRole("table", { name: "Users" });
    await user.click(screen.getByRole("button", { name: "New user" }));
    const dialog = await screen.findByRole("dialog", { name: "New user" });
    await user.type(within(dialog).getByRole("textbox", { name: "Username" }), "carol");
    await user.click(within(dialog).getByRole("combobox", { name: "Role" }));
    await user.click(await screen.findByRole("option", { name: "operator" }));
    await user.click(within(dialog).getByRole("button", { name: "Create user" }));
    expect(await screen.findByLabelText("Initial password")).toHaveTextContent("Xy7-generated-pw");
    expect(mock.callsTo("POST /api/v1/users")[0]!.body).toEqual({ username: "carol", role: "operator", display_name: null, password: null });
  });
});
