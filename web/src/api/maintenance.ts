// Maintenance windows and blackouts (`/api/v1/maintenance-windows…`, `/api/v1/blackouts…`; the
// model is in docs/maintenance-windows.md): typed with the generated schema, plus the recurrence
// the schema leaves free-form, and how to describe it.

import { API_BASE, api } from "./client";
import { queryString, type Page } from "./fleet";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type WindowView = Schemas["WindowView"];
export type WindowRequest = Schemas["WindowRequest"];
export type BlackoutView = Schemas["BlackoutView"];
export type BlackoutRequest = Schemas["BlackoutRequest"];
export type OccurrenceView = Schemas["OccurrenceView"];
export type OccurrenceList = Schemas["OccurrenceList"];
export type IntervalView = Schemas["IntervalView"];
/** When work may next run on a host (`GET /api/v1/hosts/{id}/next-window`). */
export type NextWindow = Schemas["NextWindow"];

type QueryOf<P extends keyof paths> = paths[P] extends { get: { parameters: { query?: infer Q } } } ? NonNullable<Q> : never;
export type WindowListQuery = QueryOf<"/api/v1/maintenance-windows">;
export type OccurrenceQuery = QueryOf<"/api/v1/maintenance-windows/occurrences">;
export type BlackoutListQuery = QueryOf<"/api/v1/blackouts">;

export const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** `WindowView.recurrence` (a free-form object in the document; `patchdeck_schedule::Recurrence`). */
export type Recurrence =
  | { kind: "once"; date: string }
  | { kind: "daily" }
  | { kind: "weekly"; days: Weekday[] }
  | { kind: "monthly"; rule: "day_of_month"; day: number }
  | { kind: "monthly"; rule: "nth_weekday"; nth: number; weekday: Weekday };

/** Name and duration limits (the handlers' and `patchdeck_store::MAX_NAME_CHARS`). */
export const WINDOW_NAME_MAX = 100;
export const DURATION_MAX_MINUTES = 7 * 24 * 60;
export const BLACKOUT_REASON_MAX = 500;
/** Longest range of an occurrences query, in days. */
export const OCCURRENCE_RANGE_MAX_DAYS = 92;

const V = API_BASE;

export const windowsApi = {
  list: (q: WindowListQuery, signal?: AbortSignal) =>
    api.get<Page<WindowView>>(`${V}/maintenance-windows${queryString(q)}`, signal),
  create: (body: WindowRequest) => api.post<WindowView>(`${V}/maintenance-windows`, body),
  replace: (id: number, body: WindowRequest) => api.put<WindowView>(`${V}/maintenance-windows/${id}`, body),
  remove: (id: number) => api.delete(`${V}/maintenance-windows/${id}`),
  occurrences: (q: OccurrenceQuery, signal?: AbortSignal) =>
    api.get<OccurrenceList>(`${V}/maintenance-windows/occurrences${queryString(q)}`, signal),
  blackouts: (q: BlackoutListQuery, signal?: AbortSignal) => api.get<Page<BlackoutView>>(`${V}/blackouts${queryString(q)}`, signal),
  createBlackout: (body: BlackoutRequest) => api.post<BlackoutView>(`${V}/blackouts`, body),
  replaceBlackout: (id: number, body: BlackoutRequest) => api.put<BlackoutView>(`${V}/blackouts/${id}`, body),
  removeBlackout: (id: number) => api.delete(`${V}/blackouts/${id}`),
  /** The host's open-now or next open interval after blackouts (its own windows and its groups'). */
  hostNextWindow: (hostId: number, signal?: AbortSignal) => api.get<NextWindow>(`${V}/hosts/${hostId}/next-window`, signal),
};

/**
 * What an occurrence's window is for, by name: "Host web-1" or "Group databases". A group the
 * caller is not in has no name (a host's calendar holds all its groups' windows): "Another group".
 * Null for an occurrence of neither.
 */
