import { useState, type FormEvent } from "react";
import { Link as RouterLink, useParams } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  FormControlLabel,
  IconButton,
  Link,
  MenuItem,
  Skeleton,
  Stack,
  Switch,
  TextField,
  Typography,
} from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import DeleteIcon from "@mui/icons-material/Delete";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { deploymentsApi, fleetApi, keys, type GroupPolicyBody } from "../api/fleet";
import { useMe } from "../auth/session";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError, describeError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";

export interface ProbeDraft {
  type: "http" | "tcp";
  url: string;
  expectStatus: string;
  address: string;
  timeout: string;
}

function probeFromServer(p: Record<string, unknown>): ProbeDraft {
  const s = (k: string) => (p[k] == null ? "" : String(p[k]));
  return { type: p["type"] === "tcp" ? "tcp" : "http", url: s("url"), expectStatus: s("expect_status"), address: s("address"), timeout: s("timeout_secs") || "5" };
}

export function probeToServer(p: ProbeDraft): Record<string, unknown> {
  const timeout_secs = Number(p.timeout);
  if (p.type === "tcp") return { type: "tcp", address: p.address.trim(), timeout_secs };
  const out: Record<string, unknown> = { type: "http", url: p.url.trim(), timeout_secs };
  if (p.expectStatus.trim() !== "") out["expect_status"] = Number(p.expectStatus);
  return out;
}

/** Checks the agent would make too (its own are final: the server runs them on save). */
export function probeErrors(p: ProbeDraft): Partial<Record<"url" | "address" | "expectStatus" | "timeout", string>> {
  const e: Partial<Record<"url" | "address" | "expectStatus" | "timeout", string>> = {};
  if (p.type === "http") {
    if (!/^https?:\/\/\S+$/i.test(p.url.trim())) e.url = "An http:// or https:// URL.";
    if (p.expectStatus.trim() !== "") {
      const n = Number(p.expectStatus);
      if (!Number.isInteger(n) || n < 100 || n > 599) e.expectStatus = "An HTTP status, 100–599.";
    }
  } else {
    const m = /^(.+):(\d+)$/.exec(p.address.trim());
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) e.address = "host:port, e.g. 127.0.0.1:5432.";
  }
  const t = Number(p.timeout);
  if (!Number.isInteger(t) || t < 1 || t > 300) e.timeout = "1–300 seconds.";
  return e;
}

export function unitList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((u) => u.trim())
    .filter(Boolean);
}

