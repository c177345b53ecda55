import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link as RouterLink, useNavigate } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  LinearProgress,
  Link,
  Skeleton,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from "@mui/material";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import {
  DISCOVERY_FINAL_STATES,
  fleetApi,
  keys,
  type DiscoveredHostView,
  type DiscoveryView,
} from "../api/fleet";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError, describeError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, ScrollTable, StateChip } from "../components/tables";
import { useUrlParams } from "../urlState";

/** The agents' port when none is given (the manager's `push.port` default). */
export const DEFAULT_PORT = 12443;
/** How often a running discovery is re-read. */
export const POLL_MS = 1000;
/** How often the list is re-read while one of its discoveries runs. */
const LIST_POLL_MS = 5000;

// ---------------------------------------------------------------------------------------------
// Starting one

function StartForm({ onStarted }: { onStarted: (d: DiscoveryView) => void }) {
  const [cidr, setCidr] = useState("");
  const [port, setPort] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;
  const conflict = isApiError(error) && error.status === 409;
  const portNumber = port.trim() === "" ? undefined : Number(port);
  const portInvalid = portNumber !== undefined && !(Number.isInteger(portNumber) && portNumber >= 1 && portNumber <= 65535);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!cidr.trim() || portInvalid) return;
    setBusy(true);
    setError(null);
    try {
      const started = await fleetApi.startDiscovery(portNumber === undefined ? { cidr: cidr.trim() } : { cidr: cidr.trim(), port: portNumber });
      onStarted(started);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card variant="outlined" sx={{ mb: 3 }}>
      <CardContent>
        <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
          Find agents
        </Typography>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
          Probes every address of a range for a Linux_Patch_API agent (TCP, then TLS with the manager's certificate, then its health
          call), 128 addresses at a time. At most a /16.
        </Typography>
        <Box
          component="form"
          aria-label="Start a discovery"
          onSubmit={(e: FormEvent) => void submit(e)}
          noValidate
          sx={{ display: "flex", flexWrap: "wrap", gap: 2, alignItems: "flex-start", "& .MuiTextField-root": { m: 0 } }}
        >
          <TextField
            label="Address range (CIDR)"
            placeholder="10.0.4.0/24"
            required
            value={cidr}
            onChange={(e) => setCidr(e.target.value)}
            error={field === "cidr"}
            helperText={field === "cidr" && isApiError(error) ? describeError(error) : "A range such as 10.0.4.0/24, or one address"}
            inputProps={{ spellCheck: false, autoCapitalize: "off", autoCorrect: "off" }}
            sx={{ flex: "2 1 240px" }}
          />
          <TextField
            label="Port"
            type="number"
            placeholder={String(DEFAULT_PORT)}
            value={port}
            onChange={(e) => setPort(e.target.value)}
            error={portInvalid || field === "port"}
            helperText={
              portInvalid
                ? "1 to 65535"
                : field === "port" && isApiError(error)
                  ? describeError(error)
                  : `Empty for the default, ${DEFAULT_PORT}`
            }
            inputProps={{ min: 1, max: 65535, inputMode: "numeric" }}
            sx={{ flex: "1 1 120px", maxWidth: { sm: 180 } }}
          />
          <Button type="submit" variant="contained" disabled={busy || !cidr.trim() || portInvalid} sx={{ mt: 1 }}>
            {busy ? "Starting…" : "Start discovery"}
          </Button>
        </Box>
        {conflict && (
          <Alert severity="warning" role="alert" sx={{ mt: 2 }}>
            {describeError(error)} Two discoveries can run at a time; earlier ones are listed below.
          </Alert>
        )}
        {error !== null && !conflict && field !== "cidr" && field !== "port" && <FormError error={error} />}
      </CardContent>
    </Card>
  );
}

// ---------------------------------------------------------------------------------------------
// One discovery

function Progress({ discovery }: { discovery: DiscoveryView }) {
  const { probed, total, listening, found } = discovery.progress;
  const percent = total > 0 ? Math.min(100, Math.round((probed / total) * 100)) : 0;
  return (
    <Box sx={{ my: 2 }}>
      <LinearProgress
        variant="determinate"
        value={percent}
        aria-label={`Probed ${probed} of ${total} addresses`}
        sx={{ height: 8, borderRadius: 1 }}
      />
      <Typography variant="body2" sx={{ mt: 1 }} aria-live="polite">
        {probed.toLocaleString()} of {total.toLocaleString()} addresses probed ({percent} %) · {listening.toLocaleString()} listening ·{" "}
        {found.toLocaleString()} {found === 1 ? "agent" : "agents"} found
      </Typography>
    </Box>
  );
}