export function occurrenceTarget(o: OccurrenceView): string | null {
  if (o.host_id != null) return `Host ${o.host_name ?? `#${o.host_id}`}`;
  if (o.group_id != null) return o.group_name != null ? `Group ${o.group_name}` : "Another group";
  return null;
}

export const windowKeys = {
  all: ["maintenance-windows"] as const,
  list: (q: WindowListQuery) => ["maintenance-windows", "list", q] as const,
  occurrences: (q: OccurrenceQuery) => ["maintenance-windows", "occurrences", q] as const,
  hostNext: (hostId: number) => ["maintenance-windows", "next", hostId] as const,
  blackouts: ["blackouts"] as const,
  blackoutList: (q: BlackoutListQuery) => ["blackouts", "list", q] as const,
};

function isWeekday(v: unknown): v is Weekday {
  return typeof v === "string" && (WEEKDAYS as readonly string[]).includes(v);
}

/** Reads a recurrence from the server defensively; null when it is not one this UI knows. */
export function parseRecurrence(r: Record<string, unknown>): Recurrence | null {
  switch (r["kind"]) {
    case "once":
      return typeof r["date"] === "string" ? { kind: "once", date: r["date"] } : null;
    case "daily":
      return { kind: "daily" };
    case "weekly": {
      const days = Array.isArray(r["days"]) ? r["days"].filter(isWeekday) : [];
      return { kind: "weekly", days };
    }
    case "monthly":
      if (r["rule"] === "day_of_month" && typeof r["day"] === "number") return { kind: "monthly", rule: "day_of_month", day: r["day"] };
      if (r["rule"] === "nth_weekday" && typeof r["nth"] === "number" && isWeekday(r["weekday"])) {
        return { kind: "monthly", rule: "nth_weekday", nth: r["nth"], weekday: r["weekday"] };
      }
      return null;
    default:
      return null;
  }
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const ORDINALS: Record<number, string> = { 1: "first", 2: "second", 3: "third", 4: "fourth", [-1]: "last" };

/** "Every Saturday and Sunday", "The last Friday of every month"… */
export function describeRecurrence(raw: Record<string, unknown>): string {
  const r = parseRecurrence(raw);
  if (!r) return JSON.stringify(raw);
  switch (r.kind) {
    case "once":
      return `Once, on ${r.date}`;
    case "daily":
      return "Every day";
    case "weekly": {
      if (r.days.length === 7) return "Every day of the week";
      const names = r.days.map(cap);
      const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : (names[0] ?? "no day");
      return `Every ${list}`;
    }
    case "monthly":
      if (r.rule === "day_of_month") {
        return r.day >= 29 ? `Day ${r.day} of every month (its last day when shorter)` : `Day ${r.day} of every month`;
      }
      return `The ${ORDINALS[r.nth] ?? `#${r.nth}`} ${cap(r.weekday)} of every month`;
  }
}

/** "3 h", "90 min", "2 d 4 h". */
export function formatDuration(minutes: number): string {
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const parts: string[] = [];
  if (d) parts.push(`${d} d`);
  if (h) parts.push(`${h} h`);
  if (m || parts.length === 0) parts.push(`${m} min`);
  return parts.join(" ");
}

/** The browser's IANA time zone (e.g. `Europe/Berlin`). */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** Every IANA zone this browser knows (for the time zone picker); a short list if it cannot say. */
export function knownTimeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  try {
    const zones = intl.supportedValuesOf?.("timeZone");
    if (zones && zones.length > 0) return zones.includes("UTC") ? zones : ["UTC", ...zones];
  } catch {
    // older browser
  }
  return ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"];
}

/** Hour and minute of `value` in `timeZone` ("02:00"); null when the zone is unknown here. */
export function timeIn(value: string | Date, timeZone?: string): string | null {
  const d = typeof value === "string" ? new Date(value) : value;
  if (Number.isNaN(d.getTime())) return null;
  try {
    return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false, ...(timeZone ? { timeZone } : {}) }).format(d);
  } catch {
    return null;
  }
}
