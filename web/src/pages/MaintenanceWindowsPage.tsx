import { useMemo, useState, type ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Chip,
  FormControlLabel,
  IconButton,
  Link,
  MenuItem,
  Paper,
  Switch,
  Tab,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  Tabs,
  TextField,
  Typography,
} from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import ChevronLeftIcon from "@mui/icons-material/ChevronLeft";
import ChevronRightIcon from "@mui/icons-material/ChevronRight";
import { keepPreviousData, useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { fleetApi, keys, type GroupView } from "../api/fleet";
import {
  browserTimeZone,
  describeRecurrence,
  formatDuration,
  windowKeys,
  windowsApi,
  type BlackoutListQuery,
  type BlackoutView,
  type OccurrenceQuery,
  type WindowListQuery,
  type WindowView,
} from "../api/maintenance";
import { useMe } from "../auth/session";
import { BlackoutDialog } from "../components/BlackoutDialog";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel } from "../components/errors";
import { AgendaList, MonthGrid, addMonths, formatMonth, gridRange, monthLabel, monthOf, parseMonth, type Month } from "../components/MonthCalendar";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { groupOptions } from "../components/formDialog";
import { EditDeleteIcons } from "../components/RowActions";
import { ListBody, ListCard, Pager, ScrollTable, StateChip, TableSkeleton } from "../components/tables";
import { WindowDialog } from "../components/WindowDialog";
import { intParam, useUrlParams } from "../urlState";

const PAGE = 50;
const TABS = ["calendar", "windows", "blackouts"] as const;
type TabName = (typeof TABS)[number];

/** A host's name, read once per host (windows name their host by id only). */
function HostName({ id }: { id: number }) {
  const host = useQuery({ queryKey: keys.hostSelf(id), queryFn: ({ signal }) => fleetApi.host(id, signal), staleTime: 5 * 60_000 });
  return (
    <Link component={RouterLink} to={`/hosts/${id}`}>
      {host.data?.hostname ?? `host ${id}`}
    </Link>
  );
}

function GroupName({ id, groups }: { id: number; groups: GroupView[] }) {
  return (
    <Link component={RouterLink} to={`/groups/${id}`}>
      {groups.find((g) => g.id === id)?.name ?? `group ${id}`}
    </Link>
  );
}

function AppliesTo({ hostId, groupId, groups, global = "—" }: { hostId?: number | null; groupId?: number | null; groups: GroupView[]; global?: string }) {
  if (hostId != null) return <>Host <HostName id={hostId} /></>;
  if (groupId != null) return <>Group <GroupName id={groupId} groups={groups} /></>;
  return <>{global}</>;
}

interface Scope {
  group?: number;
  host?: number;
}

