import { describe, expect, it } from "vitest";
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { mockEventSource } from "../test/eventSource";
import { deployment, deploymentHost, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const ONE = "GET /api/v1/deployments/5";
const HOSTS = "GET /api/v1/deployments/5/hosts";
const GROUPS = "GET /api/v1/groups";
const operator = { [ME_PATH]: json(200, { ...meBody(), user: { ...alice, id: 2, role: "operator" } }) };

function lastQuery(mock: ReturnType<typeof mockFetch>): URLSearchParams {
  const calls = mock.callsTo(HOSTS);
  return calls[calls.length - 1]!.query;
}

const hosts = page(
  [
    deploymentHost(1, "web-01", { state: "succeeded", apply_command: "c-apply" }),
    deploymentHost(2, "<i>db-01</i>", {
      ring: 1,
      state: "failed",
      preview: { available: false, reason: "push agents have no dry run" },
      error_code: "health_failed",
      error_message: "nginx.service is not active",
    }),
  ],
  2,
  25,
);

describe("Deployment detail page", () => {
  it("shows the status, schedule, reboot policy, rings with the current one, and why it halted", async () => {
    mockFetch({
      ...operator,
      [ONE]: json(200, deployment(5, "December security", { status: "halted", current_ring: 1, reason: "ring canary: 1 of 2 hosts failed (threshold 100 %)" })),
      [HOSTS]: json(200, hosts),
    });
    renderApp("/deployments/5");
    expect(await screen.findByRole("heading", { name: "December security" })).toBeInTheDocument();
    expect(screen.getByText("Halted: ring canary: 1 of 2 hosts failed (threshold 100 %)")).toBeInTheDocument();
    expect(screen.getByText("Each host's next maintenance window")).toBeInTheDocument();
    expect(screen.getByText("Reboot if needed, 300 s after warning users")).toBeInTheDocument();
    expect(screen.getByText("Roll the host back")).toBeInTheDocument();
    const rings = screen.getByRole("list", { name: "Rings" });
    const items = within(rings).getAllByRole("listitem");
    expect(items[0]).toHaveTextContent("1. canary");
    expect(items[0]).toHaveTextContent("done");
    expect(items[0]).toHaveTextContent("100 % must succeed · soak 30 min");
    expect(items[1]).toHaveTextContent("halted here");
    expect(items[1]).toHaveTextContent("90 % must succeed");
    // Halted: retry, cancel and roll back; no approve.
    expect(screen.getByRole("button", { name: "Retry failed hosts" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel deployment" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Roll back" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Approve" })).not.toBeInTheDocument();
  });

  it("shows each ring's target and its own progress, naming group rings from the groups list", async () => {
    const mock = mockFetch({
      ...operator,
      [GROUPS]: json(200, page([{ id: 3, name: "<b>web</b> servers", description: "", created_at: "2026-01-01T00:00:00Z" }])),
      [ONE]: json(
        200,
        deployment(5, "Staged", {
          current_ring: 2,
          hosts: { succeeded: 5, failed: 1, running: 2, queued: 4 },
          total_hosts: 12,
          rings: [
            { name: "canary", group_id: 3, percent: null, success_threshold: 1, soak_secs: 600, hosts: { succeeded: 2 } },
            { name: "db", group_id: 7, percent: null, success_threshold: 1, soak_secs: 0, hosts: { succeeded: 2, failed: 1 } },
            { name: "quarter", group_id: null, percent: 25, success_threshold: 0.9, soak_secs: 0, hosts: { succeeded: 1, running: 2 } },
            { name: "everything else", group_id: null, percent: null, success_threshold: 0.9, soak_secs: 0, hosts: { queued: 4 } },
          ],
        }),
      ),
      [HOSTS]: json(200, hosts),
    });
    renderApp("/deployments/5");
    const rings = await screen.findByRole("list", { name: "Rings" });
    const items = within(rings).getAllByRole("listitem");
    expect(items).toHaveLength(4);
    // A group ring takes its group's name (as text) once the groups are read; unknown groups by id.
    expect(await within(items[0]!).findByText(/^Group <b>web<\/b> servers · 100 % must succeed · soak 10 min$/)).toBeInTheDocument();
    expect(items[1]).toHaveTextContent("Group #7 · 100 % must succeed");
    expect(items[2]).toHaveTextContent("Up to 25 % of the hosts · 90 % must succeed");
    expect(items[3]).toHaveTextContent("The rest · 90 % must succeed");
    // Each ring's own counts.
    expect(within(items[0]!).getByText("2 of 2 done · 2 succeeded · 0 failed")).toBeInTheDocument();
    expect(within(items[1]!).getByText("3 of 3 done · 2 succeeded · 1 failed")).toBeInTheDocument();
    expect(within(items[2]!).getByText("1 of 3 done · 1 succeeded · 0 failed · 2 in progress")).toBeInTheDocument();
    expect(within(items[3]!).getByText("0 of 4 done · 0 succeeded · 0 failed")).toBeInTheDocument();
    expect(within(items[1]!).getByRole("progressbar", { name: "Ring 2 (db): 3 of 3 hosts done" })).toHaveAttribute("aria-valuenow", "100");
    expect(within(items[2]!).getByRole("progressbar", { name: "Ring 3 (quarter): 1 of 3 hosts done" })).toHaveAttribute("aria-valuenow", "33");
    expect(items[2]).toHaveAttribute("aria-current", "step");
    // The whole deployment: total_hosts.
    expect(screen.getByRole("progressbar", { name: "Staged: 6 of 12 hosts done" })).toBeInTheDocument();
    expect(mock.callsTo(GROUPS)).toHaveLength(1);
  });

  it("names a group ring by id when the groups cannot be read", async () => {
    mockFetch({
      ...operator,
      [GROUPS]: apiError(500, "internal", "boom"),
      [ONE]: json(200, deployment(5, "December security")),
      [HOSTS]: json(200, hosts),
    });
    renderApp("/deployments/5");
    const items = within(await screen.findByRole("list", { name: "Rings" })).getAllByRole("listitem");
    expect(items[0]).toHaveTextContent("Group #3 · 100 % must succeed");
    expect(within(items[0]!).getByText("1 of 2 done · 1 succeeded · 0 failed · 1 in progress")).toBeInTheDocument();
    expect(items[1]).toHaveTextContent("The rest");
    expect(within(items[1]!).getByText("0 of 2 done · 0 succeeded · 0 failed")).toBeInTheDocument();
  });

  it("says a lone ring takes every host, and reads no groups without a group ring", async () => {
    const mock = mockFetch({
      ...operator,
      [ONE]: json(
        200,
        deployment(5, "One ring", {
          rings: [{ name: "all", group_id: null, percent: null, success_threshold: 1, soak_secs: 0, hosts: {} }],
          hosts: {},
        }),
      ),
      [HOSTS]: json(200, page([])),
    });
    renderApp("/deployments/5");
    const only = within(await screen.findByRole("list", { name: "Rings" })).getByRole("listitem");
    expect(only).toHaveTextContent("Every host · 100 % must succeed");
    expect(within(only).getByText("No hosts you can see")).toBeInTheDocument();
    // No group ring: the groups are not read.
    expect(mock.callsTo(GROUPS)).toHaveLength(0);
  });

  it("offers only the actions the status allows", async () => {
    mockFetch({ ...operator, [ONE]: json(200, deployment(5, "Done", { status: "succeeded", current_ring: 1 })), [HOSTS]: json(200, hosts) });
    renderApp("/deployments/5");
    expect(await screen.findByRole("button", { name: "Roll back" })).toBeInTheDocument();
    for (const name of ["Approve", "Cancel deployment", "Retry failed hosts"]) {
      expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    }
  });

  it("approves, and says plainly when the approver is the creator", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...operator,
      [ONE]: [
        json(200, deployment(5, "December security", { status: "awaiting_approval", requires_approval: true, started_at: null })),
        json(200, deployment(5, "December security", { status: "running", requires_approval: true, approved_at: "2026-12-03T09:05:00Z" })),
      ],
      [HOSTS]: json(200, hosts),
      "POST /api/v1/deployments/5/approve": [
        apiError(403, "forbidden", "a second operator or an admin must approve your deployment"),
        json(200, deployment(5, "December security", { status: "running", requires_approval: true, approved_at: "2026-12-03T09:05:00Z" })),
      ],
    });
    renderApp("/deployments/5");
    expect(await screen.findByText(/Waiting for approval/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Retry failed hosts" })).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Approve" }));
    expect(await screen.findByText(/A second operator or an admin must approve your deployment\. Ask an administrator/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Approve" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/deployments/5/approve")).toHaveLength(2));
    expect(await screen.findByText(/^approved/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Approve" })).not.toBeInTheDocument();
  });

  it("offers an operator no approval of their own deployment, and says who approves", async () => {
    mockFetch({
      ...operator,
      [ONE]: json(200, deployment(5, "Mine", { status: "awaiting_approval", requires_approval: true, created_by: 2 })),
      [HOSTS]: json(200, hosts),
    });
    renderApp("/deployments/5");
    expect(await screen.findByText("You created this deployment: an administrator or another operator approves it.")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Approve" })).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel deployment" })).toBeInTheDocument();
  });

  it("asks before cancelling", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...operator,
      [ONE]: [json(200, deployment(5, "December security")), json(200, deployment(5, "December security", { status: "cancelled", reason: "cancelled by bob" }))],
      [HOSTS]: json(200, hosts),
      "POST /api/v1/deployments/5/cancel": json(200, deployment(5, "December security", { status: "cancelled", reason: "cancelled by bob" })),
    });
    renderApp("/deployments/5");
    await user.click(await screen.findByRole("button", { name: "Cancel deployment" }));
    const dialog = await screen.findByRole("dialog", { name: "Cancel this deployment?" });
    expect(mock.callsTo("POST /api/v1/deployments/5/cancel")).toHaveLength(0);
    await user.click(within(dialog).getByRole("button", { name: "Cancel deployment" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/deployments/5/cancel")).toHaveLength(1));
    expect(await screen.findByText("cancelled by bob")).toBeInTheDocument();
  });

  it("lists the hosts with a state filter and paging, and shows a host's plan, preview and error when expanded", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ ...operator, [ONE]: json(200, deployment(5, "December security")), [HOSTS]: json(200, hosts) });
    renderApp("/deployments/5?state=failed");
    const table = await screen.findByRole("table", { name: "Deployment hosts" });
    expect(lastQuery(mock).get("state")).toBe("failed");
    expect(lastQuery(mock).get("limit")).toBe("25");
    const rows = within(table).getAllByRole("row");
    expect(within(rows[1]!).getByRole("link", { name: "web-01" })).toHaveAttribute("href", "/hosts/1");
    expect(within(table).getByRole("link", { name: "<i>db-01</i>" })).toBeInTheDocument();

    await user.click(within(table).getByRole("button", { name: "Show the plan of web-01" }));
    const plan = await screen.findByRole("table", { name: "Plan of web-01" });
    expect(plan).toHaveTextContent("openssl");
    expect(plan).toHaveTextContent("3.0.11-1");
    expect(plan).toHaveTextContent("3.0.13-1");
    expect(screen.getByText("Installs: 0")).toBeInTheDocument();
    expect(screen.getByText("Upgrades: 1")).toBeInTheDocument();
    expect(screen.getByText("openssl (amd64): 3.0.11-1 → 3.0.13-1")).toBeInTheDocument();
    expect(screen.getByText("Removals: 1")).toBeInTheDocument();
    expect(screen.getByText("libssl1.1 (amd64): 1.1.1w-0 → —")).toBeInTheDocument();
    expect(screen.getByText("Reboot needed: no")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Dry run output" })).toHaveAttribute("href", "/hosts/1?tab=commands&command=c-prev");
    expect(screen.getByRole("link", { name: "Install output" })).toHaveAttribute("href", "/hosts/1?tab=commands&command=c-apply");

    await user.click(within(table).getByRole("button", { name: "Show the plan of <i>db-01</i>" }));
    expect(await screen.findByText("No dry run: push agents have no dry run.")).toBeInTheDocument();
    expect(screen.getAllByText("nginx.service is not active").length).toBeGreaterThan(0);
    expect(screen.getByText("health_failed")).toBeInTheDocument();

    await user.click(screen.getByRole("combobox", { name: "State" }));
    await user.click(await screen.findByRole("option", { name: /^running/ }));
    await waitFor(() => expect(lastQuery(mock).get("state")).toBe("running"));
  });

  it("updates live from deployment and deployment_host events", async () => {
    const streams = mockEventSource();
    const mock = mockFetch({
      ...operator,
      [ONE]: [json(200, deployment(5, "December security")), json(200, deployment(5, "December security", { status: "succeeded", hosts: { succeeded: 4 } }))],
      [HOSTS]: [json(200, hosts), json(200, page([deploymentHost(1, "web-01", { state: "verifying" })]))],
    });
    renderApp("/deployments/5");
    await screen.findByRole("table", { name: "Deployment hosts" });
    expect(mock.callsTo(HOSTS)).toHaveLength(1);
    act(() => {
      streams[0]!.emit("open");
      streams[0]!.emit("deployment_host", { type: "deployment_host", deployment_id: 5, host_id: 1, state: "verifying" });
      streams[0]!.emit("deployment", { type: "deployment", deployment_id: 5, status: "succeeded" });
      // Another deployment: nothing to re-read here.
      streams[0]!.emit("deployment_host", { type: "deployment_host", deployment_id: 9, host_id: 1, state: "running" });
    });
    await waitFor(() => expect(mock.callsTo(HOSTS)).toHaveLength(2));
    expect(await screen.findByText("4 of 4 done · 4 succeeded · 0 failed")).toBeInTheDocument();
    expect(within(screen.getByRole("table", { name: "Deployment hosts" })).getByText("verifying")).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/deployments/9")).toHaveLength(0);
  });

  it("says plainly when the deployment does not exist", async () => {
    mockFetch({ ...operator, [ONE]: apiError(404, "not_found", "deployment not found") });
    renderApp("/deployments/5");
    expect(await screen.findByText("No such deployment")).toBeInTheDocument();
  });

  it("shows a load error with Retry", async () => {
    mockFetch({ ...operator, [ONE]: apiError(500, "internal", "boom") });
    renderApp("/deployments/5");
    expect(await screen.findByText("Could not load the deployment")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Retry" })).toBeInTheDocument();
  });
});
