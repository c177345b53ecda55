import { describe, expect, it } from "vitest";
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { DashboardView } from "../api/dashboard";
import { mockEventSource } from "../test/eventSource";
import { ME_PATH, alice, apiError, json, meBody, mockFetch, type Reply } from "../test/fetchMock";
import { deployment, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const SUMMARY = "GET /api/v1/dashboard";
const OCCURRENCES = "GET /api/v1/maintenance-windows/occurrences";
const DEPLOYMENTS = "GET /api/v1/deployments";
const WORKERS = "GET /api/v1/workers";

function summary(extra: Partial<DashboardView> = {}): DashboardView {
  return {
    generated_at: "2026-12-03T10:00:00Z",
    hosts: { total: 60, pending: 2, online: 40, offline: 9, unreachable: 5, degraded: 4, reboot_required: 7, unscanned: 3 },
    compliance: { scanned: 55, compliant: 44, percent: 80 },
    security_updates: { total: 123, hosts: 11, by_severity: { critical: 4, high: 19, medium: 50, low: 30, unspecified: 20 } },
    trend: [
      { day: "2026-12-01", scanned: 50, compliant: 35, percent: 70 },
      { day: "2026-12-02", scanned: 0, compliant: 0, percent: null },
      { day: "2026-12-03", scanned: 55, compliant: 44, percent: 80 },
    ],
    ...extra,
  };
}

const inHours = (h: number) => new Date(Date.now() + h * 3_600_000).toISOString();

function occurrences() {
  return {
    from: inHours(0),
    to: inHours(7 * 24),
    items: [
      {
        window_id: 1,
        window_name: "Nightly <i>db</i>",
        time_zone: "UTC",
        start: inHours(-1),
        end: inHours(1),
        group_id: 3,
        group_name: "<b>web</b>",
        host_id: null,
        host_name: null,
        blocked: [],
      },
      {
        window_id: 2,
        window_name: "Weekend",
        time_zone: "Europe/Berlin",
        start: inHours(30),
        end: inHours(34),
        group_id: null,
        group_name: null,
        host_id: 7,
        host_name: "db-7",
        blocked: [{ start: inHours(31), end: inHours(32) }],
      },
    ],
  };
}

const workers = (healthy: number, stale = false) => ({
  workers: [
    {
      id: "w1",
      hostname: "mgr-1",
      pid: 1,
      version: "0.3.0",
      role: "serve",
      started_at: "2026-12-03T08:00:00Z",
      heartbeat_at: "2026-12-03T10:00:00Z",
      jobs_run: 1,
      stopped_at: null,
      stale,
    },
  ],
  jobs: { queued: 1, due: 2, running: 0, done: 5, failed: 0 },
  healthy,
});

function routes(over: Record<string, Reply | Reply[]> = {}, role = "admin") {
  return {
    [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role } }),
    [SUMMARY]: json(200, summary()),
    [OCCURRENCES]: json(200, occurrences()),
    [DEPLOYMENTS]: json(200, page([deployment(9, "December <b>security</b>"), deployment(8, "Kernel", { status: "succeeded", hosts: { succeeded: 4 } })])),
    [WORKERS]: json(200, workers(1)),
    ...over,
  };
}

/** A reply that never comes (the card stays loading). */
const never: Reply = () => new Promise<Response>(() => undefined);

