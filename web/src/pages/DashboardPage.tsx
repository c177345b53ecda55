import type { ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardActionArea,
  CardContent,
  Chip,
  LinearProgress,
  Link,
  List,
  ListItem,
  Stack,
  Typography,
} from "@mui/material";
import { useQuery } from "@tanstack/react-query";
import {
  DASHBOARD_DAYS,
  DASHBOARD_POLL_MS,
  SEVERITIES,
  UPCOMING_DAYS,
  dashboardApi,
  dashboardKeys,
  type DashboardView,
  type OccurrenceView,
  type Severity,
} from "../api/dashboard";
import { deploymentsApi, keys, type DeploymentListQuery } from "../api/fleet";
import { useMe } from "../auth/session";
import { DateTime } from "../components/DateTime";
import { DeploymentProgress } from "../components/DeploymentProgress";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { CardBody, SectionCard } from "../components/SectionCard";
import { StateChip } from "../components/tables";
import { TrendChart, formatPercent } from "../components/TrendChart";

/** The latest deployments the dashboard shows. */
const RECENT_DEPLOYMENTS: DeploymentListQuery = { limit: 5, offset: 0 };
/** The most maintenance window occurrences listed. */
const UPCOMING_SHOWN = 5;

// ---- Building blocks -------------------------------------------------------------------------

type Tone = "success" | "warning" | "error" | undefined;

/** A count that links to the host list filtered by it (or a plain count without a link). */
function StatTile({ label, value, to, tone, hint }: { label: string; value: number; to?: string; tone?: Tone; hint?: string }) {
  const body = (
    <Box sx={{ px: 1.5, py: 1.25 }}>
      <Typography variant="h4" component="p" color={value > 0 && tone ? `${tone}.main` : "text.primary"} sx={{ fontWeight: 600, lineHeight: 1.2 }}>
        {value.toLocaleString()}
      </Typography>
      <Typography variant="body2" color="text.secondary">
        {label}
      </Typography>
      {hint && (
        <Typography variant="caption" color="text.secondary" component="p">
          {hint}
        </Typography>
      )}
    </Box>
  );
  return (
    <Card variant="outlined" sx={{ minWidth: 0 }}>
      {to ? (
        <CardActionArea component={RouterLink} to={to} sx={{ height: "100%" }}>
          {body}
        </CardActionArea>
      ) : (
        body
      )}
    </Card>
  );
}

// ---- Fleet (GET /api/v1/dashboard) -----------------------------------------------------------

/** Where each host count links (the host list's URL filters, see HostsPage's `hostQueryFromUrl`). */
export const HOST_LINKS = {
  online: "/hosts?status=online",
  offline: "/hosts?status=offline",
  unreachable: "/hosts?status=unreachable",
  degraded: "/hosts?status=degraded",
  pending: "/hosts?status=pending",
  reboot: "/hosts?reboot=true",
  unscanned: "/hosts?scanned=false",
  security: "/hosts?security=true&sort=security_updates&order=desc",
} as const;

function HostCounts({ d }: { d: DashboardView }) {
  const h = d.hosts;
  return (
    <>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
        {h.total.toLocaleString()} {h.total === 1 ? "host" : "hosts"} in total.
      </Typography>
      <Box sx={{ display: "grid", gap: 1.5, gridTemplateColumns: { xs: "repeat(2, minmax(0, 1fr))", sm: "repeat(4, minmax(0, 1fr))", lg: "repeat(7, minmax(0, 1fr))" } }}>
        <StatTile label="Online" value={h.online} to={HOST_LINKS.online} tone="success" />
        <StatTile label="Offline" value={h.offline} to={HOST_LINKS.offline} tone="warning" />
        <StatTile label="Unreachable" value={h.unreachable} to={HOST_LINKS.unreachable} tone="error" />
        <StatTile label="Degraded" value={h.degraded} to={HOST_LINKS.degraded} tone="warning" />
        <StatTile label="Never seen" value={h.pending} to={HOST_LINKS.pending} />
        <StatTile label="Need a reboot" value={h.reboot_required} to={HOST_LINKS.reboot} tone="warning" />
        <StatTile label="Not scanned yet" value={h.unscanned} to={HOST_LINKS.unscanned} />
      </Box>
    </>
  );
}

