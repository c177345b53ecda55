import { Fragment, useMemo, useState, type ReactNode } from "react";
import { Link as RouterLink, useParams } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  Collapse,
  IconButton,
  Link,
  MenuItem,
  Skeleton,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from "@mui/material";
import KeyboardArrowDownIcon from "@mui/icons-material/KeyboardArrowDown";
import KeyboardArrowRightIcon from "@mui/icons-material/KeyboardArrowRight";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import {
  DEPLOYMENT_HOST_STATES,
  deploymentActions,
  deploymentsApi,
  fleetApi,
  keys,
  type DeploymentAction,
  type DeploymentHostView,
  type DeploymentView,
} from "../api/fleet";
import { useMe } from "../auth/session";
import { DateTime } from "../components/DateTime";
import { DeploymentProgress, REBOOT_LABELS, SCHEDULE_LABELS, selectionLabel } from "../components/DeploymentProgress";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { ListBody, Pager, ScrollTable, StateChip } from "../components/tables";
import { intParam, useUrlParams } from "../urlState";

const PAGE_SIZES = [25, 50, 100];

const ACTION_LABELS: Record<DeploymentAction, string> = {
  approve: "Approve",
  cancel: "Cancel deployment",
  retry: "Retry failed hosts",
  rollback: "Roll back",
};

/** The destructive actions ask first. */
const CONFIRM: Partial<Record<DeploymentAction, { title: string; description: string; label: string }>> = {
  cancel: {
    title: "Cancel this deployment?",
    description:
      "Hosts that have not started are cancelled and commands not yet delivered are taken back; what is already running on a host finishes",
    label: "Cancel deployment",
  },
  rollback: {
    title: "Roll this deployment back?",
    description:
      "Every host it changed returns to the versions it had before. Hosts not started are cancelled first; running ones finish, then roll back",
    label: "Roll back",
  },
};

// ---------------------------------------------------------------------------------------------
// Header

function Facts({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <Box component="dl" sx={{ display: "grid", gridTemplateColumns: { xs: "1fr", sm: "max-content 1fr" }, columnGap: 3, rowGap: 0.75, m: 0 }}>
      {rows.map(([k, v]) => (
        <Fragment key={k}>
          <Typography component="dt" variant="body2" color="text.secondary">
            {k}
          </Typography>
          <Typography component="dd" variant="body2" sx={{ m: 0, mb: { xs: 1, sm: 0 }, overflowWrap: "anywhere" }}>
            {v}
          </Typography>
        </Fragment>
      ))}
    </Box>
  );
}

function targetLabel(target: Record<string, unknown>): string {
  const parts: string[] = [];
  const hosts = Array.isArray(target["host_ids"]) ? target["host_ids"].length : 0;
  const groups = Array.isArray(target["group_ids"]) ? target["group_ids"].length : 0;
  if (hosts) parts.push(`${hosts} ${hosts === 1 ? "host" : "hosts"}`);
  if (groups) parts.push(`${groups} ${groups === 1 ? "group" : "groups"}`);
  const f = target["filter"];
  if (f && typeof f === "object") {
    const filter = f as Record<string, unknown>;
    const bits: string[] = [];
    if (typeof filter["q"] === "string" && filter["q"]) bits.push(`matching “${filter["q"]}”`);
    if (typeof filter["os"] === "string" && filter["os"]) bits.push(`OS “${filter["os"]}”`);
    if (filter["security_updates"] === true) bits.push("with security updates");
    if (filter["security_updates"] === false) bits.push("without security updates");
    parts.push(bits.length ? `hosts ${bits.join(", ")}` : "every host (filter)");
  }
  return parts.join(" + ") || "—";
}

/** Where a ring stands: the rings before the current one have finished. */
function ringState(d: DeploymentView, i: number): { label: string; color: "success" | "info" | "default" | "warning" } {
  const finished = ["succeeded", "partially_failed", "failed", "cancelled", "rolled_back", "rolling_back"].includes(d.status);
  if (i < d.current_ring) return { label: "done", color: "success" };
  if (i === d.current_ring) {
    if (d.status === "running") return { label: "current", color: "info" };
    if (d.status === "halted") return { label: "halted here", color: "warning" };
    if (finished) return { label: "last ring run", color: "default" };
    return { label: "first", color: "default" };
  }
  return { label: finished ? "not run" : "waiting", color: "default" };
}

