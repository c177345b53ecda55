// A month of maintenance-window occurrences and blackouts: a 7-column grid of days (Monday
// first) on wider screens, a list of the days that have something on a phone. All in the
// browser's time zone; an occurrence also shows its window's own zone's wall clock when that
// differs, and the host or group its window is for (names come with the occurrences).

import { useState } from "react";
import { Box, Button, Typography } from "@mui/material";
import { alpha } from "@mui/material/styles";
import BlockIcon from "@mui/icons-material/Block";
import type { BlackoutView, OccurrenceView } from "../api/maintenance";
import { occurrenceTarget, timeIn } from "../api/maintenance";
import { EmptyState } from "./EmptyState";

/** A month: its year and its month, 1–12. */
export interface Month {
  year: number;
  month: number;
}

/** `2026-12` → December 2026; null when not a month. */
export function parseMonth(text: string): Month | null {
  const m = /^(\d{4})-(\d{2})$/.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  return month >= 1 && month <= 12 && year >= 1970 && year <= 9999 ? { year, month } : null;
}

export function formatMonth({ year, month }: Month): string {
  return `${year}-${String(month).padStart(2, "0")}`;
}

export function monthOf(d: Date): Month {
  return { year: d.getFullYear(), month: d.getMonth() + 1 };
}

export function addMonths({ year, month }: Month, n: number): Month {
  const i = year * 12 + (month - 1) + n;
  return { year: Math.floor(i / 12), month: (i % 12) + 1 };
}

