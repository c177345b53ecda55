import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ChannelView, RuleView } from "../api/notifications";
import { formatDuration, type Settings, type SsoSettingsView } from "../api/settings";
import { config } from "../test/adminFixtures";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { page } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

const settings: Settings = { mfa_required: true, enrollment_requires_approval: false, deployments_require_approval: false };

const sso: SsoSettingsView = {
  enabled: true,
  name: "Corporate SSO",
  issuer_url: "https://id.example.com/realms/ops",
  client_id: "patchdeck",
  client_secret_set: true,
  redirect_url: "https://pd.example.com:8443/api/v1/auth/sso/callback",
  scopes: ["openid", "email", "profile"],
  role_claim: "roles",
  group_claim: "groups",
  role_map: { admin: ["pd-admins"], operator: ["pd-ops"], viewer: [] },
  default_role: null,
  ca_pem: null,
  allow_insecure_http: false,
};

const channel: ChannelView = {
  id: 1,
  name: "ops mail",
  kind: "smtp",
  enabled: true,
  settings: { host: "smtp.example.com", port: 587, mode: "starttls", username: "pd", from: "pd@example.com", ca_pem: null },
  secret_set: true,
  created_at: "2026-11-01T00:00:00Z",
  updated_at: "2026-11-01T00:00:00Z",
};

const rule: RuleView = {
  id: 1,
  name: "failures to ops",
  events: ["deployment.failed"],
  channel_id: 1,
  recipients: ["ops@example.com"],
  group_id: null,
  enabled: true,
  created_at: "2026-11-01T00:00:00Z",
  updated_at: "2026-11-01T00:00:00Z",
};

function routes(extra: Record<string, Response | Response[]> = {}) {
  return {
    ...admin,
    "GET /api/v1/settings": json(200, settings),
    "GET /api/v1/settings/sso": json(200, sso),
    "GET /api/v1/settings/config": json(200, config),
    "GET /api/v1/notification-channels": json(200, [channel, { ...channel, id: 2, name: "hook", enabled: false }]),
    "GET /api/v1/notification-rules": json(200, [rule]),
    "GET /api/v1/notification-deliveries": json(200, page([], 3, 1)),
    ...extra,
  };
}

describe("formatDuration", () => {
  it("says durations in the largest whole units", () => {
    expect(formatDuration(5)).toBe("5 s");
    expect(formatDuration(300)).toBe("5 min");
    expect(formatDuration(5400)).toBe("1 h 30 min");
    expect(formatDuration(86_400)).toBe("1 day");
    expect(formatDuration(30 * 86_400)).toBe("30 days");
    expect(formatDuration(0)).toBe("0 s");
  });
});

