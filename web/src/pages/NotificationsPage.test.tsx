import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { ChannelView, DeliveryView, RuleView } from "../api/notifications";
import { ME_PATH, alice, apiError, json, meBody, mockFetch, noContent } from "../test/fetchMock";
import { page } from "../test/fixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };
const T = "2026-12-01T10:00:00Z";

const smtp: ChannelView = {
  id: 1,
  name: "ops mail",
  kind: "smtp",
  enabled: true,
  settings: { host: "smtp.example.com", port: null, mode: "starttls", username: "pd", from: "Patchdeck <pd@example.com>", ca_pem: null },
  secret_set: true,
  created_at: T,
  updated_at: T,
};
const hook: ChannelView = {
  id: 2,
  name: "chat",
  kind: "webhook",
  enabled: false,
  settings: { url: "https://hooks.example.com/pd", format: "slack", ca_pem: null },
  secret_set: false,
  created_at: T,
  updated_at: T,
};
const rule: RuleView = {
  id: 7,
  name: "failures to ops",
  events: ["deployment.failed", "host.unreachable"],
  channel_id: 1,
  recipients: ["ops@example.com", "oncall@example.com"],
  group_id: 3,
  enabled: true,
  created_at: T,
  updated_at: T,
};
function delivery(id: number, extra: Partial<DeliveryView> = {}): DeliveryView {
  return {
    id,
    channel_id: 1,
    rule_id: 7,
    event: "deployment.failed",
    event_id: `ev-${id}`,
    recipients: ["ops@example.com"],
    payload: { kind: "deployment.failed", data: {} },
    status: "sent",
    attempts: 1,
    next_attempt_at: T,
    last_error: null,
    created_at: T,
    sent_at: T,
    ...extra,
  };
}

function routes(extra: Record<string, Response | Response[]> = {}) {
  return {
    ...admin,
    "GET /api/v1/notification-channels": json(200, [smtp, hook]),
    "GET /api/v1/notification-rules": json(200, [rule]),
    "GET /api/v1/notification-deliveries": json(200, page([delivery(1), delivery(2, { status: "failed", attempts: 6, sent_at: null, last_error: "550 mailbox unavailable" })], 2, 25)),
    "GET /api/v1/groups": json(200, page([{ id: 3, name: "web", description: "", created_at: T }])),
    ...extra,
  };
}

/** Types by pasting (quicker than key by key under jsdom). */
async function fill(user: ReturnType<typeof userEvent.setup>, el: HTMLElement, text: string) {
  await user.click(el);
  await user.paste(text);
}

const table = (name: string) => screen.findByRole("table", { name });

