import { useMemo, useState, type ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Checkbox,
  Link,
  Menu,
  MenuItem,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TableSortLabel,
  TextField,
  Toolbar,
  Typography,
  useMediaQuery,
  useTheme,
} from "@mui/material";
import FilterListIcon from "@mui/icons-material/FilterList";
import AddIcon from "@mui/icons-material/Add";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { fleetApi, keys, type Command, type FleetCommandResponse, type HostListQuery, type HostView } from "../api/fleet";
import { useMe } from "../auth/session";
import { AddHostDialog } from "../components/AddHostDialog";
import { BULK_ACTIONS, CommandDialog, HOST_ACTIONS, type HostAction } from "../components/CommandDialog";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, Pager, ScrollTable, StateChip } from "../components/tables";
import { intParam, useSearchBox, useUrlParams } from "../urlState";

const PAGE_SIZES = [25, 50, 100, 200];
/** The fleet endpoint takes at most this many hosts per request. */
export const MAX_BULK = 1000;

/** "Last seen" presets: a window relative to now, as the API's `seen_after` / `seen_before`. */
const SEEN: Record<string, { label: string; after?: number; before?: number }> = {
  "1h": { label: "In the last hour", after: 3600 },
  "24h": { label: "In the last 24 hours", after: 86400 },
  "not-24h": { label: "Not for 24 hours or more", before: 86400 },
  "not-7d": { label: "Not for 7 days or more", before: 7 * 86400 },
};

const SORTS = ["hostname", "last_seen", "security_updates", "created_at"] as const;
type Sort = (typeof SORTS)[number];

function boolParam(v: string): boolean | undefined {
  return v === "true" ? true : v === "false" ? false : undefined;
}

/** The API query for the URL's filters. Times are rounded to the minute so the key is stable. */
export function hostQueryFromUrl(get: (k: string) => string, page: number, limit: number): HostListQuery {
  const seen = SEEN[get("seen")];
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  const group = intParam(get("group"), 0);
  const sort = (SORTS as readonly string[]).includes(get("sort")) ? get("sort") : undefined;
  const order = get("order") === "desc" ? "desc" : get("order") === "asc" ? "asc" : undefined;
  return {
    q: get("q") || undefined,
    status: get("status") || undefined,
    transport: get("transport") || undefined,
    os: get("os") || undefined,
    group: group > 0 ? group : undefined,
    security_updates: boolParam(get("security")),
    reboot_required: boolParam(get("reboot")),
    scanned: boolParam(get("scanned")),
    seen_after: seen?.after ? new Date(now - seen.after * 1000).toISOString() : undefined,
    seen_before: seen?.before ? new Date(now - seen.before * 1000).toISOString() : undefined,
    sort,
    order,
    limit,
    offset: page * limit,
  };
}

function osLabel(h: HostView): string {
  return h.os_pretty_name || [h.os_name, h.os_version].filter(Boolean).join(" ") || "—";
}

function SortHeader({ field, label, sort, order, onSort }: { field: Sort; label: string; sort: string; order: string; onSort: (f: Sort) => void }) {
  const active = (sort || "hostname") === field;
  return (
    <TableSortLabel active={active} direction={active && order === "desc" ? "desc" : "asc"} onClick={() => onSort(field)}>
      {label}
    </TableSortLabel>
  );
}

function BulkResult({ result, onClose }: { result: FleetCommandResponse; onClose: () => void }) {
  return (
    <Alert severity={result.skipped.length ? "warning" : "success"} onClose={onClose} sx={{ mb: 2 }}>
      Queued {result.commands.length} {result.commands.length === 1 ? "command" : "commands"}. Their progress shows on each
      host's page.
      {result.skipped.length > 0 && (
        <Box component="ul" sx={{ m: 0, mt: 1, pl: 3 }}>
          {result.skipped.map((s) => (
            <li key={s.host_id}>
              Skipped {s.hostname}: {s.reason}
            </li>
          ))}
        </Box>
      )}
    </Alert>
  );
}