/** The local date of `d` as `YYYY-MM-DD`. */
export function dayKey(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** The days the grid shows: whole weeks, Monday first, covering the month (local midnights). */
export function gridDays({ year, month }: Month): Date[] {
  const first = new Date(year, month - 1, 1);
  const lead = (first.getDay() + 6) % 7;
  const inMonth = new Date(year, month, 0).getDate();
  const count = Math.ceil((lead + inMonth) / 7) * 7;
  return Array.from({ length: count }, (_, i) => new Date(year, month - 1, 1 - lead + i));
}

/** The grid's range, from its first local midnight to the one after its last day. */
export function gridRange(m: Month): { from: Date; to: Date } {
  const days = gridDays(m);
  const last = days[days.length - 1]!;
  return { from: days[0]!, to: new Date(last.getFullYear(), last.getMonth(), last.getDate() + 1) };
}

const WEEKDAY_NAMES = Array.from({ length: 7 }, (_, i) =>
  new Intl.DateTimeFormat(undefined, { weekday: "short" }).format(new Date(2024, 0, 1 + i)),
);
const DAY_LABEL = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const MONTH_LABEL = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric" });

export function monthLabel({ year, month }: Month): string {
  return MONTH_LABEL.format(new Date(year, month - 1, 1));
}

/** How much of an occurrence a blackout covers. */
export function blockedShare(o: OccurrenceView): "none" | "part" | "all" {
  if (o.blocked.length === 0) return "none";
  const total = new Date(o.end).getTime() - new Date(o.start).getTime();
  const covered = o.blocked.reduce((n, b) => n + (new Date(b.end).getTime() - new Date(b.start).getTime()), 0);
  return covered >= total ? "all" : "part";
}

interface CalendarProps {
  month: Month;
  occurrences: OccurrenceView[];
  blackouts: BlackoutView[];
  /** The browser's zone. */
  zone: string;
  today: Date;
}

function overlaps(b: BlackoutView, from: Date, to: Date): boolean {
  return new Date(b.starts_at) < to && new Date(b.ends_at) > from;
}

/** "01:00 · 02:00 Europe/Berlin" — the local start, and the window's wall clock when its zone differs. */
export function occurrenceTimes(o: OccurrenceView, zone: string): { local: string; own: string | null } {
  const local = timeIn(o.start) ?? o.start;
  const own = o.time_zone;
  if (!own || own === zone) return { local, own: null };
  const there = timeIn(o.start, own);
  return { local, own: there && there !== local ? `${there} ${own}` : null };
}

function OccurrenceLine({ o, zone, withEnd }: { o: OccurrenceView; zone: string; withEnd?: boolean }) {
  const { local, own } = occurrenceTimes(o, zone);
  const blocked = blockedShare(o);
  const end = timeIn(o.end);
  const target = occurrenceTarget(o);
  const title = `${o.window_name}${target ? ` (${target})` : ""}: ${new Date(o.start).toLocaleString()} – ${new Date(o.end).toLocaleString()}${own ? ` (${own})` : ""}${
    blocked === "all" ? ", blocked by a blackout" : blocked === "part" ? ", partly blocked by a blackout" : ""
  }`;
  return (
    <Box
      component="li"
      title={title}
      sx={{
        listStyle: "none",
        fontSize: "0.75rem",
        lineHeight: 1.35,
        px: 0.5,
        py: 0.25,
        mb: 0.25,
        borderRadius: 0.5,
        borderLeft: 3,
        borderColor: blocked === "none" ? "primary.main" : blocked === "all" ? "error.main" : "warning.main",
        bgcolor: (t) => alpha(blocked === "none" ? t.palette.primary.main : t.palette.error.main, t.palette.mode === "dark" ? 0.2 : 0.08),
        overflowWrap: "anywhere",
      }}
    >
      <Box component="span" sx={{ fontWeight: 600 }}>
        {local}
        {withEnd && end ? `–${end}` : ""}
      </Box>{" "}
      <Box component="span" sx={{ textDecoration: blocked === "all" ? "line-through" : undefined }}>
        {o.window_name}
      </Box>
      {target && (
        <Box component="span" sx={{ display: "block", color: "text.secondary" }}>
          {target}
        </Box>
      )}
      {own && (
        <Box component="span" sx={{ display: "block", color: "text.secondary" }}>
          {own}
        </Box>
      )}
      {blocked !== "none" && (
        <Box component="span" sx={{ display: "block", color: blocked === "all" ? "error.main" : "warning.main" }}>
          {blocked === "all" ? "blocked by a blackout" : "partly blocked"}
        </Box>
      )}
    </Box>
  );
}

function BlackoutLine({ b }: { b: BlackoutView }) {
  return (
    <Box
      component="li"
      title={`Blackout ${b.name}: ${new Date(b.starts_at).toLocaleString()} – ${new Date(b.ends_at).toLocaleString()}${b.reason ? ` (${b.reason})` : ""}`}
      sx={{ listStyle: "none", fontSize: "0.75rem", color: "error.main", display: "flex", alignItems: "center", gap: 0.25, mb: 0.25, overflowWrap: "anywhere" }}
    >
      <BlockIcon sx={{ fontSize: "0.875rem" }} aria-hidden />
      <span>Blackout: {b.name}</span>
    </Box>
  );
}

const SHOWN_PER_DAY = 4;

function DayCell({
  day,
  inMonth,
  isToday,
  occurrences,
  blackouts,
  zone,
}: {
  day: Date;
  inMonth: boolean;
  isToday: boolean;
  occurrences: OccurrenceView[];
  blackouts: BlackoutView[];
  zone: string;
}) {
  const [all, setAll] = useState(false);
  const shown = all ? occurrences : occurrences.slice(0, SHOWN_PER_DAY);
  const label = `${DAY_LABEL.format(day)}${isToday ? ", today" : ""}`;
  return (
    <Box
      component="li"
      aria-label={label}
      aria-current={isToday ? "date" : undefined}
      sx={{
        listStyle: "none",
        minHeight: 110,
        minWidth: 0,
        p: 0.5,
        border: 1,
        borderColor: "divider",
        bgcolor: (t) => (blackouts.length > 0 ? alpha(t.palette.error.main, t.palette.mode === "dark" ? 0.12 : 0.05) : inMonth ? "background.paper" : "action.hover"),
        ...(isToday ? { outline: 2, outlineColor: "primary.main", outlineStyle: "solid", outlineOffset: -2 } : {}),
      }}
    >
      <Typography
        component="div"
        variant="body2"
        aria-hidden
        sx={{
          fontWeight: isToday ? 700 : 500,
          color: isToday ? "primary.main" : inMonth ? "text.primary" : "text.secondary",
          mb: 0.25,
        }}
      >
        {day.getDate()}
      </Typography>
      {(blackouts.length > 0 || occurrences.length > 0) && (
        <Box component="ul" sx={{ m: 0, p: 0 }}>
          {blackouts.map((b) => (
            <BlackoutLine key={`b${b.id}`} b={b} />
          ))}
          {shown.map((o) => (
            <OccurrenceLine key={`${o.window_id}-${o.start}`} o={o} zone={zone} />
          ))}
        </Box>
      )}
      {occurrences.length > SHOWN_PER_DAY && (
        <Button size="small" onClick={() => setAll((v) => !v)} sx={{ minWidth: 0, p: 0, fontSize: "0.75rem" }} aria-expanded={all}>
          {all ? "Fewer" : `+${occurrences.length - SHOWN_PER_DAY} more`}
        </Button>
      )}
    </Box>
  );
}

/** Occurrences by the local day they start on. */
function byDay(occurrences: OccurrenceView[]): Map<string, OccurrenceView[]> {
  const out = new Map<string, OccurrenceView[]>();
  for (const o of occurrences) {
    const d = new Date(o.start);
    if (Number.isNaN(d.getTime())) continue;
    const k = dayKey(d);
    const list = out.get(k);
    if (list) list.push(o);
    else out.set(k, [o]);
  }
  return out;
}

/** The month grid (hidden on phones). */
export function MonthGrid({ month, occurrences, blackouts, zone, today }: CalendarProps) {
  const days = gridDays(month);
  const starts = byDay(occurrences);
  const todayKey = dayKey(today);
  return (
    <Box sx={{ display: { xs: "none", md: "block" } }}>
      <Box aria-hidden sx={{ display: "grid", gridTemplateColumns: "repeat(7, minmax(0, 1fr))", mb: 0.5 }}>
        {WEEKDAY_NAMES.map((n) => (
          <Typography key={n} variant="caption" sx={{ px: 0.5, color: "text.secondary", fontWeight: 600 }}>
            {n}
          </Typography>
        ))}
      </Box>
      <Box
        component="ol"
        aria-label={`Days of ${monthLabel(month)}`}
        sx={{ display: "grid", gridTemplateColumns: "repeat(7, minmax(0, 1fr))", m: 0, p: 0 }}
      >
        {days.map((day) => {
          const k = dayKey(day);
          const next = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1);
          return (
            <DayCell
              key={k}
              day={day}
              inMonth={day.getMonth() + 1 === month.month}
              isToday={k === todayKey}
              occurrences={starts.get(k) ?? []}
              blackouts={blackouts.filter((b) => overlaps(b, day, next))}
              zone={zone}
            />
          );
        })}
      </Box>
    </Box>
  );
}

