import { describe, expect, it } from "vitest";
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { mockEventSource } from "../test/eventSource";
import { command, hostDetail, page } from "../test/fixtures";
import { occurrence, window_ } from "../test/scheduleFixtures";
import { renderApp } from "../test/render";
import { formatDateTime } from "../components/DateTime";
import type { NextWindow } from "../api/maintenance";
import type { CertificateView } from "../api/settings";

const HOST = "GET /api/v1/hosts/1";
const GROUPS = "GET /api/v1/groups";
const COMMANDS = "GET /api/v1/hosts/1/commands";
const NEXT = "GET /api/v1/hosts/1/next-window";
const WINDOWS = "GET /api/v1/maintenance-windows";
const OCCURRENCES = "GET /api/v1/maintenance-windows/occurrences";
const CERTS = "GET /api/v1/certificates";

function nextWindow(extra: Partial<NextWindow> = {}): NextWindow {
  return {
    host_id: 1,
    now: "2026-12-01T12:00:00Z",
    open: null,
    open_now: false,
    blocked_now: false,
    reason: "no_windows",
    splay_start: null,
    windows: 0,
    ...extra,
  };
}

const inDays = (d: number) => new Date(Date.now() + d * 86_400_000 + 3_600_000).toISOString();

function cert(serial: string, extra: Partial<CertificateView> = {}): CertificateView {
  return {
    serial,
    kind: "client",
    common_name: "web-01",
    host_id: 1,
    not_before: inDays(-300),
    not_after: inDays(200),
    revoked_at: null,
    revocation_reason: null,
    pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    ...extra,
  };
}

const base = {
  [ME_PATH]: json(200, meBody()),
  [HOST]: json(200, hostDetail(1, "web-01")),
  [GROUPS]: json(200, page([{ id: 3, name: "web servers", description: "", created_at: "2026-01-01T00:00:00Z" }])),
  [NEXT]: json(200, nextWindow()),
  [WINDOWS]: json(200, page([])),
  [CERTS]: json(200, page([])),
};
const asRole = (role: "viewer" | "operator") => json(200, { ...meBody(), user: { ...alice, role } });

