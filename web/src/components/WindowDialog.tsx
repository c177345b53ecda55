// Create or replace a maintenance window: whom it is for (a group or one host), when it recurs,
// its local start time, duration and time zone. The server's checks are mirrored; its answer's
// `details.field` is shown on that field.

import { useMemo, useState } from "react";
import {
  Autocomplete,
  Box,
  Checkbox,
  FormControl,
  FormControlLabel,
  FormGroup,
  FormHelperText,
  FormLabel,
  MenuItem,
  Radio,
  RadioGroup,
  Stack,
  Switch,
  TextField,
  Typography,
} from "@mui/material";
import { useQuery } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys, type GroupView, type HostView } from "../api/fleet";
import {
  DURATION_MAX_MINUTES,
  WEEKDAYS,
  WINDOW_NAME_MAX,
  browserTimeZone,
  formatDuration,
  knownTimeZones,
  parseRecurrence,
  windowsApi,
  type Recurrence,
  type Weekday,
  type WindowRequest,
  type WindowView,
} from "../api/maintenance";
import { useDebounced } from "../urlState";
import { FormError } from "./errors";
import { fieldMessage } from "./fieldError";
import { FormDialog, groupOptions, useDraftDialog } from "./formDialog";

type Kind = Recurrence["kind"];

export interface WindowDraft {
  name: string;
  target: "group" | "host";
  groupId: string;
  hostId: number | null;
  kind: Kind;
  date: string;
  days: Weekday[];
  rule: "day_of_month" | "nth_weekday";
  day: string;
  nth: string;
  weekday: Weekday;
  startTime: string;
  duration: string;
  timeZone: string;
  enabled: boolean;
}

export function draftOf(w: WindowView | null, defaults: { groupId?: number; hostId?: number } = {}): WindowDraft {
  const d: WindowDraft = {
    name: "",
    target: defaults.hostId ? "host" : "group",
    groupId: defaults.groupId ? String(defaults.groupId) : "",
    hostId: defaults.hostId ?? null,
    kind: "weekly",
    date: "",
    days: ["saturday"],
    rule: "day_of_month",
    day: "1",
    nth: "2",
    weekday: "tuesday",
    startTime: "02:00",
    duration: "180",
    timeZone: browserTimeZone(),
    enabled: true,
  };
  if (!w) return d;
  const r = parseRecurrence(w.recurrence);
  Object.assign(d, {
    name: w.name,
    target: w.host_id != null ? "host" : "group",
    groupId: w.group_id != null ? String(w.group_id) : "",
    hostId: w.host_id ?? null,
    startTime: w.start_time,
    duration: String(w.duration_minutes),
    timeZone: w.time_zone,
    enabled: w.enabled,
  });
  if (r) {
    d.kind = r.kind;
    if (r.kind === "once") d.date = r.date;
    if (r.kind === "weekly") d.days = r.days;
    if (r.kind === "monthly") {
      d.rule = r.rule;
      if (r.rule === "day_of_month") d.day = String(r.day);
      else {
        d.nth = String(r.nth);
        d.weekday = r.weekday;
      }
    }
  }
  return d;
}

export function recurrenceOf(d: WindowDraft): Recurrence {
  switch (d.kind) {
    case "once":
      return { kind: "once", date: d.date };
    case "daily":
      return { kind: "daily" };
    case "weekly":
      return { kind: "weekly", days: WEEKDAYS.filter((w) => d.days.includes(w)) };
    case "monthly":
      return d.rule === "day_of_month"
        ? { kind: "monthly", rule: "day_of_month", day: Number(d.day) }
        : { kind: "monthly", rule: "nth_weekday", nth: Number(d.nth), weekday: d.weekday };
  }
}

export function requestOf(d: WindowDraft): WindowRequest {
  return {
    name: d.name.trim(),
    group_id: d.target === "group" ? Number(d.groupId) : null,
    host_id: d.target === "host" ? d.hostId : null,
    recurrence: recurrenceOf(d) as unknown as Record<string, unknown>,
    start_time: d.startTime,
    duration_minutes: Number(d.duration),
    time_zone: d.timeZone.trim(),
    enabled: d.enabled,
  };
}

type Errors = Partial<Record<string, string>>;

