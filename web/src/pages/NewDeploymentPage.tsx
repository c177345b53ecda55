import { useMemo, useState, type FormEvent, type ReactNode } from "react";
import { Link as RouterLink, useNavigate, useSearchParams } from "react-router-dom";
import {
  Alert,
  Autocomplete,
  Box,
  Button,
  Card,
  CardContent,
  Checkbox,
  Chip,
  FormControl,
  FormControlLabel,
  FormHelperText,
  FormLabel,
  IconButton,
  Link,
  MenuItem,
  Radio,
  RadioGroup,
  Stack,
  TextField,
  Typography,
} from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import DeleteIcon from "@mui/icons-material/Delete";
import { useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { deploymentsApi, fleetApi, keys, type CreateDeploymentRequest, type HostView, type RingRequest } from "../api/fleet";
import { useMe } from "../auth/session";
import { FormError, describeError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { useDebounced } from "../urlState";

// The server's limits (crates/patchdeck/src/web/handlers/deployments.rs).
export const MAX_RINGS = 10;
export const MAX_REBOOT_DELAY_SECS = 86_400;
export const MAX_SOAK_MINUTES = 7 * 24 * 60;
export const MAX_PACKAGES = 1000;

type RingKind = "group" | "percent" | "rest";

export interface RingDraft {
  name: string;
  kind: RingKind;
  groupId: string;
  percent: string;
  threshold: string;
  soak: string;
}

export interface Draft {
  name: string;
  hostIds: number[];
  groupIds: number[];
  useFilter: boolean;
  filterQ: string;
  filterOs: string;
  filterSecurity: "" | "true" | "false";
  selection: "security" | "all" | "packages";
  packages: string;
  schedule: "window" | "now";
  rebootPolicy: "never" | "if_needed" | "always";
  rebootDelay: string;
  rollbackOnFailure: boolean;
  rings: RingDraft[];
}

/** Field path (as the server names it) → message. */
export type FieldErrors = Record<string, string>;

function ids(value: string | null): number[] {
  if (!value) return [];
  const out = new Set<number>();
  for (const part of value.split(",")) {
    const n = Number(part.trim());
    if (Number.isInteger(n) && n > 0) out.add(n);
  }
  return [...out];
}

export function packageList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
}

function isPrintable(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u001f\u007f-\u009f]/.test(s);
}

function intIn(text: string, min: number, max: number): number | null {
  if (!/^\d+$/.test(text.trim())) return null;
  const n = Number(text.trim());
  return n >= min && n <= max ? n : null;
}

/** The checks the server makes that can be made here, with its field names. */
export function validate(d: Draft): FieldErrors {
  const e: FieldErrors = {};
  const name = d.name.trim();
  if (!name || [...name].length > 200 || !isPrintable(name)) e["name"] = "1–200 printable characters.";
  if (d.hostIds.length === 0 && d.groupIds.length === 0 && !d.useFilter) e["target"] = "Name hosts, groups or a filter.";
  if (d.useFilter) {
    if ([...d.filterQ.trim()].length > 100 || !isPrintable(d.filterQ)) e["target.filter.q"] = "At most 100 printable characters.";
    if ([...d.filterOs.trim()].length > 100 || !isPrintable(d.filterOs)) e["target.filter.os"] = "At most 100 printable characters.";
  }
  if (d.selection === "packages") {
    const pkgs = packageList(d.packages);
    if (pkgs.length === 0 || pkgs.length > MAX_PACKAGES) e["selection.packages"] = `Name 1 to ${MAX_PACKAGES} packages.`;
    const bad = pkgs.find((p) => p.length > 200 || !/^[\x21-\x7e]+$/.test(p) || p.includes("="));
    if (bad !== undefined) e["selection.packages"] = `“${bad}” is not a package name (no versions: the plan takes each host's available one).`;
  }
  if (d.rebootPolicy !== "never" && intIn(d.rebootDelay, 0, MAX_REBOOT_DELAY_SECS) === null) {
    e["reboot_delay_secs"] = `0 to ${MAX_REBOOT_DELAY_SECS} seconds.`;
  }
  if (d.rings.length > MAX_RINGS) e["rings"] = `At most ${MAX_RINGS} rings.`;
  let lastPercent = 0;
  d.rings.forEach((r, i) => {
    const f = (name: string) => `rings[${i}].${name}`;
    if ([...r.name.trim()].length > 100) e[f("name")] = "At most 100 characters.";
    if (r.kind === "rest" && i + 1 < d.rings.length) e[f("percent")] = "Every ring but the last needs a group or a percentage.";
    if (r.kind === "group" && !r.groupId) e[f("group_id")] = "Choose a group.";
    if (r.kind === "percent") {
      const p = intIn(r.percent, 1, 100);
      if (p === null || p <= lastPercent) {
        e[f("percent")] = lastPercent > 0 ? `${lastPercent + 1}–100: percentages are cumulative, larger than the ring before.` : "1–100 (cumulative).";
      } else lastPercent = p;
    }
    const t = r.threshold.trim() === "" ? 100 : Number(r.threshold);
    if (!Number.isFinite(t) || t < 0 || t > 100) e[f("success_threshold")] = "0–100 %.";
    if (r.soak.trim() !== "" && intIn(r.soak, 0, MAX_SOAK_MINUTES) === null) e[f("soak_minutes")] = `0 to ${MAX_SOAK_MINUTES} minutes (a week).`;
  });
  return e;
}