function Compliance({ d }: { d: DashboardView }) {
  const c = d.compliance;
  const points = d.trend.map((t) => ({
    day: t.day,
    value: t.percent,
    detail: `${t.compliant.toLocaleString()} of ${t.scanned.toLocaleString()} scanned hosts`,
  }));
  return (
    <>
      <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "baseline", gap: 1.5, mb: 1 }}>
        <Typography variant="h3" component="p" data-testid="compliance-percent" sx={{ fontWeight: 600 }}>
          {c.percent === null ? "—" : formatPercent(c.percent)}
        </Typography>
        <Typography variant="body2" color="text.secondary">
          {c.percent === null
            ? "No host has been scanned yet: compliance is counted over scanned hosts."
            : `${c.compliant.toLocaleString()} of ${c.scanned.toLocaleString()} scanned hosts have no pending security update.`}
        </Typography>
      </Box>
      {c.scanned > c.compliant && (
        <Link component={RouterLink} to={HOST_LINKS.security} variant="body2" sx={{ display: "inline-block", mb: 2 }}>
          {(c.scanned - c.compliant).toLocaleString()} not compliant: see them
        </Link>
      )}
      <Typography variant="subtitle2" component="h3" id="compliance-trend-title" sx={{ mt: 1, mb: 1 }}>
        Last {d.trend.length || DASHBOARD_DAYS} days
      </Typography>
      <TrendChart title={`Compliance over the last ${d.trend.length || DASHBOARD_DAYS} days`} points={points} />
    </>
  );
}

const SEVERITY_LABELS: Record<Severity, string> = {
  critical: "Critical",
  high: "High",
  medium: "Medium",
  low: "Low",
  unspecified: "Unspecified",
};

const SEVERITY_COLORS: Record<Severity, "error" | "warning" | "info" | "success" | "inherit"> = {
  critical: "error",
  high: "warning",
  medium: "info",
  low: "success",
  unspecified: "inherit",
};

function SecurityUpdates({ d }: { d: DashboardView }) {
  const s = d.security_updates;
  const max = Math.max(1, ...SEVERITIES.map((k) => s.by_severity[k]));
  if (s.total === 0) {
    return (
      <EmptyState title="No pending security update">
        Every scanned host has its security updates installed.
      </EmptyState>
    );
  }
  return (
    <>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {s.total.toLocaleString()} pending {s.total === 1 ? "update" : "updates"} on {s.hosts.toLocaleString()}{" "}
        {s.hosts === 1 ? "host" : "hosts"}.
      </Typography>
      <Stack spacing={1.25} component="ul" aria-label="Pending security updates by severity" sx={{ listStyle: "none", m: 0, p: 0 }}>
        {SEVERITIES.map((k) => {
          const n = s.by_severity[k];
          return (
            <Box component="li" key={k} aria-label={`${n.toLocaleString()} ${SEVERITY_LABELS[k]}`}>
              <Box sx={{ display: "flex", justifyContent: "space-between", mb: 0.25 }}>
                <Typography variant="body2">{SEVERITY_LABELS[k]}</Typography>
                <Typography variant="body2" sx={{ fontWeight: 600 }} data-testid={`severity-${k}`}>
                  {n.toLocaleString()}
                </Typography>
              </Box>
              <LinearProgress
                variant="determinate"
                value={(n / max) * 100}
                color={SEVERITY_COLORS[k]}
                aria-hidden
                sx={{ height: 8, borderRadius: 1, ...(k === "unspecified" ? { color: "text.secondary" } : {}) }}
              />
            </Box>
          );
        })}
      </Stack>
    </>
  );
}

function EmptyFleet({ isAdmin, canAddHosts }: { isAdmin: boolean; canAddHosts: boolean }) {
  return (
    <Card variant="outlined" component="section" aria-labelledby="empty-fleet-title" sx={{ gridColumn: "1 / -1" }}>
      <CardContent>
        <Typography variant="h6" component="h2" id="empty-fleet-title" sx={{ textAlign: "center" }}>
          No hosts yet
        </Typography>
        <EmptyState
          title={isAdmin ? "Add your first host to see the fleet's health here." : "There is no host you can see."}
          action={
            isAdmin || canAddHosts ? (
              <Stack direction={{ xs: "column", sm: "row" }} spacing={1.5} justifyContent="center">
                {isAdmin && (
                  <Button variant="contained" component={RouterLink} to="/registration-tokens">
                    Create a registration token
                  </Button>
                )}
                {isAdmin && (
                  <Button variant="outlined" component={RouterLink} to="/hosts">
                    Add a push host
                  </Button>
                )}
                {isAdmin && (
                  <Button variant="text" component={RouterLink} to="/enrollments">
                    Approve waiting enrollments
                  </Button>
                )}
              </Stack>
            ) : undefined
          }
        >
          {isAdmin
            ? "Agents enroll with a registration token (its install command runs on the host); push hosts are added by address from the host list. Enrolled agents may wait for approval under Enrollments."
            : "Hosts appear here once an administrator adds them and gives your account access to their groups."}
        </EmptyState>
      </CardContent>
    </Card>
  );
}