/** The checks the server makes that can be made here, by the server's field names. */
export function validateWindow(d: WindowDraft): Errors {
  const e: Errors = {};
  const name = d.name.trim();
  if (!name) e["name"] = "A name is required.";
  else if (name.length > WINDOW_NAME_MAX) e["name"] = `At most ${WINDOW_NAME_MAX} characters.`;
  if (d.target === "group" && !d.groupId) e["group_id"] = "Choose a group.";
  if (d.target === "host" && d.hostId === null) e["host_id"] = "Choose a host.";
  if (d.kind === "once" && !/^\d{4}-\d{2}-\d{2}$/.test(d.date)) e["recurrence.date"] = "Choose the date.";
  if (d.kind === "weekly" && d.days.length === 0) e["recurrence.days"] = "Choose at least one day.";
  if (d.kind === "monthly" && d.rule === "day_of_month") {
    const n = Number(d.day);
    if (!Number.isInteger(n) || n < 1 || n > 31) e["recurrence.day"] = "A day from 1 to 31.";
  }
  if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(d.startTime)) e["start_time"] = "A time as HH:MM, 00:00 to 23:59.";
  const minutes = Number(d.duration);
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > DURATION_MAX_MINUTES) e["duration_minutes"] = `1 to ${DURATION_MAX_MINUTES} minutes (7 days).`;
  if (!d.timeZone.trim()) e["time_zone"] = "A time zone, e.g. Europe/Berlin.";
  return e;
}

/** The form field a server error's `details.field` is shown on. */
function fieldFor(field: string): string {
  if (field === "duration") return "duration_minutes";
  if (field === "recurrence" || field.startsWith("recurrence.")) {
    return ["recurrence.days", "recurrence.day", "recurrence.nth", "recurrence.date"].includes(field) ? field : "recurrence";
  }
  return field;
}

const KIND_LABELS: Record<Kind, string> = { once: "Once", daily: "Every day", weekly: "Weekly", monthly: "Monthly" };
const NTH_LABELS: [string, string][] = [
  ["1", "First"],
  ["2", "Second"],
  ["3", "Third"],
  ["4", "Fourth"],
  ["-1", "Last"],
];
const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

interface HostOption {
  id: number;
  hostname: string;
  detail?: string;
}

/** Pick one host by searching the host list. */
function HostField({ value, onChange, error }: { value: number | null; onChange: (id: number | null) => void; error?: string }) {
  const [input, setInput] = useState("");
  const q = useDebounced(input.trim(), 300);
  const [picked, setPicked] = useState<HostOption | null>(null);
  const search = useQuery({
    queryKey: keys.hostList({ q: q || undefined, limit: 20, offset: 0 }),
    queryFn: ({ signal }) => fleetApi.hosts({ q: q || undefined, limit: 20, offset: 0 }, signal),
  });
  // The current host's name, when editing.
  const current = useQuery({
    queryKey: keys.hostSelf(value ?? 0),
    queryFn: ({ signal }) => fleetApi.host(value ?? 0, signal),
    enabled: value !== null && picked?.id !== value,
    staleTime: 60_000,
  });
  const selected: HostOption | null =
    value === null ? null : picked?.id === value ? picked : { id: value, hostname: current.data?.hostname ?? `host ${value}` };
  const options: HostOption[] = (search.data?.items ?? []).map((h: HostView) => ({ id: h.id, hostname: h.hostname, detail: h.address ?? h.fqdn ?? "" }));
  return (
    <Autocomplete<HostOption, false, false, false>
      options={options}
      value={selected}
      getOptionLabel={(h) => h.hostname}
      isOptionEqualToValue={(a, b) => a.id === b.id}
      filterOptions={(o) => o}
      inputValue={input}
      onInputChange={(_, v, reason) => {
        if (reason !== "reset") setInput(v);
      }}
      onChange={(_, h) => {
        setPicked(h);
        onChange(h ? h.id : null);
        setInput("");
      }}
      loading={search.isFetching}
      noOptionsText={q ? "No host matches" : "Type part of a hostname, FQDN or address"}
      renderOption={(props, h) => (
        <li {...props} key={h.id}>
          {h.hostname}
          {h.detail && (
            <Typography component="span" variant="caption" color="text.secondary" sx={{ ml: 1 }}>
              {h.detail}
            </Typography>
          )}
        </li>
      )}
      renderInput={(params) => (
        <TextField {...params} label="Host" required error={Boolean(error)} helperText={error ?? "Only this host (plus the windows of its groups)"} />
      )}
    />
  );
}

interface WindowDialogProps {
  open: boolean;
  window?: WindowView | null;
  groups: GroupView[];
  defaults?: { groupId?: number; hostId?: number };
  onClose: () => void;
  onSaved: (w: WindowView) => void;
}

