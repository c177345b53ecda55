// A deployment's progress from its hosts-per-state counts: a bar and the counts in words.

import { Box, LinearProgress, Typography } from "@mui/material";
import { DEPLOYMENT_HOST_DONE } from "../api/fleet";

export interface Progress {
  total: number;
  done: number;
  succeeded: number;
  failed: number;
  active: number;
}

/** Totals from `hosts` (state → count); `total` (the API's `total_hosts`) wins over the sum when given. */
export function progressOf(counts: Record<string, number> | null | undefined, total?: number): Progress {
  const p: Progress = { total: 0, done: 0, succeeded: 0, failed: 0, active: 0 };
  for (const [state, n] of Object.entries(counts ?? {})) {
    p.total += n;
    if (DEPLOYMENT_HOST_DONE.has(state)) p.done += n;
    if (state === "succeeded") p.succeeded += n;
    if (state === "failed") p.failed += n;
    if (["running", "rebooting", "verifying", "rolling_back"].includes(state)) p.active += n;
  }
  if (total !== undefined && total >= p.done) p.total = total;
  return p;
}

export function DeploymentProgress({
  counts,
  total,
  label,
}: {
  counts: Record<string, number> | null | undefined;
  /** All hosts in the caller's scope (`total_hosts`); the sum of `counts` without it. */
  total?: number;
  label: string;
}) {
  const p = progressOf(counts, total);
  if (p.total === 0) {
    return (
      <Typography variant="caption" color="text.secondary" component="div">
        No hosts you can see
      </Typography>
    );
  }
  const percent = p.total > 0 ? Math.round((p.done / p.total) * 100) : 0;
  return (
    <Box sx={{ minWidth: 160 }}>
      <LinearProgress
        variant="determinate"
        value={percent}
        color={p.failed > 0 ? "warning" : "primary"}
        aria-label={`${label}: ${p.done} of ${p.total} hosts done`}
        sx={{ height: 6, borderRadius: 1 }}
      />
      <Typography variant="caption" color="text.secondary" component="div" sx={{ mt: 0.5 }}>
        {p.done} of {p.total} done · {p.succeeded} succeeded · {p.failed} failed
        {p.active > 0 ? ` · ${p.active} in progress` : ""}
      </Typography>
    </Box>
  );
}

/** "security updates", "all updates", "3 packages: a, b, c". */
export function selectionLabel(selection: Record<string, unknown>): string {
  const type = selection["type"];
  if (type === "security") return "Security updates";
  if (type === "all") return "All updates";
  if (type === "packages") {
    const pkgs = Array.isArray(selection["packages"]) ? (selection["packages"] as unknown[]).map(String) : [];
    const shown = pkgs.slice(0, 5).join(", ");
    return `${pkgs.length} ${pkgs.length === 1 ? "package" : "packages"}: ${shown}${pkgs.length > 5 ? ", …" : ""}`;
  }
  return String(type ?? "—");
}

export const SCHEDULE_LABELS: Record<string, string> = {
  window: "Each host's next maintenance window",
  now: "Now",
};

export const REBOOT_LABELS: Record<string, string> = {
  never: "Never reboot",
  if_needed: "Reboot if needed",
  always: "Always reboot",
};