function CalendarTab({ month, onMonth, scope, zone }: { month: Month; onMonth: (m: Month) => void; scope: Scope; zone: string }) {
  const today = new Date();
  const range = gridRange(month);
  const oq: OccurrenceQuery = { from: range.from.toISOString(), to: range.to.toISOString(), group_id: scope.group, host_id: scope.host };
  const occurrences = useQuery({
    queryKey: windowKeys.occurrences(oq),
    queryFn: ({ signal }) => windowsApi.occurrences(oq, signal),
    placeholderData: keepPreviousData,
  });
  // The blackouts that apply: with a group, the global ones and the group's; with a host, the
  // global ones (its groups' are marked on its occurrences as `blocked`); otherwise all visible.
  // The list has no time range and runs oldest first: a grid that starts after now needs only
  // the blackouts that have not ended (`current`).
  const current = range.from.getTime() > today.getTime() ? true : undefined;
  const bqs: BlackoutListQuery[] = scope.group
    ? [{ global: true, current, limit: 500 }, { group_id: scope.group, current, limit: 500 }]
    : scope.host
      ? [{ global: true, current, limit: 500 }]
      : [{ current, limit: 500 }];
  const blackouts = useQueries({
    queries: bqs.map((q) => ({ queryKey: windowKeys.blackoutList(q), queryFn: ({ signal }: { signal: AbortSignal }) => windowsApi.blackouts(q, signal) })),
  });
  const blackoutItems = useMemo(() => {
    const seen = new Map<number, BlackoutView>();
    for (const b of blackouts) for (const item of b.data?.items ?? []) seen.set(item.id, item);
    return [...seen.values()];
  }, [blackouts]);
  const blackoutError = blackouts.find((b) => b.isError);
  const label = monthLabel(month);

  return (
    <>
      <Box sx={{ display: "flex", alignItems: "center", flexWrap: "wrap", gap: 1, mb: 1.5 }}>
        <IconButton aria-label="Previous month" onClick={() => onMonth(addMonths(month, -1))}>
          <ChevronLeftIcon />
        </IconButton>
        <Typography variant="h6" component="h2" aria-live="polite" sx={{ minWidth: 170, textAlign: "center" }}>
          {label}
        </Typography>
        <IconButton aria-label="Next month" onClick={() => onMonth(addMonths(month, 1))}>
          <ChevronRightIcon />
        </IconButton>
        <Button size="small" onClick={() => onMonth(monthOf(today))}>
          This month
        </Button>
        <Typography variant="body2" color="text.secondary" sx={{ ml: { sm: "auto" } }}>
          Times in {zone} (your time zone)
        </Typography>
      </Box>
      {blackoutError && <ErrorPanel error={blackoutError.error} title="Could not load the blackouts" onRetry={() => void blackoutError.refetch()} />}
      {occurrences.isPending ? (
        <TableSkeleton label="Loading the calendar" rows={6} />
      ) : occurrences.isError ? (
        <ErrorPanel error={occurrences.error} title="Could not load the calendar" onRetry={() => void occurrences.refetch()} />
      ) : (
        <>
          {occurrences.data.items.length === 0 && (
            <Alert severity="info" sx={{ mb: 1.5 }}>
              No maintenance window opens in {label}
              {scope.group || scope.host ? " for this filter" : ""}. Hosts without a window never take work that waits for one.
            </Alert>
          )}
          <MonthGrid month={month} occurrences={occurrences.data.items} blackouts={blackoutItems} zone={zone} today={today} />
          <AgendaList month={month} occurrences={occurrences.data.items} blackouts={blackoutItems} zone={zone} today={today} />
          <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }}>
            Shaded days are in a blackout. A struck-through window is wholly blocked by one; a window's own zone is shown under it when it differs from yours.
          </Typography>
        </>
      )}
    </>
  );
}