describe("Dashboard", () => {
  it("shows a skeleton per card while loading", async () => {
    mockFetch(routes({ [SUMMARY]: never, [OCCURRENCES]: never, [DEPLOYMENTS]: never, [WORKERS]: never }));
    renderApp("/");
    expect(await screen.findByRole("status", { name: "Loading the host counts" })).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading compliance" })).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading the security updates" })).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading the maintenance windows" })).toBeInTheDocument();
    expect(screen.getByRole("status", { name: "Loading the deployments" })).toBeInTheDocument();
    expect(await screen.findByRole("status", { name: "Loading the workers" })).toBeInTheDocument();
  });

  it("shows the fleet's numbers with links to the filtered host list, compliance and its trend, and security updates by severity", async () => {
    const mock = mockFetch(routes());
    renderApp("/");
    const hosts = await screen.findByRole("region", { name: "Hosts" });
    const tile = (name: RegExp) => within(hosts).getByRole("link", { name });
    expect(await within(hosts).findByText("60 hosts in total.")).toBeInTheDocument();
    expect(tile(/^40 Online$/)).toHaveAttribute("href", "/hosts?status=online");
    expect(tile(/^9 Offline$/)).toHaveAttribute("href", "/hosts?status=offline");
    expect(tile(/^5 Unreachable$/)).toHaveAttribute("href", "/hosts?status=unreachable");
    expect(tile(/^4 Degraded$/)).toHaveAttribute("href", "/hosts?status=degraded");
    expect(tile(/^2 Never seen$/)).toHaveAttribute("href", "/hosts?status=pending");
    expect(tile(/^7 Need a reboot$/)).toHaveAttribute("href", "/hosts?reboot=true");
    // "Not scanned" links to the host list filtered by `scanned=false`.
    expect(within(hosts).getByText("Not scanned yet").previousSibling).toHaveTextContent("3");
    expect(tile(/^3 Not scanned yet$/)).toHaveAttribute("href", "/hosts?scanned=false");

    const compliance = screen.getByRole("region", { name: "Compliance" });
    expect(within(compliance).getByTestId("compliance-percent")).toHaveTextContent("80%");
    expect(compliance).toHaveTextContent("44 of 55 scanned hosts have no pending security update.");
    expect(within(compliance).getByRole("link", { name: "11 not compliant: see them" })).toHaveAttribute(
      "href",
      "/hosts?security=true&sort=security_updates&order=desc",
    );
    const chart = within(compliance).getByRole("img");
    expect(chart.getAttribute("aria-label")).toMatch(/^Compliance over the last 3 days: from 70% on .+ to 80% on .+ \(lowest 70%, highest 80%\)\.$/);
    // The null day is a gap: two runs of one point each, no line between them.
    expect(chart.querySelectorAll("path")).toHaveLength(0);

    const security = screen.getByRole("region", { name: "Pending security updates" });
    expect(security).toHaveTextContent("123 pending updates on 11 hosts.");
    const bars = within(security).getByRole("list", { name: "Pending security updates by severity" });
    expect(within(bars).getByRole("listitem", { name: "4 Critical" })).toBeInTheDocument();
    expect(within(bars).getByRole("listitem", { name: "19 High" })).toBeInTheDocument();
    expect(within(bars).getByRole("listitem", { name: "50 Medium" })).toBeInTheDocument();
    expect(within(bars).getByRole("listitem", { name: "30 Low" })).toBeInTheDocument();
    expect(within(bars).getByRole("listitem", { name: "20 Unspecified" })).toBeInTheDocument();
    expect(within(security).getByRole("link", { name: "Hosts with security updates" })).toHaveAttribute(
      "href",
      "/hosts?security=true&sort=security_updates&order=desc",
    );

    expect(mock.callsTo(SUMMARY)[0]!.query.get("days")).toBe("30");
  });

  it("draws the trend as a line when days follow each other", async () => {
    const trend = Array.from({ length: 30 }, (_, i) => ({
      day: `2026-11-${String(i + 1).padStart(2, "0")}`,
      scanned: 10,
      compliant: 5 + (i % 6),
      percent: 50 + i,
    }));
    mockFetch(routes({ [SUMMARY]: json(200, summary({ trend })) }));
    renderApp("/");
    const compliance = await screen.findByRole("region", { name: "Compliance" });
    const chart = await within(compliance).findByRole("img");
    expect(chart.getAttribute("aria-label")).toMatch(/^Compliance over the last 30 days: from 50% on .+ to 79% on .+/);
    expect(chart.tagName.toLowerCase()).toBe("svg");
    expect(chart.querySelectorAll("path")).toHaveLength(2);
    expect(chart).toHaveTextContent("100%");
    expect(chart).toHaveTextContent("0%");
  });

  it("says when there is not enough history for a chart, and when nothing is scanned", async () => {
    mockFetch(
      routes({
        [SUMMARY]: json(
          200,
          summary({
            compliance: { scanned: 0, compliant: 0, percent: null },
            security_updates: { total: 0, hosts: 0, by_severity: { critical: 0, high: 0, medium: 0, low: 0, unspecified: 0 } },
            trend: [{ day: "2026-12-03", scanned: 0, compliant: 0, percent: null }],
          }),
        ),
      }),
    );
    renderApp("/");
    const compliance = await screen.findByRole("region", { name: "Compliance" });
    expect(await within(compliance).findByTestId("compliance-percent")).toHaveTextContent("—");
    expect(compliance).toHaveTextContent("No host has been scanned yet");
    expect(within(compliance).getByRole("img", { name: /no data yet/ })).toHaveTextContent("Not enough history yet");
    expect(screen.getByRole("region", { name: "Pending security updates" })).toHaveTextContent("No pending security update");
  });

  it("lists the next maintenance windows of the coming week and the latest deployments", async () => {
    const mock = mockFetch(routes());
    renderApp("/");
    const windows = await screen.findByRole("region", { name: "Upcoming maintenance windows" });
    const list = await within(windows).findByRole("list", { name: "Upcoming maintenance windows" });
    const items = within(list).getAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(within(items[0]!).getByText("Nightly <i>db</i>")).toBeInTheDocument();
    expect(items[0]).toHaveTextContent("open now");
    // Named by the occurrences themselves (as text), not looked up per window.
    expect(items[0]).toHaveTextContent("Group <b>web</b>");
    expect(within(items[0]!).getByRole("link", { name: "<b>web</b>" })).toHaveAttribute("href", "/hosts?group=3");
    expect(items[1]).toHaveTextContent("partly in a blackout");
    expect(items[1]).toHaveTextContent("Host db-7");
    expect(within(items[1]!).getByRole("link", { name: "db-7" })).toHaveAttribute("href", "/hosts/7");
    expect(document.querySelector("b")).toBeNull();
    expect(within(windows).getByRole("link", { name: "Maintenance windows" })).toHaveAttribute("href", "/maintenance-windows");
    const q = mock.callsTo(OCCURRENCES)[0]!.query;
    const from = new Date(q.get("from")!).getTime();
    const to = new Date(q.get("to")!).getTime();
    expect(to - from).toBe(7 * 86_400_000);
    expect(Math.abs(from - Date.now())).toBeLessThan(60_000);
    expect(q.has("host_id") || q.has("group_id")).toBe(false);

    const recent = screen.getByRole("region", { name: "Recent deployments" });
    const rows = within(await within(recent).findByRole("list", { name: "Recent deployments" })).getAllByRole("listitem");
    expect(rows).toHaveLength(2);
    expect(within(rows[0]!).getByRole("link", { name: "December <b>security</b>" })).toHaveAttribute("href", "/deployments/9");
    expect(rows[0]).toHaveTextContent("running");
    expect(within(rows[0]!).getByRole("progressbar", { name: "December <b>security</b>: 1 of 4 hosts done" })).toBeInTheDocument();
    expect(rows[1]).toHaveTextContent("succeeded");
    expect(rows[1]).toHaveTextContent("4 of 4 done");
    expect(within(recent).getByRole("link", { name: "All deployments" })).toHaveAttribute("href", "/deployments");
    const dq = mock.callsTo(DEPLOYMENTS)[0]!.query;
    expect(dq.get("limit")).toBe("5");
    expect(dq.get("offset")).toBe("0");
  });

  it("shows one card's error with Retry while the others render", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes({ [OCCURRENCES]: [apiError(503, "unavailable", "the database is not reachable"), json(200, occurrences())] }));
    renderApp("/");
    const windows = await screen.findByRole("region", { name: "Upcoming maintenance windows" });
    expect(await within(windows).findByText("Could not load the maintenance windows")).toBeInTheDocument();
    expect(windows).toHaveTextContent("The database is not reachable.");
    // The rest of the page is there.
    expect(await screen.findByText("60 hosts in total.")).toBeInTheDocument();
    expect(await screen.findByRole("link", { name: "Kernel" })).toBeInTheDocument();
    await user.click(within(windows).getByRole("button", { name: "Retry" }));
    expect(await within(windows).findByText("Weekend")).toBeInTheDocument();
    expect(mock.callsTo(OCCURRENCES)).toHaveLength(2);
  });

  it("keeps the other cards when the fleet summary fails", async () => {
    mockFetch(routes({ [SUMMARY]: apiError(500, "internal", "boom") }));
    renderApp("/");
    const hosts = await screen.findByRole("region", { name: "Hosts" });
    expect(await within(hosts).findByText("Could not load the host counts")).toBeInTheDocument();
    expect(within(hosts).getByRole("button", { name: "Retry" })).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Compliance" })).toHaveTextContent("Could not load compliance");
    expect(await screen.findByRole("link", { name: "Kernel" })).toBeInTheDocument();
    expect(await screen.findByText("Weekend")).toBeInTheDocument();
  });

  it("tells an administrator how to add the first host", async () => {
    mockFetch(
      routes({
        [SUMMARY]: json(
          200,
          summary({
            hosts: { total: 0, pending: 0, online: 0, offline: 0, unreachable: 0, degraded: 0, reboot_required: 0, unscanned: 0 },
            compliance: { scanned: 0, compliant: 0, percent: null },
            security_updates: { total: 0, hosts: 0, by_severity: { critical: 0, high: 0, medium: 0, low: 0, unspecified: 0 } },
            trend: [],
          }),
        ),
        [DEPLOYMENTS]: json(200, page([])),
        [OCCURRENCES]: json(200, { from: inHours(0), to: inHours(168), items: [] }),
      }),
    );
    renderApp("/");
    const empty = await screen.findByRole("region", { name: "No hosts yet" });
    expect(within(empty).getByRole("link", { name: "Create a registration token" })).toHaveAttribute("href", "/registration-tokens");
    expect(within(empty).getByRole("link", { name: "Add a push host" })).toHaveAttribute("href", "/hosts");
    expect(screen.queryByRole("region", { name: "Hosts" })).not.toBeInTheDocument();
    expect(await screen.findByText("No deployments yet")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "New deployment" })).toHaveAttribute("href", "/deployments/new");
    expect(await screen.findByText("No maintenance window in the next 7 days")).toBeInTheDocument();
  });

  it("shows a viewer an empty fleet without admin links, and no workers card", async () => {
    const mock = mockFetch(
      routes(
        {
          [SUMMARY]: json(
            200,
            summary({ hosts: { total: 0, pending: 0, online: 0, offline: 0, unreachable: 0, degraded: 0, reboot_required: 0, unscanned: 0 } }),
          ),
          [DEPLOYMENTS]: json(200, page([])),
        },
        "viewer",
      ),
    );
    renderApp("/");
    const empty = await screen.findByRole("region", { name: "No hosts yet" });
    expect(empty).toHaveTextContent("Hosts appear here once an administrator adds them");
    expect(within(empty).queryByRole("link")).not.toBeInTheDocument();
    expect(await screen.findByText("No deployments yet")).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "New deployment" })).not.toBeInTheDocument();
    expect(screen.queryByRole("region", { name: "Workers" })).not.toBeInTheDocument();
    expect(mock.callsTo(WORKERS)).toHaveLength(0);
  });

  it("shows an administrator the workers, and warns when none is healthy", async () => {
    mockFetch(routes({ [WORKERS]: json(200, workers(0, true)) }));
    renderApp("/");
    const card = await screen.findByRole("region", { name: "Workers" });
    expect(await within(card).findByText(/No healthy worker/)).toBeInTheDocument();
    expect(within(card).getByText("Healthy").previousSibling).toHaveTextContent("0");
    expect(within(card).getByText("Stale").previousSibling).toHaveTextContent("1");
    expect(within(card).getByRole("link", { name: "Workers and job queue" })).toHaveAttribute("href", "/workers");
  });

  it("re-reads every card every minute", async () => {
    mockFetch(routes());
    const { client } = renderApp("/");
    expect(await screen.findByText("60 hosts in total.")).toBeInTheDocument();
    await screen.findByText("Weekend");
    const interval = (key: unknown[]) => (client.getQueryCache().find({ queryKey: key, exact: true })?.options as { refetchInterval?: unknown } | undefined)?.refetchInterval;
    expect(interval(["dashboard", "summary", 30])).toBe(60_000);
    expect(interval(["maintenance-windows", "upcoming", 7])).toBe(60_000);
    expect(interval(["deployments", "list", { limit: 5, offset: 0 }])).toBe(60_000);
    expect(interval(["workers"])).toBe(60_000);
  });

  it("re-reads the fleet numbers on a host event", async () => {
    const streams = mockEventSource();
    const mock = mockFetch(
      routes({
        [SUMMARY]: [json(200, summary()), json(200, summary({ hosts: { ...summary().hosts, online: 39, offline: 10 } }))],
      }),
    );
    renderApp("/");
    const hosts = await screen.findByRole("region", { name: "Hosts" });
    expect(await within(hosts).findByRole("link", { name: "40 Online" })).toBeInTheDocument();
    act(() => {
      streams[0]!.emit("open");
      streams[0]!.emit("host", { type: "host", host_id: 7, status: "offline", change: "status" });
    });
    expect(await within(hosts).findByRole("link", { name: "39 Online" }, { timeout: 5000 })).toBeInTheDocument();
    expect(within(hosts).getByRole("link", { name: "10 Offline" })).toBeInTheDocument();
    expect(mock.callsTo(SUMMARY)).toHaveLength(2);
    await waitFor(() => expect(mock.callsTo(OCCURRENCES)).toHaveLength(1));
  });
});
