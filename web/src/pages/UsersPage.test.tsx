import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, apiError, json, meBody, mockFetch, noContent } from "../test/fetchMock";
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

  describe("row actions", () => {
    const alice = userFixture(1, "alice", { role: "admin" });
    const bob = userFixture(2, "bob", { role: "operator", totp_enabled: true });
    const carol = userFixture(3, "carol", { auth_source: "oidc" });
    const dave = userFixture(4, "dave", { disabled: true });
    const list = { ...admin, "GET /api/v1/users": json(200, page([alice, bob, carol, dave])) };

    async function openAction(user: ReturnType<typeof userEvent.setup>, username: string, item: string) {
      await user.click(await screen.findByRole("button", { name: `More actions for ${username}` }));
      const menu = await screen.findByRole("menu", { name: `Actions for ${username}` });
      await user.click(within(menu).getByRole("menuitem", { name: item }));
    }

    it("offers only the actions that apply: none on your own row, no password for SSO, no sign-out for a disabled account", async () => {
      const user = userEvent.setup({ delay: null });
      mockFetch(list);
      renderApp("/users");
      const table = await screen.findByRole("table", { name: "Users" });
      expect(within(table).queryByRole("button", { name: "More actions for alice" })).toBeNull();
      expect(within(table).getByRole("link", { name: "Your account" })).toHaveAttribute("href", "/account");

      const items = async (username: string) => {
        await user.click(within(table).getByRole("button", { name: `More actions for ${username}` }));
        const menu = await screen.findByRole("menu", { name: `Actions for ${username}` });
        const names = within(menu)
          .getAllByRole("menuitem")
          .map((i) => i.textContent);
        await user.keyboard("{Escape}");
        await waitFor(() => expect(screen.queryByRole("menu")).toBeNull());
        return names;
      };
      expect(await items("bob")).toEqual(["Reset password…", "Reset MFA…", "Sign out everywhere…"]);
      expect(await items("carol")).toEqual(["Reset MFA…", "Sign out everywhere…"]);
      expect(await items("dave")).toEqual(["Reset password…", "Reset MFA…"]);
    });

    it("opens the menu from the keyboard", async () => {
      const user = userEvent.setup({ delay: null });
      mockFetch(list);
      renderApp("/users");
      const button = await screen.findByRole("button", { name: "More actions for bob" });
      button.focus();
      await user.keyboard("{Enter}");
      const menu = await screen.findByRole("menu", { name: "Actions for bob" });
      await waitFor(() => expect(within(menu).getByRole("menuitem", { name: "Reset password…" })).toHaveFocus());
      await user.keyboard("{ArrowDown}{Enter}");
      expect(await screen.findByRole("dialog", { name: "Reset the MFA of bob?" })).toBeInTheDocument();
    });

    it("resets a password to a generated one, shows it once, and never again after dismissing", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({ ...list, "POST /api/v1/users/2/password": json(200, { password: "Gen-erated-pw-42" }) });
      renderApp("/users");
      await openAction(user, "bob", "Reset password…");
      const dialog = await screen.findByRole("dialog", { name: "Reset the password of bob?" });
      expect(dialog).toHaveTextContent("Their sessions end now");
      await user.click(within(dialog).getByRole("button", { name: "Reset password" }));
      expect(await screen.findByLabelText("New password")).toHaveTextContent("Gen-erated-pw-42");
      expect(mock.callsTo("POST /api/v1/users/2/password")).toHaveLength(1);
      expect(mock.callsTo("POST /api/v1/users/2/password")[0]!.body).toEqual({ password: null });
      await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
      expect(screen.getByRole("button", { name: "Copy password" })).toBeInTheDocument();

      await user.click(screen.getByRole("button", { name: "Close" }));
      await waitFor(() => expect(screen.queryByText("Gen-erated-pw-42")).toBeNull());
      expect(window.localStorage.length + window.sessionStorage.length).toBe(0);
    });

    it("sets a typed password, and shows a refused one on its field", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        ...list,
        "POST /api/v1/users/2/password": [
          apiError(400, "validation_error", "password: must be at least 12 characters", { field: "password" }),
          json(200, { password: null }),
        ],
      });
      renderApp("/users");
      await openAction(user, "bob", "Reset password…");
      const dialog = await screen.findByRole("dialog", { name: "Reset the password of bob?" });
      await user.click(within(dialog).getByRole("radio", { name: "Type one" }));
      const field = within(dialog).getByLabelText(/New password/);
      await user.type(field, "short");
      await user.click(within(dialog).getByRole("button", { name: "Reset password" }));
      expect(await within(dialog).findByRole("alert")).toHaveTextContent("Password: must be at least 12 characters.");
      expect(field).toHaveAttribute("aria-invalid", "true");
      expect(mock.callsTo("POST /api/v1/users/2/password")[0]!.body).toEqual({ password: "short" });

      await user.clear(field);
      await user.type(field, "a-long-enough-password");
      await user.click(within(dialog).getByRole("button", { name: "Reset password" }));
      expect(await screen.findByText("They must change the password you set at their next sign-in.")).toBeInTheDocument();
      expect(mock.callsTo("POST /api/v1/users/2/password")[1]!.body).toEqual({ password: "a-long-enough-password" });
      expect(screen.queryByLabelText("New password")).toBeNull();
    });

    it("shows the server's refusal of a password reset plainly", async () => {
      const user = userEvent.setup({ delay: null });
      mockFetch({ ...list, "POST /api/v1/users/2/password": apiError(409, "conflict", "this account signs in with SSO; it has no local password") });
      renderApp("/users");
      await openAction(user, "bob", "Reset password…");
      const dialog = await screen.findByRole("dialog", { name: "Reset the password of bob?" });
      await user.click(within(dialog).getByRole("button", { name: "Reset password" }));
      const alert = await within(dialog).findByRole("alert");
      expect(alert).toHaveTextContent("This account signs in with SSO; it has no local password.");
      expect(alert).toHaveTextContent("req-test-1");
      expect(screen.queryByLabelText("New password")).toBeNull();
    });

    it("resets MFA after a confirmation that says what goes, and sends nothing when cancelled", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({ ...list, "DELETE /api/v1/users/2/mfa": noContent() });
      renderApp("/users");
      await openAction(user, "bob", "Reset MFA…");
      let dialog = await screen.findByRole("dialog", { name: "Reset the MFA of bob?" });
      expect(dialog).toHaveTextContent("the authenticator app (TOTP), all passkeys and the recovery codes");
      await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
      await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
      expect(mock.callsTo("DELETE /api/v1/users/2/mfa")).toHaveLength(0);

      await openAction(user, "bob", "Reset MFA…");
      dialog = await screen.findByRole("dialog", { name: "Reset the MFA of bob?" });
      await user.click(within(dialog).getByRole("button", { name: "Reset MFA" }));
      expect(await screen.findByText("Removed the second factors of bob.")).toBeInTheDocument();
      expect(mock.callsTo("DELETE /api/v1/users/2/mfa")).toHaveLength(1);
      expect(mock.callsTo("DELETE /api/v1/users/2/mfa")[0]!.body).toBeUndefined();
    });

    it("shows a failed MFA reset in the dialog with its message", async () => {
      const user = userEvent.setup({ delay: null });
      mockFetch({ ...list, "DELETE /api/v1/users/2/mfa": apiError(404, "not_found", "user not found") });
      renderApp("/users");
      await openAction(user, "bob", "Reset MFA…");
      const dialog = await screen.findByRole("dialog", { name: "Reset the MFA of bob?" });
      await user.click(within(dialog).getByRole("button", { name: "Reset MFA" }));
      expect(await within(dialog).findByRole("alert")).toHaveTextContent("User not found.");
    });

    it("signs a user out everywhere, counting only their active sessions first", async () => {
      const user = userEvent.setup({ delay: null });
      const session = (id: number, extra: Record<string, unknown> = {}) => ({
        id,
        created_at: "2026-01-01T00:00:00Z",
        last_used_at: "2026-01-01T00:00:00Z",
        expires_at: "2999-01-01T00:00:00Z",
        source_ip: "192.0.2.1",
        user_agent: "Firefox",
        mfa_method: "totp",
        current: false,
        revoked: false,
        ...extra,
      });
      const mock = mockFetch({
        ...list,
        "GET /api/v1/users/2/sessions": json(200, [session(1), session(2), session(3, { revoked: true }), session(4, { expires_at: "2020-01-01T00:00:00Z" })]),
        "DELETE /api/v1/users/2/sessions": noContent(),
      });
      renderApp("/users");
      await openAction(user, "bob", "Sign out everywhere…");
      let dialog = await screen.findByRole("dialog", { name: "Sign bob out everywhere?" });
      await waitFor(() => expect(dialog).toHaveTextContent("There are 2 active sessions of bob."));
      expect(dialog).toHaveTextContent("Their API tokens keep working");
      await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
      await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
      expect(mock.callsTo("DELETE /api/v1/users/2/sessions")).toHaveLength(0);

      await openAction(user, "bob", "Sign out everywhere…");
      dialog = await screen.findByRole("dialog", { name: "Sign bob out everywhere?" });
      await user.click(within(dialog).getByRole("button", { name: "Sign out everywhere" }));
      expect(await screen.findByText("Signed bob out everywhere.")).toBeInTheDocument();
      expect(mock.callsTo("DELETE /api/v1/users/2/sessions")).toHaveLength(1);
    });

    it("still lets you sign a user out when their sessions cannot be counted, and shows a refusal", async () => {
      const user = userEvent.setup({ delay: null });
      mockFetch({
        ...list,
        "GET /api/v1/users/2/sessions": apiError(500, "internal", "database unavailable"),
        "DELETE /api/v1/users/2/sessions": apiError(404, "not_found", "user not found"),
      });
      renderApp("/users");
      await openAction(user, "bob", "Sign out everywhere…");
      const dialog = await screen.findByRole("dialog", { name: "Sign bob out everywhere?" });
      await waitFor(() => expect(dialog).toHaveTextContent("could not be counted: The manager hit an internal error."));
      expect(dialog).toHaveTextContent("Request id: req-test-1.");
      await user.click(within(dialog).getByRole("button", { name: "Sign out everywhere" }));
      expect(await within(dialog).findByRole("alert")).toHaveTextContent("User not found.");
    });
  });
});
