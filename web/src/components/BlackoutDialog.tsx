// Create or replace a blackout (change freeze): global or one group's, from and until a time
// entered in the browser's time zone and sent as RFC 3339 (UTC).

import { DialogContentText, MenuItem, Stack, TextField } from "@mui/material";
import { isApiError } from "../api/client";
import type { GroupView } from "../api/fleet";
import { BLACKOUT_REASON_MAX, WINDOW_NAME_MAX, browserTimeZone, windowsApi, type BlackoutRequest, type BlackoutView } from "../api/maintenance";
import { FormError } from "./errors";
import { fieldMessage } from "./fieldError";
import { FormDialog, groupOptions, useDraftDialog } from "./formDialog";

/** An RFC 3339 time as a `datetime-local` value in the browser's zone. */
export function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A `datetime-local` value (the browser's zone) as RFC 3339 UTC; null when empty or invalid. */
export function fromLocalInput(value: string): string | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

interface Draft {
  name: string;
  groupId: string;
  startsAt: string;
  endsAt: string;
  reason: string;
}

function draftOf(b: BlackoutView | null, groupId?: number): Draft {
  if (!b) return { name: "", groupId: groupId ? String(groupId) : "", startsAt: "", endsAt: "", reason: "" };
  return { name: b.name, groupId: b.group_id != null ? String(b.group_id) : "", startsAt: toLocalInput(b.starts_at), endsAt: toLocalInput(b.ends_at), reason: b.reason };
}

function validate(d: Draft): Partial<Record<string, string>> {
  const e: Partial<Record<string, string>> = {};
  if (!d.name.trim()) e["name"] = "A name is required.";
  const s = fromLocalInput(d.startsAt);
  const t = fromLocalInput(d.endsAt);
  if (!s) e["starts_at"] = "Choose when the freeze starts.";
  if (!t) e["ends_at"] = "Choose when it ends.";
  else if (s && t <= s) e["ends_at"] = "Must be after the start.";
  if (d.reason.trim().length > BLACKOUT_REASON_MAX) e["reason"] = `At most ${BLACKOUT_REASON_MAX} characters.`;
  return e;
}

const FIELDS = ["name", "group_id", "starts_at", "ends_at", "reason"];

interface BlackoutDialogProps {
  open: boolean;
  blackout?: BlackoutView | null;
  groups: GroupView[];
  defaultGroupId?: number;
  onClose: () => void;
  onSaved: (b: BlackoutView) => void;
}

export function BlackoutDialog({ open, blackout, groups, defaultGroupId, onClose, onSaved }: BlackoutDialogProps) {
  const form = useDraftDialog(open, () => draftOf(blackout ?? null, defaultGroupId), [blackout]);
  const { draft, touched, setTouched, error: serverError, setError: setServerError, busy, run } = form;
  const clientErrors = validate(draft);
  const serverField = isApiError(serverError) && serverError.status === 400 ? serverError.field : undefined;
  const errors: Partial<Record<string, string>> = { ...(touched ? clientErrors : {}) };
  if (serverField) errors[serverField] = fieldMessage(serverError);
  const err = (k: string) => errors[k];
  const update = (change: Partial<Draft>) => {
    form.update(change);
    if (serverField) setServerError(null);
  };
  const zone = browserTimeZone();

  const submit = async () => {
    setTouched(true);
    if (Object.keys(clientErrors).length > 0) return;
    await run(async () => {
      const body: BlackoutRequest = {
        name: draft.name.trim(),
        group_id: draft.groupId ? Number(draft.groupId) : null,
        starts_at: fromLocalInput(draft.startsAt) ?? "",
        ends_at: fromLocalInput(draft.endsAt) ?? "",
        reason: draft.reason.trim(),
      };
      const saved = blackout ? await windowsApi.replaceBlackout(blackout.id, body) : await windowsApi.createBlackout(body);
      onSaved(saved);
    });
  };

  return (
    <FormDialog
      open={open}
      onClose={onClose}
      titleId="blackout-dialog-title"
      title={blackout ? "Edit blackout" : "New blackout"}
      onSubmit={submit}
      busy={busy}
      submitLabel={blackout ? "Save" : "Create blackout"}
    >
      <DialogContentText>
        No disruptive work starts during a blackout, even inside a maintenance window. Times are in your time zone ({zone}).
      </DialogContentText>
      <Stack spacing={2.5} sx={{ pt: 2 }}>
        <TextField
          label="Name"
          required
          autoFocus
          value={draft.name}
          onChange={(e) => update({ name: e.target.value })}
          error={Boolean(err("name"))}
          helperText={err("name") ?? "e.g. year-end freeze"}
          inputProps={{ maxLength: WINDOW_NAME_MAX }}
        />
        <TextField
          select
          label="Applies to"
          value={draft.groupId}
          onChange={(e) => update({ groupId: e.target.value })}
          error={Boolean(err("group_id"))}
          helperText={err("group_id")}
          SelectProps={{ displayEmpty: true }}
          InputLabelProps={{ shrink: true }}
        >
          <MenuItem value="">Every host (global)</MenuItem>
          {groupOptions(groups, draft.groupId)}
        </TextField>
        <TextField
          label="Starts"
          type="datetime-local"
          required
          value={draft.startsAt}
          onChange={(e) => update({ startsAt: e.target.value })}
          InputLabelProps={{ shrink: true }}
          error={Boolean(err("starts_at"))}
          helperText={err("starts_at") ?? zone}
        />
        <TextField
          label="Ends"
          type="datetime-local"
          required
          value={draft.endsAt}
          onChange={(e) => update({ endsAt: e.target.value })}
          InputLabelProps={{ shrink: true }}
          error={Boolean(err("ends_at"))}
          helperText={err("ends_at") ?? `${zone}; work may start again at this moment`}
        />
        <TextField
          label="Reason"
          multiline
          minRows={2}
          value={draft.reason}
          onChange={(e) => update({ reason: e.target.value })}
          error={Boolean(err("reason"))}
          helperText={err("reason") ?? "Optional: shown to everyone who sees the blackout"}
          inputProps={{ maxLength: BLACKOUT_REASON_MAX }}
        />
        {serverError !== null && !(serverField && FIELDS.includes(serverField)) && <FormError error={serverError} />}
      </Stack>
    </FormDialog>
  );
}
