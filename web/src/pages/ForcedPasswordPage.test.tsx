import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, apiError, json, meBody, mockFetch, noContent } from "../test/fetchMock";
import { renderApp } from "../test/render";

const PASSWORD = "POST /api/v1/auth/password";

type User = ReturnType<typeof userEvent.setup>;

/** Replaces a field's text in one input event (typing each character re-renders MUI every time). */
async function replaceText(user: User, field: HTMLElement, text: string) {
  await user.clear(field);
  await user.click(field);
  await user.paste(text);
}

async function fill(user: User, current: string, next: string, confirm = next) {
  await replaceText(user, screen.getByLabelText(/current password/i), current);
  await replaceText(user, screen.getByLabelText(/^new password/i), next);
  await replaceText(user, screen.getByLabelText(/repeat the new password/i), confirm);
  await user.click(screen.getByRole("button", { name: "Set new password" }));
}

describe("forced password change", () => {
  it("keeps a restricted session on the change page until the password is changed", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: [json(200, meBody("password_change", [])), json(200, meBody(null, []))],
      [PASSWORD]: [
        apiError(400, "validation_error", "current_password: is wrong", { field: "current_password" }),
        apiError(400, "validation_error", "new_password: must not be the username", { field: "new_password" }),
        noContent(),
      ],
    });
    renderApp("/hosts");

    // Any page sends the restricted session to the change page, which has no navigation.
    expect(await screen.findByRole("heading", { name: "Choose a new password" })).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/change-password");
    expect(screen.queryByRole("navigation", { name: "Main" })).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Sign out" })).toBeInTheDocument();

    // Checked here first: too short, and the two new ones differ. Nothing is sent.
    await fill(user, "first-start-pass", "short", "shorter");
    expect(screen.getByText("Must be at least 12 characters.")).toBeInTheDocument();
    expect(screen.getByText("Does not match the new password.")).toBeInTheDocument();
    expect(mock.callsTo(PASSWORD)).toHaveLength(0);

    // The server's validation message appears under the field it names.
    await fill(user, "wrong-current", "a much better passphrase");
    const current = screen.getByLabelText(/current password/i);
    expect(current).toHaveAttribute("aria-invalid", "true");
    expect(await screen.findByText("Is wrong.")).toBeInTheDocument();

    await fill(user, "first-start-pass", "alicealicealice");
    expect(await screen.findByText("Must not be the username.")).toBeInTheDocument();
    expect(screen.getByLabelText(/^new password/i)).toHaveAttribute("aria-invalid", "true");

    await fill(user, "first-start-pass", "a much better passphrase");
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/$/));
    expect(await screen.findByRole("heading", { name: "Dashboard" })).toBeInTheDocument();
    expect(mock.callsTo(PASSWORD)[2]?.body).toEqual({
      current_password: "first-start-pass",
      new_password: "a much better passphrase",
    });
    // Back in the full app, with its navigation.
    expect(within(document.body).getByRole("navigation", { name: "Main" })).toBeInTheDocument();
  });

  it("goes on to MFA enrollment when that is the next restriction", async () => {
    const user = userEvent.setup({ delay: null });
    document.cookie = "pd_csrf=csrf-x; path=/";
    const mock = mockFetch({
      [ME_PATH]: [json(200, meBody("password_change", [])), json(200, meBody("mfa_enrollment", []))],
      [PASSWORD]: noContent(),
      "GET /api/v1/auth/mfa/passkeys": json(200, []),
    });
    renderApp("/");
    await screen.findByRole("heading", { name: "Choose a new password" });
    await fill(user, "first-start-pass", "a much better passphrase");
    expect(await screen.findByRole("heading", { name: "Set up two-factor authentication" })).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/setup-mfa");
    expect(mock.callsTo(PASSWORD)[0]?.headers.get("X-CSRF-Token")).toBe("csrf-x");
  });
});