// ---- Maintenance windows, deployments, workers --------------------------------------------

/** Whose window it is, by name (the occurrences carry their host's or group's name). */
function scopeOf(o: OccurrenceView): ReactNode {
  if (o.host_id != null) {
    return (
      <>
        Host{" "}
        <Link component={RouterLink} to={`/hosts/${o.host_id}`}>
          {o.host_name ?? `#${o.host_id}`}
        </Link>
      </>
    );
  }
  if (o.group_id != null) {
    return (
      <>
        Group{" "}
        <Link component={RouterLink} to={`/hosts?group=${o.group_id}`}>
          {o.group_name ?? `#${o.group_id}`}
        </Link>
      </>
    );
  }
  return "All hosts";
}

function UpcomingWindows({ items, canEdit }: { items: OccurrenceView[]; canEdit: boolean }) {
  const now = Date.now();
  const next = items.filter((o) => new Date(o.end).getTime() > now).slice(0, UPCOMING_SHOWN);
  if (next.length === 0) {
    return (
      <EmptyState title={`No maintenance window in the next ${UPCOMING_DAYS} days`}>
        {canEdit
          ? "Deployments scheduled for a window wait until one opens: define windows for your hosts or groups."
          : "Deployments scheduled for a window wait until one opens."}
      </EmptyState>
    );
  }
  return (
    <List dense disablePadding aria-label="Upcoming maintenance windows">
      {next.map((o) => {
        const open = new Date(o.start).getTime() <= now;
        return (
          <ListItem key={`${o.window_id}-${o.start}`} disableGutters divider sx={{ display: "block", py: 1 }}>
            <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1 }}>
              <Typography variant="body2" sx={{ fontWeight: 600 }}>
                {o.window_name}
              </Typography>
              {open && <Chip size="small" color="info" variant="outlined" label="open now" />}
              {o.blocked.length > 0 && <Chip size="small" color="warning" variant="outlined" label="partly in a blackout" />}
            </Box>
            <Typography variant="body2" color="text.secondary" component="div">
              <DateTime value={o.start} /> – <DateTime value={o.end} /> · {scopeOf(o)}
            </Typography>
          </ListItem>
        );
      })}
    </List>
  );
}

function RecentDeployments({ items, canCreate }: { items: Awaited<ReturnType<typeof deploymentsApi.list>>["items"]; canCreate: boolean }) {
  if (items.length === 0) {
    return (
      <EmptyState
        title="No deployments yet"
        action={
          canCreate ? (
            <Button variant="outlined" component={RouterLink} to="/deployments/new">
              New deployment
            </Button>
          ) : undefined
        }
      >
        A deployment installs updates on many hosts, in rings, in their maintenance windows.
      </EmptyState>
    );
  }
  return (
    <List dense disablePadding aria-label="Recent deployments">
      {items.map((d) => (
        <ListItem key={d.id} disableGutters divider sx={{ display: "block", py: 1 }}>
          <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1, mb: 0.5 }}>
            <Link component={RouterLink} to={`/deployments/${d.id}`} sx={{ fontWeight: 600, minWidth: 0, overflowWrap: "anywhere" }}>
              {d.name}
            </Link>
            <StateChip value={d.status} />
            <Typography variant="caption" color="text.secondary" sx={{ ml: "auto" }}>
              <DateTime value={d.created_at} />
            </Typography>
          </Box>
          <DeploymentProgress counts={d.hosts} total={d.total_hosts} label={d.name} />
        </ListItem>
      ))}
    </List>
  );
}

