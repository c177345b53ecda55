import { describe, expect, it } from "vitest";
import { screen, within } from "@testing-library/react";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { renderApp } from "../test/render";

const WORKERS = "GET /api/v1/workers";
const worker = (id: string, extra = {}) => ({
  id,
  hostname: "mgr-1",
  pid: 4242,
  version: "0.3.0",
  role: "serve",
  started_at: "2026-12-03T08:00:00Z",
  heartbeat_at: "2026-12-03T10:00:00Z",
  jobs_run: 1234,
  stopped_at: null,
  stale: false,
  ...extra,
});

describe("Workers page", () => {
  it("lists the workers with their state, warns about stale ones, and shows the queue", async () => {
    mockFetch({
      [ME_PATH]: json(200, meBody()),
      [WORKERS]: json(200, {
        workers: [worker("w1"), worker("w2", { hostname: "<b>mgr-2</b>", role: "worker", stale: true }), worker("w3", { stopped_at: "2026-12-02T00:00:00Z" })],
        jobs: { queued: 12, due: 3, running: 2, done: 900, failed: 1 },
        healthy: 1,
      }),
    });
    renderApp("/workers");
    const table = await screen.findByRole("table", { name: "Workers" });
    const rows = within(table).getAllByRole("row");
    expect(rows).toHaveLength(4);
    expect(rows[1]).toHaveTextContent("running");
    expect(rows[1]).toHaveTextContent("1,234");
    expect(within(rows[2]!).getByText("<b>mgr-2</b>")).toBeInTheDocument();
    expect(rows[2]).toHaveTextContent("stale");
    expect(rows[3]).toHaveTextContent("stopped");
    expect(screen.getByText(/1 worker has not sent a heartbeat recently/)).toBeInTheDocument();
    expect(screen.getByText("Due now").previousSibling).toHaveTextContent("3");
    expect(screen.getByText("Failed").previousSibling).toHaveTextContent("1");
    expect(screen.getAllByRole("link", { name: "Workers" })[0]).toHaveAttribute("href", "/workers");
  });

  it("says plainly when no worker is healthy", async () => {
    mockFetch({
      [ME_PATH]: json(200, meBody()),
      [WORKERS]: json(200, { workers: [worker("w1", { stale: true })], jobs: { queued: 500, due: 500, running: 0, done: 0, failed: 0 }, healthy: 0 }),
    });
    renderApp("/workers");
    expect(await screen.findByText(/No healthy worker: jobs are not being run/)).toBeInTheDocument();
    expect(screen.getByText(/the workers do not keep up/)).toBeInTheDocument();
  });

  it("shows a load error with Retry", async () => {
    mockFetch({ [ME_PATH]: json(200, meBody()), [WORKERS]: apiError(500, "internal", "boom") });
    renderApp("/workers");
    expect(await screen.findByText("Could not load workers")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Retry" })).toBeInTheDocument();
  });

  it("is for administrators only", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/workers");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo(WORKERS)).toHaveLength(0);
    expect(screen.queryByRole("link", { name: "Workers" })).not.toBeInTheDocument();
  });
});
