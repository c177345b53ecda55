// Typed fixtures for the group and maintenance-window pages (kept apart from fixtures.ts).

import type { GroupUserView, GroupView } from "../api/groups";
import type { BlackoutView, OccurrenceView, WindowView } from "../api/maintenance";

export function group(id: number, name: string, extra: Partial<GroupView> = {}): GroupView {
  return { id, name, description: "", host_count: 0, user_count: 0, created_at: "2026-01-01T00:00:00Z", ...extra };
}

export function groupUser(id: number, username: string, extra: Partial<GroupUserView> = {}): GroupUserView {
  return { id, username, display_name: username.charAt(0).toUpperCase() + username.slice(1), role: "operator", ...extra };
}

export function window_(id: number, name: string, extra: Partial<WindowView> = {}): WindowView {
  return {
    id,
    name,
    host_id: null,
    group_id: 3,
    recurrence: { kind: "weekly", days: ["saturday", "sunday"] },
    start_time: "02:00",
    duration_minutes: 180,
    time_zone: "Europe/Berlin",
    enabled: true,
    next_occurrence: { start: "2026-12-05T01:00:00Z", end: "2026-12-05T04:00:00Z" },
    created_by: 1,
    created_at: "2026-12-01T09:12:03Z",
    updated_at: "2026-12-01T09:12:03Z",
    ...extra,
  };
}

export function blackout(id: number, name: string, extra: Partial<BlackoutView> = {}): BlackoutView {
  return {
    id,
    name,
    group_id: null,
    starts_at: "2026-12-20T00:00:00Z",
    ends_at: "2027-01-05T00:00:00Z",
    reason: "finance closing",
    created_by: 1,
    created_at: "2026-12-01T00:00:00Z",
    ...extra,
  };
}

export function occurrence(windowId: number, name: string, start: string, end: string, extra: Partial<OccurrenceView> = {}): OccurrenceView {
  return {
    window_id: windowId,
    window_name: name,
    time_zone: "UTC",
    host_id: null,
    host_name: null,
    group_id: 3,
    group_name: "web servers",
    start,
    end,
    blocked: [],
    ...extra,
  };
}
