import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { hostDetail, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const POLICY = "GET /api/v1/groups/3/policy";
const PUT = "PUT /api/v1/groups/3/policy";
const base = {
  [ME_PATH]: json(200, meBody()),
  "GET /api/v1/groups": json(200, page([{ id: 3, name: "web servers", description: "Front ends", created_at: "2026-01-01T00:00:00Z" }])),
  [POLICY]: json(200, {
    require_approval: false,
    health_units: ["nginx.service"],
    health_probes: [{ type: "tcp", address: "127.0.0.1:5432", timeout_secs: 5 }],
  }),
};

describe("Group policy page", () => {
  it("shows the policy and saves the administrator's changes", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ ...base, [PUT]: (call) => json(200, call.body) });
    renderApp("/groups/3/policy");
    expect(await screen.findByRole("heading", { name: "Deployment policy: web servers" })).toBeInTheDocument();
    const units = await screen.findByRole("textbox", { name: "systemd units that must be active" });
    expect(units).toHaveValue("nginx.service");
    expect(screen.getByRole("textbox", { name: "Probe 1 address" })).toHaveValue("127.0.0.1:5432");

    await user.click(screen.getByRole("checkbox", { name: /wait for an approver/ }));
    await user.type(units, "\nphp-fpm.service");
    await user.click(screen.getByRole("button", { name: "Add probe" }));
    await user.type(screen.getByRole("textbox", { name: "Probe 2 URL" }), "not a url");
    await user.click(screen.getByRole("button", { name: "Save policy" }));
    expect(await screen.findByText("An http:// or https:// URL.")).toBeInTheDocument();
    expect(mock.callsTo(PUT)).toHaveLength(0);

    const url = screen.getByRole("textbox", { name: "Probe 2 URL" });
    await user.clear(url);
    await user.type(url, "http://127.0.0.1/health");
    await user.type(screen.getByRole("spinbutton", { name: "Expected status" }), "200");
    await user.click(screen.getByRole("button", { name: "Save policy" }));
    await waitFor(() => expect(mock.callsTo(PUT)).toHaveLength(1));
    expect(mock.callsTo(PUT)[0]!.body).toEqual({
      require_approval: true,
      health_units: ["nginx.service", "php-fpm.service"],
      health_probes: [
        { type: "tcp", address: "127.0.0.1:5432", timeout_secs: 5 },
        { type: "http", url: "http://127.0.0.1/health", expect_status: 200, timeout_secs: 5 },
      ],
    });
    expect(await screen.findByText(/Saved\./)).toBeInTheDocument();
  }, 60_000);

  it("shows the server's objection to the probes", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({ ...base, [PUT]: apiError(400, "validation_error", "unknown probe type", { field: "health_probes" }) });
    renderApp("/groups/3/policy");
    await user.click(await screen.findByRole("button", { name: "Save policy" }));
    expect(await screen.findByText("Unknown probe type.")).toBeInTheDocument();
  });

  it("is read-only for operators", async () => {
    mockFetch({ ...base, [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/groups/3/policy");
    expect(await screen.findByText("Only administrators change a group's policy.")).toBeInTheDocument();
    expect(screen.getByRole("checkbox", { name: /wait for an approver/ })).toBeDisabled();
    expect(screen.queryByRole("button", { name: "Save policy" })).not.toBeInTheDocument();
  });

  it("is reached from a host's groups", async () => {
    mockFetch({
      ...base,
      "GET /api/v1/hosts/1": json(200, hostDetail(1, "web-01")),
    });
    renderApp("/hosts/1");
    const link = await screen.findByRole("link", { name: "web servers: deployment policy" });
    expect(link).toHaveAttribute("href", "/groups/3/policy");
    expect(within(link).getByText("web servers")).toBeInTheDocument();
  });
});