function RegisterButton({ found, onError }: { found: DiscoveredHostView; onError: (e: unknown) => void }) {
  const navigate = useNavigate();
  const client = useQueryClient();
  const [busy, setBusy] = useState(false);
  // The certificate's name is not always a DNS name the manager takes (a CN, a wildcard): then
  // offer to register the address alone.
  const [addressOnly, setAddressOnly] = useState(!found.fqdn_from_cert);
  const register = async () => {
    setBusy(true);
    onError(null);
    try {
      const created = await fleetApi.createHost(
        addressOnly || !found.fqdn_from_cert ? { address: found.address } : { address: found.address, fqdn: found.fqdn_from_cert },
      );
      void client.invalidateQueries({ queryKey: keys.hosts });
      void client.invalidateQueries({ queryKey: keys.discoveries });
      navigate(`/hosts/${created.id}`);
    } catch (e) {
      if (!addressOnly && isApiError(e) && e.status === 400 && e.field === "fqdn") {
        setAddressOnly(true);
        onError(new Error(`The manager does not take “${found.fqdn_from_cert ?? ""}” as a host name (${describeError(e)}) Register ${found.address} by its address only instead.`));
      } else {
        onError(e);
      }
      setBusy(false);
    }
  };
  const label = addressOnly && found.fqdn_from_cert ? "Register by address only" : "Register";
  return (
    <Button size="small" variant="outlined" disabled={busy} onClick={() => void register()} aria-label={`${label}: ${found.address}`}>
      {busy ? "Registering…" : label}
    </Button>
  );
}

