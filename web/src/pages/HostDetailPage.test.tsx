import { describe, expect, it } from "vitest";
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { mockEventSource } from "../test/eventSource";
import { command, hostDetail, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const HOST = "GET /api/v1/hosts/1";
const GROUPS = "GET /api/v1/groups";
const COMMANDS = "GET /api/v1/hosts/1/commands";
const base = {
  [ME_PATH]: json(200, meBody()),
  [HOST]: json(200, hostDetail(1, "web-01")),
  [GROUPS]: json(200, page([{ id: 3, name: "web servers", description: "", created_at: "2026-01-01T00:00:00Z" }])),
};

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
