import { TextField } from "@mui/material";
import { isApiError } from "../api/client";
import { GROUP_DESCRIPTION_MAX, GROUP_NAME_MAX, groupsApi, type GroupView } from "../api/groups";
import { FormError } from "./errors";
import { fieldMessage } from "./fieldError";
import { FormDialog, useDraftDialog } from "./formDialog";
import { ConfirmDialog } from "./PasswordConfirmDialog";

interface GroupDialogProps {
  open: boolean;
  /** The group to edit; none to create one. */
  group?: GroupView | null;
  onClose: () => void;
  onSaved: (group: GroupView) => void;
}

/** Create a group, or rename it and change its description. Server errors show on their field. */
export function GroupDialog({ open, group, onClose, onSaved }: GroupDialogProps) {
  const form = useDraftDialog(open, () => ({ name: group?.name ?? "", description: group?.description ?? "" }), [group]);
  const { draft, update, touched, setTouched, error, setError, busy, run } = form;
  const { name, description } = draft;

  const nameProblem = !name.trim() ? "A name is required." : name.trim().length > GROUP_NAME_MAX ? `At most ${GROUP_NAME_MAX} characters.` : undefined;
  // A taken name is a 409 without a field: it is about the name.
  const serverField = isApiError(error) ? (error.status === 409 ? "name" : error.status === 400 ? error.field : undefined) : undefined;
  const fieldError = (f: string) => (serverField === f ? fieldMessage(error) : undefined);
  const nameError = (touched ? nameProblem : undefined) ?? fieldError("name");
  const descriptionError = fieldError("description");

  const submit = async () => {
    setTouched(true);
    if (nameProblem) return;
    await run(async () => {
      const body = { name: name.trim(), description: description.trim() };
      const saved = group ? await groupsApi.update(group.id, body) : await groupsApi.create(body);
      onSaved(saved);
    });
  };

  const title = group ? "Edit group" : "New group";
  return (
    <FormDialog open={open} onClose={onClose} titleId="group-dialog-title" title={title} onSubmit={submit} busy={busy} submitLabel={group ? "Save" : "Create group"}>
      <TextField
        label="Name"
        required
        autoFocus
        fullWidth
        margin="normal"
        value={name}
        onChange={(e) => {
          update({ name: e.target.value });
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
          update({ description: e.target.value });
          if (serverField === "description") setError(null);
        }}
        error={Boolean(descriptionError)}
        helperText={descriptionError ?? `Optional, up to ${GROUP_DESCRIPTION_MAX} characters`}
        inputProps={{ maxLength: GROUP_DESCRIPTION_MAX }}
      />
      {error !== null && serverField === undefined && <FormError error={error} />}
    </FormDialog>
  );
}

interface DeleteGroupDialogProps {
  open: boolean;
  group: GroupView | null;
  onClose: () => void;
  /** After the group is deleted. */
  onDeleted: () => void | Promise<void>;
}

/** Asks before deleting a group, saying what goes with it; errors stay in the dialog. */
export function DeleteGroupDialog({ open, group, onClose, onDeleted }: DeleteGroupDialogProps) {
  return (
    <ConfirmDialog
      open={open}
      title="Delete this group?"
      description={`“${group?.name ?? ""}” and its memberships go; its hosts and users stay. A host that was only in this group becomes ungrouped, and so visible to every operator and viewer. Its maintenance windows, blackouts and deployment policy are deleted with it`}
      confirmLabel="Delete group"
      onClose={onClose}
      onConfirm={async () => {
        if (!group) return;
        await groupsApi.remove(group.id);
        await onDeleted();
      }}
    />
  );
}