/** The request for a draft that passed `validate`. */
export function toRequest(d: Draft): CreateDeploymentRequest {
  const rings: RingRequest[] = d.rings.map((r) => {
    const ring: RingRequest = {};
    if (r.name.trim()) ring.name = r.name.trim();
    if (r.kind === "group") ring.group_id = Number(r.groupId);
    if (r.kind === "percent") ring.percent = Number(r.percent);
    if (r.threshold.trim() !== "") ring.success_threshold = Number(r.threshold);
    if (r.soak.trim() !== "") ring.soak_minutes = Number(r.soak);
    return ring;
  });
  const body: CreateDeploymentRequest = {
    name: d.name.trim(),
    target: { host_ids: d.hostIds, group_ids: d.groupIds },
    selection: d.selection === "packages" ? { type: "packages", packages: packageList(d.packages) } : { type: d.selection },
    schedule: d.schedule,
    reboot_policy: d.rebootPolicy,
    rollback_on_failure: d.rollbackOnFailure,
    rings,
  };
  if (d.rebootPolicy !== "never") body.reboot_delay_secs = Number(d.rebootDelay);
  if (d.useFilter) {
    body.target.filter = {
      q: d.filterQ.trim() || null,
      os: d.filterOs.trim() || null,
      security_updates: d.filterSecurity === "" ? null : d.filterSecurity === "true",
    };
  }
  return body;
}

/** The form field a server error names (`target.host_ids[3]` → `target.host_ids`). */
export function fieldKey(field: string): string {
  if (/^target\.host_ids(\[\d+\])?$/.test(field)) return "target.host_ids";
  if (/^target\.group_ids(\[\d+\])?$/.test(field)) return "target.group_ids";
  if (/^selection\.packages(\[\d+\])?$/.test(field)) return "selection.packages";
  return field;
}

const newRing = (kind: RingKind): RingDraft => ({ name: "", kind, groupId: "", percent: "", threshold: "", soak: "" });

