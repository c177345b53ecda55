import { describe, expect, it } from "vitest";
import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { auditEntry, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

describe("Security events page", () => {
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
