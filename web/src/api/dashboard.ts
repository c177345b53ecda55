// The dashboard: the fleet summary (`GET /api/v1/dashboard`) and the next maintenance window
// occurrences (`GET /api/v1/maintenance-windows/occurrences`), with their query keys.

import { API_BASE, api } from "./client";
import { queryString } from "./fleet";
import type { components } from "./schema";

/** `GET /api/v1/dashboard?days=N`: the fleet numbers, scoped by the server to the hosts the caller may see. */
export type DashboardView = components["schemas"]["DashboardView"];
/** One UTC day of the compliance trend; the last one is today. */
export type TrendPoint = components["schemas"]["ComplianceDay"];

export type Severity = keyof DashboardView["security_updates"]["by_severity"];
/** Most urgent first. */
export const SEVERITIES: readonly Severity[] = ["critical", "high", "medium", "low", "unspecified"];

export type OccurrenceView = components["schemas"]["OccurrenceView"];
export type OccurrenceList = components["schemas"]["OccurrenceList"];

/** The days of history the dashboard asks for (the API takes 1..=365). */
export const DASHBOARD_DAYS = 30;
/** How far ahead the dashboard lists maintenance windows. */
export const UPCOMING_DAYS = 7;
/** The dashboard re-reads everything this often, besides the live events. */
export const DASHBOARD_POLL_MS = 60_000;

const V = API_BASE;

export const dashboardApi = {
  summary: (days: number, signal?: AbortSignal) => api.get<DashboardView>(`${V}/dashboard${queryString({ days })}`, signal),
  /** Occurrences of every window in the caller's scope overlapping `[from, to)` (at most 92 days). */
  occurrences: (from: Date, to: Date, signal?: AbortSignal) =>
    api.get<OccurrenceList>(
      `${V}/maintenance-windows/occurrences${queryString({ from: from.toISOString(), to: to.toISOString() })}`,
      signal,
    ),
};

export const dashboardKeys = {
  /** Prefix of the fleet summary (host and deployment events invalidate it). */
  all: ["dashboard"] as const,
  summary: (days: number) => ["dashboard", "summary", days] as const,
  /** Not under `dashboard`: host events do not change the windows. */
  upcoming: (days: number) => ["maintenance-windows", "upcoming", days] as const,
};
