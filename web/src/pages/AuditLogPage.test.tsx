import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, json, meBody, mockFetch } from "../test/fetchMock";
import { auditEntry, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

describe("Audit log page", () => {
  it("shows entries, the chain status and the export link, and filters on the server", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/audit": json(200, page([auditEntry(12, "auth.login", { details: { note: "<img src=x onerror=alert(1)>" } }), auditEntry(11, "user.create")], 120)),
      "GET /api/v1/audit/verify": json(200, { status: "intact", checked: 120 }),
    });
    renderApp("/audit-log");
    const table = await screen.findByRole("table", { name: "Audit log entries" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent("auth.login");
    expect(await screen.findByText("Hash chain intact: 120 entries checked.")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: /Export/ })).toHaveAttribute("href", "/api/v1/audit/export");

    await user.click(screen.getByRole("button", { name: "Show details of entry 12" }));
    expect(await screen.findByText(/onerror=alert/)).toBeInTheDocument();
    expect(document.querySelector("img")).toBeNull();

    await user.type(screen.getByRole("textbox", { name: "Action" }), "auth.");
    await waitFor(() => expect(mock.callsTo("GET /api/v1/audit").at(-1)!.query.get("action")).toBe("auth."));
    await user.type(screen.getByRole("textbox", { name: "Actor" }), "user:alice");
    await waitFor(() => expect(mock.callsTo("GET /api/v1/audit").at(-1)!.query.get("actor")).toBe("user:alice"));
    await user.click(screen.getByRole("combobox", { name: "Outcome" }));
    await user.click(await screen.findByRole("option", { name: "Denied" }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/audit").at(-1)!.query.get("outcome")).toBe("denied"));
    const from = screen.getByLabelText("From");
    await user.type(from, "2026-12-01T08:30");
    await waitFor(() => expect(mock.callsTo("GET /api/v1/audit").at(-1)!.query.get("from")).toBe(new Date("2026-12-01T08:30").toISOString()));

    await user.click(screen.getByRole("button", { name: /next page/i }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/audit").at(-1)!.query.get("offset")).toBe("50"));
  });

  it("says loudly when the chain is broken", async () => {
    mockFetch({
      ...admin,
      "GET /api/v1/audit": json(200, page([])),
      "GET /api/v1/audit/verify": json(200, { status: "broken", checked: 40, first_broken: 17 }),
    });
    renderApp("/audit-log");
    expect(await screen.findByText(/Hash chain broken at entry 17/)).toBeInTheDocument();
    expect(screen.getByText("The log is empty")).toBeInTheDocument();
  });
});