type RingView = DeploymentView["rings"][number];

/** What a ring takes: a group (by name when known), up to a cumulative percentage, or the rest. */
function ringTargetLabel(r: RingView, i: number, count: number, groupNames: ReadonlyMap<number, string>): string {
  if (r.group_id != null) {
    const name = groupNames.get(r.group_id);
    return name !== undefined ? `Group ${name}` : `Group #${r.group_id}`;
  }
  if (r.percent != null) return `Up to ${r.percent} % of the hosts`;
  return i === 0 && count === 1 ? "Every host" : "The rest";
}

function Rings({ d }: { d: DeploymentView }) {
  // Group rings are named from the groups list (shared with the other pages); "group #id" until then.
  const hasGroupRing = d.rings.some((r) => r.group_id != null);
  const groups = useQuery({
    queryKey: keys.groups,
    queryFn: ({ signal }) => fleetApi.groups(signal),
    staleTime: 60_000,
    enabled: hasGroupRing,
  });
  const groupNames = useMemo(() => new Map((groups.data?.items ?? []).map((g) => [g.id, g.name])), [groups.data]);
  return (
    <Box component="ol" aria-label="Rings" sx={{ listStyle: "none", p: 0, m: 0, display: "grid", gap: 1 }}>
      {d.rings.map((r, i) => {
        const s = ringState(d, i);
        return (
          <Box
            component="li"
            key={i}
            aria-current={i === d.current_ring && d.status === "running" ? "step" : undefined}
            sx={{ p: 1, borderRadius: 1, border: 1, borderColor: i === d.current_ring ? "primary.main" : "divider" }}
          >
            <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center", mb: 0.75 }}>
              <Typography variant="body2" sx={{ fontWeight: 500, minWidth: 0, overflowWrap: "anywhere" }}>
                {i + 1}. {r.name}
              </Typography>
              <Chip size="small" variant="outlined" color={s.color} label={s.label} />
              <Typography variant="caption" color="text.secondary" sx={{ overflowWrap: "anywhere" }}>
                {ringTargetLabel(r, i, d.rings.length, groupNames)} · {Math.round(r.success_threshold * 100)} % must succeed
                {r.soak_secs > 0 ? ` · soak ${Math.round(r.soak_secs / 60)} min` : ""}
              </Typography>
            </Box>
            <DeploymentProgress counts={r.hosts} label={`Ring ${i + 1} (${r.name})`} />
          </Box>
        );
      })}
    </Box>
  );
}

