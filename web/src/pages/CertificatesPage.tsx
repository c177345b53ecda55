import { useEffect, useState, type FormEvent } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  AlertTitle,
  Box,
  Button,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
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
  Tooltip,
  Typography,
} from "@mui/material";
import DownloadIcon from "@mui/icons-material/Download";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import {
  CA_CERTIFICATE_URL,
  CA_CRL_URL,
  CERTIFICATE_KINDS,
  certificateState,
  certificatesApi,
  settingsApi,
  settingsKeys,
  type CertificateQuery,
  type CertificateView,
} from "../api/settings";
import { ExpiryChip, KIND_LABELS } from "../components/CertificateChip";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { downloadText } from "../components/PushBundle";
import { ListBody, ListCard, Pager, ScrollTable } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { intParam, useUrlParams } from "../urlState";
import { Section } from "./SettingsPage";

const PAGE_SIZES = [25, 50, 100];

function Pem({ text, label }: { text: string; label: string }) {
  return (
    <Box
      component="pre"
      tabIndex={0}
      aria-label={label}
      sx={{
        m: 0,
        p: 1.5,
        maxHeight: 160,
        overflow: "auto",
        bgcolor: "action.hover",
        borderRadius: 1,
        fontFamily: MONO_FONTS,
        fontSize: "0.75rem",
        whiteSpace: "pre-wrap",
        overflowWrap: "anywhere",
      }}
    >
      {text}
    </Box>
  );
}

function CaSection() {
  const config = useQuery({ queryKey: settingsKeys.config, queryFn: ({ signal }) => settingsApi.config(signal) });
  return (
    <Section
      id="ca"
      title="Certificate authority"
      subtitle="The manager's own CA signs agents', push hosts' and the manager's certificates. Agents and browsers trust it; the revocation list (CRL) names what it no longer vouches for."
    >
      <Stack spacing={2}>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1 }}>
          <Button variant="outlined" startIcon={<DownloadIcon />} href={CA_CERTIFICATE_URL} download="patchdeck-ca.crt">
            Download CA certificate
          </Button>
          <Button variant="outlined" startIcon={<DownloadIcon />} href={CA_CRL_URL} download="patchdeck-ca.crl">
            Download CRL
          </Button>
        </Box>
        <Box>
          <Typography variant="subtitle2" component="h3">
            CA fingerprint (SHA-256)
          </Typography>
          <Typography variant="body2" color="text.secondary">
            What agents pin when they enroll (<code>--ca-fingerprint</code>); compare it with the downloaded certificate's.
          </Typography>
          {config.isPending ? (
            <Skeleton width="60%" height={32} aria-label="Loading the CA fingerprint" />
          ) : config.isError ? (
            <Box sx={{ mt: 1 }}>
              <ErrorPanel error={config.error} title="Could not load the CA fingerprint" onRetry={() => void config.refetch()} />
            </Box>
          ) : (
            <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center", mt: 0.5 }}>
              <Box component="code" aria-label="CA fingerprint" sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem", overflowWrap: "anywhere", minWidth: 0 }}>
                {config.data.signing.ca_fingerprint}
              </Box>
              <CopyButton text={config.data.signing.ca_fingerprint} label="Copy CA fingerprint" />
            </Box>
          )}
        </Box>
        <Typography variant="body2" color="text.secondary">
          A push host's server certificate and key come in its push bundle, issued from the{" "}
          <Link component={RouterLink} to="/hosts">
            host's page
          </Link>{" "}
          (each certificate below links to its host).
        </Typography>
      </Stack>
    </Section>
  );
}

