import { useState, type ReactNode } from "react";
import { Link as RouterLink, useParams } from "react-router-dom";
import {
  Alert,
  Box,
  Breadcrumbs,
  Button,
  Card,
  CardContent,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  FormControlLabel,
  LinearProgress,
  Link,
  Skeleton,
  Stack,
  Switch,
  Tab,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  Tabs,
  TextField,
  Tooltip,
  Typography,
} from "@mui/material";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import {
  canRollBack,
  COMMANDS,
  FINAL_STATES,
  fleetApi,
  keys,
  PUSH_NO_DRY_RUN,
  PUSH_NO_HEARTBEAT,
  type Command,
  type CommandView,
  type HostDetail,
} from "../api/fleet";
import { isApiError } from "../api/client";
import { useJobProgress, type JobProgress } from "../api/events";
import { useMe } from "../auth/session";
import { CommandDialog, HOST_ACTIONS, type HostAction } from "../components/CommandDialog";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError } from "../components/errors";
import { HostCertificates } from "../components/HostCertificates";
import { HostWindows } from "../components/HostWindows";
import { PushBundlePanel } from "../components/PushBundle";
import { ListBody, ListCard, Pager, ScrollTable, StateChip } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { useSearchBox, useUrlParams } from "../urlState";

const PAGE = 50;
const TABS = ["overview", "updates", "packages", "commands"] as const;
type TabName = (typeof TABS)[number];

// ---------------------------------------------------------------------------------------------
// Formatting

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v >= 10 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

function formatUptime(secs: number): string {
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return d > 0 ? `${d} d ${h} h` : h > 0 ? `${h} h ${m} min` : `${m} min`;
}

