import { describe, expect, it } from "vitest";
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, json, meBody, mockFetch } from "../test/fetchMock";
import { mockEventSource } from "../test/eventSource";
import { deployment, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const LIST = "GET /api/v1/deployments";
const list = page(
  [
    deployment(2, "December security"),
    deployment(1, "Kernel <b>bold</b>", {
      status: "partially_failed",
      hosts: { succeeded: 3, failed: 1 },
      selection: { type: "packages", packages: ["linux-image-amd64"] },
    }),
  ],
  60,
  25,
);

function lastQuery(mock: ReturnType<typeof mockFetch>): URLSearchParams {
  const calls = mock.callsTo(LIST);
  return calls[calls.length - 1]!.query;
}

describe("Deployments page", () => {
  it("lists one page of deployments with status chips and progress", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ [ME_PATH]: json(200, meBody()), [LIST]: json(200, list) });
    renderApp("/deployments");
    const table = await screen.findByRole("table", { name: "Deployments" });
    const rows = within(table).getAllByRole("row");
    expect(rows).toHaveLength(3);
    expect(within(rows[1]!).getByRole("link", { name: "December security" })).toHaveAttribute("href", "/deployments/2");
    expect(rows[1]).toHaveTextContent("running");
    expect(rows[1]).toHaveTextContent("Security updates");
    expect(rows[1]).toHaveTextContent("1 of 2");
    // Host-provided and user-provided strings are text.
    expect(within(rows[2]!).getByRole("link", { name: "Kernel <b>bold</b>" })).toBeInTheDocument();
    expect(rows[2]).toHaveTextContent("partially failed");
    expect(rows[2]).toHaveTextContent("1 package: linux-image-amd64");
    expect(await within(rows[1]!).findByText("1 of 4 done · 1 succeeded · 0 failed · 1 in progress")).toBeInTheDocument();
    expect(await within(rows[2]!).findByText("4 of 4 done · 3 succeeded · 1 failed")).toBeInTheDocument();
    expect(within(rows[2]!).getByRole("progressbar", { name: "Kernel <b>bold</b>: 4 of 4 hosts done" })).toHaveAttribute("aria-valuenow", "100");
    expect(lastQuery(mock).get("limit")).toBe("25");
    expect(lastQuery(mock).get("offset")).toBe("0");
    expect(lastQuery(mock).has("status")).toBe(false);

    await user.click(screen.getByRole("button", { name: /next page/i }));
    await waitFor(() => expect(lastQuery(mock).get("offset")).toBe("25"));
  });

  it("shows progress from the list's own counts, without reading each deployment", async () => {
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [LIST]: json(
        200,
        page([
          // total_hosts counts every host in scope, also states the bar does not name.
          deployment(3, "Big rollout", { hosts: { succeeded: 5, waiting_for_window: 3 }, total_hosts: 10 }),
          deployment(4, "Nothing in scope", { status: "succeeded", hosts: {}, total_hosts: 0 }),
        ]),
      ),
    });
    renderApp("/deployments");
    const table = await screen.findByRole("table", { name: "Deployments" });
    const rows = within(table).getAllByRole("row");
    expect(within(rows[1]!).getByText("5 of 10 done · 5 succeeded · 0 failed")).toBeInTheDocument();
    expect(within(rows[1]!).getByRole("progressbar", { name: "Big rollout: 5 of 10 hosts done" })).toHaveAttribute("aria-valuenow", "50");
    expect(within(rows[2]!).getByText("No hosts you can see")).toBeInTheDocument();
    expect(within(rows[2]!).queryByRole("progressbar")).not.toBeInTheDocument();
    // Only the list was read: no request per row.
    expect(mock.calls.filter((c) => c.path.startsWith("/api/v1/deployments/"))).toHaveLength(0);
    expect(mock.callsTo(LIST)).toHaveLength(1);
  });

  it("keeps the status filter in the URL and sends it to the API", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ [ME_PATH]: json(200, meBody()), [LIST]: json(200, page([])) });
    renderApp("/deployments?status=halted");
    expect(await screen.findByText("No deployment is halted")).toBeInTheDocument();
    expect(lastQuery(mock).get("status")).toBe("halted");

    await user.click(screen.getByRole("combobox", { name: "Status" }));
    await user.click(await screen.findByRole("option", { name: "awaiting approval" }));
    await waitFor(() => expect(lastQuery(mock).get("status")).toBe("awaiting_approval"));
  });

  it("says what to do when there is none yet, and links to a new one", async () => {
    mockFetch({ [ME_PATH]: json(200, meBody()), [LIST]: json(200, page([])) });
    renderApp("/deployments");
    expect(await screen.findByText("No deployments yet")).toBeInTheDocument();
    const links = screen.getAllByRole("link", { name: "New deployment" });
    expect(links[0]).toHaveAttribute("href", "/deployments/new");
    expect(screen.getAllByRole("link", { name: "Deployments" })[0]).toHaveAttribute("href", "/deployments");
  });

  it("offers no new deployment to viewers", async () => {
    mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "viewer" } }), [LIST]: json(200, page([])) });
    renderApp("/deployments");
    expect(await screen.findByText(/Operators and administrators create deployments/)).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "New deployment" })).not.toBeInTheDocument();
  });

  it("updates live from deployment events without reloading the page", async () => {
    const streams = mockEventSource();
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [LIST]: [
        json(200, page([deployment(2, "December security")])),
        json(200, page([deployment(2, "December security", { status: "succeeded", hosts: { succeeded: 4 } })])),
      ],
    });
    renderApp("/deployments");
    const table = await screen.findByRole("table", { name: "Deployments" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent("running");
    act(() => {
      streams[0]!.emit("open");
      streams[0]!.emit("deployment", { type: "deployment", deployment_id: 2, status: "succeeded" });
    });
    await waitFor(() => expect(mock.callsTo(LIST)).toHaveLength(2));
    const row = within(screen.getByRole("table", { name: "Deployments" })).getAllByRole("row")[1]!;
    expect(await within(row).findByText("succeeded")).toBeInTheDocument();
    expect(within(row).queryByText("running")).not.toBeInTheDocument();
    // The progress comes with the list too.
    expect(within(row).getByText("4 of 4 done · 4 succeeded · 0 failed")).toBeInTheDocument();
    expect(mock.calls.filter((c) => c.path.startsWith("/api/v1/deployments/"))).toHaveLength(0);
  });
});