function Actions({ d, onDone, ownDeployment }: { d: DeploymentView; onDone: (d: DeploymentView) => void; ownDeployment: boolean }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<DeploymentAction | null>(null);
  const [confirm, setConfirm] = useState<DeploymentAction | null>(null);
  const run = async (action: DeploymentAction) => {
    setBusy(action);
    setError(null);
    try {
      onDone(await deploymentsApi.act(d.id, action));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  // Four eyes: an operator does not approve their own deployment (the API answers 403).
  const actions = deploymentActions(d.status).filter((a) => !(a === "approve" && ownDeployment));
  const selfApproval = ownDeployment && d.status === "awaiting_approval";
  if (actions.length === 0 && !selfApproval) return null;
  const c = confirm ? CONFIRM[confirm] : undefined;
  return (
    <Box>
      <Stack direction="row" spacing={1} useFlexGap sx={{ flexWrap: "wrap" }}>
        {actions.map((a) => (
          <Button
            key={a}
            variant={a === "approve" ? "contained" : "outlined"}
            color={a === "cancel" || a === "rollback" ? "error" : "primary"}
            disabled={busy !== null}
            onClick={() => (CONFIRM[a] ? setConfirm(a) : void run(a))}
          >
            {busy === a ? "Working…" : ACTION_LABELS[a]}
          </Button>
        ))}
      </Stack>
      {selfApproval && (
        <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
          You created this deployment: an administrator or another operator approves it.
        </Typography>
      )}
      {isApiError(error) && error.status === 403 && d.status === "awaiting_approval" ? (
        <Alert severity="warning" role="alert" sx={{ mt: 2 }}>
          {error.message ? `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}.` : "Your role does not allow this."} Ask an
          administrator or another operator to approve it.
        </Alert>
      ) : (
        <FormError error={error} />
      )}
      {c && confirm && (
        <ConfirmDialog
          open
          title={c.title}
          description={c.description}
          confirmLabel={c.label}
          onClose={() => setConfirm(null)}
          onConfirm={async () => {
            onDone(await deploymentsApi.act(d.id, confirm));
            setConfirm(null);
          }}
        />
      )}
    </Box>
  );
}

// ---------------------------------------------------------------------------------------------
// Hosts

interface PlanItem {
  name: string;
  arch: string;
  from: string;
  to: string;
}

function planOf(h: DeploymentHostView): PlanItem[] {
  if (!Array.isArray(h.plan)) return [];
  return h.plan.map((p) => {
    const r = (p ?? {}) as Record<string, unknown>;
    const s = (k: string) => (typeof r[k] === "string" ? (r[k] as string) : r[k] == null ? "" : String(r[k]));
    return { name: s("name"), arch: s("arch"), from: s("from"), to: s("to") };
  });
}

/** The packages of one part of a dry run's answer (`installs`, `upgrades`, `removals`). */
function changesOf(v: unknown): PlanItem[] | null {
  if (!Array.isArray(v)) return null;
  return v.map((c) => {
    const r = (c ?? {}) as Record<string, unknown>;
    const s = (k: string) => (r[k] == null ? "" : String(r[k]));
    return { name: s("name"), arch: s("arch"), from: s("from"), to: s("to") };
  });
}

function PreviewPart({ label, value, warn }: { label: string; value: unknown; warn?: boolean }) {
  const list = changesOf(value);
  const n = list ? list.length : typeof value === "number" ? value : null;
  return (
    <Box>
      <Typography variant="body2" color={warn && n ? "warning.main" : undefined} sx={{ fontWeight: 500 }}>
        {label}: {n ?? "—"}
      </Typography>
      {list && list.length > 0 && (
        <Box component="ul" sx={{ m: 0, pl: 3 }}>
          {list.map((c, i) => (
            <Typography component="li" variant="body2" key={`${c.name}-${i}`} sx={{ overflowWrap: "anywhere" }}>
              {c.name}
              {c.arch ? ` (${c.arch})` : ""}
              {c.from || c.to ? `: ${c.from || "—"} → ${c.to || "—"}` : ""}
            </Typography>
          ))}
        </Box>
      )}
    </Box>
  );
}

function Preview({ h }: { h: DeploymentHostView }) {
  const p = h.preview as Record<string, unknown> | null | undefined;
  if (!p) {
    return (
      <Typography variant="body2" color="text.secondary">
        {h.state === "planning" ? "The dry run has not answered yet; it shows here when it does." : "No dry run for this host."}
      </Typography>
    );
  }
  if (p["available"] === false) {
    return (
      <Typography variant="body2" color="text.secondary">
        No dry run: {typeof p["reason"] === "string" ? p["reason"] : "the host cannot do one"}.
      </Typography>
    );
  }
  return (
    <Stack spacing={1}>
      <PreviewPart label="Installs" value={p["installs"]} />
      <PreviewPart label="Upgrades" value={p["upgrades"]} />
      <PreviewPart label="Removals" value={p["removals"]} warn />
      <Typography variant="body2" sx={{ fontWeight: 500 }}>
        Reboot needed: {p["reboot_required"] === true ? "yes" : p["reboot_required"] === false ? "no" : "—"}
      </Typography>
    </Stack>
  );
}

function CommandLinks({ h }: { h: DeploymentHostView }) {
  const links: [string, string | null | undefined][] = [
    ["Dry run", h.preview_command],
    ["Install", h.apply_command],
    ["Reboot", h.reboot_command],
    ["Health check", h.health_command],
    ["Roll back", h.rollback_command],
  ];
  const present = links.filter(([, id]) => id);
  if (present.length === 0) return <Typography variant="body2" color="text.secondary">No command sent yet.</Typography>;
  return (
    <Stack direction="row" spacing={2} useFlexGap sx={{ flexWrap: "wrap" }}>
      {present.map(([label, id]) => (
        <Link key={label} component={RouterLink} to={`/hosts/${h.host_id}?tab=commands&command=${encodeURIComponent(id!)}`}>
          {label} output
        </Link>
      ))}
    </Stack>
  );
}

function HostRow({ h, ringName }: { h: DeploymentHostView; ringName: string }) {
  const [open, setOpen] = useState(false);
  const plan = planOf(h);
  const detailId = `dh-${h.host_id}`;
  return (
    <>
      <TableRow hover sx={{ "& > td": { borderBottom: open ? "unset" : undefined } }}>
        <TableCell padding="checkbox">
          <IconButton
            size="small"
            aria-expanded={open}
            aria-controls={detailId}
            aria-label={`${open ? "Hide" : "Show"} the plan of ${h.hostname}`}
            onClick={() => setOpen((o) => !o)}
          >
            {open ? <KeyboardArrowDownIcon /> : <KeyboardArrowRightIcon />}
          </IconButton>
        </TableCell>
        <TableCell>
          <Link component={RouterLink} to={`/hosts/${h.host_id}`}>
            {h.hostname}
          </Link>
        </TableCell>
        <TableCell>{ringName}</TableCell>
        <TableCell>
          <StateChip value={h.state} />
        </TableCell>
        <TableCell>{plan.length}</TableCell>
        <TableCell>{h.attempts}</TableCell>
        <TableCell>
          {h.state === "waiting_for_window" || h.state === "queued" ? <DateTime value={h.not_before} /> : <DateTime value={h.started_at} />}
        </TableCell>
        <TableCell className="wrap" sx={{ minWidth: 200 }}>
          {h.error_message ?? "—"}
        </TableCell>
      </TableRow>
      <TableRow>
        <TableCell colSpan={8} sx={{ py: 0 }}>
          <Collapse in={open} timeout="auto" unmountOnExit>
            <Box id={detailId} sx={{ py: 2, display: "grid", gap: 2, gridTemplateColumns: { xs: "1fr", md: "2fr 1fr" }, whiteSpace: "normal" }}>
              <Box>
                <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
                  Plan ({plan.length} {plan.length === 1 ? "package" : "packages"}, frozen when the deployment was created)
                </Typography>
                {plan.length === 0 ? (
                  <Typography variant="body2" color="text.secondary">
                    Nothing to install on this host.
                  </Typography>
                ) : (
                  <Table size="small" aria-label={`Plan of ${h.hostname}`}>
                    <TableHead>
                      <TableRow>
                        <TableCell>Package</TableCell>
                        <TableCell>Arch</TableCell>
                        <TableCell>From</TableCell>
                        <TableCell>To</TableCell>
                      </TableRow>
                    </TableHead>
                    <TableBody>
                      {plan.map((p, i) => (
                        <TableRow key={`${p.name}-${p.arch}-${i}`}>
                          <TableCell>{p.name}</TableCell>
                          <TableCell>{p.arch || "—"}</TableCell>
                          <TableCell>{p.from || "(new)"}</TableCell>
                          <TableCell>{p.to || "—"}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                )}
              </Box>
              <Stack spacing={2}>
                <Box>
                  <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
                    Dry run
                  </Typography>
                  <Preview h={h} />
                </Box>
                {(h.error_code || h.error_message) && (
                  <Alert severity="error">
                    {h.error_message ?? "Failed"}
                    {h.error_code && (
                      <Box component="div" sx={{ mt: 0.5, fontSize: "0.8125rem", opacity: 0.85 }}>
                        Code: <code>{h.error_code}</code>
                      </Box>
                    )}
                  </Alert>
                )}
                <Facts
                  rows={[
                    ["Not before", <DateTime key="nb" value={h.not_before} />],
                    ["Window ends", <DateTime key="we" value={h.window_end} />],
                    ["Started", <DateTime key="s" value={h.started_at} />],
                    ["Finished", <DateTime key="f" value={h.finished_at} />],
                    ["Reboot required", h.reboot_required ? "yes" : "no"],
                  ]}
                />
                <Box>
                  <Typography variant="subtitle2" component="h3" sx={{ mb: 1 }}>
                    Commands
                  </Typography>
                  <CommandLinks h={h} />
                </Box>
              </Stack>
            </Box>
          </Collapse>
        </TableCell>
      </TableRow>
    </>
  );
}

function HostsTable({ d }: { d: DeploymentView }) {
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 25, PAGE_SIZES);
  const state = (DEPLOYMENT_HOST_STATES as readonly string[]).includes(get("state")) ? get("state") : "";
  const q = useMemo(() => ({ state: state || undefined, limit, offset: page * limit }), [state, limit, page]);
  const hosts = useQuery({
    queryKey: keys.deploymentHosts(d.id, q),
    queryFn: ({ signal }) => deploymentsApi.hosts(d.id, q, signal),
    placeholderData: keepPreviousData,
  });
  const items = hosts.data?.items ?? [];
  const counts = d.hosts;
  return (
    <Card variant="outlined" component="section" aria-labelledby="deployment-hosts">
      <CardContent sx={{ pb: 0 }}>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2, alignItems: "center", mb: 2 }}>
          <Typography variant="h6" component="h2" id="deployment-hosts" sx={{ flexGrow: 1 }}>
            Hosts
          </Typography>
          <TextField select label="State" size="small" value={state} onChange={(e) => set({ state: e.target.value })} sx={{ minWidth: 200 }}>
            <MenuItem value="">Any</MenuItem>
            {DEPLOYMENT_HOST_STATES.map((s) => (
              <MenuItem key={s} value={s}>
                {s.replace(/_/g, " ")}
                {counts[s] ? ` (${counts[s]})` : ""}
              </MenuItem>
            ))}
          </TextField>
        </Box>
      </CardContent>
      <ListBody
        query={hosts}
        what="the deployment's hosts"
        isEmpty={items.length === 0}
        empty={
          state ? (
            <EmptyState title={`No host is ${state.replace(/_/g, " ")}`} action={<Button onClick={() => set({ state: "" })}>Show every host</Button>} />
          ) : (
            <EmptyState title="No hosts you can see">This deployment's hosts are outside your groups.</EmptyState>
          )
        }
      >
        <ScrollTable label="Deployment hosts">
          <Table size="small" aria-label="Deployment hosts">
            <TableHead>
              <TableRow>
                <TableCell padding="checkbox">
                  <Box component="span" sx={{ position: "absolute", width: 1, height: 1, overflow: "hidden", clip: "rect(0 0 0 0)" }}>
                    Details
                  </Box>
                </TableCell>
                <TableCell>Host</TableCell>
                <TableCell>Ring</TableCell>
                <TableCell>State</TableCell>
                <TableCell>Packages</TableCell>
                <TableCell>Attempts</TableCell>
                <TableCell>Starts / started</TableCell>
                <TableCell>Error</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {items.map((h) => (
                <HostRow key={h.host_id} h={h} ringName={d.rings[h.ring]?.name ?? `ring ${h.ring + 1}`} />
              ))}
            </TableBody>
          </Table>
        </ScrollTable>
        <Pager
          total={hosts.data?.total ?? 0}
          page={page}
          limit={limit}
          sizes={PAGE_SIZES}
          onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
          onLimit={(l) => set({ limit: l })}
        />
      </ListBody>
    </Card>
  );
}

// ---------------------------------------------------------------------------------------------
// The page

export function DeploymentDetailPage() {
  const params = useParams();
  const id = Number(params["id"]);
  const valid = Number.isInteger(id) && id > 0;
  const me = useMe();
  const canAct = me.data?.user.role === "admin" || me.data?.user.role === "operator";
  const client = useQueryClient();
  const deployment = useQuery({
    queryKey: keys.deploymentSelf(id),
    queryFn: ({ signal }) => deploymentsApi.get(id, signal),
    enabled: valid,
    // Planning answers come back as dry runs finish; the events say so, this is the fallback.
    refetchInterval: (q) => (q.state.data?.status === "planning" ? 5000 : false),
  });

  if (!valid || (deployment.isError && isApiError(deployment.error) && deployment.error.status === 404)) {
    return (
      <EmptyState
        title="No such deployment"
        action={
          <Button component={RouterLink} to="/deployments">
            All deployments
          </Button>
        }
      >
        It does not exist, or none of its hosts is in your groups.
      </EmptyState>
    );
  }
  if (deployment.isError) {
    return <ErrorPanel error={deployment.error} title="Could not load the deployment" onRetry={() => void deployment.refetch()} />;
  }
  const d = deployment.data;
  if (!d) {
    return (
      <Box aria-busy="true" aria-label="Loading the deployment" role="status">
        <Skeleton height={48} width="40%" />
        <Skeleton height={160} />
        <Skeleton height={240} />
      </Box>
    );
  }
  const onDone = (next: DeploymentView) => {
    client.setQueryData(keys.deploymentSelf(id), next);
    void client.invalidateQueries({ queryKey: keys.deployment(id) });
    void client.invalidateQueries({ queryKey: keys.deploymentList });
  };
  const reasonSeverity = d.status === "halted" || d.status === "partially_failed" ? "warning" : d.status === "failed" ? "error" : "info";
  return (
    <>
      <Box sx={{ mb: 1 }}>
        <Link component={RouterLink} to="/deployments" variant="body2">
          ← Deployments
        </Link>
      </Box>
      <PageHeader
        title={d.name}
        subtitle={
          <>
            Deployment {d.id} · created <DateTime value={d.created_at} />
          </>
        }
        actions={<StateChip value={d.status} />}
      />
      <Stack spacing={3}>
        {d.reason && (
          <Alert severity={reasonSeverity} role="status">
            {d.status === "halted" ? "Halted: " : d.status === "failed" ? "Failed: " : ""}
            {d.reason}
          </Alert>
        )}
        {d.status === "planning" && (
          <Alert severity="info" role="status">
            Planning: each host is running a dry run of its plan. The previews appear in the hosts below as they come back; then the
            deployment {d.requires_approval ? "waits for an approver" : "starts by itself"}.
          </Alert>
        )}
        {d.status === "awaiting_approval" && (
          <Alert severity="warning" role="status">
            Waiting for approval: an administrator, or an operator other than its creator, approves it after checking the plans and
            previews below.
          </Alert>
        )}
        {canAct && (
          <Actions d={d} onDone={onDone} ownDeployment={me.data?.user.role !== "admin" && d.created_by != null && d.created_by === me.data?.user.id} />
        )}
        <Box sx={{ display: "grid", gap: 3, gridTemplateColumns: { xs: "1fr", md: "1fr 1fr" } }}>
          <Card variant="outlined">
            <CardContent>
              <Typography variant="h6" component="h2" sx={{ mb: 1.5 }}>
                Plan
              </Typography>
              <Facts
                rows={[
                  ["Hosts", targetLabel(d.target)],
                  ["Updates", selectionLabel(d.selection)],
                  ["Schedule", SCHEDULE_LABELS[d.schedule] ?? d.schedule],
                  [
                    "Reboot",
                    `${REBOOT_LABELS[d.reboot_policy] ?? d.reboot_policy}${d.reboot_policy !== "never" ? `, ${d.reboot_delay_secs} s after warning users` : ""}`,
                  ],
                  ["On failure", d.rollback_on_failure ? "Roll the host back" : "Leave the host as it is"],
                  ["Approval", d.requires_approval ? (d.approved_at ? <span key="a">approved <DateTime value={d.approved_at} /></span> : "required") : "not required"],
                  ["Started", <DateTime key="s" value={d.started_at} />],
                  ["Finished", <DateTime key="f" value={d.finished_at} />],
                ]}
              />
            </CardContent>
          </Card>
          <Card variant="outlined">
            <CardContent>
              <Typography variant="h6" component="h2" sx={{ mb: 1.5 }}>
                Progress
              </Typography>
              <DeploymentProgress counts={d.hosts} total={d.total_hosts} label={d.name} />
              <Typography variant="subtitle2" component="h3" sx={{ mt: 2, mb: 1 }}>
                Rings
              </Typography>
              <Rings d={d} />
            </CardContent>
          </Card>
        </Box>
        <HostsTable d={d} />
      </Stack>
    </>
  );
}