/** "1 security update", "2 security updates". */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : nouns}`;
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** One line about a command: "upgrade (security, dry run)", "rollback of 3f2c…". */
export function describeCommand(c: CommandView): string {
  const cmd = c.command;
  const parts: string[] = [];
  const selection = cmd["selection"];
  if (selection && typeof selection === "object" && "mode" in selection) {
    const mode = String((selection as Record<string, unknown>)["mode"]);
    parts.push(mode === "security" ? "security updates" : mode === "all" ? "all updates" : "chosen packages");
  }
  if (Array.isArray(cmd["packages"])) parts.push((cmd["packages"] as unknown[]).map(String).join(", "));
  if (typeof cmd["command_id"] === "string") parts.push(`of ${cmd["command_id"].slice(0, 8)}`);
  if (cmd["dry_run"] === true) parts.push("dry run");
  return parts.length ? `${c.kind} (${parts.join(", ")})` : c.kind;
}

// ---------------------------------------------------------------------------------------------
// Overview

function Facts({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <Box component="dl" sx={{ display: "grid", gridTemplateColumns: "max-content 1fr", columnGap: 3, rowGap: 0.75, m: 0 }}>
      {rows.map(([k, v]) => (
        <Box key={k} sx={{ display: "contents" }}>
          <Typography component="dt" variant="body2" color="text.secondary">
            {k}
          </Typography>
          <Typography component="dd" variant="body2" sx={{ m: 0, overflowWrap: "anywhere" }}>
            {v}
          </Typography>
        </Box>
      ))}
    </Box>
  );
}

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

function Metrics({ host }: { host: HostDetail }) {
  const m = host.metrics;
  if (!m) {
    return (
      <Section title="Metrics">
        <Typography variant="body2" color="text.secondary">
          {host.transport === "push"
            ? "No metrics: the manager reads a push host's packages and updates, and its agent's API reports no metrics."
            : "No metrics yet: they arrive with the agent's next check-in."}
        </Typography>
      </Section>
    );
  }
  const load = Array.isArray(m["load"]) ? (m["load"] as unknown[]).map(num) : [];
  const memTotal = num(m["memory_total_bytes"]);
  const memAvail = num(m["memory_available_bytes"]);
  const swapTotal = num(m["swap_total_bytes"]);
  const swapFree = num(m["swap_free_bytes"]);
  const cpu = num(m["cpu_percent"]);
  const cpus = num(m["cpu_count"]);
  const uptime = num(m["uptime_secs"]);
  const disks = Array.isArray(m["disks"]) ? (m["disks"] as Record<string, unknown>[]) : [];
  const rows: [string, ReactNode][] = [];
  if (load.length === 3) rows.push(["Load (1, 5, 15 min)", load.map((l) => (l === null ? "?" : l.toFixed(2))).join(", ")]);
  if (cpu !== null || cpus !== null) rows.push(["CPU", `${cpu !== null ? `${cpu.toFixed(0)} % busy` : "—"}${cpus !== null ? ` of ${cpus} CPUs` : ""}`]);
  if (memTotal !== null && memAvail !== null) rows.push(["Memory", `${formatBytes(memTotal - memAvail)} used of ${formatBytes(memTotal)}`]);
  if (swapTotal !== null && swapFree !== null && swapTotal > 0) rows.push(["Swap", `${formatBytes(swapTotal - swapFree)} used of ${formatBytes(swapTotal)}`]);
  if (uptime !== null) rows.push(["Uptime", formatUptime(uptime)]);
  rows.push(["Taken", <DateTime key="t" value={host.metrics_at} />]);
  return (
    <Section title="Metrics">
      <Facts rows={rows} />
      {disks.length > 0 && (
        <ScrollTable label="Disks">
          <Table size="small" aria-label="Disks" sx={{ mt: 1 }}>
            <TableHead>
              <TableRow>
                <TableCell>Mount point</TableCell>
                <TableCell>File system</TableCell>
                <TableCell align="right">Used</TableCell>
                <TableCell align="right">Size</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {disks.map((d, i) => {
                const total = num(d["total_bytes"]) ?? 0;
                const avail = num(d["available_bytes"]) ?? 0;
                return (
                  <TableRow key={`${String(d["mount_point"])}-${i}`}>
                    <TableCell>{String(d["mount_point"] ?? "")}</TableCell>
                    <TableCell>{String(d["filesystem"] ?? "")}</TableCell>
                    <TableCell align="right">{total > 0 ? `${Math.round(((total - avail) / total) * 100)} %` : "—"}</TableCell>
                    <TableCell align="right">{formatBytes(total)}</TableCell>
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
        </ScrollTable>
      )}
    </Section>
  );
}

function Overview({ host, isAdmin }: { host: HostDetail; isAdmin: boolean }) {
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000 });
  const names = new Map((groups.data?.items ?? []).map((g) => [g.id, g.name]));
  const system: [string, ReactNode][] = [
    ["Operating system", host.os_pretty_name || [host.os_name, host.os_version].filter(Boolean).join(" ") || "—"],
    ["Kernel", host.kernel ?? "—"],
    ["Architecture", host.arch ?? "—"],
    ["Package manager", host.backend ?? "—"],
    ["FQDN", host.fqdn ?? "—"],
    ["Address", host.address ?? "—"],
    ["All addresses", host.addresses.length ? host.addresses.join(", ") : "—"],
    ["Transport", host.transport === "pull" ? "pull (the agent checks in)" : "push (the manager connects)"],
    ["Agent version", host.agent_version ?? "—"],
    ["Last seen", <DateTime key="s" value={host.last_seen_at} empty="never" />],
    ["Last inventory", <DateTime key="i" value={host.scanned_at} empty="no scan yet" />],
    ["Added", <DateTime key="c" value={host.created_at} />],
  ];
  return (
    <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "1fr", md: "1fr 1fr" }, alignItems: "start" }}>
      <Stack spacing={2}>
        <Section title="System">
          <Facts rows={system} />
        </Section>
        <Section title="Maintenance windows">
          <HostWindows hostId={host.id} groupIds={host.group_ids} groupNames={names} />
        </Section>
        {/* Admin-only on the server: others never send the request. */}
        {isAdmin && (
          <Section title="Certificates">
            <HostCertificates hostId={host.id} />
          </Section>
        )}
      </Stack>
      <Stack spacing={2}>
        <Section title="Patch state">
          <Facts
            rows={[
              ["Security updates", String(host.security_updates_count)],
              ["All updates", String(host.updates_count)],
              ["Installed packages", String(host.installed_count)],
              ["Reboot", host.reboot_required ? "needed" : "not needed"],
            ]}
          />
        </Section>
        <Section title="Groups">
          {host.group_ids.length === 0 ? (
            <Typography variant="body2" color="text.secondary">
              In no group. An administrator can add it to one under Groups.
            </Typography>
          ) : (
            <Stack direction="row" sx={{ flexWrap: "wrap", gap: 1 }}>
              {host.group_ids.map((id) => (
                <Chip
                  key={id}
                  label={names.get(id) ?? `group ${id}`}
                  component={RouterLink}
                  to={`/groups/${id}/policy`}
                  clickable
                  aria-label={`${names.get(id) ?? `group ${id}`}: deployment policy`}
                />
              ))}
            </Stack>
          )}
        </Section>
        <Metrics host={host} />
        {host.transport === "push" && isAdmin && (
          <Section title="Push bundle">
            <PushBundlePanel hostId={host.id} hostname={host.hostname} />
          </Section>
        )}
      </Stack>
    </Box>
  );
}

// ---------------------------------------------------------------------------------------------
// Updates and packages

function UpdatesTab({ hostId }: { hostId: number }) {
  const { get, set, page } = useUrlParams();
  const [search, setSearch] = useSearchBox("uq", get("uq"), set);
  const securityOnly = get("security") === "true";
  const q = { q: get("uq") || undefined, security_only: securityOnly || undefined, limit: PAGE, offset: page * PAGE };
  const updates = useQuery({
    queryKey: keys.hostUpdates(hostId, q),
    queryFn: ({ signal }) => fleetApi.updates(hostId, q, signal),
    placeholderData: keepPreviousData,
  });
  const items = updates.data?.items ?? [];
  return (
    <>
      <Stack direction={{ xs: "column", sm: "row" }} spacing={2} sx={{ mb: 2, alignItems: { sm: "center" } }}>
        <TextField label="Search updates" size="small" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ m: 0, maxWidth: { sm: 320 } }} />
        <FormControlLabel
          control={<Switch checked={securityOnly} onChange={(e) => set({ security: e.target.checked ? "true" : "" })} />}
          label="Security fixes only"
        />
      </Stack>
      <ListCard>
        <ListBody
          query={updates}
          what="updates"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title={get("uq") || securityOnly ? "No update matches" : "No updates available"}>
              {get("uq") || securityOnly
                ? "Clear the search or show every update."
                : "This host is up to date as of its latest inventory. Scan now to check again."}
            </EmptyState>
          }
        >
          <ScrollTable label="Available updates">
            <Table size="small" aria-label="Available updates">
              <TableHead>
                <TableRow>
                  <TableCell>Package</TableCell>
                  <TableCell>Installed</TableCell>
                  <TableCell>Available</TableCell>
                  <TableCell>Class</TableCell>
                  <TableCell>Severity</TableCell>
                  <TableCell>CVEs</TableCell>
                  <TableCell>Why</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((u) => (
                  <TableRow key={`${u.name}/${u.arch}`}>
                    <TableCell>
                      {u.name}
                      <Typography variant="caption" component="div" color="text.secondary">
                        {u.arch}
                        {u.reboot_likely ? " · reboot likely" : ""}
                      </Typography>
                    </TableCell>
                    <TableCell>{u.current_version}</TableCell>
                    <TableCell>
                      {u.candidate_version}
                      {u.repository && (
                        <Typography variant="caption" component="div" color="text.secondary">
                          {u.repository}
                        </Typography>
                      )}
                    </TableCell>
                    <TableCell>
                      <StateChip
                        value={u.classification === "security" ? "failed" : "pending"}
                        label={u.classification === "not_security" ? "not security" : u.classification}
                      />
                    </TableCell>
                    <TableCell>{u.severity ?? "—"}</TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 140 }}>
                      {u.cves.length ? u.cves.join(", ") : "—"}
                      {u.advisory && (
                        <Typography variant="caption" component="div" color="text.secondary">
                          {u.advisory}
                        </Typography>
                      )}
                    </TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 220 }}>
                      {u.reason}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {updates.data && updates.data.total > PAGE && (
          <Pager total={updates.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
    </>
  );
}

function PackagesTab({ hostId }: { hostId: number }) {
  const { get, set, page } = useUrlParams();
  const [search, setSearch] = useSearchBox("pq", get("pq"), set);
  const q = { q: get("pq") || undefined, limit: PAGE, offset: page * PAGE };
  const packages = useQuery({
    queryKey: keys.hostPackages(hostId, q),
    queryFn: ({ signal }) => fleetApi.packages(hostId, q, signal),
    placeholderData: keepPreviousData,
  });
  const items = packages.data?.items ?? [];
  return (
    <>
      <TextField label="Search packages" size="small" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ mt: 0, mb: 2, maxWidth: { sm: 320 } }} />
      <ListCard>
        <ListBody
          query={packages}
          what="packages"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title={get("pq") ? "No package matches" : "No inventory yet"}>
              {get("pq") ? "Try part of the name." : "The package list arrives with the agent's first scan. Scan now to ask for one."}
            </EmptyState>
          }
        >
          <ScrollTable label="Installed packages">
            <Table size="small" aria-label="Installed packages">
              <TableHead>
                <TableRow>
                  <TableCell>Package</TableCell>
                  <TableCell>Version</TableCell>
                  <TableCell>Architecture</TableCell>
                  <TableCell>Source</TableCell>
                  <TableCell>Origin</TableCell>
                  <TableCell>Held</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((p) => (
                  <TableRow key={`${p.name}/${p.arch}`}>
                    <TableCell>{p.name}</TableCell>
                    <TableCell>{p.version}</TableCell>
                    <TableCell>{p.arch}</TableCell>
                    <TableCell>{p.source_package ? `${p.source_package}${p.source_version ? ` ${p.source_version}` : ""}` : "—"}</TableCell>
                    <TableCell>{p.origin ?? "—"}</TableCell>
                    <TableCell>{p.held ? "held" : ""}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {packages.data && packages.data.total > PAGE && (
          <Pager total={packages.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Commands

function useCommandActions(hostId: number) {
  const client = useQueryClient();
  const refresh = () => client.invalidateQueries({ queryKey: keys.hostCommands(hostId) });
  return {
    cancel: async (c: CommandView) => {
      await fleetApi.cancelCommand(c.id);
      await refresh();
    },
    retry: async (c: CommandView) => {
      await fleetApi.retryCommand(c.id);
      await refresh();
    },
    rollback: async (c: CommandView) => {
      await fleetApi.queueCommand(hostId, COMMANDS.rollback(c.id));
      await refresh();
    },
  };
}

function CommandButtons({ command, canAct, hostId, onError }: { command: CommandView; canAct: boolean; hostId: number; onError: (e: unknown) => void }) {
  const actions = useCommandActions(hostId);
  const [busy, setBusy] = useState(false);
  const [confirmRollback, setConfirmRollback] = useState(false);
  if (!canAct) return null;
  const run = (f: () => Promise<void>) => {
    setBusy(true);
    onError(null);
    f().then(
      () => setBusy(false),
      (e: unknown) => {
        setBusy(false);
        onError(e);
      },
    );
  };
  return (
    <>
      {command.state === "pending" && (
        <Button size="small" disabled={busy} onClick={() => run(() => actions.cancel(command))}>
          Cancel
        </Button>
      )}
      {["failed", "timed_out", "cancelled"].includes(command.state) && (
        <Button size="small" disabled={busy} onClick={() => run(() => actions.retry(command))}>
          Retry
        </Button>
      )}
      {canRollBack(command) && (
        <Button size="small" disabled={busy} onClick={() => setConfirmRollback(true)}>
          Roll back
        </Button>
      )}
      <Dialog open={confirmRollback} onClose={() => setConfirmRollback(false)} aria-labelledby="rollback-title" fullWidth maxWidth="xs">
        <DialogTitle id="rollback-title">Roll back this {command.kind}?</DialogTitle>
        <DialogContent>
          <Typography variant="body2">
            The agent restores the versions this command changed ({command.changes.length}{" "}
            {command.changes.length === 1 ? "package" : "packages"}).
          </Typography>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setConfirmRollback(false)}>Cancel</Button>
          <Button
            variant="contained"
            color="error"
            onClick={() => {
              setConfirmRollback(false);
              run(() => actions.rollback(command));
            }}
          >
            Roll back
          </Button>
        </DialogActions>
      </Dialog>
    </>
  );
}

/** One command with its output, changes and error; re-read while it is not finished. */
function CommandDetailDialog({ id, onClose, job }: { id: string | null; onClose: () => void; job?: JobProgress }) {
  const command = useQuery({
    queryKey: keys.command(id ?? ""),
    queryFn: ({ signal }) => fleetApi.command(id!, signal),
    enabled: id !== null,
  });
  const c = command.data;
  return (
    <Dialog open={id !== null} onClose={onClose} fullWidth maxWidth="md" aria-labelledby="command-detail-title">
      <DialogTitle id="command-detail-title">{c ? describeCommand(c) : "Command"}</DialogTitle>
      <DialogContent>
        {command.isPending && <Skeleton height={120} aria-label="Loading the command" />}
        {command.isError && <ErrorPanel error={command.error} title="Could not load the command" onRetry={() => void command.refetch()} />}
        {c && (
          <Stack spacing={2}>
            <Facts
              rows={[
                ["State", <StateChip key="s" value={c.state} />],
                ["Queued", <DateTime key="q" value={c.created_at} />],
                ["Started", <DateTime key="st" value={c.started_at} />],
                ["Finished", <DateTime key="f" value={c.finished_at} />],
                ["Command id", <code key="id">{c.id}</code>],
                ...(c.retry_of ? ([["Retry of", <code key="r">{c.retry_of}</code>]] as [string, ReactNode][]) : []),
                ...(c.reboot_required ? ([["Reboot", "needed after this command"]] as [string, ReactNode][]) : []),
              ]}
            />
            {job && !FINAL_STATES.has(c.state) && (
              <Box>
                <Typography variant="subtitle2" component="h3">
                  Agent job
                </Typography>
                <JobProgressBar job={job} />
              </Box>
            )}
            {(c.error_code || c.error_message) && (
              <Alert severity="error">
                {c.error_code && <code>{c.error_code}</code>} {c.error_message}
              </Alert>
            )}
            {c.changes.length > 0 && (
              <ScrollTable label="Package changes">
                <Table size="small" aria-label="Package changes">
                  <TableHead>
                    <TableRow>
                      <TableCell>Package</TableCell>
                      <TableCell>Change</TableCell>
                      <TableCell>From</TableCell>
                      <TableCell>To</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {c.changes.map((ch, i) => (
                      <TableRow key={`${ch.name}-${i}`}>
                        <TableCell>{ch.name}</TableCell>
                        <TableCell>{ch.action}</TableCell>
                        <TableCell>{ch.from ?? "—"}</TableCell>
                        <TableCell>{ch.to ?? "—"}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              </ScrollTable>
            )}
            <Box>
              <Typography variant="subtitle2" component="h3">
                Output
              </Typography>
              {c.output ? (
                <Box
                  component="pre"
                  data-testid="command-output"
                  tabIndex={0}
                  sx={{
                    m: 0,
                    mt: 0.5,
                    p: 1.5,
                    maxHeight: 400,
                    overflow: "auto",
                    bgcolor: "action.hover",
                    borderRadius: 1,
                    fontFamily: MONO_FONTS,
                    fontSize: "0.8125rem",
                    whiteSpace: "pre-wrap",
                    overflowWrap: "anywhere",
                  }}
                >
                  {c.output}
                </Box>
              ) : (
                <Typography variant="body2" color="text.secondary">
                  {FINAL_STATES.has(c.state) ? "No output." : "No output yet: it appears when the agent reports."}
                </Typography>
              )}
            </Box>
          </Stack>
        )}
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose}>Close</Button>
      </DialogActions>
    </Dialog>
  );
}

/** A running command's agent job (push hosts): its latest progress and message from the event stream. */
function JobProgressBar({ job }: { job: JobProgress }) {
  return (
    <Box sx={{ mt: 0.75, minWidth: 160, maxWidth: 280 }}>
      <LinearProgress variant="determinate" value={job.progress} aria-label={`Job progress ${job.progress} %`} />
      <Typography variant="caption" component="div" color="text.secondary" sx={{ whiteSpace: "normal", overflowWrap: "anywhere" }} aria-live="polite">
        {job.progress} %{job.message ? ` · ${job.message}` : ""}
      </Typography>
    </Box>
  );
}

function CommandsTab({ hostId, canAct, jobs }: { hostId: number; canAct: boolean; jobs: ReadonlyMap<string, JobProgress> }) {
  const { page, set, get } = useUrlParams();
  const q = { limit: PAGE, offset: page * PAGE };
  const commands = useQuery({
    queryKey: [...keys.hostCommands(hostId), q],
    queryFn: ({ signal }) => fleetApi.hostCommands(hostId, q, signal),
    placeholderData: keepPreviousData,
  });
  // `?command=<id>` (a link from a deployment's host) opens that command's details.
  const [open, setOpen] = useState<string | null>(() => get("command") || null);
  const [error, setError] = useState<unknown>(null);
  const items = commands.data?.items ?? [];
  return (
    <>
      <FormError error={error} />
      <ListCard>
        <ListBody
          query={commands}
          what="commands"
          isEmpty={items.length === 0}
          empty={<EmptyState title="No commands yet">Use Scan now or apply updates above; each command and its output shows here.</EmptyState>}
        >
          <ScrollTable label="Commands">
            <Table size="small" aria-label="Commands">
              <TableHead>
                <TableRow>
                  <TableCell>Command</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell>Queued</TableCell>
                  <TableCell>Finished</TableCell>
                  <TableCell>Changes</TableCell>
                  <TableCell>Actions</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((c) => (
                  <TableRow key={c.id}>
                    <TableCell>{describeCommand(c)}</TableCell>
                    <TableCell>
                      <StateChip value={c.state} />
                      {!FINAL_STATES.has(c.state) && jobs.has(c.id) && <JobProgressBar job={jobs.get(c.id)!} />}
                    </TableCell>
                    <TableCell>
                      <DateTime value={c.created_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime value={c.finished_at} />
                    </TableCell>
                    <TableCell>{c.changes.length || "—"}</TableCell>
                    <TableCell>
                      <Button size="small" onClick={() => setOpen(c.id)} aria-label={`Details of ${describeCommand(c)} queued ${c.created_at}`}>
                        Details
                      </Button>
                      <CommandButtons command={c} canAct={canAct} hostId={hostId} onError={setError} />
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {commands.data && commands.data.total > PAGE && (
          <Pager total={commands.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
      <CommandDetailDialog
        id={open}
        onClose={() => {
          setOpen(null);
          if (get("command")) set({ command: "" }, { keepPage: true });
        }} job={open ? jobs.get(open) : undefined} />
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// The page

export function HostDetailPage() {
  const params = useParams();
  const hostId = Number(params["id"]);
  const me = useMe();
  const canAct = me.data?.user.role === "admin" || me.data?.user.role === "operator";
  const client = useQueryClient();
  const { get, set } = useUrlParams();
  const tab: TabName = (TABS as readonly string[]).includes(get("tab")) ? (get("tab") as TabName) : "overview";
  const host = useQuery({
    queryKey: keys.hostSelf(hostId),
    queryFn: ({ signal }) => fleetApi.host(hostId, signal),
    enabled: Number.isInteger(hostId) && hostId > 0,
  });
  const [action, setAction] = useState<HostAction | null>(null);
  const [queued, setQueued] = useState<CommandView | null>(null);
  // Kept for the whole page, so progress that arrives while another tab is shown is not lost.
  const jobs = useJobProgress(hostId);

  if (!Number.isInteger(hostId) || hostId <= 0) {
    return <Alert severity="error">This is not a host address. Go back to the host list.</Alert>;
  }

  const queue = async (command: Command) => {
    const created = await fleetApi.queueCommand(hostId, command);
    setQueued(created);
    setAction(null);
    await client.invalidateQueries({ queryKey: keys.hostCommands(hostId) });
  };

  let body: ReactNode;
  if (host.isPending) {
    body = (
      <Box aria-busy="true" aria-label="Loading the host">
        <Skeleton height={48} width="40%" />
        <Skeleton height={240} />
      </Box>
    );
  } else if (host.isError) {
    body =
      isApiError(host.error) && host.error.status === 404 ? (
        <EmptyState title="No such host" action={<Button component={RouterLink} to="/hosts">Back to the host list</Button>}>
          It was removed, or it is outside your groups.
        </EmptyState>
      ) : (
        <ErrorPanel error={host.error} title="Could not load the host" onRetry={() => void host.refetch()} />
      );
  } else {
    const h = host.data;
    const canTakeCommands = h.approval === "approved";
    const push = h.transport === "push";
    body = (
      <>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2, alignItems: "flex-start", mb: 2 }}>
          <Box sx={{ flexGrow: 1, minWidth: 0 }}>
            <Typography variant="h5" component="h1" sx={{ fontWeight: 600, overflowWrap: "anywhere" }}>
              {h.hostname}
            </Typography>
            <Stack direction="row" sx={{ flexWrap: "wrap", gap: 1, mt: 1, alignItems: "center" }}>
              <StateChip value={h.status} label={h.status === "pending" ? "never seen" : h.status} />
              {h.security_updates_count > 0 && <Chip size="small" color="error" label={plural(h.security_updates_count, "security update")} />}
              {h.reboot_required && <Chip size="small" color="warning" label="reboot needed" />}
              <Typography variant="body2" color="text.secondary">
                Last seen <DateTime value={h.last_seen_at} empty="never" />
              </Typography>
            </Stack>
          </Box>
          {canAct && (
            <Stack direction="row" sx={{ flexWrap: "wrap", gap: 1 }} role="group" aria-label="Host actions">
              {(Object.keys(HOST_ACTIONS) as HostAction[]).map((a) =>
                push && a === "heartbeat" ? (
                  <Tooltip key={a} title={PUSH_NO_HEARTBEAT}>
                    {/* A disabled button gets no pointer events: the tooltip hangs on its wrapper. */}
                    <span>
                      <Button variant="outlined" disabled aria-describedby="push-limits">
                        {HOST_ACTIONS[a].label}
                      </Button>
                    </span>
                  </Tooltip>
                ) : (
                  <Button key={a} variant={a === "upgradeSecurity" ? "contained" : "outlined"} onClick={() => setAction(a)} disabled={!canTakeCommands}>
                    {HOST_ACTIONS[a].label}
                  </Button>
                ),
              )}
              {canTakeCommands && (
                <Button
                  variant="outlined"
                  component={RouterLink}
                  to={`/deployments/new?hosts=${h.id}&name=${encodeURIComponent(`Updates for ${h.hostname}`)}`}
                >
                  New deployment…
                </Button>
              )}
            </Stack>
          )}
        </Box>
        {canAct && !canTakeCommands && (
          <Alert severity="info" sx={{ mb: 2 }}>
            This host cannot take commands until its enrollment is approved (under Enrollments).
          </Alert>
        )}
        {canAct && canTakeCommands && push && (
          <Alert severity="info" sx={{ mb: 2 }} id="push-limits">
            A push host: the manager calls its agent's API. That API has no dry run and no rapid check-in, so neither is offered;
            a running job's progress shows under Commands.
          </Alert>
        )}
        {queued && (
          <Alert severity="success" sx={{ mb: 2 }} onClose={() => setQueued(null)}>
            Queued: {describeCommand(queued)}. Its state updates below as the agent reports.
          </Alert>
        )}
        <Tabs
          value={tab}
          onChange={(_, v: TabName) => set({ tab: v === "overview" ? "" : v })}
          variant="scrollable"
          allowScrollButtonsMobile
          aria-label="Host sections"
          sx={{ mb: 2, borderBottom: 1, borderColor: "divider" }}
        >
          <Tab value="overview" label="Overview" />
          <Tab value="updates" label={`Updates (${h.updates_count})`} />
          <Tab value="packages" label={`Packages (${h.installed_count})`} />
          <Tab value="commands" label="Commands" />
        </Tabs>
        {tab === "overview" && <Overview host={h} isAdmin={me.data?.user.role === "admin"} />}
        {tab === "updates" && <UpdatesTab hostId={hostId} />}
        {tab === "packages" && <PackagesTab hostId={hostId} />}
        {tab === "commands" && <CommandsTab hostId={hostId} canAct={canAct} jobs={jobs} />}
        <CommandDialog action={action} target={h.hostname} onClose={() => setAction(null)} onConfirm={queue} noDryRun={push ? PUSH_NO_DRY_RUN : undefined} />
      </>
    );
  }

  return (
    <>
      <Breadcrumbs aria-label="Breadcrumb" sx={{ mb: 1 }}>
        <Link component={RouterLink} to="/hosts">
          Hosts
        </Link>
        <Typography color="text.primary">{host.data?.hostname ?? `Host ${hostId}`}</Typography>
      </Breadcrumbs>
      {body}
    </>
  );
}
