import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, json, meBody, mockFetch, noContent } from "../test/fetchMock";
import { page, token } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

describe("Registration tokens page", () => {
  it("lists tokens, creates one and shows its install command once, and revokes one", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/registration-tokens": json(200, page([token(1, "web servers"), token(2, "old", { status: "expired" })])),
      "POST /api/v1/registration-tokens": json(201, {
        ...token(3, "rack 4", { seats_used: 0 }),
        token: "pdk_reg_secret",
        install_command: "patchdeck-agent enroll --server https://pd.example:8443 --token pdk_reg_secret --ca-fingerprint 3f1c",
      }),
      "DELETE /api/v1/registration-tokens/1": noContent(),
    });
    renderApp("/registration-tokens");
    const table = await screen.findByRole("table", { name: "Registration tokens" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("web servers");
    expect(rows[1]).toHaveTextContent("3 of 10");
    expect(rows[2]).toHaveTextContent("expired");
    expect(within(rows[2]!).queryByRole("button", { name: /Revoke/ })).not.toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "New token" }));
    const dialog = await screen.findByRole("dialog", { name: "New registration token" });
    await user.type(within(dialog).getByRole("textbox", { name: "Label" }), "rack 4");
    const seats = within(dialog).getByRole("spinbutton", { name: "Seats" });
    await user.clear(seats);
    await user.type(seats, "25");
    const hours = within(dialog).getByRole("spinbutton", { name: "Expires in (hours)" });
    await user.clear(hours);
    await user.type(hours, "48");
    await user.click(within(dialog).getByRole("button", { name: "Create token" }));

    expect(await screen.findByLabelText("Install command")).toHaveTextContent(
      "patchdeck-agent enroll --server https://pd.example:8443 --token pdk_reg_secret --ca-fingerprint 3f1c",
    );
    expect(mock.callsTo("POST /api/v1/registration-tokens")[0]!.body).toEqual({ label: "rack 4", seats: 25, expires_in_hours: 48 });
    // (once the dialog has closed and the page is no longer hidden behind it)
    expect(await screen.findByRole("button", { name: "Copy install command" })).toBeInTheDocument();
    // Shown once: dismissed, it is gone, and nothing kept it.
    await user.click(screen.getByRole("button", { name: "I have copied it" }));
    expect(screen.queryByLabelText("Install command")).not.toBeInTheDocument();
    expect(screen.queryByText(/pdk_reg_secret/)).not.toBeInTheDocument();
    expect(window.localStorage.length).toBe(0);

    await user.click(within(rows[1]!).getByRole("button", { name: "Revoke web servers" }));
    const confirm = await screen.findByRole("dialog", { name: "Revoke this token?" });
    await user.click(within(confirm).getByRole("button", { name: "Revoke" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/registration-tokens/1")).toHaveLength(1));
  });

  it("says what to do when there are no tokens", async () => {
    mockFetch({ ...admin, "GET /api/v1/registration-tokens": json(200, page([])) });
    renderApp("/registration-tokens");
    expect(await screen.findByText("No registration tokens")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Create the first token" })).toBeInTheDocument();
  });

  it("is for administrators only", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/registration-tokens");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/registration-tokens")).toHaveLength(0);
  });
});
