import { useMemo } from "react";
import { Link as RouterLink } from "react-router-dom";
import { Alert, Box, Chip, Link, List, ListItem, TextField, Typography } from "@mui/material";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { fleetApi, keys, type SecurityEventsQuery } from "../api/fleet";
import {
  EXPIRY_WARNING_DAYS,
  certificateHealth,
  securityApi,
  securityKeys,
  type CertificateView,
} from "../api/security";
import { AuditChainStatus } from "../components/AuditChainStatus";
import { AuditTable, localToRfc3339 } from "../components/AuditTable";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { MONO_FONTS } from "../theme";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { CardBody, SectionCard } from "../components/SectionCard";
import { ListBody, ListCard, Pager } from "../components/tables";
import { useUrlParams } from "../urlState";

const PAGE = 50;
/** The API pages security events only this deep; the audit export has everything. */
const MAX_OFFSET = 10_000;

function Fingerprint({ label, value }: { label: string; value: string }) {
  return (
    <Box sx={{ mb: 1.5 }}>
      <Typography variant="subtitle2" component="h3">
        {label}
      </Typography>
      <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1 }}>
        <Typography component="code" variant="body2" sx={{ fontFamily: MONO_FONTS, overflowWrap: "anywhere", minWidth: 0, flex: "1 1 240px" }}>
          {value}
        </Typography>
        <CopyButton text={value} size="small" label="Copy" aria-label={`Copy the ${label.toLowerCase()}`} />
      </Box>
    </Box>
  );
}

function SigningKeys() {
  const config = useQuery({ queryKey: securityKeys.config, queryFn: ({ signal }) => securityApi.config(signal), staleTime: 5 * 60_000 });
  return (
    <SectionCard id="health-signing" title="Keys agents trust" wide>
      <CardBody query={config} what="the key fingerprints" lines={2}>
        {(c) => (
          <>
            <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
              Agents pin the command-signing key and trust the CA. Compare these with what an agent was installed with; a
              difference means the agent talks to another manager or its configuration was changed.
            </Typography>
            <Fingerprint label="Command-signing key fingerprint" value={c.signing.command_key_fingerprint} />
            <Fingerprint label="CA certificate fingerprint" value={c.signing.ca_fingerprint} />
          </>
        )}
      </CardBody>
    </SectionCard>
  );
}

const KIND_LABELS: Record<string, string> = { server: "manager", client: "agent", push_client: "push client" };

function daysLeft(notAfter: string, now: number): number {
  return Math.ceil((new Date(notAfter).getTime() - now) / 86_400_000);
}

function ExpiryChip({ cert, now }: { cert: CertificateView; now: number }) {
  const days = daysLeft(cert.not_after, now);
  if (days <= 0) return <Chip size="small" variant="outlined" color="error" label="expired" />;
  return (
    <Chip
      size="small"
      variant="outlined"
      color={days <= EXPIRY_WARNING_DAYS ? "warning" : "default"}
      label={days === 1 ? "in 1 day" : `in ${days} days`}
    />
  );
}