function Workers() {
  const workers = useQuery({
    queryKey: keys.workers,
    queryFn: ({ signal }) => deploymentsApi.workers(signal),
    refetchInterval: DASHBOARD_POLL_MS,
  });
  return (
    <SectionCard id="dash-workers" title="Workers" link={{ to: "/workers", label: "Workers and job queue" }}>
      <CardBody query={workers} what="the workers" lines={2}>
        {(w) => {
          // As on the workers page: a running worker (not stopped) whose heartbeat is old is stale.
          const running = w.workers.filter((x) => !x.stopped_at);
          const stale = running.filter((x) => x.stale).length;
          return (
            <>
              {w.healthy === 0 && (
                <Alert severity="error" sx={{ mb: 2 }}>
                  No healthy worker: deployments, pushes and scheduled jobs are not being run.
                </Alert>
              )}
              {w.healthy > 0 && stale > 0 && (
                <Alert severity="warning" sx={{ mb: 2 }}>
                  {stale} {stale === 1 ? "worker has" : "workers have"} not sent a heartbeat recently.
                </Alert>
              )}
              <Box sx={{ display: "grid", gap: 1.5, gridTemplateColumns: "repeat(3, minmax(0, 1fr))" }}>
                <StatTile label="Healthy" value={w.healthy} tone={undefined} />
                <StatTile label="Stale" value={stale} tone="warning" />
                <StatTile label="Jobs due" value={w.jobs.due} tone={w.jobs.due > 100 ? "warning" : undefined} />
              </Box>
            </>
          );
        }}
      </CardBody>
    </SectionCard>
  );
}

// ---- The page --------------------------------------------------------------------------------

export function DashboardPage() {
  const me = useMe();
  const role = me.data?.user.role;
  const isAdmin = role === "admin";
  const canAct = role === "admin" || role === "operator";

  const summary = useQuery({
    queryKey: dashboardKeys.summary(DASHBOARD_DAYS),
    queryFn: ({ signal }) => dashboardApi.summary(DASHBOARD_DAYS, signal),
    refetchInterval: DASHBOARD_POLL_MS,
  });
  const upcoming = useQuery({
    queryKey: dashboardKeys.upcoming(UPCOMING_DAYS),
    queryFn: ({ signal }) => {
      // From now: the range moves with every re-read, so it is not part of the key.
      const from = new Date();
      const to = new Date(from.getTime() + UPCOMING_DAYS * 86_400_000);
      return dashboardApi.occurrences(from, to, signal);
    },
    refetchInterval: DASHBOARD_POLL_MS,
  });
  const deployments = useQuery({
    queryKey: keys.deploymentListQuery(RECENT_DEPLOYMENTS),
    queryFn: ({ signal }) => deploymentsApi.list(RECENT_DEPLOYMENTS, signal),
    refetchInterval: DASHBOARD_POLL_MS,
  });

  const emptyFleet = summary.data?.hosts.total === 0;

  return (
    <>
      <PageHeader
        title="Dashboard"
        subtitle="The health of the hosts you can see, at a glance. Kept up to date live and re-read every minute."
      />
      <Box sx={{ display: "grid", gap: 2, gridTemplateColumns: { xs: "minmax(0, 1fr)", md: "repeat(2, minmax(0, 1fr))" } }}>
        {emptyFleet ? (
          <EmptyFleet isAdmin={isAdmin} canAddHosts={canAct} />
        ) : (
          <>
            <SectionCard id="dash-hosts" title="Hosts" link={{ to: "/hosts", label: "All hosts" }} wide>
              <CardBody query={summary} what="the host counts" lines={2}>
                {(d) => <HostCounts d={d} />}
              </CardBody>
            </SectionCard>
            <SectionCard id="dash-compliance" title="Compliance">
              <CardBody query={summary} what="compliance" lines={5}>
                {(d) => <Compliance d={d} />}
              </CardBody>
            </SectionCard>
            <SectionCard id="dash-security" title="Pending security updates" link={{ to: HOST_LINKS.security, label: "Hosts with security updates" }}>
              <CardBody query={summary} what="the security updates" lines={5}>
                {(d) => <SecurityUpdates d={d} />}
              </CardBody>
            </SectionCard>
          </>
        )}
        <SectionCard id="dash-windows" title="Upcoming maintenance windows" link={{ to: "/maintenance-windows", label: "Maintenance windows" }}>
          <CardBody query={upcoming} what="the maintenance windows">
            {(o) => <UpcomingWindows items={o.items} canEdit={canAct} />}
          </CardBody>
        </SectionCard>
        <SectionCard id="dash-deployments" title="Recent deployments" link={{ to: "/deployments", label: "All deployments" }}>
          <CardBody query={deployments} what="the deployments">
            {(p) => <RecentDeployments items={p.items} canCreate={canAct} />}
          </CardBody>
        </SectionCard>
        {isAdmin && <Workers />}
      </Box>
    </>
  );
}