export function HostsPage() {
  const me = useMe();
  const canAct = me.data?.user.role === "admin" || me.data?.user.role === "operator";
  const client = useQueryClient();
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 50, PAGE_SIZES);
  const query = useMemo(() => hostQueryFromUrl(get, page, limit), [get, page, limit]);
  const hosts = useQuery({
    queryKey: keys.hostList(query),
    queryFn: ({ signal }) => fleetApi.hosts(query, signal),
    placeholderData: keepPreviousData,
  });
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000 });
  const [search, setSearch] = useSearchBox("q", get("q"), set);
  const [os, setOs] = useSearchBox("os", get("os"), set);

  // Selected hosts, kept across pages (id → hostname).
  const [selected, setSelected] = useState<Map<number, string>>(new Map());
  const [action, setAction] = useState<HostAction | null>(null);
  // Whether the action is for the selected hosts or for every host of the filtered group.
  const [scope, setScope] = useState<"selection" | "group">("selection");
  const [groupMenu, setGroupMenu] = useState<HTMLElement | null>(null);
  const [result, setResult] = useState<FleetCommandResponse | null>(null);
  const theme = useTheme();
  const phone = useMediaQuery(theme.breakpoints.down("sm"));
  const [showFilters, setShowFilters] = useState(false);
  const [adding, setAdding] = useState(false);

  const items = hosts.data?.items ?? [];
  const pageIds = items.map((h) => h.id);
  const allOnPage = pageIds.length > 0 && pageIds.every((id) => selected.has(id));
  const someOnPage = pageIds.some((id) => selected.has(id));
  const toggle = (h: HostView) =>
    setSelected((prev) => {
      const next = new Map(prev);
      if (next.has(h.id)) next.delete(h.id);
      else next.set(h.id, h.hostname);
      return next;
    });
  const togglePage = () =>
    setSelected((prev) => {
      const next = new Map(prev);
      if (allOnPage) for (const h of items) next.delete(h.id);
      else for (const h of items) next.set(h.id, h.hostname);
      return next;
    });

  const sort = get("sort");
  const order = get("order");
  const onSort = (field: Sort) => {
    const current = sort || "hostname";
    const nextOrder = current === field && order !== "desc" ? "desc" : "asc";
    set({ sort: field === "hostname" ? "" : field, order: nextOrder === "asc" ? "" : "desc" });
  };

  const groupId = intParam(get("group"), 0);
  const groupName = groups.data?.items.find((g) => g.id === groupId)?.name ?? `group ${groupId}`;
  const queue = async (command: Command) => {
    const response =
      scope === "group"
        ? await fleetApi.queueFleetCommand({ group: groupId, command })
        : await fleetApi.queueFleetCommand({ hosts: [...selected.keys()], command });
    setResult(response);
    setAction(null);
    if (scope === "selection") setSelected(new Map());
    void client.invalidateQueries({ queryKey: keys.commands });
  };
  const startAction = (a: HostAction, on: "selection" | "group") => {
    setScope(on);
    setGroupMenu(null);
    setAction(a);
  };

  const filtered = Boolean(get("q") || get("status") || get("transport") || get("os") || get("group") || get("security") || get("reboot") || get("scanned") || get("seen"));
  const target =
    scope === "group"
      ? `every host of ${groupName}`
      : selected.size === 1
        ? [...selected.values()][0]!
        : `${selected.size} hosts`;
  const activeFilters = ["status", "transport", "os", "group", "security", "reboot", "scanned", "seen"].filter((k) => get(k)).length;
  const more = (children: ReactNode) => (phone && !showFilters ? null : children);

  return (
    <>
      <PageHeader
        title="Hosts"
        subtitle={hosts.data ? `${hosts.data.total.toLocaleString()} ${filtered ? "matching" : "approved"} hosts` : "Every approved host and its patch state."}
        actions={
          canAct ? (
            <Button variant="contained" startIcon={<AddIcon />} onClick={() => setAdding(true)}>
              Add host
            </Button>
          ) : undefined
        }
      />
      {canAct && <AddHostDialog open={adding} onClose={() => setAdding(false)} isAdmin={me.data?.user.role === "admin"} />}
      {result && <BulkResult result={result} onClose={() => setResult(null)} />}

      <Box component="form" role="search" aria-label="Filter hosts" onSubmit={(e) => e.preventDefault()} sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2, "& .MuiTextField-root": { m: 0 } }}>
        <TextField label="Search" placeholder="Hostname, FQDN or address" size="small" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ flex: "2 1 220px" }} />
        {phone && (
          <Button
            startIcon={<FilterListIcon />}
            aria-expanded={showFilters}
            aria-controls="host-filters"
            onClick={() => setShowFilters((v) => !v)}
          >
            Filters{activeFilters ? ` (${activeFilters})` : ""}
          </Button>
        )}
        {more(
          <Box id="host-filters" sx={{ display: "contents" }}>
        <TextField select label="Status" size="small" value={get("status")} onChange={(e) => set({ status: e.target.value })} sx={{ flex: "1 1 140px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="online">Online</MenuItem>
          <MenuItem value="offline">Offline</MenuItem>
          <MenuItem value="unreachable">Unreachable</MenuItem>
          <MenuItem value="degraded">Degraded</MenuItem>
          <MenuItem value="pending">Never seen</MenuItem>
        </TextField>
        <TextField label="OS" placeholder="debian, Ubuntu 24.04" size="small" value={os} onChange={(e) => setOs(e.target.value)} sx={{ flex: "1 1 150px" }} />
        <TextField select label="Group" size="small" value={get("group")} onChange={(e) => set({ group: e.target.value })} sx={{ flex: "1 1 150px" }}>
          <MenuItem value="">Any</MenuItem>
          {get("group") && !(groups.data?.items ?? []).some((g) => String(g.id) === get("group")) && (
            <MenuItem value={get("group")}>Group {get("group")}</MenuItem>
          )}
          {(groups.data?.items ?? []).map((g) => (
            <MenuItem key={g.id} value={String(g.id)}>
              {g.name}
            </MenuItem>
          ))}
        </TextField>
        <TextField select label="Transport" size="small" value={get("transport")} onChange={(e) => set({ transport: e.target.value })} sx={{ flex: "1 1 130px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="pull">Pull (agent checks in)</MenuItem>
          <MenuItem value="push">Push (manager connects)</MenuItem>
        </TextField>
        <TextField select label="Security updates" size="small" value={get("security")} onChange={(e) => set({ security: e.target.value })} sx={{ flex: "1 1 160px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="true">Has security updates</MenuItem>
          <MenuItem value="false">No security updates</MenuItem>
        </TextField>
        <TextField select label="Reboot" size="small" value={get("reboot")} onChange={(e) => set({ reboot: e.target.value })} sx={{ flex: "1 1 140px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="true">Reboot needed</MenuItem>
          <MenuItem value="false">No reboot needed</MenuItem>
        </TextField>
        <TextField select label="Scanned" size="small" value={get("scanned")} onChange={(e) => set({ scanned: e.target.value })} sx={{ flex: "1 1 150px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="true">Scanned at least once</MenuItem>
          <MenuItem value="false">Not scanned yet</MenuItem>
        </TextField>
        <TextField select label="Last seen" size="small" value={get("seen")} onChange={(e) => set({ seen: e.target.value })} sx={{ flex: "1 1 170px" }}>
          <MenuItem value="">Any time</MenuItem>
          {Object.entries(SEEN).map(([k, v]) => (
            <MenuItem key={k} value={k}>
              {v.label}
            </MenuItem>
          ))}
        </TextField>
          </Box>,
        )}
        {filtered && (
          <Button
            onClick={() => {
              setSearch("");
              setOs("");
              set({ q: "", status: "", transport: "", os: "", group: "", security: "", reboot: "", scanned: "", seen: "" });
            }}
          >
            Clear filters
          </Button>
        )}
        {groupId > 0 && (
          <Button component={RouterLink} to={`/groups/${groupId}/policy`}>
            Deployment policy
          </Button>
        )}
        {canAct && groupId > 0 && (
          <>
            <Button
              variant="outlined"
              aria-haspopup="menu"
              aria-expanded={groupMenu ? "true" : undefined}
              onClick={(e) => setGroupMenu(e.currentTarget)}
            >
              Whole group…
            </Button>
            <Menu anchorEl={groupMenu} open={Boolean(groupMenu)} onClose={() => setGroupMenu(null)}>
              {BULK_ACTIONS.map((a) => (
                <MenuItem key={a} onClick={() => startAction(a, "group")}>
                  {HOST_ACTIONS[a].label}: every host of {groupName}
                </MenuItem>
              ))}
            </Menu>
          </>
        )}
      </Box>

      <ListCard>
        {canAct && selected.size > 0 && (
          <Toolbar
            aria-label="Bulk actions"
            role="toolbar"
            sx={{ flexWrap: "wrap", gap: 1, py: 1, bgcolor: "action.selected" }}
          >
            <Typography sx={{ flex: "1 1 auto" }} aria-live="polite">
              {selected.size} selected
            </Typography>
            {BULK_ACTIONS.map((a) => (
              <Button key={a} size="small" variant="outlined" onClick={() => startAction(a, "selection")} disabled={selected.size > MAX_BULK}>
                {HOST_ACTIONS[a].label}
              </Button>
            ))}
            <Button
              size="small"
              variant="outlined"
              component={RouterLink}
              to={`/deployments/new?hosts=${[...selected.keys()].join(",")}`}
              disabled={selected.size > MAX_BULK}
            >
              New deployment…
            </Button>
            <Button size="small" onClick={() => setSelected(new Map())}>
              Clear selection
            </Button>
            {selected.size > MAX_BULK && (
              <Typography variant="body2" color="error" sx={{ width: "100%" }}>
                At most {MAX_BULK} hosts at a time: narrow the selection.
              </Typography>
            )}
          </Toolbar>
        )}
        <ListBody
          query={hosts}
          what="hosts"
          isEmpty={items.length === 0}
          empty={
            filtered ? (
              <EmptyState title="No host matches these filters">Change or clear the filters above.</EmptyState>
            ) : (
              <EmptyState
                title="No hosts yet"
                action={
                  canAct ? (
                    <Stack direction="row" sx={{ gap: 1, flexWrap: "wrap", justifyContent: "center" }}>
                      {me.data?.user.role === "admin" && (
                        <Button component={RouterLink} to="/registration-tokens" variant="contained">
                          Create a registration token
                        </Button>
                      )}
                      <Button variant="outlined" onClick={() => setAdding(true)}>
                        Add a push host
                      </Button>
                    </Stack>
                  ) : undefined
                }
              >
                Enroll an agent with a registration token (hosts waiting for approval are under Enrollments), or add a push host
                that the manager connects to{me.data?.user.role === "admin" ? "; Discovery finds them in an address range" : ""}.
              </EmptyState>
            )
          }
        >
          <ScrollTable label="Hosts">
            <Table size="small" aria-label="Hosts" sx={{ opacity: hosts.isPlaceholderData ? 0.6 : 1 }}>
              <TableHead>
                <TableRow>
                  {canAct && (
                    <TableCell padding="checkbox">
                      <Checkbox
                        checked={allOnPage}
                        indeterminate={someOnPage && !allOnPage}
                        onChange={togglePage}
                        inputProps={{ "aria-label": "Select every host on this page" }}
                      />
                    </TableCell>
                  )}
                  <TableCell sortDirection={(sort || "hostname") === "hostname" ? (order === "desc" ? "desc" : "asc") : false}>
                    <SortHeader field="hostname" label="Host" sort={sort} order={order} onSort={onSort} />
                  </TableCell>
                  <TableCell>OS</TableCell>
                  <TableCell>Status</TableCell>
                  <TableCell sortDirection={sort === "security_updates" ? (order === "desc" ? "desc" : "asc") : false}>
                    <SortHeader field="security_updates" label="Security updates" sort={sort} order={order} onSort={onSort} />
                  </TableCell>
                  <TableCell>All updates</TableCell>
                  <TableCell>Reboot</TableCell>
                  <TableCell sortDirection={sort === "last_seen" ? (order === "desc" ? "desc" : "asc") : false}>
                    <SortHeader field="last_seen" label="Last seen" sort={sort} order={order} onSort={onSort} />
                  </TableCell>
                  <TableCell>Transport</TableCell>
                  <TableCell>Agent</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((h) => (
                  <TableRow key={h.id} hover selected={selected.has(h.id)}>
                    {canAct && (
                      <TableCell padding="checkbox">
                        <Checkbox
                          checked={selected.has(h.id)}
                          onChange={() => toggle(h)}
                          inputProps={{ "aria-label": `Select ${h.hostname}` }}
                        />
                      </TableCell>
                    )}
                    <TableCell>
                      <Link component={RouterLink} to={`/hosts/${h.id}`} sx={{ fontWeight: 500 }}>
                        {h.hostname}
                      </Link>
                      <Typography variant="caption" component="div" color="text.secondary">
                        {h.fqdn && h.fqdn !== h.hostname ? h.fqdn : h.address ?? ""}
                      </Typography>
                    </TableCell>
                    <TableCell>{osLabel(h)}</TableCell>
                    <TableCell>
                      <StateChip value={h.status} label={h.status === "pending" ? "never seen" : h.status} />
                    </TableCell>
                    <TableCell>
                      {h.security_updates_count > 0 ? (
                        <Typography component="span" color="error.main" sx={{ fontWeight: 600 }}>
                          {h.security_updates_count}
                        </Typography>
                      ) : (
                        "0"
                      )}
                    </TableCell>
                    <TableCell>{h.updates_count}</TableCell>
                    <TableCell>{h.reboot_required ? <StateChip value="offline" label="needed" /> : "—"}</TableCell>
                    <TableCell>
                      <DateTime value={h.last_seen_at} empty="never" />
                    </TableCell>
                    <TableCell>{h.transport}</TableCell>
                    <TableCell>{h.agent_version ?? "—"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {hosts.data && hosts.data.total > 0 && (
          <Stack direction="row" sx={{ justifyContent: "flex-end" }}>
            <Pager
              total={hosts.data.total}
              page={page}
              limit={limit}
              sizes={PAGE_SIZES}
              onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
              onLimit={(l) => set({ limit: l === 50 ? "" : l })}
            />
          </Stack>
        )}
      </ListCard>

      <CommandDialog action={action} target={target} onClose={() => setAction(null)} onConfirm={queue}>
        {scope === "group" && (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
            Hosts of the group that cannot take this command (waiting for approval; push hosts for a dry run) are skipped and listed.
          </Typography>
        )}
        {scope === "selection" && selected.size > 1 && (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
            Hosts: {[...selected.values()].slice(0, 10).join(", ")}
            {selected.size > 10 ? ` and ${selected.size - 10} more` : ""}
          </Typography>
        )}
      </CommandDialog>
    </>
  );
}