function Section({ title, children, id }: { title: string; children: ReactNode; id: string }) {
  return (
    <Card variant="outlined" component="section" aria-labelledby={id}>
      <CardContent>
        <Typography variant="h6" component="h2" id={id} sx={{ mb: 2 }}>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

function HostPicker({ hostIds, onChange, error }: { hostIds: number[]; onChange: (ids: number[]) => void; error?: string }) {
  const [input, setInput] = useState("");
  const q = useDebounced(input.trim(), 300);
  const [known, setKnown] = useState<Map<number, string>>(new Map());
  const search = useQuery({
    queryKey: keys.hostList({ q: q || undefined, limit: 20, offset: 0 }),
    queryFn: ({ signal }) => fleetApi.hosts({ q: q || undefined, limit: 20, offset: 0 }, signal),
  });
  // Names of prefilled hosts (from the URL): the first 20 are looked up.
  const prefilled = useQueries({
    queries: hostIds.slice(0, 20).map((id) => ({
      queryKey: keys.hostSelf(id),
      queryFn: ({ signal }: { signal: AbortSignal }) => fleetApi.host(id, signal),
      enabled: !known.has(id),
      staleTime: 60_000,
    })),
  });
  const nameOf = (id: number) => known.get(id) ?? prefilled.find((p) => p.data?.id === id)?.data?.hostname ?? `host ${id}`;
  const options = (search.data?.items ?? []).filter((h) => !hostIds.includes(h.id));
  return (
    <Box>
      <Autocomplete<HostView, false, false, false>
        options={options}
        getOptionLabel={(h) => h.hostname}
        filterOptions={(o) => o}
        inputValue={input}
        onInputChange={(_, v) => setInput(v)}
        value={null}
        onChange={(_, h) => {
          if (!h) return;
          setKnown((m) => new Map(m).set(h.id, h.hostname));
          onChange([...hostIds, h.id]);
          setInput("");
        }}
        loading={search.isFetching}
        noOptionsText={q ? "No approved host matches" : "Type part of a hostname, FQDN or address"}
        renderOption={(props, h) => (
          <li {...props} key={h.id}>
            {h.hostname}
            <Typography component="span" variant="caption" color="text.secondary" sx={{ ml: 1 }}>
              {h.address ?? h.fqdn ?? ""}
            </Typography>
          </li>
        )}
        renderInput={(params) => (
          <TextField {...params} label="Add a host" size="small" error={Boolean(error)} helperText={error ?? "Search by hostname, FQDN or address"} />
        )}
      />
      {hostIds.length > 0 && (
        <Box aria-label="Chosen hosts" role="list" sx={{ display: "flex", flexWrap: "wrap", gap: 0.5, mt: 1 }}>
          {hostIds.slice(0, 50).map((id) => (
            <Chip key={id} role="listitem" size="small" label={nameOf(id)} onDelete={() => onChange(hostIds.filter((x) => x !== id))} />
          ))}
          {hostIds.length > 50 && <Chip size="small" variant="outlined" label={`and ${hostIds.length - 50} more`} />}
          {hostIds.length > 1 && (
            <Button size="small" onClick={() => onChange([])}>
              Remove all
            </Button>
          )}
        </Box>
      )}
    </Box>
  );
}

export function NewDeploymentPage() {
  const me = useMe();
  const canAct = me.data?.user.role === "admin" || me.data?.user.role === "operator";
  const navigate = useNavigate();
  const client = useQueryClient();
  const [params] = useSearchParams();
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000 });
  const [draft, setDraft] = useState<Draft>(() => {
    const hostIds = ids(params.get("hosts"));
    const selection = params.get("selection");
    return {
      name: params.get("name") ?? "",
      hostIds,
      groupIds: ids(params.get("groups")),
      useFilter: false,
      filterQ: "",
      filterOs: "",
      filterSecurity: "",
      selection: selection === "all" || selection === "packages" ? selection : "security",
      packages: "",
      schedule: "window",
      rebootPolicy: "if_needed",
      rebootDelay: "300",
      rollbackOnFailure: false,
      rings: [],
    };
  });
  const [touched, setTouched] = useState(false);
  const [serverError, setServerError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const clientErrors = useMemo(() => validate(draft), [draft]);
  const serverField = isApiError(serverError) && serverError.status === 400 && serverError.field ? fieldKey(serverError.field) : undefined;
  const errors: FieldErrors = { ...(touched ? clientErrors : {}) };
  if (serverField && isApiError(serverError)) errors[serverField] = describeError(serverError);
  const err = (k: string) => errors[k];
  const update = (change: Partial<Draft>) => {
    setDraft((d) => ({ ...d, ...change }));
    if (serverField) setServerError(null);
  };
  const updateRing = (i: number, change: Partial<RingDraft>) =>
    update({ rings: draft.rings.map((r, j) => (j === i ? { ...r, ...change } : r)) });
  const groupItems = groups.data?.items ?? [];
  const targetError = err("target") ?? err("target.host_ids") ?? err("target.group_ids");

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (Object.keys(clientErrors).length > 0) return;
    setBusy(true);
    setServerError(null);
    try {
      const created = await deploymentsApi.create(toRequest(draft));
      void client.invalidateQueries({ queryKey: keys.deploymentList });
      navigate(`/deployments/${created.id}`);
    } catch (error) {
      setServerError(error);
      setBusy(false);
    }
  };

  if (me.data && !canAct) {
    return (
      <Alert severity="info">
        Operators and administrators create deployments. <Link component={RouterLink} to="/deployments">See the deployments</Link>.
      </Alert>
    );
  }

  const shownFieldError = serverField !== undefined && serverField !== "";
  return (
    <>
      <Box sx={{ mb: 1 }}>
        <Link component={RouterLink} to="/deployments" variant="body2">
          ← Deployments
        </Link>
      </Box>
      <PageHeader
        title="New deployment"
        subtitle="Each host's plan is frozen from its latest scan and checked with a dry run before anything is installed."
      />
      <Box component="form" aria-label="New deployment" noValidate onSubmit={(e: FormEvent) => void submit(e)}>
        <Stack spacing={3}>
          <Section title="Name" id="nd-name">
            <TextField
              label="Name"
              required
              fullWidth
              value={draft.name}
              onChange={(e) => update({ name: e.target.value })}
              error={Boolean(err("name"))}
              helperText={err("name") ?? "Shown in the list and the audit log, e.g. “December security updates”."}
              inputProps={{ maxLength: 200 }}
            />
          </Section>

          <Section title="Hosts" id="nd-hosts">
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              The deployment patches every approved host named here, in the chosen groups, or matching the filter (together).
            </Typography>
            {targetError && (
              <Alert severity="error" role="alert" sx={{ mb: 2 }}>
                {targetError}
              </Alert>
            )}
            <Stack spacing={2}>
              <HostPicker hostIds={draft.hostIds} onChange={(hostIds) => update({ hostIds })} />
              <TextField
                select
                label="Groups"
                size="small"
                SelectProps={{ multiple: true }}
                value={draft.groupIds.map(String)}
                onChange={(e) => {
                  const v = e.target.value as unknown;
                  const list = Array.isArray(v) ? v.map(Number) : String(v).split(",").map(Number);
                  update({ groupIds: list.filter((n) => Number.isInteger(n) && n > 0) });
                }}
                helperText={groups.isError ? "The groups could not be loaded." : "Every host of these groups."}
              >
                {draft.groupIds
                  .filter((id) => !groupItems.some((g) => g.id === id))
                  .map((id) => (
                    <MenuItem key={id} value={String(id)}>
                      Group {id}
                    </MenuItem>
                  ))}
                {groupItems.map((g) => (
                  <MenuItem key={g.id} value={String(g.id)}>
                    {g.name}
                  </MenuItem>
                ))}
              </TextField>
              <FormControlLabel
                control={<Checkbox checked={draft.useFilter} onChange={(e) => update({ useFilter: e.target.checked })} />}
                label="Also every host matching a filter"
              />
              {draft.useFilter && (
                <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2 }}>
                  <TextField
                    label="Search"
                    size="small"
                    placeholder="Hostname, FQDN or address"
                    value={draft.filterQ}
                    onChange={(e) => update({ filterQ: e.target.value })}
                    error={Boolean(err("target.filter.q"))}
                    helperText={err("target.filter.q") ?? "Empty: any"}
                    sx={{ flex: "1 1 200px" }}
                  />
                  <TextField
                    label="OS"
                    size="small"
                    placeholder="debian, Ubuntu 24.04"
                    value={draft.filterOs}
                    onChange={(e) => update({ filterOs: e.target.value })}
                    error={Boolean(err("target.filter.os"))}
                    helperText={err("target.filter.os") ?? "Empty: any"}
                    sx={{ flex: "1 1 160px" }}
                  />
                  <TextField
                    select
                    label="Security updates"
                    size="small"
                    value={draft.filterSecurity}
                    onChange={(e) => update({ filterSecurity: e.target.value as Draft["filterSecurity"] })}
                    sx={{ flex: "1 1 180px" }}
                  >
                    <MenuItem value="">Any</MenuItem>
                    <MenuItem value="true">Has security updates</MenuItem>
                    <MenuItem value="false">No security updates</MenuItem>
                  </TextField>
                </Box>
              )}
            </Stack>
          </Section>

          <Section title="Updates" id="nd-updates">
            <FormControl>
              <FormLabel id="nd-selection">What to install</FormLabel>
              <RadioGroup
                aria-labelledby="nd-selection"
                value={draft.selection}
                onChange={(e) => update({ selection: e.target.value as Draft["selection"] })}
              >
                <FormControlLabel value="security" control={<Radio />} label="Security updates" />
                <FormControlLabel value="all" control={<Radio />} label="All available updates" />
                <FormControlLabel value="packages" control={<Radio />} label="Named packages" />
              </RadioGroup>
            </FormControl>
            {draft.selection === "packages" && (
              <TextField
                label="Packages"
                required
                fullWidth
                multiline
                minRows={2}
                value={draft.packages}
                onChange={(e) => update({ packages: e.target.value })}
                error={Boolean(err("selection.packages"))}
                helperText={err("selection.packages") ?? "Names separated by spaces, commas or lines, e.g. openssl nginx. Each host gets its available version."}
                inputProps={{ spellCheck: false, autoCapitalize: "off", autoCorrect: "off" }}
                sx={{ mt: 2 }}
              />
            )}
          </Section>

          <Section title="When and how" id="nd-when">
            <Stack spacing={2}>
              <FormControl>
                <FormLabel id="nd-schedule">Schedule</FormLabel>
                <RadioGroup aria-labelledby="nd-schedule" value={draft.schedule} onChange={(e) => update({ schedule: e.target.value as Draft["schedule"] })}>
                  <FormControlLabel value="window" control={<Radio />} label="In each host's next maintenance window" />
                  <FormControlLabel value="now" control={<Radio />} label="Now (as soon as approved, if approval is required)" />
                </RadioGroup>
                {err("schedule") && <FormHelperText error>{err("schedule")}</FormHelperText>}
              </FormControl>
              <Box sx={{ display: "flex", flexWrap: "wrap", gap: 2 }}>
                <TextField
                  select
                  label="Reboot"
                  size="small"
                  value={draft.rebootPolicy}
                  onChange={(e) => update({ rebootPolicy: e.target.value as Draft["rebootPolicy"] })}
                  error={Boolean(err("reboot_policy"))}
                  helperText={err("reboot_policy")}
                  sx={{ flex: "1 1 200px" }}
                >
                  <MenuItem value="if_needed">Reboot if the updates need it</MenuItem>
                  <MenuItem value="always">Always reboot</MenuItem>
                  <MenuItem value="never">Never reboot</MenuItem>
                </TextField>
                {draft.rebootPolicy !== "never" && (
                  <TextField
                    label="Reboot delay (seconds)"
                    size="small"
                    type="number"
                    value={draft.rebootDelay}
                    onChange={(e) => update({ rebootDelay: e.target.value })}
                    error={Boolean(err("reboot_delay_secs"))}
                    helperText={err("reboot_delay_secs") ?? "Between the warning to logged-in users and the reboot"}
                    inputProps={{ min: 0, max: MAX_REBOOT_DELAY_SECS, inputMode: "numeric" }}
                    sx={{ flex: "1 1 200px" }}
                  />
                )}
              </Box>
              <FormControlLabel
                control={<Checkbox checked={draft.rollbackOnFailure} onChange={(e) => update({ rollbackOnFailure: e.target.checked })} />}
                label="Roll a host back when it fails after installing (health checks included)"
              />
            </Stack>
          </Section>

          <Section title="Rings" id="nd-rings">
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              Roll out in stages: each ring starts when the one before reached its success threshold and soaked. A ring takes a
              group's hosts, or up to a cumulative percentage of the others; the last ring may take the rest. No rings: one ring
              with every host.
            </Typography>
            {err("rings") && (
              <Alert severity="error" role="alert" sx={{ mb: 2 }}>
                {err("rings")}
              </Alert>
            )}
            <Stack spacing={2} component="ol" sx={{ listStyle: "none", p: 0, m: 0 }}>
              {draft.rings.map((r, i) => {
                const f = (k: string) => err(`rings[${i}].${k}`);
                return (
                  <Box
                    component="li"
                    key={i}
                    aria-label={`Ring ${i + 1}`}
                    sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, alignItems: "flex-start", p: 1.5, border: 1, borderColor: "divider", borderRadius: 1 }}
                  >
                    <TextField
                      label={`Ring ${i + 1} name`}
                      size="small"
                      placeholder={`ring ${i + 1}`}
                      value={r.name}
                      onChange={(e) => updateRing(i, { name: e.target.value })}
                      error={Boolean(f("name"))}
                      helperText={f("name")}
                      sx={{ flex: "1 1 140px" }}
                    />
                    <TextField
                      select
                      label="Hosts"
                      size="small"
                      value={r.kind}
                      onChange={(e) => updateRing(i, { kind: e.target.value as RingKind })}
                      sx={{ flex: "1 1 150px" }}
                    >
                      <MenuItem value="group">A group</MenuItem>
                      <MenuItem value="percent">Up to a percentage</MenuItem>
                      <MenuItem value="rest">The rest</MenuItem>
                    </TextField>
                    {r.kind === "group" && (
                      <TextField
                        select
                        label="Group"
                        size="small"
                        value={r.groupId}
                        onChange={(e) => updateRing(i, { groupId: e.target.value })}
                        error={Boolean(f("group_id"))}
                        helperText={f("group_id")}
                        sx={{ flex: "1 1 150px" }}
                      >
                        {groupItems.map((g) => (
                          <MenuItem key={g.id} value={String(g.id)}>
                            {g.name}
                          </MenuItem>
                        ))}
                      </TextField>
                    )}
                    {(r.kind === "percent" || (r.kind === "rest" && f("percent"))) && (
                      <TextField
                        label="Up to % (cumulative)"
                        size="small"
                        type="number"
                        value={r.percent}
                        onChange={(e) => updateRing(i, { percent: e.target.value })}
                        error={Boolean(f("percent"))}
                        helperText={f("percent")}
                        inputProps={{ min: 1, max: 100, inputMode: "numeric" }}
                        disabled={r.kind === "rest"}
                        sx={{ flex: "1 1 140px" }}
                      />
                    )}
                    <TextField
                      label="Success threshold %"
                      size="small"
                      type="number"
                      placeholder="100"
                      value={r.threshold}
                      onChange={(e) => updateRing(i, { threshold: e.target.value })}
                      error={Boolean(f("success_threshold"))}
                      helperText={f("success_threshold")}
                      inputProps={{ min: 0, max: 100, step: "any" }}
                      sx={{ flex: "1 1 130px" }}
                    />
                    <TextField
                      label="Soak (minutes)"
                      size="small"
                      type="number"
                      placeholder="0"
                      value={r.soak}
                      onChange={(e) => updateRing(i, { soak: e.target.value })}
                      error={Boolean(f("soak_minutes"))}
                      helperText={f("soak_minutes")}
                      inputProps={{ min: 0, max: MAX_SOAK_MINUTES, inputMode: "numeric" }}
                      sx={{ flex: "1 1 120px" }}
                    />
                    <IconButton aria-label={`Remove ring ${i + 1}`} onClick={() => update({ rings: draft.rings.filter((_, j) => j !== i) })}>
                      <DeleteIcon />
                    </IconButton>
                  </Box>
                );
              })}
            </Stack>
            <Button
              startIcon={<AddIcon />}
              sx={{ mt: 2 }}
              disabled={draft.rings.length >= MAX_RINGS}
              onClick={() => update({ rings: [...draft.rings, newRing(draft.rings.length === 0 ? "percent" : "rest")] })}
            >
              Add ring
            </Button>
          </Section>

          {touched && Object.keys(clientErrors).length > 0 && (
            <Alert severity="error" role="alert">
              Some fields need attention (marked above).
            </Alert>
          )}
          {serverError !== null && !shownFieldError && <FormError error={serverError} />}
          {shownFieldError && (
            <Alert severity="error" role="alert">
              The manager refused the deployment: {describeError(serverError)} (field {isApiError(serverError) ? serverError.field : ""})
            </Alert>
          )}
          <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
            <Button type="submit" variant="contained" disabled={busy}>
              {busy ? "Creating…" : "Create deployment"}
            </Button>
            <Button component={RouterLink} to="/deployments" disabled={busy}>
              Cancel
            </Button>
          </Box>
        </Stack>
      </Box>
    </>
  );
}