describe("Notifications page", () => {
  it("lists channels (secrets only as set or not set), rules and deliveries", async () => {
    const mock = mockFetch(routes());
    renderApp("/notifications");
    expect(await screen.findByRole("status", { name: "Loading channels" })).toBeInTheDocument();
    const channels = await table("Channels");
    const rows = within(channels).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("ops mail");
    expect(rows[1]).toHaveTextContent("E-mail (SMTP)");
    expect(rows[1]).toHaveTextContent("smtp.example.com:587 (starttls), from Patchdeck <pd@example.com>");
    expect(rows[1]).toHaveTextContent("Password: set");
    expect(rows[2]).toHaveTextContent("https://hooks.example.com/pd (slack)");
    expect(rows[2]).toHaveTextContent("Signing secret: not set");
    expect(rows[2]).toHaveTextContent("disabled");

    const rules = await table("Rules");
    const r = within(rules).getAllByRole("row")[1]!;
    expect(r).toHaveTextContent("failures to ops");
    expect(r).toHaveTextContent("deployment.failed");
    expect(r).toHaveTextContent("host.unreachable");
    expect(r).toHaveTextContent("ops@example.com, oncall@example.com");
    await waitFor(() => expect(r).toHaveTextContent("web"));
    expect(r).toHaveTextContent("ops mail");

    const deliveries = await table("Deliveries");
    const d = within(deliveries).getAllByRole("row");
    expect(d[1]).toHaveTextContent("sent");
    expect(d[2]).toHaveTextContent("failed");
    expect(d[2]).toHaveTextContent("550 mailbox unavailable");
    expect(d[2]).toHaveTextContent("6");
    expect(mock.callsTo("GET /api/v1/notification-deliveries")[0]!.query.get("limit")).toBe("25");
    expect(mock.unmatched).toEqual([]);
  });

  it("creates an SMTP channel, showing a refused field on that field", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "POST /api/v1/notification-channels": [
          apiError(400, "validation_error", "settings.from: must be an e-mail address", { field: "settings.from" }),
          json(201, { ...smtp, id: 9, name: "mail2" }),
        ],
      }),
    );
    renderApp("/notifications");
    await table("Channels");
    await user.click(screen.getByRole("button", { name: "New channel" }));
    const dialog = await screen.findByRole("dialog", { name: "New channel" });
    await fill(user, within(dialog).getByRole("textbox", { name: "Name" }), "mail2");
    await fill(user, within(dialog).getByRole("textbox", { name: "SMTP server" }), "smtp.example.com");
    await fill(user, within(dialog).getByRole("spinbutton", { name: "Port" }), "2525");
    await fill(user, within(dialog).getByRole("textbox", { name: "From" }), "nobody");
    await fill(user, within(dialog).getByRole("textbox", { name: "User name" }), "pd");
    await fill(user, within(dialog).getByLabelText("SMTP password"), "hunter2");
    await user.click(within(dialog).getByRole("button", { name: "Create channel" }));
    const from = within(dialog).getByRole("textbox", { name: "From" });
    await waitFor(() => expect(from).toHaveAttribute("aria-invalid", "true"));
    expect(within(dialog).getByText("settings.from: must be an e-mail address")).toBeInTheDocument();
    await user.clear(from);
    await fill(user, from, "pd@example.com");
    await user.click(within(dialog).getByRole("button", { name: "Create channel" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    const posts = mock.callsTo("POST /api/v1/notification-channels");
    expect(posts).toHaveLength(2);
    expect(posts[1]!.body).toEqual({
      name: "mail2",
      kind: "smtp",
      enabled: true,
      settings: { host: "smtp.example.com", port: 2525, mode: "starttls", username: "pd", from: "pd@example.com", ca_pem: null },
      secret: "hunter2",
    });
    await waitFor(() => expect(mock.callsTo("GET /api/v1/notification-channels").length).toBeGreaterThan(1));
  });

  it("creates a webhook channel", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes({ "POST /api/v1/notification-channels": json(201, { ...hook, id: 9 }) }));
    renderApp("/notifications");
    await table("Channels");
    await user.click(screen.getByRole("button", { name: "New channel" }));
    const dialog = await screen.findByRole("dialog", { name: "New channel" });
    await fill(user, within(dialog).getByRole("textbox", { name: "Name" }), "hook2");
    await user.click(within(dialog).getByRole("combobox", { name: "Kind" }));
    await user.click(await screen.findByRole("option", { name: /^Webhook/ }));
    await fill(user, within(dialog).getByRole("textbox", { name: "URL" }), "https://r.example.com/in");
    await fill(user, within(dialog).getByLabelText("Signing secret"), "s3cret");
    await user.click(within(dialog).getByRole("button", { name: "Create channel" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/notification-channels")).toHaveLength(1));
    expect(mock.callsTo("POST /api/v1/notification-channels")[0]!.body).toEqual({
      name: "hook2",
      kind: "webhook",
      enabled: true,
      settings: { url: "https://r.example.com/in", format: "generic", ca_pem: null },
      secret: "s3cret",
    });
  });

  it("edits a channel: the secret is kept unless replaced or removed, and never shown", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes({ "PUT /api/v1/notification-channels/1": json(200, smtp) }));
    renderApp("/notifications");
    const channels = await table("Channels");
    await user.click(within(channels).getByRole("button", { name: "Edit ops mail" }));
    let dialog = await screen.findByRole("dialog", { name: "Edit channel ops mail" });
    expect(within(dialog).getByRole("textbox", { name: "SMTP server" })).toHaveValue("smtp.example.com");
    expect(within(dialog).getByText("Currently set. It is never shown.")).toBeInTheDocument();
    const name = within(dialog).getByRole("textbox", { name: "Name" });
    await user.clear(name);
    await fill(user, name, "ops e-mail");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/notification-channels/1")).toHaveLength(1));
    expect(mock.callsTo("PUT /api/v1/notification-channels/1")[0]!.body).toEqual({
      name: "ops e-mail",
      enabled: true,
      settings: { host: "smtp.example.com", port: null, mode: "starttls", username: "pd", from: "Patchdeck <pd@example.com>", ca_pem: null },
    });

    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    await user.click(within(await table("Channels")).getByRole("button", { name: "Edit ops mail" }));
    dialog = await screen.findByRole("dialog", { name: "Edit channel ops mail" });
    await user.click(within(dialog).getByRole("combobox", { name: "SMTP password" }));
    await user.click(await screen.findByRole("option", { name: "Replace it" }));
    await fill(user, within(dialog).getByLabelText(/^SMTP password/, { selector: "input[type=password]" }), "new-pass");
    await user.click(within(dialog).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/notification-channels/1")).toHaveLength(2));
    expect(mock.callsTo("PUT /api/v1/notification-channels/1")[1]!.body).toMatchObject({ secret: "new-pass" });
  });

  it("tests a channel and says plainly whether it arrived", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "POST /api/v1/notification-channels/1/test": json(200, { delivered: false, error: "535 authentication failed" }),
        "POST /api/v1/notification-channels/2/test": json(200, { delivered: true, error: null }),
      }),
    );
    renderApp("/notifications");
    const channels = await table("Channels");
    await user.click(within(channels).getByRole("button", { name: "Test ops mail" }));
    let dialog = await screen.findByRole("dialog", { name: "Test ops mail" });
    const send = within(dialog).getByRole("button", { name: "Send test" });
    expect(send).toBeDisabled();
    await fill(user, within(dialog).getByRole("textbox", { name: "Send to" }), "me@example.com, you@example.com");
    await user.click(send);
    expect(await within(dialog).findByText("Not delivered")).toBeInTheDocument();
    expect(within(dialog).getByText("535 authentication failed")).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/notification-channels/1/test")[0]!.body).toEqual({ recipients: ["me@example.com", "you@example.com"] });
    await user.click(within(dialog).getByRole("button", { name: "Close" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

    await user.click(within(await table("Channels")).getByRole("button", { name: "Test chat" }));
    dialog = await screen.findByRole("dialog", { name: "Test chat" });
    expect(within(dialog).queryByRole("textbox", { name: "Send to" })).not.toBeInTheDocument();
    await user.click(within(dialog).getByRole("button", { name: "Send test" }));
    expect(await within(dialog).findByText("Delivered")).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/notification-channels/2/test")[0]!.body).toEqual({});
  });

  it("deletes a channel after confirming", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes({ "DELETE /api/v1/notification-channels/2": noContent() }));
    renderApp("/notifications");
    await user.click(within(await table("Channels")).getByRole("button", { name: "Delete chat" }));
    const dialog = await screen.findByRole("dialog", { name: "Delete this channel?" });
    expect(dialog).toHaveTextContent("deleted with its rules and its delivery history");
    await user.click(within(dialog).getByRole("button", { name: "Delete" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/notification-channels/2")).toHaveLength(1));
  });

  it("creates a rule, showing a refused recipient on the field", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "POST /api/v1/notification-rules": [
          apiError(400, "validation_error", "recipients[0]: not an e-mail address", { field: "recipients[0]" }),
          json(201, { ...rule, id: 8 }),
        ],
      }),
    );
    renderApp("/notifications");
    await table("Rules");
    await user.click(screen.getByRole("button", { name: "New rule" }));
    const dialog = await screen.findByRole("dialog", { name: "New rule" });
    await fill(user, within(dialog).getByRole("textbox", { name: "Name" }), "digest");
    await user.click(within(dialog).getByRole("checkbox", { name: "Daily digest of new security updates" }));
    await user.click(within(dialog).getByRole("checkbox", { name: "A deployment failed" }));
    const recipients = within(dialog).getByRole("textbox", { name: "Recipients" });
    await fill(user, recipients, "nope");
    await user.click(within(dialog).getByRole("combobox", { name: "Only hosts of group" }));
    await user.click(await screen.findByRole("option", { name: "web" }));
    await user.click(within(dialog).getByRole("button", { name: "Create rule" }));
    await waitFor(() => expect(recipients).toHaveAttribute("aria-invalid", "true"));
    expect(within(dialog).getByText("recipients[0]: not an e-mail address")).toBeInTheDocument();
    await user.clear(recipients);
    await fill(user, recipients, "sec@example.com");
    await user.click(within(dialog).getByRole("button", { name: "Create rule" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    expect(mock.callsTo("POST /api/v1/notification-rules")[1]!.body).toEqual({
      name: "digest",
      events: ["deployment.failed", "security.digest"],
      channel_id: 1,
      recipients: ["sec@example.com"],
      group_id: 3,
      enabled: true,
    });

  });

  it("edits a rule (a webhook takes no recipients) and deletes one", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(
      routes({
        "PUT /api/v1/notification-rules/7": json(200, rule),
        "DELETE /api/v1/notification-rules/7": noContent(),
      }),
    );
    renderApp("/notifications");
    await screen.findByText("failures to ops");
    await user.click(within(await table("Rules")).getByRole("button", { name: "Edit rule failures to ops" }));
    const edit = await screen.findByRole("dialog", { name: "Edit rule failures to ops" });
    expect(within(edit).getByRole("checkbox", { name: "A host went offline or unreachable" })).toBeChecked();
    // Moving the rule to the webhook channel drops the recipients.
    await user.click(within(edit).getByRole("combobox", { name: "Channel" }));
    await user.click(await screen.findByRole("option", { name: /^chat/ }));
    expect(within(edit).queryByRole("textbox", { name: "Recipients" })).not.toBeInTheDocument();
    await user.click(within(edit).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/notification-rules/7")).toHaveLength(1));
    expect(mock.callsTo("PUT /api/v1/notification-rules/7")[0]!.body).toEqual({
      name: "failures to ops",
      events: ["deployment.failed", "host.unreachable"],
      channel_id: 2,
      recipients: [],
      group_id: 3,
      enabled: true,
    });
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

    await user.click(within(await table("Rules")).getByRole("button", { name: "Delete rule failures to ops" }));
    const confirm = await screen.findByRole("dialog", { name: "Delete this rule?" });
    await user.click(within(confirm).getByRole("button", { name: "Delete" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/notification-rules/7")).toHaveLength(1));
  });

  it("filters deliveries through the API", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch(routes());
    renderApp("/notifications?channel=1");
    await table("Deliveries");
    expect(mock.callsTo("GET /api/v1/notification-deliveries")[0]!.query.get("channel_id")).toBe("1");
    await user.click(screen.getByRole("combobox", { name: "Status" }));
    await user.click(await screen.findByRole("option", { name: "failed" }));
    await waitFor(() => {
      const last = mock.callsTo("GET /api/v1/notification-deliveries").at(-1)!;
      expect(last.query.get("status")).toBe("failed");
      expect(last.query.get("channel_id")).toBe("1");
    });
  });

  it("shows a load error with Retry, and what to do when empty", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch(
      routes({
        "GET /api/v1/notification-channels": [apiError(500, "internal", "x"), json(200, [])],
        "GET /api/v1/notification-rules": json(200, []),
        "GET /api/v1/notification-deliveries": json(200, page([], 0, 25)),
      }),
    );
    renderApp("/notifications");
    expect(await screen.findByText("Could not load channels")).toBeInTheDocument();
    await user.click(screen.getAllByRole("button", { name: "Retry" })[0]!);
    expect(await screen.findByText("No channels")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Add the first channel" })).toBeInTheDocument();
    expect(await screen.findByText(/Add a channel first/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "New rule" })).toBeDisabled();
    expect(screen.getByText("Nothing sent yet")).toBeInTheDocument();
  });

  it("is for administrators only", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }) });
    renderApp("/notifications");
    expect(await screen.findByText(/This page is for administrators/)).toBeInTheDocument();
    expect(mock.callsTo("GET /api/v1/notification-channels")).toHaveLength(0);
  });

  it("is in the navigation for administrators", async () => {
    mockFetch(routes());
    renderApp("/notifications");
    const nav = (await screen.findAllByRole("navigation", { name: "Main" }))[0]!;
    expect(within(nav).getByRole("link", { name: "Notifications" })).toHaveAttribute("href", "/notifications");
    expect(within(nav).getByRole("link", { name: "Certificates" })).toHaveAttribute("href", "/certificates");
  });
});