function WindowsTab({
  scope,
  groups,
  canEdit,
  onEdit,
  onDelete,
  onCreate,
  page,
  onPage,
}: {
  scope: Scope;
  groups: GroupView[];
  canEdit: boolean;
  onEdit: (w: WindowView) => void;
  onDelete: (w: WindowView) => void;
  onCreate: () => void;
  page: number;
  onPage: (p: number) => void;
}) {
  const q: WindowListQuery = { group_id: scope.group, host_id: scope.host, limit: PAGE, offset: page * PAGE };
  const list = useQuery({ queryKey: windowKeys.list(q), queryFn: ({ signal }) => windowsApi.list(q, signal), placeholderData: keepPreviousData });
  const items = list.data?.items ?? [];
  return (
    <ListCard>
      <ListBody
        query={list}
        what="maintenance windows"
        isEmpty={items.length === 0}
        empty={
          <EmptyState
            title="No maintenance windows"
            action={
              canEdit ? (
                <Button variant="outlined" onClick={onCreate}>
                  Create a window
                </Button>
              ) : undefined
            }
          >
            A host with no window has nothing open: deployments that wait for a window never start on it.
            {canEdit ? " Create one for a group or a host." : " Operators and administrators create them."}
          </EmptyState>
        }
      >
        <ScrollTable label="Maintenance windows">
          <Table size="small" aria-label="Maintenance windows">
            <TableHead>
              <TableRow>
                <TableCell>Name</TableCell>
                <TableCell>Applies to</TableCell>
                <TableCell>Repeats</TableCell>
                <TableCell>Starts (window's zone)</TableCell>
                <TableCell>Duration</TableCell>
                <TableCell>Next (your time)</TableCell>
                <TableCell>Status</TableCell>
                {canEdit && <TableCell align="right">Actions</TableCell>}
              </TableRow>
            </TableHead>
            <TableBody>
              {items.map((w) => (
                <TableRow key={w.id}>
                  <TableCell sx={{ fontWeight: 500 }}>{w.name}</TableCell>
                  <TableCell>
                    <AppliesTo hostId={w.host_id} groupId={w.group_id} groups={groups} />
                  </TableCell>
                  <TableCell className="wrap" sx={{ minWidth: 160 }}>
                    {describeRecurrence(w.recurrence)}
                  </TableCell>
                  <TableCell>
                    {w.start_time} {w.time_zone}
                  </TableCell>
                  <TableCell>{formatDuration(w.duration_minutes)}</TableCell>
                  <TableCell>
                    <DateTime value={w.next_occurrence?.start} empty="none" />
                  </TableCell>
                  <TableCell>
                    <Chip size="small" variant="outlined" color={w.enabled ? "success" : "default"} label={w.enabled ? "enabled" : "disabled"} />
                  </TableCell>
                  {canEdit && (
                    <TableCell align="right">
                      <EditDeleteIcons name={`window ${w.name}`} onEdit={() => onEdit(w)} onDelete={() => onDelete(w)} />
                    </TableCell>
                  )}
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </ScrollTable>
      </ListBody>
      {list.data && list.data.total > PAGE && <Pager total={list.data.total} page={page} limit={PAGE} onPage={onPage} />}
    </ListCard>
  );
}

function blackoutState(b: BlackoutView, now: Date): "active" | "upcoming" | "ended" {
  if (new Date(b.ends_at) <= now) return "ended";
  return new Date(b.starts_at) <= now ? "active" : "upcoming";
}

function BlackoutsTab({
  group,
  groups,
  canEdit,
  showEnded,
  onShowEnded,
  onEdit,
  onDelete,
  onCreate,
  page,
  onPage,
}: {
  group?: number;
  groups: GroupView[];
  canEdit: boolean;
  showEnded: boolean;
  onShowEnded: (v: boolean) => void;
  onEdit: (b: BlackoutView) => void;
  onDelete: (b: BlackoutView) => void;
  onCreate: () => void;
  page: number;
  onPage: (p: number) => void;
}) {
  const q: BlackoutListQuery = { group_id: group, current: showEnded ? undefined : true, limit: PAGE, offset: page * PAGE };
  const list = useQuery({ queryKey: windowKeys.blackoutList(q), queryFn: ({ signal }) => windowsApi.blackouts(q, signal), placeholderData: keepPreviousData });
  const items = list.data?.items ?? [];
  const now = new Date();
  return (
    <>
      <FormControlLabel control={<Switch checked={showEnded} onChange={(e) => onShowEnded(e.target.checked)} />} label="Show ended blackouts" sx={{ mb: 1 }} />
      <ListCard>
        <ListBody
          query={list}
          what="blackouts"
          isEmpty={items.length === 0}
          empty={
            <EmptyState
              title={showEnded ? "No blackouts" : "No current or upcoming blackouts"}
              action={
                canEdit ? (
                  <Button variant="outlined" onClick={onCreate}>
                    Create a blackout
                  </Button>
                ) : undefined
              }
            >
              A blackout (change freeze) stops all disruptive work, even inside maintenance windows.
              {canEdit ? "" : " Administrators create them."}
            </EmptyState>
          }
        >
          <ScrollTable label="Blackouts">
            <Table size="small" aria-label="Blackouts">
              <TableHead>
                <TableRow>
                  <TableCell>Name</TableCell>
                  <TableCell>Applies to</TableCell>
                  <TableCell>Starts</TableCell>
                  <TableCell>Ends</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell>Reason</TableCell>
                  {canEdit && <TableCell align="right">Actions</TableCell>}
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((b) => (
                  <TableRow key={b.id}>
                    <TableCell sx={{ fontWeight: 500 }}>{b.name}</TableCell>
                    <TableCell>
                      <AppliesTo groupId={b.group_id} groups={groups} global="Every host" />
                    </TableCell>
                    <TableCell>
                      <DateTime value={b.starts_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime value={b.ends_at} />
                    </TableCell>
                    <TableCell>
                      <StateChip value={blackoutState(b, now) === "active" ? "running" : blackoutState(b, now) === "ended" ? "expired" : "pending"} label={blackoutState(b, now)} />
                    </TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 160 }}>
                      {b.reason || "—"}
                    </TableCell>
                    {canEdit && (
                      <TableCell align="right">
                        <EditDeleteIcons name={`blackout ${b.name}`} onEdit={() => onEdit(b)} onDelete={() => onDelete(b)} />
                      </TableCell>
                    )}
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {list.data && list.data.total > PAGE && <Pager total={list.data.total} page={page} limit={PAGE} onPage={onPage} />}
      </ListCard>
    </>
  );
}

function TabPanel({ name, current, children }: { name: TabName; current: TabName; children: ReactNode }) {
  if (name !== current) return null;
  return (
    <Box role="tabpanel" id={`mw-panel-${name}`} aria-labelledby={`mw-tab-${name}`}>
      {children}
    </Box>
  );
}

export function MaintenanceWindowsPage() {
  const client = useQueryClient();
  const me = useMe();
  const role = me.data?.user.role;
  const isAdmin = role === "admin";
  const canWindows = role === "admin" || role === "operator";
  const { get, set, page } = useUrlParams();
  const tab: TabName = (TABS as readonly string[]).includes(get("tab")) ? (get("tab") as TabName) : "calendar";
  const month = parseMonth(get("month")) ?? monthOf(new Date());
  const groupId = intParam(get("group"), 0);
  const hostId = intParam(get("host"), 0);
  const scope: Scope = groupId ? { group: groupId } : hostId ? { host: hostId } : {};
  const zone = browserTimeZone();
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000 });
  const groupItems = groups.data?.items ?? [];

  const [windowDialog, setWindowDialog] = useState<{ window: WindowView | null } | null>(null);
  const [blackoutDialog, setBlackoutDialog] = useState<{ blackout: BlackoutView | null } | null>(null);
  const [deletingWindow, setDeletingWindow] = useState<WindowView | null>(null);
  const [deletingBlackout, setDeletingBlackout] = useState<BlackoutView | null>(null);
  const refreshWindows = () => client.invalidateQueries({ queryKey: windowKeys.all });
  const refreshBlackouts = () => Promise.all([client.invalidateQueries({ queryKey: windowKeys.blackouts }), refreshWindows()]);

  return (
    <>
      <PageHeader
        title="Maintenance windows"
        subtitle={`When disruptive work (installing updates, rebooting) may run, and the blackouts that stop it. Times are in your time zone, ${zone}, unless marked.`}
        actions={
          canWindows || isAdmin ? (
            <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
              {canWindows && (
                <Button variant="contained" startIcon={<AddIcon />} onClick={() => setWindowDialog({ window: null })}>
                  New window
                </Button>
              )}
              {isAdmin && (
                <Button variant="outlined" startIcon={<AddIcon />} onClick={() => setBlackoutDialog({ blackout: null })}>
                  New blackout
                </Button>
              )}
            </Box>
          ) : undefined
        }
      />
      <Box component="form" role="search" aria-label="Filter windows" onSubmit={(e) => e.preventDefault()} sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1.5, mb: 2 }}>
        <TextField
          select
          label="Group"
          size="small"
          value={groupId ? String(groupId) : ""}
          onChange={(e) => set({ group: e.target.value, host: "" }, { keepPage: false })}
          sx={{ minWidth: 200 }}
          SelectProps={{ displayEmpty: true }}
          InputLabelProps={{ shrink: true }}
        >
          <MenuItem value="">Every window I may see</MenuItem>
          {groupOptions(groupItems, groupId ? String(groupId) : "")}
        </TextField>
        {!groupId && hostId > 0 && (
          <Chip label={<>Host: <HostNameText id={hostId} /> (its own windows and its groups')</>} onDelete={() => set({ host: "" })} />
        )}
        {groupId > 0 && (
          <Link component={RouterLink} to={`/groups/${groupId}`} variant="body2">
            Open the group
          </Link>
        )}
      </Box>
      <Paper variant="outlined" sx={{ mb: 2 }}>
        <Tabs value={tab} onChange={(_, v: TabName) => set({ tab: v === "calendar" ? "" : v })} aria-label="Maintenance windows views" variant="scrollable" allowScrollButtonsMobile>
          <Tab value="calendar" label="Calendar" id="mw-tab-calendar" aria-controls="mw-panel-calendar" />
          <Tab value="windows" label="Windows" id="mw-tab-windows" aria-controls="mw-panel-windows" />
          <Tab value="blackouts" label="Blackouts" id="mw-tab-blackouts" aria-controls="mw-panel-blackouts" />
        </Tabs>
      </Paper>
      <TabPanel name="calendar" current={tab}>
        <CalendarTab month={month} onMonth={(m) => set({ month: formatMonth(m) })} scope={scope} zone={zone} />
      </TabPanel>
      <TabPanel name="windows" current={tab}>
        {hostId > 0 && !groupId && (
          <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
            The list shows this host's own windows; the calendar also shows those of its groups.
          </Typography>
        )}
        <WindowsTab
          scope={scope}
          groups={groupItems}
          canEdit={canWindows}
          onEdit={(w) => setWindowDialog({ window: w })}
          onDelete={setDeletingWindow}
          onCreate={() => setWindowDialog({ window: null })}
          page={page}
          onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
        />
      </TabPanel>
      <TabPanel name="blackouts" current={tab}>
        <BlackoutsTab
          group={groupId || undefined}
          groups={groupItems}
          canEdit={isAdmin}
          showEnded={get("ended") === "1"}
          onShowEnded={(v) => set({ ended: v ? "1" : "" })}
          onEdit={(b) => setBlackoutDialog({ blackout: b })}
          onDelete={setDeletingBlackout}
          onCreate={() => setBlackoutDialog({ blackout: null })}
          page={page}
          onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
        />
      </TabPanel>

      {canWindows && (
        <WindowDialog
          open={windowDialog !== null}
          window={windowDialog?.window ?? null}
          groups={groupItems}
          defaults={{ groupId: groupId || undefined, hostId: hostId || undefined }}
          onClose={() => setWindowDialog(null)}
          onSaved={() => {
            setWindowDialog(null);
            void refreshWindows();
          }}
        />
      )}
      {isAdmin && (
        <BlackoutDialog
          open={blackoutDialog !== null}
          blackout={blackoutDialog?.blackout ?? null}
          groups={groupItems}
          defaultGroupId={groupId || undefined}
          onClose={() => setBlackoutDialog(null)}
          onSaved={() => {
            setBlackoutDialog(null);
            void refreshBlackouts();
          }}
        />
      )}
      <ConfirmDialog
        open={deletingWindow !== null}
        title="Delete this maintenance window?"
        description={`“${deletingWindow?.name ?? ""}” no longer opens. Hosts left without any window take no work that waits for one`}
        confirmLabel="Delete window"
        onClose={() => setDeletingWindow(null)}
        onConfirm={async () => {
          if (!deletingWindow) return;
          await windowsApi.remove(deletingWindow.id);
          setDeletingWindow(null);
          await refreshWindows();
        }}
      />
      <ConfirmDialog
        open={deletingBlackout !== null}
        title="Delete this blackout?"
        description={`The freeze “${deletingBlackout?.name ?? ""}” ends: work may run in the windows it covered`}
        confirmLabel="Delete blackout"
        onClose={() => setDeletingBlackout(null)}
        onConfirm={async () => {
          if (!deletingBlackout) return;
          await windowsApi.removeBlackout(deletingBlackout.id);
          setDeletingBlackout(null);
          await refreshBlackouts();
        }}
      />
    </>
  );
}

function HostNameText({ id }: { id: number }) {
  const host = useQuery({ queryKey: keys.hostSelf(id), queryFn: ({ signal }) => fleetApi.host(id, signal), staleTime: 5 * 60_000 });
  return <>{host.data?.hostname ?? `host ${id}`}</>;
}