describe("Host detail page", () => {
  it("shows the system facts, patch state, groups and metrics", async () => {
    mockFetch(base);
    renderApp("/hosts/1");
    expect(await screen.findByRole("heading", { name: "web-01" })).toBeInTheDocument();
    expect(screen.getByText("Debian GNU/Linux 12 (bookworm)")).toBeInTheDocument();
    expect(screen.getByText("web-01.example.com")).toBeInTheDocument();
    expect(screen.getByText("10.0.0.1, fd00::1")).toBeInTheDocument();
    expect(screen.getByText("6.1.0-28-amd64")).toBeInTheDocument();
    expect(screen.getByText("2 security updates")).toBeInTheDocument();
    expect(await screen.findByText("web servers")).toBeInTheDocument();
    expect(screen.getByText("2.0 GiB used of 8.0 GiB")).toBeInTheDocument();
    expect(screen.getByText("3 d 1 h")).toBeInTheDocument();
    expect(within(screen.getByRole("table", { name: "Disks" })).getByText("60 %")).toBeInTheDocument();
  });

  it("lists updates with their security class, severity, CVEs and reason, and filters them on the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...base,
      "GET /api/v1/hosts/1/updates": json(
        200,
        page([
          {
            name: "openssl",
            arch: "amd64",
            current_version: "3.0.11-1",
            candidate_version: "3.0.13-1",
            classification: "security",
            reason: "candidate comes from suite bookworm-security",
            cves: ["CVE-2024-0727", "CVE-2023-6237"],
            severity: "high",
            advisory: "DSA-5678-1",
            reboot_likely: false,
            repository: "bookworm-security",
          },
        ]),
      ),
    });
    renderApp("/hosts/1");
    await user.click(await screen.findByRole("tab", { name: "Updates (7)" }));
    const table = await screen.findByRole("table", { name: "Available updates" });
    const row = within(table).getAllByRole("row")[1]!;
    expect(row).toHaveTextContent("openssl");
    expect(row).toHaveTextContent("3.0.13-1");
    expect(row).toHaveTextContent("security");
    expect(row).toHaveTextContent("high");
    expect(row).toHaveTextContent("CVE-2024-0727, CVE-2023-6237");
    expect(row).toHaveTextContent("DSA-5678-1");
    expect(row).toHaveTextContent("candidate comes from suite bookworm-security");

    await user.click(screen.getByRole("checkbox", { name: "Security fixes only" }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/hosts/1/updates").at(-1)!.query.get("security_only")).toBe("true"));
    expect(screen.getByTestId("location")).toHaveTextContent("/hosts/1");
  });

  it("searches installed packages on the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...base,
      "GET /api/v1/hosts/1/packages": json(200, page([{ name: "openssl", arch: "amd64", version: "3.0.11-1", held: true, source_package: "openssl" }], 512)),
    });
    renderApp("/hosts/1?tab=packages");
    const table = await screen.findByRole("table", { name: "Installed packages" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent("held");
    await user.type(screen.getByRole("textbox", { name: "Search packages" }), "ssl");
    await waitFor(() => expect(mock.callsTo("GET /api/v1/hosts/1/packages").at(-1)!.query.get("q")).toBe("ssl"));
  });

  it("queues a scan after confirmation", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...base,
      "POST /api/v1/hosts/1/commands": json(201, command("c-scan", { kind: "scan", command: { type: "scan" }, state: "pending", changes: [] })),
    });
    renderApp("/hosts/1");
    await user.click(await screen.findByRole("button", { name: "Scan now" }));
    const dialog = await screen.findByRole("dialog");
    await user.click(within(dialog).getByRole("button", { name: "Scan now" }));
    expect(await screen.findByText(/Queued: scan/)).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/hosts/1/commands")[0]!.body).toEqual({
      type: "scan",
      subsystems: ["packages", "system", "storage"],
      refresh: true,
    });
  });

  it("shows command history and output as text, and cancels, retries and rolls back", async () => {
    const user = userEvent.setup({ delay: null });
    const done = command("c-done", { output: '<script>alert("x")</script>\n<b>bold</b>' });
    const mock = mockFetch({
      ...base,
      [COMMANDS]: json(
        200,
        page([
          command("c-pending", { state: "pending", kind: "reboot", command: { type: "reboot" }, changes: [], finished_at: null }),
          command("c-failed", { state: "failed", error_code: "PACKAGE_NOT_FOUND", error_message: "no such package", changes: [] }),
          done,
        ]),
      ),
      "GET /api/v1/commands/c-done": json(200, done),
      "POST /api/v1/commands/c-pending/cancel": json(200, command("c-pending", { state: "cancelled" })),
      "POST /api/v1/commands/c-failed/retry": json(201, command("c-retry", { state: "pending" })),
      "POST /api/v1/hosts/1/commands": json(201, command("c-rb", { kind: "rollback", state: "pending" })),
    });
    renderApp("/hosts/1?tab=commands");
    const table = await screen.findByRole("table", { name: "Commands" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("reboot");
    expect(rows[3]).toHaveTextContent("upgrade (security updates)");

    // Only the finished package-changing command offers a rollback; only the pending one a cancel.
    expect(within(rows[1]!).queryByRole("button", { name: "Roll back" })).not.toBeInTheDocument();
    await user.click(within(rows[1]!).getByRole("button", { name: "Cancel" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/commands/c-pending/cancel")).toHaveLength(1));
    await user.click(within(rows[2]!).getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/commands/c-failed/retry")).toHaveLength(1));

    await user.click(within(rows[3]!).getByRole("button", { name: "Roll back" }));
    const confirm = await screen.findByRole("dialog", { name: "Roll back this upgrade?" });
    await user.click(within(confirm).getByRole("button", { name: "Roll back" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/hosts/1/commands")).toHaveLength(1));
    expect(mock.callsTo("POST /api/v1/hosts/1/commands")[0]!.body).toEqual({ type: "rollback", command_id: "c-done" });

    // (once the confirmation has closed and the page is no longer hidden behind it)
    await user.click(await within(rows[3]!).findByRole("button", { name: /Details/ }));
    const output = await screen.findByTestId("command-output");
    expect(output.textContent).toBe('<script>alert("x")</script>\n<b>bold</b>');
    expect(output.querySelector("script")).toBeNull();
    expect(output.querySelector("b")).toBeNull();
    const changes = screen.getByRole("table", { name: "Package changes" });
    expect(changes).toHaveTextContent("3.0.11-1");
    expect(changes).toHaveTextContent("3.0.13-1");
  });

  it("re-reads the command list when the event stream says a command changed state", async () => {
    const streams = mockEventSource();
    const mock = mockFetch({
      ...base,
      [COMMANDS]: [
        json(200, page([command("c-1", { state: "running", finished_at: null, changes: [] })])),
        json(200, page([command("c-1", { state: "completed" })])),
      ],
    });
    renderApp("/hosts/1?tab=commands");
    const table = await screen.findByRole("table", { name: "Commands" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent("running");
    expect(streams).toHaveLength(1);
    expect(streams[0]!.url).toBe("/api/v1/events");
    expect(mock.callsTo(COMMANDS)).toHaveLength(1);

    act(() => {
      streams[0]!.emit("open");
      streams[0]!.emit("command", { type: "command", host_id: 1, command_id: "c-1", kind: "upgrade", state: "completed" });
    });
    await waitFor(() => expect(within(screen.getByRole("table", { name: "Commands" })).getAllByRole("row")[1]).toHaveTextContent("completed"));
    expect(mock.callsTo(COMMANDS)).toHaveLength(2);
  });

  it("says plainly when the host does not exist", async () => {
    mockFetch({ ...base, [HOST]: apiError(404, "not_found", "no such host") });
    renderApp("/hosts/1");
    expect(await screen.findByText("No such host")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Back to the host list" })).toHaveAttribute("href", "/hosts");
  });

  it("says a host has 1 security update, and 2 security updates", async () => {
    mockFetch({ ...base, [HOST]: json(200, hostDetail(1, "web-01", { security_updates_count: 1 })) });
    const { unmount } = renderApp("/hosts/1");
    expect(await screen.findByText("1 security update")).toBeInTheDocument();
    expect(screen.queryByText("1 security updates")).not.toBeInTheDocument();
    unmount();
    mockFetch(base);
    renderApp("/hosts/1");
    expect(await screen.findByText("2 security updates")).toBeInTheDocument();
  });

  describe("maintenance windows", () => {
    it("shows the next window, which window opens, and the host's own and its groups' windows", async () => {
      const open = { start: "2026-12-05T01:00:00Z", end: "2026-12-05T04:00:00Z" };
      const mock = mockFetch({
        ...base,
        [ME_PATH]: asRole("viewer"),
        [NEXT]: json(200, nextWindow({ open, reason: null, splay_start: "2026-12-05T01:20:00Z", windows: 2 })),
        [WINDOWS]: (call) =>
          call.query.get("host_id") === "1"
            ? json(200, page([window_(7, "db reboot slot", { host_id: 1, group_id: null, recurrence: { kind: "daily" }, next_occurrence: { start: "2026-12-06T01:00:00Z", end: "2026-12-06T02:00:00Z" } })]))
            : json(200, page([window_(4, "Weekend patching")])),
        [OCCURRENCES]: json(200, { from: open.start, to: open.end, items: [occurrence(4, "Weekend patching", open.start, open.end)] }),
      });
      renderApp("/hosts/1");
      const card = (await screen.findByRole("heading", { name: "Maintenance windows" })).closest(".MuiCard-root") as HTMLElement;
      const next = await within(card).findByTestId("next-window");
      await waitFor(() => expect(next).toHaveTextContent(`Next opens ${formatDateTime(open.start)}, until ${formatDateTime(open.end)} (Weekend patching)`));
      expect(next).toHaveTextContent(`This host's work starts at ${formatDateTime("2026-12-05T01:20:00Z")}`);
      expect(next).toHaveTextContent("Times in your time zone");
      const occ = mock.callsTo(OCCURRENCES)[0]!;
      expect(occ.query.get("host_id")).toBe("1");
      expect(occ.query.get("from")).toBe("2026-12-05T01:00:00.000Z");

      // The list filter gives a host's own windows only: its groups' are read per group.
      const queries = mock.callsTo(WINDOWS).map((c) => `${c.query.get("host_id") ?? ""}/${c.query.get("group_id") ?? ""}`);
      expect(queries.sort()).toEqual(["/3", "1/"]);
      const list = await within(card).findByRole("list", { name: "Maintenance windows of this host" });
      const items = within(list).getAllByRole("listitem");
      expect(items).toHaveLength(2);
      expect(items[0]).toHaveTextContent("Weekend patching");
      expect(items[0]).toHaveTextContent("Every Saturday and Sunday, 02:00 (Europe/Berlin) for 3 h · group web servers");
      expect(items[1]).toHaveTextContent("db reboot slot");
      expect(items[1]).toHaveTextContent("Every day, 02:00 (Europe/Berlin) for 3 h · this host's own");
      expect(within(card).getByRole("link", { name: "Calendar and windows" })).toHaveAttribute("href", "/maintenance-windows?host=1");
    });

    it("says when the window is open now but a blackout is in force", async () => {
      const open = { start: "2026-12-01T11:00:00Z", end: "2026-12-01T14:00:00Z" };
      mockFetch({
        ...base,
        [NEXT]: json(200, nextWindow({ open, open_now: true, blocked_now: true, reason: null, splay_start: "2026-12-01T11:10:00Z", windows: 1 })),
        [OCCURRENCES]: json(200, { from: open.start, to: open.end, items: [] }),
      });
      renderApp("/hosts/1");
      const next = await screen.findByTestId("next-window");
      expect(next).toHaveTextContent("A blackout is in force now");
      expect(next).toHaveTextContent(`open nowUntil ${formatDateTime(open.end)}`);
      // The spread start is already past: work starts at once, so it is not mentioned.
      expect(next).not.toHaveTextContent("This host's work starts");
    });

    it("says plainly when no window applies, or none opens within the horizon", async () => {
      const mock = mockFetch(base);
      const { unmount } = renderApp("/hosts/1");
      expect(await screen.findByText(/No enabled maintenance window applies to this host/)).toBeInTheDocument();
      expect(await screen.findByText(/None you can see/)).toBeInTheDocument();
      expect(mock.callsTo(OCCURRENCES)).toHaveLength(0);
      unmount();
      mockFetch({ ...base, [NEXT]: json(200, nextWindow({ reason: "none_within_horizon", windows: 2 })) });
      renderApp("/hosts/1");
      expect(await screen.findByText(/No window opens within the next 400 days: the 2 enabled windows that apply are/)).toBeInTheDocument();
    });

    it("shows an error with Retry when the next window cannot be read", async () => {
      mockFetch({ ...base, [NEXT]: [apiError(500, "internal", "database unavailable"), json(200, nextWindow())] });
      renderApp("/hosts/1");
      expect(await screen.findByText("Could not load the next window")).toBeInTheDocument();
      const user = userEvent.setup({ delay: null });
      await user.click(screen.getByRole("button", { name: "Retry" }));
      expect(await screen.findByText(/No enabled maintenance window applies/)).toBeInTheDocument();
    });
  });

  describe("certificates", () => {
    it("lists an administrator the host's certificates with their status", async () => {
      const mock = mockFetch({
        ...base,
        [CERTS]: json(
          200,
          page([
            cert("0a1b2c", { not_after: inDays(10) }),
            cert("99ff00", { kind: "server", revoked_at: inDays(-5), revocation_reason: "key compromise" }),
            cert("123456", { not_before: inDays(-400), not_after: inDays(-2) }),
            cert("777777"),
          ], 14, 10),
        ),
      });
      renderApp("/hosts/1");
      const table = await screen.findByRole("table", { name: "Certificates of this host" });
      const call = mock.callsTo(CERTS)[0]!;
      expect(call.query.get("host_id")).toBe("1");
      const rows = within(table).getAllByRole("row");
      expect(rows[1]).toHaveTextContent("client");
      expect(rows[1]).toHaveTextContent("0a1b2c");
      expect(rows[1]).toHaveTextContent("expires in 10 days");
      expect(rows[2]).toHaveTextContent("server (push host listener)");
      expect(rows[2]).toHaveTextContent("revoked");
      expect(rows[3]).toHaveTextContent("expired");
      expect(rows[4]).toHaveTextContent("valid");
      expect(screen.getByText("The first 4 of 14.")).toBeInTheDocument();
      expect(screen.getByRole("link", { name: "Manage certificates" })).toHaveAttribute("href", "/certificates?host_id=1");
    });

    it("says so when the host has none", async () => {
      mockFetch(base);
      renderApp("/hosts/1");
      expect(await screen.findByText("No certificates for this host")).toBeInTheDocument();
    });

    for (const role of ["viewer", "operator"] as const) {
      it(`sends no certificate request and shows no certificate card to the ${role}`, async () => {
        const mock = mockFetch({ ...base, [ME_PATH]: asRole(role) });
        renderApp("/hosts/1");
        await screen.findByRole("heading", { name: "Maintenance windows" });
        await screen.findByTestId("next-window");
        expect(screen.queryByRole("heading", { name: "Certificates" })).not.toBeInTheDocument();
        expect(mock.callsTo(CERTS)).toHaveLength(0);
        expect(mock.calls.filter((c) => c.path.startsWith("/api/v1/certificates"))).toHaveLength(0);
      });
    }
  });

  describe("push hosts", () => {
    const pushHost = {
      ...base,
      [HOST]: json(200, hostDetail(1, "web-01", { transport: "push", agent_version: "1.4.0", metrics: null })),
    };

    it("offers no dry run and no rapid check-in, and says why", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        ...pushHost,
        "POST /api/v1/hosts/1/commands": json(201, command("c-up", { state: "pending", changes: [] })),
      });
      renderApp("/hosts/1");
      const heartbeat = await screen.findByRole("button", { name: "Rapid check-in" });
      expect(heartbeat).toBeDisabled();
      expect(heartbeat).toHaveAccessibleDescription(/no dry run and no rapid check-in/);
      await user.hover(heartbeat.parentElement!);
      expect(await screen.findByRole("tooltip")).toHaveTextContent("the manager polls a push host itself");

      await user.click(screen.getByRole("button", { name: "Apply security updates" }));
      const dialog = await screen.findByRole("dialog");
      const dryRun = within(dialog).getByRole("checkbox", { name: /Dry run/ });
      expect(dryRun).toBeDisabled();
      expect(dryRun).toHaveAccessibleDescription(/has no dry run: every job it accepts changes the host/);
      await user.click(within(dialog).getByRole("button", { name: "Apply security updates" }));
      await waitFor(() => expect(mock.callsTo("POST /api/v1/hosts/1/commands")).toHaveLength(1));
      expect(mock.callsTo("POST /api/v1/hosts/1/commands")[0]!.body).toEqual({ type: "upgrade", selection: { mode: "security" }, dry_run: false });
    });

    it("still offers both for a pull host", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        ...base,
        "POST /api/v1/hosts/1/commands": json(201, command("c-hb", { kind: "heartbeat", command: { type: "heartbeat" }, state: "pending", changes: [] })),
      });
      renderApp("/hosts/1");
      await user.click(await screen.findByRole("button", { name: "Apply all updates" }));
      let dialog = await screen.findByRole("dialog");
      expect(within(dialog).getByRole("checkbox", { name: /Dry run/ })).toBeEnabled();
      await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
      await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

      await user.click(screen.getByRole("button", { name: "Rapid check-in" }));
      dialog = await screen.findByRole("dialog");
      await user.click(within(dialog).getByRole("button", { name: "Rapid check-in" }));
      await waitFor(() => expect(mock.callsTo("POST /api/v1/hosts/1/commands")).toHaveLength(1));
      expect(mock.callsTo("POST /api/v1/hosts/1/commands")[0]!.body).toEqual({ type: "heartbeat", enabled: true, interval_secs: 10, duration_secs: 900 });
    });

    it("shows a running command's job progress from the event stream, without re-reading the list", async () => {
      const user = userEvent.setup({ delay: null });
      const streams = mockEventSource();
      const mock = mockFetch({
        ...pushHost,
        [COMMANDS]: json(
          200,
          page([
            command("c-run", { state: "running", finished_at: null, changes: [] }),
            command("c-old", { state: "completed" }),
          ]),
        ),
        "GET /api/v1/commands/c-run": json(200, command("c-run", { state: "running", finished_at: null, changes: [], output: null })),
      });
      renderApp("/hosts/1");
      await screen.findByRole("heading", { name: "web-01" });
      const job = (command_id: string, progress: number, message: string, host_id = 1) => ({
        type: "job",
        host_id,
        command_id,
        job_id: "j-1",
        status: "running",
        progress,
        message,
      });
      // Progress that arrives while another tab is shown is kept.
      act(() => {
        streams[0]!.emit("open");
        streams[0]!.emit("job", job("c-run", 40, "Unpacking openssl (3.0.13-1)"));
      });
      await user.click(screen.getByRole("tab", { name: "Commands" }));
      const table = await screen.findByRole("table", { name: "Commands" });
      const running = within(table).getAllByRole("row")[1]!;
      expect(within(running).getByRole("progressbar", { name: "Job progress 40 %" })).toHaveAttribute("aria-valuenow", "40");
      expect(running).toHaveTextContent("40 % · Unpacking openssl (3.0.13-1)");

      act(() => {
        streams[0]!.emit("job", job("c-run", 75, "<b>Setting up</b> openssl"));
        // Another host's job, and a malformed event, change nothing here.
        streams[0]!.emit("job", job("c-run", 99, "other host", 2));
        streams[0]!.emit("job", { type: "job", host_id: 1, command_id: "c-run", progress: "lots" });
      });
      await waitFor(() => expect(running).toHaveTextContent("75 % · <b>Setting up</b> openssl"));
      expect(running.querySelector("b")).toBeNull();
      expect(within(running).getByRole("progressbar")).toHaveAttribute("aria-valuenow", "75");
      // A finished command shows no bar even if an event names it.
      act(() => streams[0]!.emit("job", job("c-old", 10, "late")));
      expect(within(within(table).getAllByRole("row")[2]!).queryByRole("progressbar")).not.toBeInTheDocument();
      // Job events carry their data: the list is not fetched again for them.
      await new Promise((r) => setTimeout(r, 1200));
      expect(mock.callsTo(COMMANDS)).toHaveLength(1);

      // The command's details show the same progress.
      await user.click(within(running).getByRole("button", { name: /Details/ }));
      const details = await screen.findByRole("dialog");
      expect(await within(details).findByRole("progressbar", { name: "Job progress 75 %" })).toBeInTheDocument();
    });

    it("lets an administrator issue the push bundle from the overview", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        ...pushHost,
        "POST /api/v1/hosts/1/push-bundle": apiError(409, "conflict", "cannot issue a certificate for this host's names: no usable name"),
      });
      renderApp("/hosts/1");
      await user.click(await screen.findByRole("button", { name: "Issue the push bundle" }));
      expect(await screen.findByText("Cannot issue a certificate for this host's names: no usable name.")).toBeInTheDocument();
      expect(mock.callsTo("POST /api/v1/hosts/1/push-bundle")).toHaveLength(1);
    });

    it("shows no push bundle to operators or for pull hosts", async () => {
      mockFetch({ ...pushHost, [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
      const { unmount } = renderApp("/hosts/1");
      await screen.findByRole("heading", { name: "web-01" });
      expect(screen.queryByRole("button", { name: "Issue the push bundle" })).not.toBeInTheDocument();
      unmount();
      mockFetch(base);
      renderApp("/hosts/1");
      await screen.findByRole("heading", { name: "web-01" });
      expect(screen.queryByRole("heading", { name: "Push bundle" })).not.toBeInTheDocument();
    });
  });
});
