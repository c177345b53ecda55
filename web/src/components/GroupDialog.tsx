import { useEffect, useState, type FormEvent } from "react";
import { Button, Dialog, DialogActions, DialogContent, DialogTitle, TextField } from "@mui/material";
import { isApiError } from "../api/client";
import { GROUP_DESCRIPTION_MAX, GROUP_NAME_MAX, groupsApi, type GroupView } from "../api/groups";
import { FormError } from "./errors";
import { fieldMessage } from "./fieldError";

interface GroupDialogProps {
  open: boolean;
  /** The group to edit; none to create one. */
  group?: GroupView | null;
  onClose: () => void;
  onSaved: (group: GroupView) => void;
}

/** Create a group, or rename it and change its description. Server errors show on their field. */
export function GroupDialog({ open, group, onClose, onSaved }: GroupDialogProps) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [touched, setTouched] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (open) {
      setName(group?.name ?? "");
      setDescription(group?.description ?? "");
      setTouched(false);
      setError(null);
    }
  }, [open, group]);

  const nameProblem = !name.trim() ? "A name is required." : name.trim().length > GROUP_NAME_MAX ? `At most ${GROUP_NAME_MAX} characters.` : undefined;
  // A taken name is a 409 without a field: it is about the name.
  const serverField = isApiError(error) ? (error.status === 409 ? "name" : error.status === 400 ? error.field : undefined) : undefined;
  const fieldError = (f: string) => (serverField === f ? fieldMessage(error) : undefined);
  const nameError = (touched ? nameProblem : undefined) ?? fieldError("name");
  const descriptionError = fieldError("description");

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (nameProblem) return;
    setBusy(true);
    setError(null);
    try {
      const body = { name: name.trim(), description: description.trim() };
      const saved = group ? await groupsApi.update(group.id, body) : await groupsApi.create(body);
      onSaved(saved);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const title = group ? "Edit group" : "New group";
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="group-dialog-title">
      <form noValidate onSubmit={(e) => void submit(e)}>
        <DialogTitle id="group-dialog-title">{title}</DialogTitle>
        <DialogContent>
          <TextField
            label="Name"
            required
            autoFocus
            fullWidth
            margin="normal"
            value={name}
            onChange={(e) => {
              setName(e.target.value);
              if (serverField === "name") setError(null);
            }}
            error={Boolean(nameError)}
            helperText={nameError ?? `Unique, up to ${GROUP_NAME_MAX} characters, e.g. web servers`}
            inputProps={{ maxLength: GROUP_NAME_MAX }}
          />
          <TextField
            label="Description"
            fullWidth
            multiline
            minRows={2}
            margin="normal"
            value={description}
            onChange={(e) => {
              setDescription(e.target.value);
              if (serverField === "description") setError(null);
            }}
            error={Boolean(descriptionError)}
            helperText={descriptionError ?? `Optional, up to ${GROUP_DESCRIPTION_MAX} characters`}
            inputProps={{ maxLength: GROUP_DESCRIPTION_MAX }}
          />
          {error !== null && serverField === undefined && <FormError error={error} />}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" disabled={busy}>
            {busy ? "Saving…" : group ? "Save" : "Create group"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}
