import { describe, expect, it } from "vitest";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { renderApp } from "../test/render";

const CODES = ["aaaa-bbbb-1", "aaaa-bbbb-2", "aaaa-bbbb-3", "aaaa-bbbb-4", "aaaa-bbbb-5", "aaaa-bbbb-6", "aaaa-bbbb-7", "aaaa-bbbb-8", "aaaa-bbbb-9", "aaaa-bbbb-10"];

describe("MFA enrollment", () => {
  it("sets up TOTP with a QR code, shows the recovery codes once, and only then lets the user in", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: [json(200, meBody("mfa_enrollment", [])), json(200, meBody(null, ["totp"]))],
      "GET /api/v1/auth/mfa/passkeys": json(200, []),
      "POST /api/v1/auth/mfa/totp": json(200, {
        secret: "JBSWY3DPEHPK3PXP",
        otpauth_uri: "otpauth://totp/Patchdeck:alice?secret=JBSWY3DPEHPK3PXP&issuer=Patchdeck",
      }),
      "POST /api/v1/auth/mfa/totp/confirm": [
        apiError(400, "validation_error", "code: is not the current code of the new secret", { field: "code" }),
        json(200, { recovery_codes: CODES }),
      ],
    });
    renderApp("/account");
    expect(await screen.findByRole("heading", { name: "Set up two-factor authentication" })).toBeInTheDocument();
    expect(await screen.findByText(/No passkeys yet/)).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Set up authenticator app" }));
    expect(await screen.findByRole("img", { name: /QR code/i })).toBeInTheDocument();
    expect(screen.getByLabelText("Secret key")).toHaveTextContent("JBSW Y3DP EHPK 3PXP");

    const code = screen.getByLabelText(/code from the app/i);
    await user.type(code, "111111");
    await user.click(screen.getByRole("button", { name: "Turn on" }));
    expect(await screen.findByText(/not the app's current code/)).toBeInTheDocument();

    await user.clear(code);
    await user.type(code, "222222");
    await user.click(screen.getByRole("button", { name: "Turn on" }));

    expect(await screen.findByText("Store these recovery codes now")).toBeInTheDocument();
    const list = screen.getByRole("list", { name: "Recovery codes" });
    expect(list.querySelectorAll("li")).toHaveLength(10);
    expect(list).toHaveTextContent("aaaa-bbbb-10");
    expect(screen.getByRole("button", { name: /copy all/i })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: /download as text/i })).toBeInTheDocument();
    // Still here, and /me was not asked again behind the user's back.
    expect(screen.getByTestId("location")).toHaveTextContent("/setup-mfa");
    expect(mock.callsTo(ME_PATH)).toHaveLength(1);

    const cont = screen.getByRole("button", { name: "Continue" });
    expect(cont).toBeDisabled();
    await user.click(screen.getByLabelText(/I have stored these codes/));
    await user.click(cont);

    // Enrolled: the banner offers to go on.
    await user.click(await screen.findByRole("button", { name: "Continue" }));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/$/));
    expect(mock.callsTo("POST /api/v1/auth/mfa/totp/confirm")[1]?.body).toEqual({ code: "222222" });
  });
});
