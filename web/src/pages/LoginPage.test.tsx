import { describe, expect, it, vi } from "vitest";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { renderApp } from "../test/render";

const LOGIN = "POST /api/v1/auth/login";
const LOGIN_MFA = "POST /api/v1/auth/login/mfa";
const REFRESH = "POST /api/v1/auth/refresh";
const METHODS = "GET /api/v1/auth/methods";
const signedOut = apiError(401, "unauthorized", "sign in first");

async function fillPassword(user: ReturnType<typeof userEvent.setup>, password = "correct horse battery") {
  await user.click(await screen.findByLabelText(/username/i));
  await user.paste("alice");
  await user.click(screen.getByLabelText(/password/i));
  await user.paste(password);
  await user.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("login", () => {
  it("signs in with a password and a TOTP code, then opens the page asked for", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: [signedOut, json(200, meBody())],
      [REFRESH]: apiError(401, "unauthorized", "no session; sign in"),
      [METHODS]: json(200, { password: true, sso: { enabled: false } }),
      [LOGIN]: json(200, { status: "mfa_required", mfa_token: "tkt-1", methods: ["totp", "recovery_code"] }),
      [LOGIN_MFA]: json(200, { status: "ok", user: alice }),
      // The page asked for, once signed in.
      "GET /api/v1/hosts": json(200, { items: [], total: 0, limit: 50, offset: 0 }),
      "GET /api/v1/groups": json(200, { items: [], total: 0, limit: 500, offset: 0 }),
    });
    renderApp("/hosts");

    // Not signed in: the guard sends us to the login page.
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/login"));
    await fillPassword(user);

    const code = await screen.findByLabelText(/authentication code/i);
    expect(code).toHaveAttribute("autocomplete", "one-time-code");
    expect(code).toHaveAttribute("inputmode", "numeric");
    expect(screen.getByRole("button", { name: /use a recovery code instead/i })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /use a passkey/i })).not.toBeInTheDocument();

    const verify = screen.getByRole("button", { name: "Verify" });
    expect(verify).toBeDisabled();
    await user.type(code, "12a3 456");
    expect(code).toHaveValue("123456");
    await user.click(verify);

    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/hosts"));
    expect(await screen.findByRole("heading", { name: "Hosts" })).toBeInTheDocument();
    expect(mock.callsTo(LOGIN)[0]?.body).toEqual({ username: "alice", password: "correct horse battery" });
    expect(mock.callsTo(LOGIN_MFA)[0]?.body).toEqual({ mfa_token: "tkt-1", method: "totp", code: "123456" });
    expect(mock.unmatched).toEqual([]);
  });

  it("accepts a recovery code instead of a TOTP code", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: [signedOut, json(200, meBody())],
      [REFRESH]: signedOut,
      [LOGIN]: json(200, { status: "mfa_required", mfa_token: "tkt-2", methods: ["totp", "recovery_code"] }),
      [LOGIN_MFA]: json(200, { status: "ok", user: alice }),
    });
    renderApp("/login");
    await fillPassword(user);
    await user.click(await screen.findByRole("button", { name: /use a recovery code instead/i }));
    await user.type(screen.getByLabelText(/recovery code/i), " abcd-efgh-ijkl ");
    await user.click(screen.getByRole("button", { name: "Verify" }));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/$/));
    expect(mock.callsTo(LOGIN_MFA)[0]?.body).toEqual({ mfa_token: "tkt-2", method: "recovery_code", code: "abcd-efgh-ijkl" });
  });

  it("says plainly when the username or password is wrong", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: signedOut,
      [REFRESH]: signedOut,
      [LOGIN]: apiError(401, "unauthorized", "wrong username or password"),
    });
    renderApp("/login");
    await fillPassword(user, "nope");
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong username or password.");
    expect(screen.getByTestId("location")).toHaveTextContent("/login");
    // A failed login is not a lost session: no refresh attempt for it.
    expect(mock.callsTo(REFRESH)).toHaveLength(1); // only the one for the initial /me
  });

  it("shows how long to wait when rate limited, and blocks retrying until then", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      [ME_PATH]: signedOut,
      [REFRESH]: signedOut,
      [LOGIN]: apiError(429, "rate_limited", "too many login attempts from this address; wait a minute", {
        retry_after_seconds: 42,
      }),
    });
    renderApp("/login");
    await fillPassword(user);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(/Too many attempts\. Try again in 4[12] seconds\./);
    expect(screen.getByRole("button", { name: "Sign in" })).toBeDisabled();
  });

  it("rounds a long lockout to minutes", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      [ME_PATH]: signedOut,
      [REFRESH]: signedOut,
      [LOGIN]: apiError(429, "rate_limited", "too many failed logins; the account is locked for a while", {
        retry_after_seconds: 900,
      }),
    });
    renderApp("/login");
    await fillPassword(user);
    expect(await screen.findByRole("alert")).toHaveTextContent("Try again in 15 minutes.");
  });

  it("shows the server's message for a wrong second factor and can start over", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      [ME_PATH]: signedOut,
      [REFRESH]: signedOut,
      [LOGIN]: json(200, { status: "mfa_required", mfa_token: "t", methods: ["totp", "recovery_code"] }),
      [LOGIN_MFA]: apiError(401, "unauthorized", "wrong or already used code"),
    });
    renderApp("/login");
    await fillPassword(user);
    await user.type(await screen.findByLabelText(/authentication code/i), "000000");
    await user.click(screen.getByRole("button", { name: "Verify" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong or already used code.");
    await user.click(screen.getByRole("button", { name: "Start over" }));
    expect(await screen.findByLabelText(/username/i)).toBeInTheDocument();
  });

  it("offers SSO when the manager has it, as a full-page link", async () => {
    mockFetch({
      [ME_PATH]: signedOut,
      [REFRESH]: signedOut,
      [METHODS]: json(200, { password: true, sso: { enabled: true, name: "Contoso Entra ID" } }),
    });
    renderApp("/login");
    const sso = await screen.findByRole("link", { name: "Sign in with Contoso Entra ID" });
    expect(sso).toHaveAttribute("href", "/api/v1/auth/oidc/login");
  });

  it("hides SSO when the methods endpoint says it is off or is missing", async () => {
    mockFetch({ [ME_PATH]: signedOut, [REFRESH]: signedOut });
    renderApp("/login");
    expect(await screen.findByRole("button", { name: "Sign in" })).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: /sign in with/i })).not.toBeInTheDocument();
  });

  it("signs in with a passkey: options, navigator.credentials.get, then the assertion", async () => {
    const user = userEvent.setup({ delay: null });
    const get = vi.fn(async () => ({
      id: "AQI",
      rawId: new Uint8Array([1, 2]).buffer,
      type: "public-key",
      response: {
        clientDataJSON: new Uint8Array([123]).buffer,
        authenticatorData: new Uint8Array([5]).buffer,
        signature: new Uint8Array([6, 7]).buffer,
        userHandle: new Uint8Array([8]).buffer,
      },
    }));
    vi.stubGlobal("PublicKeyCredential", function PublicKeyCredential() {});
    Object.defineProperty(navigator, "credentials", { value: { get, create: vi.fn() }, configurable: true });
    const mock = mockFetch({
      [ME_PATH]: [signedOut, json(200, meBody(null, ["passkey"]))],
      [REFRESH]: signedOut,
      [LOGIN]: json(200, { status: "mfa_required", mfa_token: "pk-t", methods: ["passkey"] }),
      "POST /api/v1/auth/login/passkey/options": json(200, {
        options: { challenge: "AQID", timeout: 300000, rpId: "localhost", allowCredentials: [], userVerification: "preferred" },
        ceremony: "cer-1",
      }),
      "POST /api/v1/auth/login/passkey": json(200, { status: "ok", user: alice }),
    });
    renderApp("/login");
    await fillPassword(user);
    // Passkey is the only factor: no code field.
    const button = await screen.findByRole("button", { name: /use a passkey/i });
    expect(screen.queryByLabelText(/authentication code/i)).not.toBeInTheDocument();
    await user.click(button);
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/$/));

    const publicKey = (get.mock.calls[0] as unknown as [CredentialRequestOptions])[0].publicKey!;
    expect(Array.from(new Uint8Array(publicKey.challenge as ArrayBuffer))).toEqual([1, 2, 3]);
    expect(mock.callsTo("POST /api/v1/auth/login/passkey/options")[0]?.body).toEqual({ mfa_token: "pk-t" });
    expect(mock.callsTo("POST /api/v1/auth/login/passkey")[0]?.body).toEqual({
      mfa_token: "pk-t",
      ceremony: "cer-1",
      credential: {
        id: "AQI",
        rawId: "AQI",
        type: "public-key",
        response: { clientDataJSON: "ew", authenticatorData: "BQ", signature: "Bgc", userHandle: "CA" },
      },
    });
    Reflect.deleteProperty(navigator, "credentials");
  });

  it("goes straight to the app when already signed in", async () => {
    mockFetch({ [ME_PATH]: json(200, meBody()) });
    renderApp("/login");
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/$/));
    expect(await screen.findByRole("heading", { name: "Dashboard" })).toBeInTheDocument();
  });
});