function PolicyForm({ groupId, policy, canEdit }: { groupId: number; policy: GroupPolicyBody; canEdit: boolean }) {
  const client = useQueryClient();
  const [requireApproval, setRequireApproval] = useState(policy.require_approval);
  const [units, setUnits] = useState((policy.health_units ?? []).join("\n"));
  const [probes, setProbes] = useState<ProbeDraft[]>((policy.health_probes ?? []).map(probeFromServer));
  const [touched, setTouched] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  const errs = probes.map(probeErrors);
  const invalid = errs.some((e) => Object.keys(e).length > 0);
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    setSaved(false);
    if (invalid) return;
    setBusy(true);
    setError(null);
    try {
      const answer = await deploymentsApi.setGroupPolicy(groupId, {
        require_approval: requireApproval,
        health_units: unitList(units),
        health_probes: probes.map(probeToServer),
      });
      client.setQueryData(keys.groupPolicy(groupId), answer);
      setSaved(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const update = (i: number, change: Partial<ProbeDraft>) => {
    setSaved(false);
    setProbes((ps) => ps.map((p, j) => (j === i ? { ...p, ...change } : p)));
  };
  const show = (i: number, k: keyof ReturnType<typeof probeErrors>) => (touched ? errs[i]?.[k] : undefined);

  return (
    <Box component="form" aria-label="Group policy" noValidate onSubmit={(e: FormEvent) => void submit(e)}>
      <Stack spacing={3}>
        <Card variant="outlined">
          <CardContent>
            <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
              Approval
            </Typography>
            <FormControlLabel
              control={<Switch checked={requireApproval} disabled={!canEdit} onChange={(e) => setRequireApproval(e.target.checked)} />}
              label="Deployments that touch this group's hosts wait for an approver"
            />
            <Typography variant="body2" color="text.secondary">
              The approver is an administrator, or an operator other than the deployment's creator.
            </Typography>
          </CardContent>
        </Card>
        <Card variant="outlined">
          <CardContent>
            <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
              Health checks after patching
            </Typography>
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              After installing (and rebooting), the agent checks these; a host that fails them counts as failed (and is rolled back
              when the deployment says so).
            </Typography>
            <TextField
              label="systemd units that must be active"
              fullWidth
              multiline
              minRows={2}
              value={units}
              disabled={!canEdit}
              onChange={(e) => {
                setSaved(false);
                setUnits(e.target.value);
              }}
              error={field === "health_units" || field?.startsWith("health_units[")}
              helperText={
                field === "health_units" || field?.startsWith("health_units[") ? describeError(error) : "One per line, e.g. nginx.service"
              }
              inputProps={{ spellCheck: false, autoCapitalize: "off", autoCorrect: "off" }}
            />
            <Typography variant="subtitle2" component="h3" sx={{ mt: 3, mb: 1 }}>
              Probes
            </Typography>
            {field?.startsWith("health_probes") && (
              <Alert severity="error" role="alert" sx={{ mb: 2 }}>
                {describeError(error)}
              </Alert>
            )}
            {probes.length === 0 && (
              <Typography variant="body2" color="text.secondary">
                No probe. {canEdit ? "Add an HTTP or TCP probe below to check a service answers." : ""}
              </Typography>
            )}
            <Stack spacing={1.5} component="ol" sx={{ listStyle: "none", p: 0, m: 0 }}>
              {probes.map((p, i) => (
                <Box
                  component="li"
                  key={i}
                  aria-label={`Probe ${i + 1}`}
                  sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, alignItems: "flex-start", p: 1.5, border: 1, borderColor: "divider", borderRadius: 1 }}
                >
                  <TextField
                    select
                    label="Type"
                    size="small"
                    value={p.type}
                    disabled={!canEdit}
                    onChange={(e) => update(i, { type: e.target.value as ProbeDraft["type"] })}
                    sx={{ flex: "0 1 110px" }}
                  >
                    <MenuItem value="http">HTTP</MenuItem>
                    <MenuItem value="tcp">TCP</MenuItem>
                  </TextField>
                  {p.type === "http" ? (
                    <>
                      <TextField
                        label={`Probe ${i + 1} URL`}
                        size="small"
                        value={p.url}
                        disabled={!canEdit}
                        onChange={(e) => update(i, { url: e.target.value })}
                        error={Boolean(show(i, "url"))}
                        helperText={show(i, "url")}
                        placeholder="http://127.0.0.1/health"
                        inputProps={{ spellCheck: false }}
                        sx={{ flex: "3 1 240px" }}
                      />
                      <TextField
                        label="Expected status"
                        size="small"
                        type="number"
                        placeholder="any 2xx"
                        value={p.expectStatus}
                        disabled={!canEdit}
                        onChange={(e) => update(i, { expectStatus: e.target.value })}
                        error={Boolean(show(i, "expectStatus"))}
                        helperText={show(i, "expectStatus")}
                        sx={{ flex: "1 1 120px" }}
                      />
                    </>
                  ) : (
                    <TextField
                      label={`Probe ${i + 1} address`}
                      size="small"
                      value={p.address}
                      disabled={!canEdit}
                      onChange={(e) => update(i, { address: e.target.value })}
                      error={Boolean(show(i, "address"))}
                      helperText={show(i, "address")}
                      placeholder="127.0.0.1:5432"
                      inputProps={{ spellCheck: false }}
                      sx={{ flex: "3 1 240px" }}
                    />
                  )}
                  <TextField
                    label="Timeout (s)"
                    size="small"
                    type="number"
                    value={p.timeout}
                    disabled={!canEdit}
                    onChange={(e) => update(i, { timeout: e.target.value })}
                    error={Boolean(show(i, "timeout"))}
                    helperText={show(i, "timeout")}
                    sx={{ flex: "1 1 100px" }}
                  />
                  {canEdit && (
                    <IconButton aria-label={`Remove probe ${i + 1}`} onClick={() => setProbes((ps) => ps.filter((_, j) => j !== i))}>
                      <DeleteIcon />
                    </IconButton>
                  )}
                </Box>
              ))}
            </Stack>
            {canEdit && (
              <Button
                startIcon={<AddIcon />}
                sx={{ mt: 2 }}
                onClick={() => setProbes((ps) => [...ps, { type: "http", url: "", expectStatus: "", address: "", timeout: "5" }])}
              >
                Add probe
              </Button>
            )}
          </CardContent>
        </Card>
        {error !== null && !field && <FormError error={error} />}
        {saved && (
          <Alert severity="success" role="status">
            Saved. Deployments created from now on use this policy.
          </Alert>
        )}
        {canEdit ? (
          <Box>
            <Button type="submit" variant="contained" disabled={busy}>
              {busy ? "Saving…" : "Save policy"}
            </Button>
          </Box>
        ) : (
          <Typography variant="body2" color="text.secondary">
            Only administrators change a group's policy.
          </Typography>
        )}
      </Stack>
    </Box>
  );
}

export function GroupPolicyPage() {
  const params = useParams();
  const id = Number(params["id"]);
  const valid = Number.isInteger(id) && id > 0;
  const me = useMe();
  const isAdmin = me.data?.user.role === "admin";
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000 });
  const policy = useQuery({ queryKey: keys.groupPolicy(id), queryFn: ({ signal }) => deploymentsApi.groupPolicy(id, signal), enabled: valid });
  const group = groups.data?.items.find((g) => g.id === id);

  if (!valid || (isApiError(policy.error) && policy.error.status === 404)) {
    return <EmptyState title="No such group">It may have been deleted.</EmptyState>;
  }
  return (
    <>
      <PageHeader
        title={`Deployment policy: ${group?.name ?? `group ${id}`}`}
        subtitle="Whether deployments that touch this group's hosts need an approver, and the health checks its hosts run after patching."
      />
      {group?.description && (
        <Typography variant="body2" sx={{ mb: 2 }}>
          {group.description}
        </Typography>
      )}
      <Box sx={{ mb: 2 }}>
        <Link component={RouterLink} to={`/hosts?group=${id}`}>
          Hosts of this group
        </Link>
      </Box>
      {policy.isPending && (
        <Box aria-busy="true" aria-label="Loading the policy" role="status">
          <Skeleton height={100} />
          <Skeleton height={200} />
        </Box>
      )}
      {policy.isError && <ErrorPanel error={policy.error} title="Could not load the policy" onRetry={() => void policy.refetch()} />}
      {policy.data && <PolicyForm groupId={id} policy={policy.data} canEdit={isAdmin} />}
    </>
  );
}
