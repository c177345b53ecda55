// A host's maintenance windows on its page: when work may next run (`GET /hosts/{id}/next-window`)
// and the windows that apply to it (its own and its groups'), with a link to the calendar.

import { Link as RouterLink } from "react-router-dom";
import { Alert, Box, Button, Chip, List, ListItem, Skeleton, Stack, Typography } from "@mui/material";
import { useQueries, useQuery } from "@tanstack/react-query";
import {
  browserTimeZone,
  describeRecurrence,
  formatDuration,
  windowKeys,
  windowsApi,
  type NextWindow,
  type WindowListQuery,
  type WindowView,
} from "../api/maintenance";
import { DateTime } from "./DateTime";
import { ErrorPanel } from "./errors";

/** The most windows read per target (the host's own, each group's). */
const WINDOWS_PER_TARGET = 100;

/** The windows whose occurrence holds `at` (which window `open` belongs to). */
function useOpeningWindows(hostId: number, at: string | null | undefined) {
  const start = at ? Date.parse(at) : NaN;
  const q = Number.isNaN(start)
    ? null
    : { host_id: hostId, from: new Date(start).toISOString(), to: new Date(start + 60_000).toISOString() };
  const occ = useQuery({
    queryKey: windowKeys.occurrences(q ?? { from: "", to: "" }),
    queryFn: ({ signal }) => windowsApi.occurrences(q!, signal),
    enabled: q !== null,
    staleTime: 60_000,
  });
  const names = (occ.data?.items ?? [])
    .filter((o) => Date.parse(o.start) <= start && Date.parse(o.end) > start)
    .map((o) => o.window_name);
  return [...new Set(names)];
}

function NextOpening({ hostId, next }: { hostId: number; next: NextWindow }) {
  const names = useOpeningWindows(hostId, next.open?.start);
  const via = names.length > 0 ? ` (${names.join(", ")})` : "";
  const splayAhead = next.splay_start && Date.parse(next.splay_start) > Date.parse(next.now);
  return (
    <Stack spacing={1} data-testid="next-window">
      {next.blocked_now && (
        <Alert severity="warning">A blackout is in force now: no work that waits for a window starts on this host until it ends.</Alert>
      )}
      {next.open ? (
        <>
          <Typography variant="body2" component="div">
            {next.open_now ? (
              <>
                <Chip size="small" color="success" label="open now" sx={{ mr: 1 }} />
                Until <DateTime value={next.open.end} />
                {via}
              </>
            ) : (
              <>
                Next opens <DateTime value={next.open.start} />, until <DateTime value={next.open.end} />
                {via}
              </>
            )}
          </Typography>
          {splayAhead && (
            <Typography variant="body2" color="text.secondary">
              This host's work starts at <DateTime value={next.splay_start} /> (hosts are spread over the start of the window).
            </Typography>
          )}
        </>
      ) : next.reason === "none_within_horizon" ? (
        <Typography variant="body2">
          No window opens within the next 400 days: {next.windows === 1 ? "the enabled window that applies is" : `the ${next.windows} enabled windows that apply are`}{" "}
          past one-off windows, or a blackout covers them.
        </Typography>
      ) : (
        <Typography variant="body2">
          No enabled maintenance window applies to this host: deployments that wait for a window never start on it. Give the host or one of
          its groups a window.
        </Typography>
      )}
      <Typography variant="caption" color="text.secondary">
        Times in your time zone ({browserTimeZone()}).
      </Typography>
    </Stack>
  );
}

function WindowItem({ w, groupNames }: { w: WindowView; groupNames: ReadonlyMap<number, string> }) {
  const target = w.host_id != null ? "this host's own" : `group ${groupNames.get(w.group_id ?? 0) ?? `#${w.group_id}`}`;
  return (
    <ListItem disableGutters divider sx={{ display: "block", py: 1 }}>
      <Typography variant="body2" sx={{ fontWeight: 500, overflowWrap: "anywhere" }}>
        {w.name}
        {!w.enabled && <Chip size="small" variant="outlined" label="disabled" sx={{ ml: 1 }} />}
      </Typography>
      <Typography variant="caption" component="div" color="text.secondary">
        {describeRecurrence(w.recurrence)}, {w.start_time} ({w.time_zone}) for {formatDuration(w.duration_minutes)} · {target}
      </Typography>
      <Typography variant="caption" component="div" color="text.secondary">
        {w.next_occurrence ? (
          <>
            Next: <DateTime value={w.next_occurrence.start} />
          </>
        ) : (
          "Does not open again"
        )}
      </Typography>
    </ListItem>
  );
}

/**
 * The host's next window and the windows that apply to it. The list filter `host_id` gives only a
 * host's own windows, so its groups' are read per group (a group outside the caller's scope
 * lists nothing).
 */
export function HostWindows({ hostId, groupIds, groupNames }: { hostId: number; groupIds: number[]; groupNames: ReadonlyMap<number, string> }) {
  const next = useQuery({
    queryKey: windowKeys.hostNext(hostId),
    queryFn: ({ signal }) => windowsApi.hostNextWindow(hostId, signal),
    staleTime: 60_000,
  });
  const targets: WindowListQuery[] = [
    { host_id: hostId, limit: WINDOWS_PER_TARGET, offset: 0 },
    ...groupIds.map((g) => ({ group_id: g, limit: WINDOWS_PER_TARGET, offset: 0 })),
  ];
  const lists = useQueries({
    queries: targets.map((q) => ({
      queryKey: windowKeys.list(q),
      queryFn: ({ signal }: { signal: AbortSignal }) => windowsApi.list(q, signal),
      staleTime: 60_000,
    })),
  });
  const listError = lists.find((l) => l.isError);
  const windows = lists
    .flatMap((l) => l.data?.items ?? [])
    .sort((a, b) => (a.next_occurrence?.start ?? "9999").localeCompare(b.next_occurrence?.start ?? "9999") || a.id - b.id);

  return (
    <Stack spacing={2}>
      {next.isPending ? (
        <Skeleton height={48} aria-label="Loading the next window" />
      ) : next.isError ? (
        <ErrorPanel error={next.error} title="Could not load the next window" onRetry={() => void next.refetch()} />
      ) : (
        <NextOpening hostId={hostId} next={next.data} />
      )}
      <Box>
        <Typography variant="subtitle2" component="h3">
          Windows that apply
        </Typography>
        {lists.some((l) => l.isPending) ? (
          <Skeleton height={64} aria-label="Loading the windows" />
        ) : listError ? (
          <ErrorPanel error={listError.error} title="Could not load the windows" onRetry={() => lists.forEach((l) => l.isError && void l.refetch())} />
        ) : windows.length === 0 ? (
          <Typography variant="body2" color="text.secondary">
            None you can see. Windows are set for the host or its groups under Maintenance windows.
          </Typography>
        ) : (
          <List dense disablePadding aria-label="Maintenance windows of this host">
            {windows.map((w) => (
              <WindowItem key={w.id} w={w} groupNames={groupNames} />
            ))}
          </List>
        )}
      </Box>
      <Box>
        <Button variant="outlined" size="small" component={RouterLink} to={`/maintenance-windows?host=${hostId}`}>
          Calendar and windows
        </Button>
      </Box>
    </Stack>
  );
}
