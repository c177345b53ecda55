import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { certificateState, type CertificateView } from "../api/settings";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { page } from "../test/fixtures";
import { renderApp } from "../test/render";
import { config } from "../test/adminFixtures";

const admin = { [ME_PATH]: json(200, meBody()) };

const NOW = new Date("2026-12-01T12:00:00Z");
const inDays = (d: number) => new Date(NOW.getTime() + d * 86_400_000).toISOString();

function cert(serial: string, cn: string, extra: Partial<CertificateView> = {}): CertificateView {
  return {
    serial,
    kind: "client",
    common_name: cn,
    host_id: 5,
    hostname: "web-1",
    not_before: inDays(-300),
    not_after: inDays(200),
    revoked_at: null,
    revocation_reason: null,
    pem: `-----BEGIN CERTIFICATE-----\n${serial}\n-----END CERTIFICATE-----\n`,
    ...extra,
  };
}

const certs = [
  cert("0a01", "web1.example.com"),
  cert("0a02", "db1.example.com", { not_after: inDays(12), host_id: 6, hostname: "<b>db-1</b>" }),
  cert("0a03", "old.example.com", { not_after: inDays(-3) }),
  cert("0a04", "gone.example.com", { revoked_at: inDays(-10), revocation_reason: "host decommissioned" }),
  cert("0a05", "push1.example.com", { kind: "server", host_id: 7, hostname: "push-1" }),
  cert("0a06", "patchdeck-manager", { kind: "push_client", host_id: null, hostname: null }),
];

function routes(extra: Record<string, Response | Response[]> = {}) {
  return {
    ...admin,
    "GET /api/v1/settings/config": json(200, config),
    "GET /api/v1/certificates": json(200, page(certs, 6, 25)),
    ...extra,
  };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
});
afterEach(() => {
  vi.useRealTimers();
});

describe("certificateState", () => {
  it("tells revoked, expired, expiring within 30 days and valid apart", () => {
    expect(certificateState(certs[0]!, NOW)).toBe("valid");
    expect(certificateState(certs[1]!, NOW)).toBe("expiring");
    expect(certificateState(certs[2]!, NOW)).toBe("expired");
    expect(certificateState(certs[3]!, NOW)).toBe("revoked");
    expect(certificateState(cert("1", "x", { not_after: inDays(30) }), NOW)).toBe("expiring");
    expect(certificateState(cert("1", "x", { not_after: inDays(31) }), NOW)).toBe("valid");
  });
});

