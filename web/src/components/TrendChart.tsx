// A small percentage-over-days line chart drawn as inline SVG (no chart library): a line and a
// shaded area per run of days with a value, gaps where a day has none, axis labels, and an
// accessible summary. Colours come from the MUI theme, so it follows light and dark mode.

import { useEffect, useRef, useState } from "react";
import { Box, Typography, alpha, useTheme } from "@mui/material";

export interface ChartPoint {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  /** 0..100, or null for a day with no value (drawn as a gap). */
  value: number | null;
  /** Extra text for the point's tooltip ("46 of 50 scanned hosts"). */
  detail?: string;
}

const DAY_FORMAT = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
const FULL_DAY_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });

function parseDay(day: string): Date | null {
  const d = new Date(`${day}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "3 Dec" for an axis label (the day as given when it is not a date). */
export function shortDay(day: string): string {
  const d = parseDay(day);
  return d ? DAY_FORMAT.format(d) : day;
}

/** "3 Dec 2026" for the summary. */
export function longDay(day: string): string {
  const d = parseDay(day);
  return d ? FULL_DAY_FORMAT.format(d) : day;
}

/** 92.345 → "92.3%", 100 → "100%". */
export function formatPercent(value: number): string {
  const rounded = Math.round(value * 10) / 10;
  return `${Number.isInteger(rounded) ? rounded.toFixed(0) : rounded.toFixed(1)}%`;
}

/** What the chart says in words: first and last value, lowest and highest. */
export function describeTrend(title: string, points: ChartPoint[]): string {
  const known = points.filter((p): p is ChartPoint & { value: number } => p.value !== null && Number.isFinite(p.value));
  if (known.length === 0) return `${title}: no data yet.`;
  const first = known[0]!;
  const last = known[known.length - 1]!;
  if (known.length === 1) return `${title}: ${formatPercent(last.value)} on ${longDay(last.day)}; no earlier data.`;
  const values = known.map((p) => p.value);
  return (
    `${title}: from ${formatPercent(first.value)} on ${longDay(first.day)} to ${formatPercent(last.value)} on ${longDay(last.day)}` +
    ` (lowest ${formatPercent(Math.min(...values))}, highest ${formatPercent(Math.max(...values))}).`
  );
}

/** The width of an element, following resizes where the browser can tell (600 until measured). */
function useWidth(fallback = 600) {
  const ref = useRef<HTMLDivElement | null>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => {
      const w = el.getBoundingClientRect().width;
      if (w > 0) setWidth(Math.round(w));
    };
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}

const HEIGHT = 180;
const M = { top: 10, right: 12, bottom: 26, left: 42 };
const Y_TICKS = [0, 25, 50, 75, 100];

interface TrendChartProps {
  /** Names the chart (and starts its summary). */
  title: string;
  points: ChartPoint[];
  /** Shown instead of the chart when fewer than two days have a value. */
  emptyText?: string;
}

/** Percentages (0..100) per day, oldest first. */
export function TrendChart({ title, points, emptyText = "Not enough history yet: the chart appears once two days have data." }: TrendChartProps) {
  const theme = useTheme();
  const [ref, width] = useWidth();
  const known = points.filter((p) => p.value !== null && Number.isFinite(p.value));
  const summary = describeTrend(title, points);

  if (known.length < 2) {
    return (
      <Box
        ref={ref}
        role="img"
        aria-label={summary}
        sx={{
          height: 120,
          display: "flex",
          alignItems: "center",
          justifyContent: "center",
          border: 1,
          borderStyle: "dashed",
          borderColor: "divider",
          borderRadius: 1,
          px: 2,
          textAlign: "center",
        }}
      >
        <Typography variant="body2" color="text.secondary">
          {emptyText}
        </Typography>
      </Box>
    );
  }

  const plotW = Math.max(10, width - M.left - M.right);
  const plotH = HEIGHT - M.top - M.bottom;
  const n = points.length;
  const x = (i: number) => M.left + (n === 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v: number) => M.top + plotH * (1 - Math.max(0, Math.min(100, v)) / 100);

  // Runs of consecutive days with a value: each is one line and one area; a null day is a gap.
  const runs: { i: number; v: number }[][] = [];
  let run: { i: number; v: number }[] = [];
  points.forEach((p, i) => {
    if (p.value === null || !Number.isFinite(p.value)) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push({ i, v: p.value });
    }
  });
  if (run.length) runs.push(run);

  const line = (r: { i: number; v: number }[]) => r.map((p, k) => `${k === 0 ? "M" : "L"}${x(p.i).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  const area = (r: { i: number; v: number }[]) =>
    `${line(r)} L${x(r[r.length - 1]!.i).toFixed(1)},${y(0).toFixed(1)} L${x(r[0]!.i).toFixed(1)},${y(0).toFixed(1)} Z`;

  // First, middle and last day on the x axis (fewer when they would collide).
  const xTicks = n > 2 && plotW > 220 ? [0, Math.floor((n - 1) / 2), n - 1] : [0, n - 1];
  const stroke = theme.palette.primary.main;
  const text = theme.palette.text.secondary;
  const font = theme.typography.caption.fontSize;
  const last = known[known.length - 1]!;
  const lastIndex = points.lastIndexOf(last);

  return (
    <Box ref={ref} sx={{ width: "100%" }}>
      <svg
        width={width}
        height={HEIGHT}
        viewBox={`0 0 ${width} ${HEIGHT}`}
        role="img"
        aria-label={summary}
        style={{ display: "block", maxWidth: "100%", overflow: "visible" }}
      >
        <title>{summary}</title>
        {Y_TICKS.map((t) => (
          <g key={t}>
            <line x1={M.left} x2={M.left + plotW} y1={y(t)} y2={y(t)} stroke={theme.palette.divider} strokeDasharray={t === 0 ? undefined : "3 3"} />
            <text x={M.left - 6} y={y(t)} dy="0.32em" textAnchor="end" fill={text} fontSize={font}>
              {t}%
            </text>
          </g>
        ))}
        {xTicks.map((i, k) => (
          <text
            key={i}
            x={x(i)}
            y={HEIGHT - 6}
            textAnchor={k === 0 ? "start" : k === xTicks.length - 1 ? "end" : "middle"}
            fill={text}
            fontSize={font}
          >
            {shortDay(points[i]!.day)}
          </text>
        ))}
        {runs.map((r) => (
          <g key={r[0]!.i}>
            {r.length > 1 && <path d={area(r)} fill={alpha(stroke, theme.palette.mode === "dark" ? 0.22 : 0.14)} stroke="none" />}
            {r.length > 1 && <path d={line(r)} fill="none" stroke={stroke} strokeWidth={2} strokeLinejoin="round" strokeLinecap="round" />}
            {r.length === 1 && <circle cx={x(r[0]!.i)} cy={y(r[0]!.v)} r={2.5} fill={stroke} />}
          </g>
        ))}
        <circle cx={x(lastIndex)} cy={y(last.value!)} r={4} fill={theme.palette.background.paper} stroke={stroke} strokeWidth={2} />
        {/* Hover targets: each day's value as a tooltip. */}
        {points.map((p, i) =>
          p.value === null ? null : (
            <circle key={p.day + i} cx={x(i)} cy={y(p.value)} r={8} fill="transparent">
              <title>{`${longDay(p.day)}: ${formatPercent(p.value)}${p.detail ? ` (${p.detail})` : ""}`}</title>
            </circle>
          ),
        )}
      </svg>
    </Box>
  );
}
