import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch, noContent } from "../test/fetchMock";
import { page } from "../test/fixtures";
import { group } from "../test/scheduleFixtures";
import { renderApp } from "../test/render";

const GROUPS = "GET /api/v1/groups";
const admin = { [ME_PATH]: json(200, meBody()) };
const viewer = { [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "viewer" } }) };
const web = group(3, "web servers", { description: "Front ends", host_count: 12, user_count: 2 });
const db = group(5, "databases", { host_count: 1, user_count: 0 });

describe("Groups page", () => {
  it("shows a skeleton, then the groups with their member counts and links", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const mock = mockFetch({
      ...admin,
      [GROUPS]: async () => {
        await gate;
        return json(200, page([web, db], 2, 25));
      },
    });
    renderApp("/groups");
    expect(await screen.findByRole("status", { name: "Loading groups" })).toBeInTheDocument();
    release();
    const table = await screen.findByRole("table", { name: "Groups" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("web servers");
    expect(rows[1]).toHaveTextContent("Front ends");
    expect(within(rows[1]!).getByRole("link", { name: "web servers" })).toHaveAttribute("href", "/groups/3");
    expect(within(rows[1]!).getByRole("link", { name: "12 hosts in the host list" })).toHaveAttribute("href", "/hosts?group=3");
    expect(within(rows[2]!).getByRole("link", { name: "1 host in the host list" })).toHaveAttribute("href", "/hosts?group=5");
    const users = within(table).getAllByRole("columnheader").findIndex((h) => h.textContent === "Users");
    expect(within(rows[1]!).getAllByRole("cell")[users]).toHaveTextContent(/^2$/);
    expect(within(rows[2]!).getAllByRole("cell")[users]).toHaveTextContent(/^0$/);
    expect(within(rows[1]!).getByRole("link", { name: "Deployment policy of web servers" })).toHaveAttribute("href", "/groups/3/policy");
    expect(within(rows[1]!).getByRole("link", { name: "Maintenance windows of web servers" })).toHaveAttribute(
      "href",
      "/maintenance-windows?group=3",
    );
    // Paged on the server; the counts come with the list, not from one host request per row.
    expect(mock.callsTo(GROUPS)[0]!.query.get("limit")).toBe("25");
    expect(mock.callsTo(GROUPS)[0]!.query.get("offset")).toBe("0");
    expect(mock.callsTo("GET /api/v1/hosts")).toHaveLength(0);
    expect(mock.unmatched).toEqual([]);
  });

  it("creates a group and opens it", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [GROUPS]: json(200, page([web])),
      "POST /api/v1/groups": json(201, group(9, "mail", { description: "MX hosts" })),
      "GET /api/v1/groups/9": json(200, group(9, "mail", { description: "MX hosts" })),
      "GET /api/v1/groups/9/members": json(200, { users: [], hosts: [] }),
    });
    renderApp("/groups");
    await user.click(await screen.findByRole("button", { name: "New group" }));
    const dialog = await screen.findByRole("dialog", { name: "New group" });
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "  mail ");
    await user.type(within(dialog).getByRole("textbox", { name: "Description" }), "MX hosts");
    await user.click(within(dialog).getByRole("button", { name: "Create group" }));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/groups/9"));
    expect(mock.callsTo("POST /api/v1/groups")[0]!.body).toEqual({ name: "mail", description: "MX hosts" });
    expect(await screen.findByRole("heading", { name: "mail" })).toBeInTheDocument();
  });

  it("shows the server's validation error on its field, and a taken name on the name", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [GROUPS]: json(200, page([web])),
      "POST /api/v1/groups": [
        apiError(400, "validation_error", "description: must be at most 500 characters, without control characters", { field: "description" }),
        apiError(409, "conflict", "a group named web servers already exists"),
      ],
    });
    renderApp("/groups");
    await user.click(await screen.findByRole("button", { name: "New group" }));
    const dialog = await screen.findByRole("dialog", { name: "New group" });
    const name = within(dialog).getByRole("textbox", { name: "Name" });
    // The name is required before anything is sent.
    await user.click(within(dialog).getByRole("button", { name: "Create group" }));
    expect(name).toHaveAccessibleDescription("A name is required.");
    expect(mock.callsTo("POST /api/v1/groups")).toHaveLength(0);

    await user.type(name, "web servers");
    await user.click(within(dialog).getByRole("button", { name: "Create group" }));
    const description = within(dialog).getByRole("textbox", { name: "Description" });
    await waitFor(() =>
      expect(description).toHaveAccessibleDescription("Must be at most 500 characters, without control characters."),
    );
    expect(description).toHaveAttribute("aria-invalid", "true");

    await user.click(within(dialog).getByRole("button", { name: "Create group" }));
    await waitFor(() => expect(name).toHaveAccessibleDescription("A group named web servers already exists."));
  });

  it("renames and deletes a group (after asking)", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [GROUPS]: json(200, page([web, db])),
      "PATCH /api/v1/groups/3": json(200, group(3, "frontends", { description: "Front ends" })),
      "DELETE /api/v1/groups/5": noContent(),
    });
    renderApp("/groups");
    await user.click(await screen.findByRole("button", { name: "Edit web servers" }));
    const dialog = await screen.findByRole("dialog", { name: "Edit group" });
    const name = within(dialog).getByRole("textbox", { name: "Name" });
    expect(name).toHaveValue("web servers");
    await user.clear(name);
    await user.type(name, "frontends");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(mock.callsTo("PATCH /api/v1/groups/3")).toHaveLength(1));
    expect(mock.callsTo("PATCH /api/v1/groups/3")[0]!.body).toEqual({ name: "frontends", description: "Front ends" });

    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    await user.click(screen.getByRole("button", { name: "Delete databases" }));
    const confirm = await screen.findByRole("dialog", { name: "Delete this group?" });
    expect(confirm).toHaveTextContent("its hosts and users stay");
    expect(mock.callsTo("DELETE /api/v1/groups/5")).toHaveLength(0);
    await user.click(within(confirm).getByRole("button", { name: "Delete group" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/groups/5")).toHaveLength(1));
    await waitFor(() => expect(mock.callsTo(GROUPS).length).toBeGreaterThan(2));
  });

  it("shows a load error with Retry, and names as text", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      ...admin,
      [GROUPS]: [apiError(500, "internal", "boom", undefined, "req-42"), json(200, page([group(1, "<b>bold</b>")]))],
    });
    renderApp("/groups");
    expect(await screen.findByText("Could not load groups")).toBeInTheDocument();
    expect(screen.getByText("req-42")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("link", { name: "<b>bold</b>" })).toBeInTheDocument();
    expect(document.querySelector("b")).toBeNull();
  });

  it("shows a viewer their groups without admin actions", async () => {
    mockFetch({ ...viewer, [GROUPS]: json(200, page([web])) });
    renderApp("/groups");
    const table = await screen.findByRole("table", { name: "Groups" });
    expect(within(table).getByRole("link", { name: "web servers" })).toBeInTheDocument();
    expect(within(table).getByRole("link", { name: "Deployment policy of web servers" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "New group" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /^Edit / })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /^Delete / })).not.toBeInTheDocument();
  });

  it("tells a viewer in no group what that means, and an admin how to start", async () => {
    mockFetch({ ...viewer, [GROUPS]: json(200, page([])) });
    const { unmount } = renderApp("/groups");
    expect(await screen.findByText("You are in no group")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Create the first group" })).not.toBeInTheDocument();
    unmount();
    mockFetch({ ...admin, [GROUPS]: json(200, page([])) });
    renderApp("/groups");
    expect(await screen.findByRole("button", { name: "Create the first group" })).toBeInTheDocument();
  });
});