function Certificates() {
  const certs = useQuery({
    queryKey: securityKeys.certificateHealth,
    queryFn: ({ signal }) => securityApi.validCertificates(signal),
  });
  return (
    <SectionCard id="health-certificates" title="Certificate expiry" link={{ to: "/certificates", label: "Certificates" }}>
      <CardBody query={certs} what="the certificates" lines={2}>
        {(p) => {
          const now = Date.now();
          const h = certificateHealth(p.items, now);
          return (
            <>
              <Box sx={{ display: "flex", flexWrap: "wrap", gap: 3, mb: 1.5 }}>
                <Box>
                  <Typography variant="h4" component="p" color={h.expired > 0 ? "error.main" : undefined} sx={{ fontWeight: 600 }}>
                    {h.expired.toLocaleString()}
                  </Typography>
                  <Typography variant="body2" color="text.secondary">
                    Expired
                  </Typography>
                </Box>
                <Box>
                  <Typography variant="h4" component="p" color={h.expiring > 0 ? "warning.main" : undefined} sx={{ fontWeight: 600 }}>
                    {h.expiring.toLocaleString()}
                  </Typography>
                  <Typography variant="body2" color="text.secondary">
                    Expire within {EXPIRY_WARNING_DAYS} days
                  </Typography>
                </Box>
              </Box>
              {h.current === 0 ? (
                <Typography variant="body2" color="text.secondary">
                  No valid certificate has been issued yet.
                </Typography>
              ) : (
                <>
                  {h.expired + h.expiring === 0 && (
                    <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
                      No certificate expires within {EXPIRY_WARNING_DAYS} days.
                    </Typography>
                  )}
                  <Typography variant="subtitle2" component="h3" id="health-soonest">
                    Expiring first
                  </Typography>
                  <List dense disablePadding aria-labelledby="health-soonest">
                    {h.soonest.map((c) => (
                      <ListItem key={c.serial} disableGutters divider sx={{ display: "block" }}>
                        <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1 }}>
                          <Typography variant="body2" sx={{ fontWeight: 600, overflowWrap: "anywhere", minWidth: 0 }}>
                            {c.common_name}
                          </Typography>
                          <ExpiryChip cert={c} now={now} />
                        </Box>
                        <Typography variant="caption" color="text.secondary" component="div">
                          {KIND_LABELS[c.kind] ?? c.kind} · {new Date(c.not_after).getTime() <= now ? "expired" : "expires"} <DateTime value={c.not_after} />
                          {c.host_id != null && (
                            <>
                              {" · "}
                              <Link component={RouterLink} to={`/hosts/${c.host_id}`}>
                                host {c.host_id}
                              </Link>
                            </>
                          )}
                        </Typography>
                      </ListItem>
                    ))}
                  </List>
                </>
              )}
              {p.total > p.items.length && (
                <Typography variant="caption" color="text.secondary" component="p" sx={{ mt: 1 }}>
                  Counted over the newest {p.items.length.toLocaleString()} of {p.total.toLocaleString()} valid certificates; the
                  certificates page has them all.
                </Typography>
              )}
            </>
          );
        }}
      </CardBody>
    </SectionCard>
  );
}

function AuditChain() {
  return (
    <SectionCard id="health-audit" title="Audit log integrity" link={{ to: "/audit-log", label: "Audit log" }}>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 1.5 }}>
        Each entry of the audit log is chained to the one before it by a hash, so an entry changed or removed outside the manager shows
        here.
      </Typography>
      <AuditChainStatus />
    </SectionCard>
  );
}

export function SecurityEventsPage() {
  const { get, set, page } = useUrlParams();
  const q: SecurityEventsQuery = useMemo(
    () => ({ from: localToRfc3339(get("from")), to: localToRfc3339(get("to")), limit: PAGE, offset: Math.min(page * PAGE, MAX_OFFSET) }),
    [get, page],
  );
  const events = useQuery({
    queryKey: [...keys.securityEvents, q],
    queryFn: ({ signal }) => fleetApi.securityEvents(q, signal),
    placeholderData: keepPreviousData,
  });
  const items = events.data?.items ?? [];
  const total = events.data?.total ?? 0;
  const pageable = Math.min(total, MAX_OFFSET + PAGE);
  return (
    <>
      <PageHeader
        title="Security health"
        subtitle="The keys agents trust, certificate expiry, the audit log's integrity, and security events: machine IDs that do not match their certificate (machine-binding violations), machines that tried to enroll twice, commands agents refused, and requests refused for a role."
      />
      <Box sx={{ display: "grid", gap: 2, mb: 3, gridTemplateColumns: { xs: "minmax(0, 1fr)", md: "repeat(2, minmax(0, 1fr))" } }}>
        <SigningKeys />
        <Certificates />
        <AuditChain />
      </Box>
      <Typography variant="h6" component="h2" sx={{ mb: 1.5 }}>
        Security events
      </Typography>
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2, "& .MuiTextField-root": { m: 0 } }} role="search" aria-label="Filter security events">
        <TextField label="From" type="datetime-local" size="small" value={get("from")} onChange={(e) => set({ from: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "0 1 240px" }} />
        <TextField label="Before" type="datetime-local" size="small" value={get("to")} onChange={(e) => set({ to: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "0 1 240px" }} />
      </Box>
      {total > pageable && (
        <Alert severity="info" sx={{ mb: 2 }}>
          Only the newest {pageable.toLocaleString()} of {total.toLocaleString()} events can be paged here: narrow the time range, or use the audit log's export.
        </Alert>
      )}
      <ListCard>
        <ListBody
          query={events}
          what="security events"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title={get("from") || get("to") ? "No security events in this time range" : "No security events"}>
              Nothing suspicious was recorded. Events appear here when an agent presents the wrong machine ID, refuses a command, or someone is denied a request.
            </EmptyState>
          }
        >
          <AuditTable items={items} label="Security events" />
        </ListBody>
        {total > PAGE && (
          <Pager total={pageable} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
    </>
  );
}