function RenewDialog({ cert, onClose, onRenewed }: { cert: CertificateView | null; onClose: () => void; onRenewed: (c: CertificateView, old: CertificateView) => void }) {
  const [csr, setCsr] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (cert) {
      setCsr("");
      setError(null);
    }
  }, [cert]);
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!cert) return;
    setBusy(true);
    setError(null);
    try {
      onRenewed(await certificatesApi.renew(cert.serial, { csr: csr.trim() }), cert);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const cn = cert?.common_name ?? "";
  return (
    <Dialog open={cert !== null} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="renew-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="renew-title">Renew {cn}</DialogTitle>
        <DialogContent>
          <DialogContentText>
            The CA issues a new certificate with the same subject and host for the key in a certificate signing request (CSR). The
            manager never sees the private key: create the key and CSR where the certificate is used, for example
          </DialogContentText>
          <Box component="pre" sx={{ fontFamily: MONO_FONTS, fontSize: "0.75rem", whiteSpace: "pre-wrap", overflowWrap: "anywhere", p: 1, my: 1, bgcolor: "action.hover", borderRadius: 1 }}>
            {`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj "/CN=${cn}"`}
          </Box>
          <DialogContentText sx={{ mb: 2 }}>The old certificate stays valid until it expires or you revoke it.</DialogContentText>
          <TextField
            label="Certificate signing request (PEM)"
            required
            multiline
            minRows={6}
            autoFocus
            value={csr}
            onChange={(e) => setCsr(e.target.value)}
            error={field === "csr"}
            helperText={field === "csr" && isApiError(error) ? error.message : "-----BEGIN CERTIFICATE REQUEST----- … (ECDSA P-256 or Ed25519 key)"}
            inputProps={{ spellCheck: false, style: { fontFamily: MONO_FONTS, fontSize: "0.75rem" } }}
          />
          {field !== "csr" && <FormError error={error} />}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" disabled={busy || !csr.trim()}>
            {busy ? "Renewing…" : "Renew"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

function RevokeDialog({ cert, onClose, onRevoked }: { cert: CertificateView | null; onClose: () => void; onRevoked: () => void }) {
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (cert) {
      setReason("");
      setError(null);
    }
  }, [cert]);
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!cert) return;
    setBusy(true);
    setError(null);
    try {
      await certificatesApi.revoke(cert.serial, { reason: reason.trim() });
      onRevoked();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={cert !== null} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="revoke-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="revoke-title">Revoke this certificate?</DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ mb: 2 }}>
            {cert?.common_name} (serial {cert?.serial}) goes into the revocation list at once, and whatever uses it is refused. This
            cannot be undone: a revoked certificate cannot be renewed.
          </DialogContentText>
          <TextField
            label="Reason"
            required
            autoFocus
            value={reason}
            onChange={(e) => setReason(e.target.value)}
            error={field === "reason"}
            helperText={field === "reason" && isApiError(error) ? error.message : "e.g. host decommissioned, key exposed (up to 200 characters)"}
            inputProps={{ maxLength: 200 }}
          />
          {field !== "reason" && <FormError error={error} />}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" color="error" disabled={busy || !reason.trim()}>
            {busy ? "Revoking…" : "Revoke"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

/** The certificate a renewal issued: to copy or download now (it is also in the list). */
function Renewed({ cert, old, onDone }: { cert: CertificateView; old: CertificateView; onDone: () => void }) {
  return (
    <Alert severity="success" sx={{ mb: 2 }} role="status">
      <AlertTitle>
        New certificate {cert.serial} for {cert.common_name}
      </AlertTitle>
      <Typography variant="body2" sx={{ mb: 1 }}>
        Valid until <DateTime value={cert.not_after} />. Install it with the key its CSR came from. The old certificate ({old.serial})
        stays valid until it expires or is revoked.
      </Typography>
      <Pem text={cert.pem} label="New certificate" />
      <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap", mt: 1 }}>
        <CopyButton text={cert.pem} label="Copy certificate" />
        <Button size="small" variant="outlined" startIcon={<DownloadIcon />} onClick={() => downloadText(`${cert.common_name || cert.serial}.crt`, cert.pem)}>
          Download
        </Button>
        <Button size="small" onClick={onDone}>
          Done
        </Button>
      </Box>
    </Alert>
  );
}

export function CertificatesPage() {
  const client = useQueryClient();
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 25, PAGE_SIZES);
  const kind = (CERTIFICATE_KINDS as readonly string[]).includes(get("kind")) ? get("kind") : "";
  const status = get("status") === "valid" || get("status") === "revoked" ? get("status") : "";
  const hostId = intParam(get("host_id"), 0);
  const q: CertificateQuery = {
    limit,
    offset: page * limit,
    ...(kind ? { kind } : {}),
    ...(status ? { revoked: status === "revoked" } : {}),
    ...(hostId ? { host_id: hostId } : {}),
  };
  const certs = useQuery({
    queryKey: settingsKeys.certificateList(q),
    queryFn: ({ signal }) => certificatesApi.list(q, signal),
    placeholderData: keepPreviousData,
  });
  const [renewing, setRenewing] = useState<CertificateView | null>(null);
  const [renewed, setRenewed] = useState<{ cert: CertificateView; old: CertificateView } | null>(null);
  const [revoking, setRevoking] = useState<CertificateView | null>(null);
  const items = certs.data?.items ?? [];
  // The host filter's name, from the certificates listed for it (each names its host).
  const hostFilterName = hostId ? items.find((c) => c.host_id === hostId)?.hostname : undefined;
  const refresh = () => client.invalidateQueries({ queryKey: settingsKeys.certificates });
  const filtered = kind !== "" || status !== "" || hostId !== 0;
  const now = new Date();

  return (
    <>
      <PageHeader title="Certificates" subtitle="The manager's internal certificate authority and the certificates it issued." />
      <Stack spacing={3}>
        <CaSection />
        <Box component="section" aria-labelledby="issued-title">
          <Typography variant="h6" component="h2" id="issued-title" sx={{ fontWeight: 600, mb: 1.5 }}>
            Issued certificates
          </Typography>
          {renewed && <Renewed cert={renewed.cert} old={renewed.old} onDone={() => setRenewed(null)} />}
          <Box
            component="form"
            role="search"
            aria-label="Filter certificates"
            onSubmit={(e) => e.preventDefault()}
            sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2, alignItems: "center" }}
          >
            <TextField select label="Kind" size="small" value={kind} onChange={(e) => set({ kind: e.target.value })} sx={{ minWidth: 220 }}>
              <MenuItem value="">Any</MenuItem>
              {CERTIFICATE_KINDS.map((k) => (
                <MenuItem key={k} value={k}>
                  {KIND_LABELS[k]}
                </MenuItem>
              ))}
            </TextField>
            <TextField select label="Revocation" size="small" value={status} onChange={(e) => set({ status: e.target.value })} sx={{ minWidth: 180 }}>
              <MenuItem value="">Any</MenuItem>
              <MenuItem value="valid">Not revoked</MenuItem>
              <MenuItem value="revoked">Revoked</MenuItem>
            </TextField>
            {hostId !== 0 && <Chip label={`Host ${hostFilterName ?? `#${hostId}`}`} onDelete={() => set({ host_id: "" })} />}
          </Box>
          <ListCard>
            <ListBody
              query={certs}
              what="certificates"
              isEmpty={items.length === 0}
              empty={
                filtered ? (
                  <EmptyState
                    title="No certificates match these filters"
                    action={
                      <Button variant="outlined" onClick={() => set({ kind: "", status: "", host_id: "" })}>
                        Clear the filters
                      </Button>
                    }
                  />
                ) : (
                  <EmptyState title="No certificates issued yet">
                    Agents get theirs when they enroll; a push host's comes with its push bundle, issued from the host's page.
                  </EmptyState>
                )
              }
            >
              <ScrollTable label="Issued certificates">
                <Table size="small" aria-label="Issued certificates">
                  <TableHead>
                    <TableRow>
                      <TableCell>Subject</TableCell>
                      <TableCell>Kind</TableCell>
                      <TableCell>Host</TableCell>
                      <TableCell>Serial</TableCell>
                      <TableCell>Valid from</TableCell>
                      <TableCell>Valid until</TableCell>
                      <TableCell>Status</TableCell>
                      <TableCell align="right">Actions</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {items.map((c) => {
                      const state = certificateState(c, now);
                      return (
                        <TableRow key={c.serial}>
                          <TableCell>{c.common_name}</TableCell>
                          <TableCell>{KIND_LABELS[c.kind] ?? c.kind}</TableCell>
                          <TableCell>
                            {c.host_id != null ? (
                              <Link component={RouterLink} to={`/hosts/${c.host_id}`}>
                                {c.hostname ?? `Host #${c.host_id}`}
                              </Link>
                            ) : (
                              "—"
                            )}
                          </TableCell>
                          <TableCell sx={{ fontFamily: MONO_FONTS, fontSize: "0.75rem" }}>{c.serial}</TableCell>
                          <TableCell>
                            <DateTime value={c.not_before} />
                          </TableCell>
                          <TableCell>
                            <DateTime value={c.not_after} />
                          </TableCell>
                          <TableCell>
                            <ExpiryChip cert={c} now={now} />
                            {c.revoked_at && (
                              <Typography variant="caption" color="text.secondary" component="div">
                                <DateTime value={c.revoked_at} />
                                {c.revocation_reason ? `: ${c.revocation_reason}` : ""}
                              </Typography>
                            )}
                          </TableCell>
                          <TableCell align="right">
                            <Box sx={{ display: "inline-flex", gap: 0.5 }}>
                              <Button size="small" onClick={() => downloadText(`${c.common_name || c.serial}.crt`, c.pem)} aria-label={`Download ${c.common_name} (${c.serial})`}>
                                Download
                              </Button>
                              {state !== "revoked" && c.kind !== "server" && (
                                <Button size="small" onClick={() => setRenewing(c)} aria-label={`Renew ${c.common_name} (${c.serial})`}>
                                  Renew
                                </Button>
                              )}
                              {state !== "revoked" && c.kind === "server" && c.host_id != null && (
                                <Tooltip title="Server certificates are renewed by issuing a new push bundle on the host's page">
                                  <Button size="small" component={RouterLink} to={`/hosts/${c.host_id}`} aria-label={`New bundle for ${c.common_name} on its host's page`}>
                                    New bundle
                                  </Button>
                                </Tooltip>
                              )}
                              {state !== "revoked" && (
                                <Button size="small" color="error" onClick={() => setRevoking(c)} aria-label={`Revoke ${c.common_name} (${c.serial})`}>
                                  Revoke
                                </Button>
                              )}
                            </Box>
                          </TableCell>
                        </TableRow>
                      );
                    })}
                  </TableBody>
                </Table>
              </ScrollTable>
            </ListBody>
            {certs.data && certs.data.total > 0 && (
              <Pager
                total={certs.data.total}
                page={page}
                limit={limit}
                sizes={PAGE_SIZES}
                onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
                onLimit={(l) => set({ limit: l === 25 ? "" : l })}
              />
            )}
          </ListCard>
        </Box>
      </Stack>
      <RenewDialog
        cert={renewing}
        onClose={() => setRenewing(null)}
        onRenewed={(cert, old) => {
          setRenewing(null);
          setRenewed({ cert, old });
          void refresh();
        }}
      />
      <RevokeDialog
        cert={revoking}
        onClose={() => setRevoking(null)}
        onRevoked={() => {
          setRevoking(null);
          void refresh();
        }}
      />
    </>
  );
}
