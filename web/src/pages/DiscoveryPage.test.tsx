import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { discovery, found, hostDetail } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };
const LIST = "GET /api/v1/discoveries";
const START = "POST /api/v1/discoveries";
const ONE = "GET /api/v1/discoveries/d-1";

const running = (probed: number, listening = 0, foundCount = 0) =>
  discovery("d-1", {
    state: "running",
    finished_at: null,
    progress: { probed, total: 256, listening, found: foundCount },
  });

const finished = discovery("d-1", {
  progress: { probed: 256, total: 256, listening: 3, found: 2 },
  hosts: [
    found("10.0.4.17", { fqdn_from_cert: "db-01.example.com", version: "1.4.0" }),
    found("10.0.4.18", { fqdn_from_cert: "web-02.example.com", host_id: 9 }),
    found("10.0.4.30", {
      fqdn_from_cert: null,
      version: null,
      answered_as_lpa: false,
      reason: '<b>handshake refused</b>: the agent does not trust this manager',
    }),
  ],
});

describe("Discovery page", () => {
  it("starts a discovery, shows its progress while it runs, then what it found", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [] }),
      [START]: json(202, running(0)),
      [ONE]: [json(200, running(128, 2, 1)), json(200, running(192, 3, 2)), json(200, finished)],
    });
    renderApp("/discovery");
    expect(await screen.findByText("No discoveries yet")).toBeInTheDocument();

    await user.type(screen.getByRole("textbox", { name: /Address range/ }), "10.0.4.0/24");
    await user.type(screen.getByRole("spinbutton", { name: "Port" }), "12443");
    await user.click(screen.getByRole("button", { name: "Start discovery" }));
    await waitFor(() => expect(mock.callsTo(START)).toHaveLength(1));
    expect(mock.callsTo(START)[0]!.body).toEqual({ cidr: "10.0.4.0/24", port: 12443 });

    // Polled while running: the bar and the counts follow the server.
    const bar = await screen.findByRole("progressbar", { name: "Probed 128 of 256 addresses" });
    expect(bar).toHaveAttribute("aria-valuenow", "50");
    expect(screen.getByText(/128 of 256 addresses probed \(50 %\) · 2 listening · 1 agent found/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel" })).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/discovery");

    // Ended: the polling stops and the hosts are listed.
    const table = await screen.findByRole("table", { name: "Hosts found" }, { timeout: 6000 });
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("10.0.4.17");
    expect(rows[1]).toHaveTextContent("db-01.example.com");
    expect(rows[1]).toHaveTextContent("1.4.0");
    expect(rows[1]).toHaveTextContent("answered");
    expect(within(rows[1]!).getByRole("button", { name: "Register: 10.0.4.17" })).toBeInTheDocument();
    expect(within(rows[2]!).getByRole("link", { name: "Registered: host 9" })).toHaveAttribute("href", "/hosts/9");
    expect(within(rows[2]!).queryByRole("button")).not.toBeInTheDocument();
    // The reason is the agent's text, shown as text.
    expect(rows[3]).toHaveTextContent("no agent answer");
    expect(rows[3]).toHaveTextContent("<b>handshake refused</b>: the agent does not trust this manager");
    expect(rows[3]!.querySelector("b")).toBeNull();
    const polls = mock.callsTo(ONE).length;
    expect(polls).toBe(3);
    await new Promise((r) => setTimeout(r, 1500));
    expect(mock.callsTo(ONE)).toHaveLength(polls);
    // The list of earlier discoveries is re-read when it ends.
    await waitFor(() => expect(mock.callsTo(LIST).length).toBeGreaterThan(1));
  }, 15000);

  it("registers a found agent as a push host with its address and certificate name, then opens it", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [finished] }),
      [ONE]: json(200, finished),
      "POST /api/v1/hosts": json(201, hostDetail(42, "db-01", { transport: "push", status: "pending" })),
      "GET /api/v1/hosts/42": json(200, hostDetail(42, "db-01", { transport: "push", status: "pending" })),
      "GET /api/v1/groups": json(200, { items: [], total: 0, limit: 500, offset: 0 }),
    });
    renderApp("/discovery?id=d-1");
    await user.click(await screen.findByRole("button", { name: "Register: 10.0.4.17" }));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/hosts/42"));
    expect(mock.callsTo("POST /api/v1/hosts")[0]!.body).toEqual({ address: "10.0.4.17", fqdn: "db-01.example.com" });
  });

  it("offers to register by address only when the certificate's name is refused", async () => {
    const user = userEvent.setup({ delay: null });
    const odd = discovery("d-1", { hosts: [found("10.0.4.50", { fqdn_from_cert: "*.example.com" })] });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [odd] }),
      [ONE]: json(200, odd),
      "POST /api/v1/hosts": [
        apiError(400, "validation_error", "must be a DNS name", { field: "fqdn" }),
        json(201, hostDetail(43, "10.0.4.50", { transport: "push", status: "pending" })),
      ],
      "GET /api/v1/hosts/43": json(200, hostDetail(43, "10.0.4.50", { transport: "push", status: "pending" })),
      "GET /api/v1/groups": json(200, { items: [], total: 0, limit: 500, offset: 0 }),
    });
    renderApp("/discovery?id=d-1");
    await user.click(await screen.findByRole("button", { name: "Register: 10.0.4.50" }));
    expect(await screen.findByText(/does not take “\*\.example\.com” as a host name/)).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/hosts")[0]!.body).toEqual({ address: "10.0.4.50", fqdn: "*.example.com" });
    await user.click(screen.getByRole("button", { name: "Register by address only: 10.0.4.50" }));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/hosts/43"));
    expect(mock.callsTo("POST /api/v1/hosts")[1]!.body).toEqual({ address: "10.0.4.50" });
  });

  it("registers an agent without a certificate name by its address only, and shows a refusal plainly", async () => {
    const user = userEvent.setup({ delay: null });
    const bare = discovery("d-1", { hosts: [found("10.0.4.40", { fqdn_from_cert: null })] });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [bare] }),
      [ONE]: json(200, bare),
      "POST /api/v1/hosts": apiError(409, "conflict", "a host with this address exists already", undefined, "req-77"),
    });
    renderApp("/discovery?id=d-1");
    await user.click(await screen.findByRole("button", { name: "Register: 10.0.4.40" }));
    expect(await screen.findByText("A host with this address exists already.")).toBeInTheDocument();
    expect(screen.getByText("req-77")).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/hosts")[0]!.body).toEqual({ address: "10.0.4.40" });
    expect(screen.getByTestId("location")).toHaveTextContent("/discovery");
  });

  it("shows the server's objection to the range on the field, and a second running discovery plainly", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [] }),
      [START]: [
        apiError(400, "validation_error", "must be an address range such as 10.0.4.0/24", { field: "cidr" }),
        apiError(409, "conflict", "2 discoveries are running already; wait for one to end or cancel it"),
      ],
    });
    renderApp("/discovery");
    const cidr = await screen.findByRole("textbox", { name: /Address range/ });
    await user.type(cidr, "10.0.4.0/33");
    await user.click(screen.getByRole("button", { name: "Start discovery" }));
    await waitFor(() => expect(cidr).toHaveAttribute("aria-invalid", "true"));
    expect(cidr).toHaveAccessibleDescription("Must be an address range such as 10.0.4.0/24.");
    // No port typed: none sent (the manager's default applies).
    expect(mock.callsTo(START)[0]!.body).toEqual({ cidr: "10.0.4.0/33" });

    await user.clear(cidr);
    await user.type(cidr, "10.0.5.0/24");
    await user.click(screen.getByRole("button", { name: "Start discovery" }));
    expect(await screen.findByText(/2 discoveries are running already; wait for one to end or cancel it/)).toBeInTheDocument();
    expect(cidr).toHaveAttribute("aria-invalid", "false");
  });

  it("refuses a port out of range before asking the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ ...admin, [LIST]: json(200, { items: [] }) });
    renderApp("/discovery");
    await user.type(await screen.findByRole("textbox", { name: /Address range/ }), "10.0.4.0/24");
    await user.type(screen.getByRole("spinbutton", { name: "Port" }), "70000");
    expect(screen.getByText("1 to 65535")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Start discovery" })).toBeDisabled();
    expect(mock.callsTo(START)).toHaveLength(0);
  });

  it("cancels a running discovery and keeps what it found", async () => {
    const user = userEvent.setup({ delay: null });
    const cancelled = discovery("d-1", { state: "cancelled", progress: { probed: 40, total: 256, listening: 1, found: 1 }, hosts: [found("10.0.4.17")] });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [running(40, 1, 1)] }),
      [ONE]: [json(200, running(40, 1, 1)), json(200, cancelled)],
      "POST /api/v1/discoveries/d-1/cancel": json(202, running(40, 1, 1)),
    });
    renderApp("/discovery?id=d-1");
    await user.click(await screen.findByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/discoveries/d-1/cancel")).toHaveLength(1));
    // Until the manager reports it stopped, the button says so and cannot be pressed again.
    expect(screen.getByRole("button", { name: "Cancelling…" })).toBeDisabled();
    expect(await screen.findByText(/Cancelled: only what it found before then is listed/, undefined, { timeout: 6000 })).toBeInTheDocument();
    expect(screen.getByRole("table", { name: "Hosts found" })).toHaveTextContent("10.0.4.17");
  }, 15000);

  it("lists earlier discoveries newest first and shows one's results when chosen", async () => {
    const user = userEvent.setup({ delay: null });
    const older = discovery("d-0", { cidr: "192.168.1.0/24", hosts: [], progress: { probed: 256, total: 256, listening: 0, found: 0 } });
    const mock = mockFetch({
      ...admin,
      [LIST]: json(200, { items: [finished, older] }),
      "GET /api/v1/discoveries/d-0": json(200, older),
    });
    renderApp("/discovery");
    const table = await screen.findByRole("table", { name: "Discoveries" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("10.0.4.0/24 port 12443");
    expect(rows[2]).toHaveTextContent("192.168.1.0/24 port 12443");
    await user.click(within(rows[2]!).getByRole("button", { name: /Show 192\.168\.1\.0\/24/ }));
    expect(await screen.findByText("Nothing answered on this port")).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: "192.168.1.0/24 port 12443" })).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/discoveries/d-0")).toHaveLength(1);
    expect(within(rows[2]!).getByRole("button", { name: /Show 192\.168\.1\.0\/24/ })).toHaveAttribute("aria-pressed", "true");
  });

  it("says so when a discovery is gone (the manager restarted)", async () => {
    mockFetch({ ...admin, [LIST]: json(200, { items: [] }), [ONE]: apiError(404, "not_found", "discovery not found") });
    renderApp("/discovery?id=d-1");
    expect(await screen.findByText("This discovery is gone")).toBeInTheDocument();
  });

  it("is in the navigation for administrators and closed to operators", async () => {
    mockFetch({ ...admin, [LIST]: json(200, { items: [] }) });
    const { unmount } = renderApp("/discovery");
    expect((await screen.findAllByRole("link", { name: "Discovery" }))[0]).toHaveAttribute("href", "/discovery");
    unmount();

    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/discovery");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo(LIST)).toHaveLength(0);
    expect(screen.queryByRole("link", { name: "Discovery" })).not.toBeInTheDocument();
  });
});