function FoundHosts({ discovery }: { discovery: DiscoveryView }) {
  const [error, setError] = useState<unknown>(null);
  if (discovery.hosts.length === 0) {
    return (
      <EmptyState title="Nothing answered on this port">
        No address of {discovery.cidr} accepted a connection on port {discovery.port}. Check the range and port, that the agents
        run in push mode, and that a firewall lets the manager through; then start another discovery.
      </EmptyState>
    );
  }
  return (
    <>
      {error !== null && (
        <Box sx={{ mb: 1 }}>
          <FormError error={error} />
        </Box>
      )}
      <ScrollTable label="Hosts found">
        <Table size="small" aria-label="Hosts found">
          <TableHead>
            <TableRow>
              <TableCell>Address</TableCell>
              <TableCell>Name in its certificate</TableCell>
              <TableCell>Agent version</TableCell>
              <TableCell>Agent</TableCell>
              <TableCell>Why not</TableCell>
              <TableCell>Host</TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {discovery.hosts.map((h) => (
              <TableRow key={h.address}>
                <TableCell>{h.address}</TableCell>
                <TableCell>{h.fqdn_from_cert ?? "—"}</TableCell>
                <TableCell>{h.version ?? "—"}</TableCell>
                <TableCell>
                  {h.answered_as_lpa ? <StateChip value="online" label="answered" /> : <StateChip value="offline" label="no agent answer" />}
                </TableCell>
                <TableCell className="wrap" sx={{ minWidth: 200 }}>
                  {h.answered_as_lpa ? "—" : h.reason ?? "—"}
                </TableCell>
                <TableCell>
                  {h.host_id != null ? (
                    <Link component={RouterLink} to={`/hosts/${h.host_id}`}>
                      Registered: host {h.host_id}
                    </Link>
                  ) : (
                    <RegisterButton found={h} onError={setError} />
                  )}
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      </ScrollTable>
      <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
        Register adds a push host with the address (and the certificate's name). An agent that does not trust this manager yet needs
        its push bundle: an administrator issues it on the host's page.
      </Typography>
    </>
  );
}

function DiscoveryDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const client = useQueryClient();
  const discovery = useQuery({
    queryKey: keys.discovery(id),
    queryFn: ({ signal }) => fleetApi.discovery(id, signal),
    refetchInterval: (q) => (q.state.data && !DISCOVERY_FINAL_STATES.has(q.state.data.state) ? POLL_MS : false),
    staleTime: 0,
  });
  const [cancelError, setCancelError] = useState<unknown>(null);
  // From the press until the state changes (the manager stops the probes within a moment).
  const [cancelling, setCancelling] = useState(false);
  // Chosen from the list below: bring it into view (on a phone it is a screen or more above).
  const card = useRef<HTMLElement>(null);
  useEffect(() => {
    card.current?.scrollIntoView?.({ block: "nearest" });
  }, []);
  const d = discovery.data;
  const running = d !== undefined && !DISCOVERY_FINAL_STATES.has(d.state);

  // When it ends, the list of earlier discoveries shows its new state too.
  const wasRunning = useRef(false);
  useEffect(() => {
    if (running) wasRunning.current = true;
    else if (wasRunning.current && d) {
      wasRunning.current = false;
      void client.invalidateQueries({ queryKey: keys.discoveryList });
    }
  }, [running, d, client]);

  const cancel = async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      const answer = await fleetApi.cancelDiscovery(id);
      client.setQueryData(keys.discovery(id), answer);
      if (DISCOVERY_FINAL_STATES.has(answer.state)) setCancelling(false);
    } catch (e) {
      setCancelError(e);
      setCancelling(false);
      // A 409 means it has ended meanwhile: show how it ended.
      void discovery.refetch();
    }
  };

  return (
    <Card ref={card} variant="outlined" sx={{ mb: 3 }} component="section" aria-labelledby="discovery-title">
      <CardContent>
        {discovery.isPending && (
          <Box aria-busy="true" aria-label="Loading the discovery">
            <Skeleton height={36} width="50%" />
            <Skeleton height={120} />
          </Box>
        )}
        {discovery.isError &&
          (isApiError(discovery.error) && discovery.error.status === 404 ? (
            <EmptyState title="This discovery is gone" action={<Button onClick={onClose}>Close</Button>}>
              Discoveries are kept in the memory of the manager that ran them (the last 20) and are lost when it restarts. Start
              another one above.
            </EmptyState>
          ) : (
            <ErrorPanel error={discovery.error} title="Could not load the discovery" onRetry={() => void discovery.refetch()} />
          ))}
        {d && (
          <>
            <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center" }}>
              <Typography variant="h6" component="h2" id="discovery-title" sx={{ flexGrow: 1, overflowWrap: "anywhere" }}>
                {d.cidr} port {d.port}
              </Typography>
              <StateChip value={d.state} />
              {running ? (
                <Button color="error" variant="outlined" size="small" onClick={() => void cancel()} disabled={cancelling}>
                  {cancelling ? "Cancelling…" : "Cancel"}
                </Button>
              ) : (
                <Button size="small" onClick={onClose}>
                  Close
                </Button>
              )}
            </Box>
            <Typography variant="body2" color="text.secondary">
              Started by {d.started_by}, <DateTime value={d.started_at} />
              {d.finished_at && (
                <>
                  ; ended <DateTime value={d.finished_at} />
                </>
              )}
            </Typography>
            <FormError error={cancelError} />
            {running ? (
              <>
                <Progress discovery={d} />
                <Typography variant="body2" color="text.secondary">
                  The hosts found are listed when it ends. Cancelling keeps what it found so far.
                </Typography>
              </>
            ) : (
              <>
                <Typography variant="body2" sx={{ mt: 1, mb: 2 }}>
                  {d.progress.probed.toLocaleString()} of {d.progress.total.toLocaleString()} addresses probed ·{" "}
                  {d.progress.listening.toLocaleString()} listening · {d.progress.found.toLocaleString()}{" "}
                  {d.progress.found === 1 ? "agent" : "agents"} found
                </Typography>
                {d.state === "failed" && (
                  <Alert severity="error" sx={{ mb: 2 }}>
                    The discovery failed{d.error ? `: ${d.error}` : "."}
                  </Alert>
                )}
                {d.state === "cancelled" && (
                  <Alert severity="info" sx={{ mb: 2 }}>
                    Cancelled: only what it found before then is listed.
                  </Alert>
                )}
                <FoundHosts discovery={d} />
              </>
            )}
          </>
        )}
      </CardContent>
    </Card>
  );
}

// ---------------------------------------------------------------------------------------------
// The page

export function DiscoveryPage() {
  const client = useQueryClient();
  const { get, set } = useUrlParams();
  const selected = get("id");
  const list = useQuery({
    queryKey: keys.discoveryList,
    queryFn: ({ signal }) => fleetApi.discoveries(signal),
    // While one runs (perhaps started by someone else), its row follows it, less often than the chosen one.
    refetchInterval: (q) => (q.state.data?.items.some((d) => !DISCOVERY_FINAL_STATES.has(d.state)) ? LIST_POLL_MS : false),
  });
  const items = list.data?.items ?? [];

  return (
    <>
      <PageHeader title="Discovery" subtitle="Find Linux_Patch_API agents (push mode) in an address range, and add them as push hosts." />
      <StartForm
        onStarted={(d) => {
          client.setQueryData(keys.discovery(d.id), d);
          void client.invalidateQueries({ queryKey: keys.discoveryList });
          set({ id: d.id });
        }}
      />
      {selected && <DiscoveryDetail key={selected} id={selected} onClose={() => set({ id: "" })} />}
      <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
        Earlier discoveries
      </Typography>
      <ListCard>
        <ListBody
          query={list}
          what="discoveries"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title="No discoveries yet">
              Enter an address range above and start one. The manager remembers the last 20 until it restarts.
            </EmptyState>
          }
        >
          <ScrollTable label="Discoveries">
            <Table size="small" aria-label="Discoveries">
              <TableHead>
                <TableRow>
                  <TableCell>Range</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell>Agents found</TableCell>
                  <TableCell>Started</TableCell>
                  <TableCell>By</TableCell>
                  <TableCell align="right">Results</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((d) => (
                  <TableRow key={d.id} selected={d.id === selected} hover>
                    <TableCell>
                      {d.cidr} port {d.port}
                    </TableCell>
                    <TableCell>
                      <StateChip value={d.state} />
                    </TableCell>
                    <TableCell>
                      {d.progress.found} ({d.progress.listening} listening)
                    </TableCell>
                    <TableCell>
                      <DateTime value={d.started_at} />
                    </TableCell>
                    <TableCell>{d.started_by}</TableCell>
                    <TableCell align="right">
                      <Button
                        size="small"
                        onClick={() => set({ id: d.id })}
                        aria-label={`Show ${d.cidr} port ${d.port}, started ${d.started_at}`}
                        aria-pressed={d.id === selected}
                      >
                        {d.state === "running" ? "Show progress" : "Show results"}
                      </Button>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
      </ListCard>
    </>
  );
}