export function WindowDialog({ open, window: editing, groups, defaults, onClose, onSaved }: WindowDialogProps) {
  const form = useDraftDialog(open, () => draftOf(editing ?? null, defaults), [editing]);
  const { draft, touched, setTouched, error: serverError, setError: setServerError, busy, run } = form;
  const zones = useMemo(() => knownTimeZones(), []);
  const clientErrors = useMemo(() => validateWindow(draft), [draft]);
  const serverField = isApiError(serverError) && serverError.status === 400 && serverError.field ? fieldFor(serverError.field) : undefined;
  // A group or host outside the caller's scope is a 404 without a field: it is about the target.
  const targetMissing = isApiError(serverError) && serverError.status === 404 ? (draft.target === "host" ? "host_id" : "group_id") : undefined;
  const errors: Errors = { ...(touched ? clientErrors : {}) };
  const shownField = serverField ?? targetMissing;
  if (shownField) errors[shownField] = fieldMessage(serverError);
  const err = (k: string) => errors[k];
  const update = (change: Partial<WindowDraft>) => {
    form.update(change);
    if (shownField) setServerError(null);
  };
  const knownField = shownField !== undefined && ["name", "group_id", "host_id", "recurrence", "recurrence.date", "recurrence.days", "recurrence.day", "recurrence.nth", "start_time", "duration_minutes", "time_zone"].includes(shownField);

  const submit = async () => {
    setTouched(true);
    if (Object.keys(clientErrors).length > 0) return;
    await run(async () => {
      const body = requestOf(draft);
      const saved = editing ? await windowsApi.replace(editing.id, body) : await windowsApi.create(body);
      onSaved(saved);
    });
  };
  const minutes = Number(draft.duration);
  const title = editing ? "Edit maintenance window" : "New maintenance window";

  return (
    <FormDialog
      open={open}
      onClose={onClose}
      titleId="window-dialog-title"
      title={title}
      onSubmit={submit}
      scroll="body"
      busy={busy}
      submitLabel={editing ? "Save" : "Create window"}
    >
      <Stack spacing={2.5} sx={{ pt: 1 }}>
        <TextField
          label="Name"
          required
          autoFocus
          value={draft.name}
          onChange={(e) => update({ name: e.target.value })}
          error={Boolean(err("name"))}
          helperText={err("name") ?? "e.g. weekend, patch Tuesday"}
          inputProps={{ maxLength: WINDOW_NAME_MAX }}
        />

        <FormControl>
          <FormLabel id="window-target-label">Applies to</FormLabel>
          <RadioGroup row aria-labelledby="window-target-label" value={draft.target} onChange={(e) => update({ target: e.target.value as "group" | "host" })}>
            <FormControlLabel value="group" control={<Radio />} label="A group (all its hosts)" />
            <FormControlLabel value="host" control={<Radio />} label="One host" />
          </RadioGroup>
        </FormControl>
        {draft.target === "group" ? (
          <TextField
            select
            label="Group"
            required
            value={draft.groupId}
            onChange={(e) => update({ groupId: e.target.value })}
            error={Boolean(err("group_id"))}
            helperText={err("group_id") ?? (groups.length === 0 ? "You are in no group: choose one host instead." : undefined)}
          >
            {groupOptions(groups, draft.groupId)}
          </TextField>
        ) : (
          <HostField value={draft.hostId} onChange={(hostId) => update({ hostId })} error={err("host_id")} />
        )}

        <TextField
          select
          label="Repeats"
          value={draft.kind}
          onChange={(e) => update({ kind: e.target.value as Kind })}
          error={Boolean(err("recurrence"))}
          helperText={err("recurrence")}
        >
          {(Object.keys(KIND_LABELS) as Kind[]).map((k) => (
            <MenuItem key={k} value={k}>
              {KIND_LABELS[k]}
            </MenuItem>
          ))}
        </TextField>

        {draft.kind === "once" && (
          <TextField
            label="Date"
            type="date"
            required
            value={draft.date}
            onChange={(e) => update({ date: e.target.value })}
            InputLabelProps={{ shrink: true }}
            error={Boolean(err("recurrence.date"))}
            helperText={err("recurrence.date") ?? "A date in the past is kept but never opens"}
          />
        )}
        {draft.kind === "weekly" && (
          <FormControl error={Boolean(err("recurrence.days"))} component="fieldset">
            <FormLabel component="legend">Days</FormLabel>
            <FormGroup row>
              {WEEKDAYS.map((w) => (
                <FormControlLabel
                  key={w}
                  label={cap(w).slice(0, 3)}
                  control={
                    <Checkbox
                      checked={draft.days.includes(w)}
                      inputProps={{ "aria-label": cap(w) }}
                      onChange={(e) => update({ days: e.target.checked ? [...draft.days, w] : draft.days.filter((x) => x !== w) })}
                    />
                  }
                />
              ))}
            </FormGroup>
            {err("recurrence.days") && <FormHelperText>{err("recurrence.days")}</FormHelperText>}
          </FormControl>
        )}
        {draft.kind === "monthly" && (
          <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
            <TextField
              select
              label="On"
              value={draft.rule}
              onChange={(e) => update({ rule: e.target.value as WindowDraft["rule"] })}
              sx={{ flex: "1 1 180px" }}
            >
              <MenuItem value="day_of_month">A day of the month</MenuItem>
              <MenuItem value="nth_weekday">A weekday of the month</MenuItem>
            </TextField>
            {draft.rule === "day_of_month" ? (
              <TextField
                label="Day of the month"
                type="number"
                required
                value={draft.day}
                onChange={(e) => update({ day: e.target.value })}
                inputProps={{ min: 1, max: 31 }}
                error={Boolean(err("recurrence.day"))}
                helperText={err("recurrence.day") ?? "29–31: the last day in shorter months"}
                sx={{ flex: "1 1 140px" }}
              />
            ) : (
              <>
                <TextField
                  select
                  label="Which"
                  value={draft.nth}
                  onChange={(e) => update({ nth: e.target.value })}
                  error={Boolean(err("recurrence.nth"))}
                  helperText={err("recurrence.nth")}
                  sx={{ flex: "1 1 110px" }}
                >
                  {NTH_LABELS.map(([v, l]) => (
                    <MenuItem key={v} value={v}>
                      {l}
                    </MenuItem>
                  ))}
                </TextField>
                <TextField select label="Weekday" value={draft.weekday} onChange={(e) => update({ weekday: e.target.value as Weekday })} sx={{ flex: "1 1 130px" }}>
                  {WEEKDAYS.map((w) => (
                    <MenuItem key={w} value={w}>
                      {cap(w)}
                    </MenuItem>
                  ))}
                </TextField>
              </>
            )}
          </Box>
        )}

        <Box sx={{ display: "flex", gap: 2, flexWrap: "wrap" }}>
          <TextField
            label="Starts at"
            type="time"
            required
            value={draft.startTime}
            onChange={(e) => update({ startTime: e.target.value })}
            InputLabelProps={{ shrink: true }}
            error={Boolean(err("start_time"))}
            helperText={err("start_time") ?? "Local time in the window's time zone"}
            sx={{ flex: "1 1 150px" }}
          />
          <TextField
            label="Duration (minutes)"
            type="number"
            required
            value={draft.duration}
            onChange={(e) => update({ duration: e.target.value })}
            inputProps={{ min: 1, max: DURATION_MAX_MINUTES }}
            error={Boolean(err("duration_minutes"))}
            helperText={err("duration_minutes") ?? (Number.isInteger(minutes) && minutes > 0 ? `${formatDuration(minutes)}; at most 7 days` : "1 to 10080")}
            sx={{ flex: "1 1 150px" }}
          />
        </Box>
        <Autocomplete<string, false, false, true>
          freeSolo
          options={zones}
          value={draft.timeZone}
          inputValue={draft.timeZone}
          onInputChange={(_, v) => update({ timeZone: v })}
          onChange={(_, v) => update({ timeZone: v ?? "" })}
          renderInput={(params) => (
            <TextField
              {...params}
              label="Time zone"
              required
              error={Boolean(err("time_zone"))}
              helperText={err("time_zone") ?? `An IANA name. Yours is ${browserTimeZone()}. The window follows this zone's clock, daylight saving included.`}
            />
          )}
        />
        <FormControlLabel control={<Switch checked={draft.enabled} onChange={(e) => update({ enabled: e.target.checked })} />} label="Enabled (a disabled window is kept but ignored)" />
        {touched && Object.keys(clientErrors).length > 0 && (
          <Typography role="alert" color="error" variant="body2">
            Some fields need attention (marked above).
          </Typography>
        )}
        {serverError !== null && !knownField && <FormError error={serverError} />}
      </Stack>
    </FormDialog>
  );
}
