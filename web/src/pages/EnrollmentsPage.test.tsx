import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { enrollment, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };

describe("Enrollments page", () => {
  it("lists waiting machines and approves and rejects them at the right URLs", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/enrollments": json(200, page([enrollment(7, "new-01"), enrollment(8, "odd-02")])),
      "POST /api/v1/enrollments/7/approve": json(200, enrollment(7, "new-01", { approval: "approved" })),
      "POST /api/v1/enrollments/8/reject": json(200, enrollment(8, "odd-02", { approval: "rejected" })),
    });
    renderApp("/enrollments");
    const table = await screen.findByRole("table", { name: "Enrollments" });
    expect(table).toHaveTextContent("m7abcdef");
    expect(mock.callsTo("GET /api/v1/enrollments")[0]!.query.get("approval")).toBe("pending");

    await user.click(screen.getByRole("button", { name: "Approve new-01" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/enrollments/7/approve")).toHaveLength(1));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/enrollments").length).toBeGreaterThan(1));

    await user.click(screen.getByRole("button", { name: "Reject odd-02" }));
    const confirm = await screen.findByRole("dialog", { name: "Reject odd-02?" });
    expect(mock.callsTo("POST /api/v1/enrollments/8/reject")).toHaveLength(0);
    await user.click(within(confirm).getByRole("button", { name: "Reject" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/enrollments/8/reject")).toHaveLength(1));
    expect(mock.callsTo("POST /api/v1/enrollments/7/reject")).toHaveLength(0);
  });

  it("shows a failed approval plainly, and the rejected list on its tab", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      "GET /api/v1/enrollments": json(200, page([enrollment(7, "new-01")])),
      "POST /api/v1/enrollments/7/approve": apiError(409, "conflict", "the host is no longer waiting for approval"),
    });
    renderApp("/enrollments");
    await user.click(await screen.findByRole("button", { name: "Approve new-01" }));
    expect(await screen.findByText("The host is no longer waiting for approval.")).toBeInTheDocument();
    await user.click(screen.getByRole("tab", { name: "Rejected" }));
    await waitFor(() => expect(mock.callsTo("GET /api/v1/enrollments").at(-1)!.query.get("approval")).toBe("rejected"));
  });
});
