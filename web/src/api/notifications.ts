// Notification channels, rules and deliveries (`/api/v1/notification-…`, admins; see
// docs/notifications.md): typed functions, types aliased from the generated schema, the channel
// settings as the handlers check them, and the TanStack Query keys.
//
// Channel secrets (the SMTP password, the webhook signing secret) are write-only: the API says
// only `secret_set`, and nothing here keeps one after it was sent.

import { API_BASE, api } from "./client";
import { queryString, type Page } from "./fleet";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type ChannelView = Schemas["ChannelView"];
export type CreateChannelRequest = Schemas["CreateChannelRequest"];
export type UpdateChannelRequest = Schemas["UpdateChannelRequest"];
export type TestChannelRequest = Schemas["TestChannelRequest"];
export type TestChannelResult = Schemas["TestChannelResult"];
export type RuleView = Schemas["RuleView"];
export type RuleRequest = Schemas["RuleRequest"];
export type DeliveryView = Schemas["DeliveryView"];
export type DeliveryQuery = NonNullable<paths["/api/v1/notification-deliveries"]["get"]["parameters"]["query"]>;

export type ChannelKind = "smtp" | "webhook";
export type SmtpMode = "starttls" | "tls" | "none";
export type WebhookFormat = "generic" | "slack" | "discord";

/** An SMTP channel's settings (`SmtpSettings` in crates/patchdeck/src/notify/channel.rs). */
export interface SmtpSettings {
  host: string;
  port: number | null;
  mode: SmtpMode;
  username: string | null;
  from: string;
  ca_pem: string | null;
}

/** A webhook channel's settings (`WebhookSettings`). */
export interface WebhookSettings {
  url: string;
  format: WebhookFormat;
  ca_pem: string | null;
}

/** The event kinds a rule can name (`EVENT_KINDS`), with what each means. */
export const EVENT_KINDS: { value: string; label: string }[] = [
  { value: "deployment.finished", label: "A deployment ended" },
  { value: "deployment.failed", label: "A deployment failed" },
  { value: "deployment.halted", label: "A deployment halted (a ring fell below its success threshold)" },
  { value: "host.unreachable", label: "A host went offline or unreachable" },
  { value: "security.digest", label: "Daily digest of new security updates" },
  { value: "certificate.expiring", label: "A certificate expires soon" },
];

export const SMTP_MODES: { value: SmtpMode; label: string; port: number }[] = [
  { value: "starttls", label: "STARTTLS (required, never a plain-text fallback)", port: 587 },
  { value: "tls", label: "TLS from the first byte (SMTPS)", port: 465 },
  { value: "none", label: "No encryption (only a relay on localhost)", port: 25 },
];

export const WEBHOOK_FORMATS: { value: WebhookFormat; label: string }[] = [
  { value: "generic", label: "Generic JSON, signed with HMAC-SHA256 (needs a secret)" },
  { value: "slack", label: "Slack incoming webhook" },
  { value: "discord", label: "Discord webhook" },
];

export const DELIVERY_STATUSES = ["pending", "sending", "sent", "failed"] as const;

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/** A channel's settings read defensively (the API types them as a free-form object). */
export function smtpSettingsOf(settings: Record<string, unknown>): SmtpSettings {
  const mode = str(settings["mode"]);
  return {
    host: str(settings["host"]) ?? "",
    port: typeof settings["port"] === "number" ? settings["port"] : null,
    mode: mode === "tls" || mode === "none" ? mode : "starttls",
    username: str(settings["username"]),
    from: str(settings["from"]) ?? "",
    ca_pem: str(settings["ca_pem"]),
  };
}

export function webhookSettingsOf(settings: Record<string, unknown>): WebhookSettings {
  const format = str(settings["format"]);
  return {
    url: str(settings["url"]) ?? "",
    format: format === "slack" || format === "discord" ? format : "generic",
    ca_pem: str(settings["ca_pem"]),
  };
}

/** One line saying where a channel sends: "smtp.example.com:587 (STARTTLS) from …" or the URL. */
export function channelTarget(c: ChannelView): string {
  if (c.kind === "smtp") {
    const s = smtpSettingsOf(c.settings);
    const port = s.port ?? SMTP_MODES.find((m) => m.value === s.mode)?.port ?? "";
    return `${s.host}:${port} (${s.mode}), from ${s.from}`;
  }
  const w = webhookSettingsOf(c.settings);
  return `${w.url} (${w.format})`;
}

const V = API_BASE;

export const notificationsApi = {
  channels: (signal?: AbortSignal) => api.get<ChannelView[]>(`${V}/notification-channels`, signal),
  createChannel: (body: CreateChannelRequest) => api.post<ChannelView>(`${V}/notification-channels`, body),
  updateChannel: (id: number, body: UpdateChannelRequest) => api.put<ChannelView>(`${V}/notification-channels/${id}`, body),
  deleteChannel: (id: number) => api.delete(`${V}/notification-channels/${id}`),
  /** Sends a test message now and says whether it arrived. */
  testChannel: (id: number, body: TestChannelRequest) =>
    api.post<TestChannelResult>(`${V}/notification-channels/${id}/test`, body),
  rules: (signal?: AbortSignal) => api.get<RuleView[]>(`${V}/notification-rules`, signal),
  createRule: (body: RuleRequest) => api.post<RuleView>(`${V}/notification-rules`, body),
  updateRule: (id: number, body: RuleRequest) => api.put<RuleView>(`${V}/notification-rules/${id}`, body),
  deleteRule: (id: number) => api.delete(`${V}/notification-rules/${id}`),
  deliveries: (q: DeliveryQuery, signal?: AbortSignal) =>
    api.get<Page<DeliveryView>>(`${V}/notification-deliveries${queryString(q)}`, signal),
};

export const notificationKeys = {
  all: ["notifications"] as const,
  channels: ["notifications", "channels"] as const,
  rules: ["notifications", "rules"] as const,
  deliveries: ["notifications", "deliveries"] as const,
  deliveryList: (q: DeliveryQuery) => ["notifications", "deliveries", q] as const,
};

/** Addresses typed one per line or separated by commas, trimmed, without blanks. */
export function splitAddresses(text: string): string[] {
  return text
    .split(/[\n,;]/)
    .map((a) => a.trim())
    .filter((a) => a !== "");
}