describe("Settings page", () => {
  it("shows skeletons, then the settings, single sign-on, the notification summary and the configuration", async () => {
    const mock = mockFetch(routes());
    renderApp("/settings");
    expect(await screen.findByRole("status", { name: "Loading the security settings" })).toBeInTheDocument();

    expect(await screen.findByRole("checkbox", { name: "MFA required for local accounts" })).toBeChecked();
    expect(screen.getByRole("checkbox", { name: "Enrollment requires approval" })).not.toBeChecked();
    expect(screen.getByRole("checkbox", { name: "Every deployment needs approval" })).not.toBeChecked();

    const ssoFacts = await screen.findByLabelText("Single sign-on settings");
    expect(screen.getByText("Enabled")).toBeInTheDocument();
    expect(ssoFacts).toHaveTextContent("https://id.example.com/realms/ops");
    expect(ssoFacts).toHaveTextContent("Client secretset");
    expect(ssoFacts).toHaveTextContent("Claim values for adminpd-admins");
    expect(ssoFacts).toHaveTextContent("Users no claim mapsare refused");
    expect(screen.getByText("https://pd.example.com:8443/api/v1/auth/sso/callback")).toBeInTheDocument();

    expect(await screen.findByText(/2 channels \(1 enabled\), 1 rule \(1 enabled\)/)).toBeInTheDocument();
    expect(screen.getByText(/3 deliveries failed for good/)).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/notification-deliveries")[0]!.query.get("status")).toBe("failed");
    expect(screen.getByRole("link", { name: "Open notifications" })).toHaveAttribute("href", "/notifications");

    const table = await screen.findByRole("table", { name: "Manager configuration" });
    const row = (key: string) => within(table).getByText(key).closest("tr")!;
    expect(row("agents.checkin_interval_secs")).toHaveTextContent("5 min");
    expect(row("push.inventory_interval_secs")).toHaveTextContent("every 30 min");
    expect(row("deployments.poll_interval_secs")).toHaveTextContent("every 5 s");
    expect(row("audit.retention_days")).toHaveTextContent("183 days");
    expect(row("notifications.retention_days")).toHaveTextContent("30 days");
    expect(row("auth.session_max_hours")).toHaveTextContent("12 h");
    expect(row("auth.refresh_idle_minutes")).toHaveTextContent("1 h");
    expect(row("auth.lockout_threshold")).toHaveTextContent("5 failed sign-ins in a row");
    expect(row("auth.api_token_max_days")).toHaveTextContent("365 days");
    expect(screen.getByText(/take effect when the manager restarts/)).toBeInTheDocument();
    expect(screen.getByLabelText("CA fingerprint")).toHaveTextContent("3f1c0a9e77d2b4c1");
    expect(screen.getByLabelText("Command-signing key fingerprint")).toHaveTextContent("SHA256:9f2c5be1d0a4");
    expect(screen.getByRole("button", { name: "Copy ca fingerprint" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy command-signing key fingerprint" })).toBeInTheDocument();
    expect(mock.unmatched).toEqual([]);
  });

  it("saves a switch with PATCH and shows the answer", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({ "PATCH /api/v1/settings": json(200, { ...settings, deployments_require_approval: true }) }),
    );
    renderApp("/settings");
    const sw = await screen.findByRole("checkbox", { name: "Every deployment needs approval" });
    await user.click(sw);
    expect(await screen.findByText("Saved")).toBeInTheDocument();
    expect(mock.callsTo("PATCH /api/v1/settings")).toHaveLength(1);
    expect(mock.callsTo("PATCH /api/v1/settings")[0]!.body).toEqual({ deployments_require_approval: true });
    expect(screen.getByRole("checkbox", { name: "Every deployment needs approval" })).toBeChecked();
  });

  it("shows a failed save with Retry, which sends the same change again", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "PATCH /api/v1/settings": [
          apiError(500, "internal", "boom", undefined, "req-patch-1"),
          json(200, { ...settings, mfa_required: false }),
        ],
      }),
    );
    renderApp("/settings");
    await user.click(await screen.findByRole("checkbox", { name: "MFA required for local accounts" }));
    const alert = await screen.findByText(/Could not turn off “MFA required for local accounts”/);
    expect(alert).toHaveTextContent("internal error");
    expect(alert).toHaveTextContent("req-patch-1");
    // The switch shows what the server has, not the failed wish.
    expect(screen.getByRole("checkbox", { name: "MFA required for local accounts" })).toBeChecked();
    await user.click(within(alert.closest("[role=alert]") as HTMLElement).getByRole("button", { name: "Retry" }));
    expect(await screen.findByText("Saved")).toBeInTheDocument();
    const patches = mock.callsTo("PATCH /api/v1/settings");
    expect(patches.map((c) => c.body)).toEqual([{ mfa_required: false }, { mfa_required: false }]);
    expect(screen.getByRole("checkbox", { name: "MFA required for local accounts" })).not.toBeChecked();
  });

  it("edits single sign-on with PUT, the secret only when typed, a refused field on that field", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "PUT /api/v1/settings/sso": [
          apiError(400, "validation_error", "issuer_url: the provider could not be reached", { field: "issuer_url" }),
          json(200, { ...sso, client_id: "patchdeck-prod" }),
        ],
      }),
    );
    renderApp("/settings");
    await user.click(await screen.findByRole("button", { name: "Edit single sign-on" }));
    const dialog = await screen.findByRole("dialog", { name: "Single sign-on" });
    expect(within(dialog).getByRole("textbox", { name: /Issuer URL/ })).toHaveValue("https://id.example.com/realms/ops");
    expect(within(dialog).getByLabelText("Client secret")).toHaveValue("");
    expect(within(dialog).getByText("Set. Leave empty to keep it; it is never shown.")).toBeInTheDocument();
    const clientId = within(dialog).getByRole("textbox", { name: /Client ID/ });
    await user.clear(clientId);
    await user.click(clientId);
    await user.paste("patchdeck-prod");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    expect(await within(dialog).findByText("issuer_url: the provider could not be reached")).toBeInTheDocument();
    expect(within(dialog).getByRole("textbox", { name: /Issuer URL/ })).toHaveAttribute("aria-invalid", "true");
    const first = mock.callsTo("PUT /api/v1/settings/sso")[0]!.body as Record<string, unknown>;
    expect(first).not.toHaveProperty("client_secret");
    expect(first).toEqual({
      enabled: true,
      name: "Corporate SSO",
      issuer_url: "https://id.example.com/realms/ops",
      client_id: "patchdeck-prod",
      scopes: ["openid", "email", "profile"],
      role_claim: "roles",
      group_claim: "groups",
      role_map: { admin: ["pd-admins"], operator: ["pd-ops"], viewer: [] },
      default_role: null,
      ca_pem: null,
      allow_insecure_http: false,
    });
    await user.click(within(dialog).getByLabelText("Client secret"));
    await user.paste("new-secret");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(mock.callsTo("PUT /api/v1/settings/sso")[1]!.body).toMatchObject({ client_secret: "new-secret", client_id: "patchdeck-prod" });
    expect(await screen.findByLabelText("Single sign-on settings")).toHaveTextContent("patchdeck-prod");
  });

  it("shows load errors with Retry, section by section", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "GET /api/v1/settings": [apiError(503, "unavailable", "database is busy"), json(200, settings)],
        "GET /api/v1/settings/config": apiError(404, "not_found", "no route"),
      }),
    );
    renderApp("/settings");
    expect(await screen.findByText("Could not load the settings")).toBeInTheDocument();
    expect(screen.getByText("Database is busy.")).toBeInTheDocument();
    expect(await screen.findByText("Could not load the manager configuration")).toBeInTheDocument();
    // Other sections still work.
    expect(await screen.findByText(/2 channels/)).toBeInTheDocument();
    const panel = screen.getByText("Could not load the settings").closest("[role=alert]") as HTMLElement;
    await user.click(within(panel).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("checkbox", { name: "MFA required for local accounts" })).toBeChecked();
    expect(mock.callsTo("GET /api/v1/settings")).toHaveLength(2);
  });

  it("says when single sign-on is not set up and there are no channels", async () => {
    mockFetch(
      routes({
        "GET /api/v1/settings/sso": json(200, { ...sso, enabled: false, name: "", issuer_url: "", client_id: "", client_secret_set: false }),
        "GET /api/v1/notification-channels": json(200, []),
        "GET /api/v1/notification-rules": json(200, []),
        "GET /api/v1/notification-deliveries": json(200, page([], 0, 1)),
      }),
    );
    renderApp("/settings");
    expect(await screen.findByText("Not set up")).toBeInTheDocument();
    expect(screen.getByText("Users sign in with local accounts only.")).toBeInTheDocument();
    expect(screen.queryByLabelText("Single sign-on settings")).not.toBeInTheDocument();
    expect(await screen.findByText(/No channels yet/)).toBeInTheDocument();
  });

  it("is for administrators only, and they alone see it in the navigation", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/settings");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    const nav = screen.getAllByRole("navigation", { name: "Main" })[0]!;
    expect(within(nav).queryByRole("link", { name: "Settings" })).not.toBeInTheDocument();
    expect(within(nav).queryByRole("link", { name: "Notifications" })).not.toBeInTheDocument();
    expect(within(nav).queryByRole("link", { name: "Certificates" })).not.toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/settings")).toHaveLength(0);
    await waitFor(() => expect(mock.callsTo("GET /api/v1/settings/config")).toHaveLength(0));
  });
});
