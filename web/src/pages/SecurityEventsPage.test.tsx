import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { auditEntry, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const CONFIG = "GET /api/v1/settings/config";
const CERTS = "GET /api/v1/certificates";
const VERIFY = "GET /api/v1/audit/verify";

const days = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString();

function cert(serial: string, commonName: string, notAfter: string, extra: Record<string, unknown> = {}) {
  return {
    serial,
    kind: "client",
    common_name: commonName,
    host_id: null,
    not_before: "2026-01-01T00:00:00Z",
    not_after: notAfter,
    pem: "-----BEGIN CERTIFICATE-----",
    revoked_at: null,
    revocation_reason: null,
    ...extra,
  };
}

const FINGERPRINTS = {
  signing: {
    command_key_fingerprint: "SHA256:cmdKEY0123456789abcdef",
    ca_fingerprint: "SHA256:caFP<b>9876543210</b>",
  },
};

const admin = {
  [ME_PATH]: json(200, meBody()),
  [CONFIG]: json(200, FINGERPRINTS),
  [CERTS]: json(200, page([cert("aa", "web-1", days(200))])),
  [VERIFY]: json(200, { status: "intact", checked: 120 }),
};

describe("Security health page", () => {
  it("shows the key fingerprints, certificate expiry and the audit chain", async () => {
    const mock = mockFetch({
      ...admin,
      [CERTS]: json(
        200,
        page(
          [
            cert("01", "agent-old", days(-3), { host_id: 4 }),
            // Renewed: the expired predecessor of web-2 is not counted.
            cert("02", "web-2", days(90), { host_id: 5 }),
            cert("03", "web-2", days(-10), { host_id: 5 }),
            cert("04", "manager.example.com", days(12), { kind: "server" }),
            cert("05", "db-<i>1</i>", days(29.5), { host_id: 6 }),
            cert("06", "far", days(300)),
          ],
          900,
          500,
        ),
      ),
      "GET /api/v1/security/events": json(200, page([])),
    });
    renderApp("/security-events");
    expect(await screen.findByRole("heading", { level: 1, name: "Security health" })).toBeInTheDocument();

    const keysCard = screen.getByRole("region", { name: "Keys agents trust" });
    expect(await within(keysCard).findByText("SHA256:cmdKEY0123456789abcdef")).toBeInTheDocument();
    expect(within(keysCard).getByText("SHA256:caFP<b>9876543210</b>")).toBeInTheDocument();
    expect(within(keysCard).getByRole("button", { name: "Copy the command-signing key fingerprint" })).toBeInTheDocument();

    const certs = screen.getByRole("region", { name: "Certificate expiry" });
    expect((await within(certs).findByText("Expired")).previousSibling).toHaveTextContent("1");
    expect(within(certs).getByText("Expire within 30 days").previousSibling).toHaveTextContent("2");
    const soonest = within(within(certs).getByRole("list", { name: "Expiring first" })).getAllByRole("listitem");
    expect(soonest.map((li) => li.querySelector("p")?.textContent)).toEqual(["agent-old", "manager.example.com", "db-<i>1</i>", "web-2", "far"]);
    expect(soonest[0]).toHaveTextContent("expired");
    expect(soonest[0]).toHaveTextContent(/agent · expired /);
    expect(within(soonest[0]!).getByRole("link", { name: "host 4" })).toHaveAttribute("href", "/hosts/4");
    expect(soonest[1]).toHaveTextContent("in 12 days");
    expect(soonest[1]).toHaveTextContent("manager");
    expect(within(certs).getByRole("link", { name: "Certificates" })).toHaveAttribute("href", "/certificates");
    expect(certs).toHaveTextContent("Counted over the newest 6 of 900 valid certificates");
    const q = mock.callsTo(CERTS)[0]!.query;
    expect(q.get("revoked")).toBe("false");
    expect(q.get("limit")).toBe("500");

    const audit = screen.getByRole("region", { name: "Audit log integrity" });
    expect(await within(audit).findByText("Hash chain intact: 120 entries checked.")).toBeInTheDocument();
    expect(within(audit).getByRole("link", { name: "Audit log" })).toHaveAttribute("href", "/audit-log");

    expect(await screen.findByText("No security events")).toBeInTheDocument();
    expect(screen.getAllByRole("link", { name: "Security health" })[0]).toHaveAttribute("href", "/security-events");
  });

  it("shows one failing card with Retry while the rest render", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [CONFIG]: [apiError(404, "not_found", "no route"), json(200, FINGERPRINTS)],
      [VERIFY]: json(200, { status: "broken", checked: 40, first_broken: 17 }),
      "GET /api/v1/security/events": json(200, page([auditEntry(3, "security.machine_id_mismatch")])),
    });
    renderApp("/security-events");
    const keysCard = await screen.findByRole("region", { name: "Keys agents trust" });
    expect(await within(keysCard).findByText("Could not load the key fingerprints")).toBeInTheDocument();
    expect(await screen.findByText(/Hash chain broken at entry 17/)).toBeInTheDocument();
    expect(await screen.findByText("No certificate expires within 30 days.")).toBeInTheDocument();
    expect(await screen.findByRole("table", { name: "Security events" })).toHaveTextContent("security.machine_id_mismatch");
    await user.click(within(keysCard).getByRole("button", { name: "Retry" }));
    expect(await within(keysCard).findByText("SHA256:cmdKEY0123456789abcdef")).toBeInTheDocument();
    expect(mock.callsTo(CONFIG)).toHaveLength(2);
  });

  it("shows loading states per card", async () => {
    const never = () => new Promise<Response>(() => undefined);
    mockFetch({ ...admin, [CONFIG]: never, [CERTS]: never, [VERIFY]: never, "GET /api/v1/security/events": never });
    renderApp("/security-events");
    expect(await screen.findByRole("status", { name: "Loading the key fingerprints" })).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading the certificates" })).toBeInTheDocument();
    expect(screen.getByText("Checking the log's hash chain…")).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading security events" })).toBeInTheDocument();
  });

  it("is for administrators only", async () => {
    const mock = mockFetch({ ...admin, [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/security-events");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo(CONFIG)).toHaveLength(0);
    expect(mock.callsTo(CERTS)).toHaveLength(0);
    expect(screen.queryByRole("link", { name: "Security health" })).not.toBeInTheDocument();
  });
});

describe("Security events list", () => {
  it("lists security events and pages them on the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/security/events": json(
        200,
        page([auditEntry(30, "security.machine_id_mismatch", { actor: "host:4", outcome: "denied", target: "host:4" })], 75),
      ),
    });
    renderApp("/security-events");
    const table = await screen.findByRole("table", { name: "Security events" });
    expect(table).toHaveTextContent("security.machine_id_mismatch");
    expect(table).toHaveTextContent("host:4");
    await user.click(screen.getByRole("button", { name: /next page/i }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/security/events").at(-1)!.query.get("offset")).toBe("50"));
  });

  it("filters by time on the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ ...admin, "GET /api/v1/security/events": json(200, page([])) });
    renderApp("/security-events");
    expect(await screen.findByText("No security events")).toBeInTheDocument();
    await user.type(screen.getByLabelText("Before"), "2026-12-02T00:00");
    await waitFor(() =>
      expect(mock.callsTo("GET /api/v1/security/events").at(-1)!.query.get("to")).toBe(new Date("2026-12-02T00:00").toISOString()),
    );
    expect(await screen.findByText("No security events in this time range")).toBeInTheDocument();
  });

  it("shows an error with Retry", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      ...admin,
      "GET /api/v1/security/events": [apiError(503, "unavailable", "the database is not reachable"), json(200, page([]))],
    });
    renderApp("/security-events");
    expect(await screen.findByText("The database is not reachable.")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByText("No security events")).toBeInTheDocument();
  });
});