describe("Certificates page", () => {
  it("shows the CA downloads and fingerprint, then the certificates with their state and actions", async () => {
    const mock = mockFetch(routes());
    renderApp("/certificates");
    expect(await screen.findByRole("status", { name: "Loading certificates" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Download CA certificate" })).toHaveAttribute("href", "/api/v1/ca/certificate");
    expect(screen.getByRole("link", { name: "Download CRL" })).toHaveAttribute("href", "/api/v1/ca/crl");
    expect(await screen.findByLabelText("CA fingerprint")).toHaveTextContent("3f1c0a9e77d2b4c1");
    expect(screen.getByRole("button", { name: "Copy CA fingerprint" })).toBeInTheDocument();

    const table = await screen.findByRole("table", { name: "Issued certificates" });
    const rows = within(table).getAllByRole("row");
    expect(rows).toHaveLength(7);
    expect(rows[1]).toHaveTextContent("web1.example.com");
    expect(rows[1]).toHaveTextContent("0a01");
    expect(rows[1]).toHaveTextContent("valid");
    // Hosts by name (the list names them), as text.
    expect(within(rows[1]!).getByRole("link", { name: "web-1" })).toHaveAttribute("href", "/hosts/5");
    expect(within(rows[2]!).getByRole("link", { name: "<b>db-1</b>" })).toHaveAttribute("href", "/hosts/6");
    expect(document.querySelector("b")).toBeNull();
    expect(screen.queryByText(/Host #/)).not.toBeInTheDocument();
    expect(rows[2]).toHaveTextContent("expires in 12 days");
    expect(rows[3]).toHaveTextContent("expired");
    expect(rows[4]).toHaveTextContent("revoked");
    expect(rows[4]).toHaveTextContent("host decommissioned");
    // A revoked one can be neither renewed nor revoked again.
    expect(within(rows[4]!).queryByRole("button", { name: /Renew|Revoke/ })).not.toBeInTheDocument();
    // A server certificate is renewed with a new bundle on its host's page.
    expect(within(rows[5]!).queryByRole("button", { name: /^Renew/ })).not.toBeInTheDocument();
    expect(within(rows[5]!).getByRole("link", { name: /New bundle for push1.example.com/ })).toHaveAttribute("href", "/hosts/7");
    expect(rows[6]).toHaveTextContent("push client (the manager's)");
    expect(rows[6]).toHaveTextContent("—");

    const list = mock.callsTo("GET /api/v1/certificates")[0]!;
    expect(list.query.get("limit")).toBe("25");
    expect(list.query.get("offset")).toBe("0");
    expect(list.query.has("kind")).toBe(false);
  });

  it("sends the filters to the API", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes());
    renderApp("/certificates?host_id=5");
    await screen.findByRole("table", { name: "Issued certificates" });
    expect(mock.callsTo("GET /api/v1/certificates")[0]!.query.get("host_id")).toBe("5");
    // The filter chip names the host.
    expect(screen.getByText("Host web-1")).toBeInTheDocument();
    await user.click(screen.getByRole("combobox", { name: "Kind" }));
    await user.click(await screen.findByRole("option", { name: "server (push host listener)" }));
    await user.click(screen.getByRole("combobox", { name: "Revocation" }));
    await user.click(await screen.findByRole("option", { name: "Revoked" }));
    await waitFor(() => {
      const last = mock.callsTo("GET /api/v1/certificates").at(-1)!;
      expect(last.query.get("kind")).toBe("server");
      expect(last.query.get("revoked")).toBe("true");
      expect(last.query.get("host_id")).toBe("5");
    });
  });

  it("renews a client certificate from a CSR and shows the new one", async () => {
    const user = userEvent.setup({ delay: null });
    const renewed = cert("0b01", "web1.example.com", { not_before: NOW.toISOString(), not_after: inDays(365) });
    const mock = mockFetch(
      routes({
        "POST /api/v1/certificates/0a01/renew": [
          apiError(400, "validation_error", "csr: is not valid PEM", { field: "csr" }),
          json(201, renewed),
        ],
      }),
    );
    renderApp("/certificates");
    const table = await screen.findByRole("table", { name: "Issued certificates" });
    await user.click(within(table).getByRole("button", { name: "Renew web1.example.com (0a01)" }));
    const dialog = await screen.findByRole("dialog", { name: "Renew web1.example.com" });
    const csr = within(dialog).getByRole("textbox", { name: /Certificate signing request/ });
    await user.click(csr);
    await user.paste("not a csr");
    await user.click(within(dialog).getByRole("button", { name: "Renew" }));
    // The server's complaint is on the field.
    expect(await within(dialog).findByText("csr: is not valid PEM")).toBeInTheDocument();
    expect(csr).toHaveAttribute("aria-invalid", "true");
    await user.clear(csr);
    await user.click(csr);
    await user.paste("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----");
    await user.click(within(dialog).getByRole("button", { name: "Renew" }));

    expect(await screen.findByText(/New certificate 0b01 for web1.example.com/)).toBeInTheDocument();
    expect(screen.getByLabelText("New certificate")).toHaveTextContent("0b01");
    const posts = mock.callsTo("POST /api/v1/certificates/0a01/renew");
    expect(posts).toHaveLength(2);
    expect(posts[1]!.body).toEqual({ csr: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----" });
    await waitFor(() => expect(mock.callsTo("GET /api/v1/certificates").length).toBeGreaterThan(1));
    // (once the dialog has closed and the page is no longer hidden behind it)
    await user.click(await screen.findByRole("button", { name: "Done" }));
    expect(screen.queryByLabelText("New certificate")).not.toBeInTheDocument();
  });

  it("revokes after a confirmation with a reason", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "POST /api/v1/certificates/0a02/revoke": json(200, { ...certs[1]!, revoked_at: NOW.toISOString(), revocation_reason: "key exposed" }),
      }),
    );
    renderApp("/certificates");
    const table = await screen.findByRole("table", { name: "Issued certificates" });
    await user.click(within(table).getByRole("button", { name: "Revoke db1.example.com (0a02)" }));
    const dialog = await screen.findByRole("dialog", { name: "Revoke this certificate?" });
    expect(dialog).toHaveTextContent("db1.example.com (serial 0a02)");
    const revoke = within(dialog).getByRole("button", { name: "Revoke" });
    expect(revoke).toBeDisabled();
    await user.type(within(dialog).getByRole("textbox", { name: "Reason" }), "  key exposed ");
    await user.click(revoke);
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(mock.callsTo("POST /api/v1/certificates/0a02/revoke")[0]!.body).toEqual({ reason: "key exposed" });
    await waitFor(() => expect(mock.callsTo("GET /api/v1/certificates").length).toBeGreaterThan(1));
  });

  it("shows a list error with Retry, and the empty state", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({ "GET /api/v1/certificates": [apiError(500, "internal", "db down"), json(200, page([], 0, 25))] }),
    );
    renderApp("/certificates");
    expect(await screen.findByText("Could not load certificates")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByText("No certificates issued yet")).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/certificates")).toHaveLength(2);
  });

  it("is for administrators only", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "viewer" } }) });
    renderApp("/certificates");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/certificates")).toHaveLength(0);
  });
});