/**
 * The phone's view of the month: the days that have an occurrence or a blackout, as a list.
 * In the current month it starts today ("upcoming").
 */
export function AgendaList({ month, occurrences, blackouts, zone, today }: CalendarProps) {
  const isCurrent = month.year === today.getFullYear() && month.month === today.getMonth() + 1;
  const first = isCurrent ? new Date(today.getFullYear(), today.getMonth(), today.getDate()) : new Date(month.year, month.month - 1, 1);
  const monthEnd = new Date(month.year, month.month, 1);
  const days: Date[] = [];
  for (let d = first; d < monthEnd; d = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)) days.push(d);
  const starts = byDay(occurrences);
  const rows = days
    .map((day) => {
      const next = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1);
      return { day, occ: starts.get(dayKey(day)) ?? [], black: blackouts.filter((b) => overlaps(b, day, next)) };
    })
    .filter((r) => r.occ.length > 0 || r.black.length > 0);
  const title = isCurrent ? "Upcoming this month" : monthLabel(month);
  return (
    <Box sx={{ display: { xs: "block", md: "none" } }}>
      <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
        {title}
      </Typography>
      {rows.length === 0 ? (
        <EmptyState title={isCurrent ? "Nothing more this month" : "Nothing this month"}>Try the next month.</EmptyState>
      ) : (
        <Box component="ol" aria-label={title} sx={{ m: 0, p: 0 }}>
          {rows.map(({ day, occ, black }) => (
            <Box component="li" key={dayKey(day)} aria-label={DAY_LABEL.format(day)} sx={{ listStyle: "none", mb: 1.5 }}>
              <Typography variant="body2" sx={{ fontWeight: 600, color: dayKey(day) === dayKey(today) ? "primary.main" : undefined }}>
                {DAY_LABEL.format(day)}
                {dayKey(day) === dayKey(today) ? " (today)" : ""}
              </Typography>
              <Box component="ul" sx={{ m: 0, p: 0, mt: 0.5 }}>
                {black.map((b) => (
                  <BlackoutLine key={`b${b.id}`} b={b} />
                ))}
                {occ.map((o) => (
                  <OccurrenceLine key={`${o.window_id}-${o.start}`} o={o} zone={zone} withEnd />
                ))}
              </Box>
            </Box>
          ))}
        </Box>
      )}
    </Box>
  );
}
