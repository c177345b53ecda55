// What the app's form dialogs share: the running-request state (busy, the error it threw), a
// draft reset each time the dialog opens, the dialog with its form, title and Cancel + submit
// footer, and a select's group options.

import { useEffect, useState, type DependencyList, type ReactNode } from "react";
import { Button, Dialog, DialogActions, DialogContent, DialogTitle, MenuItem } from "@mui/material";

/** `busy` while `run`'s action is pending; what it threw stays in `error` until the next run. */
export function useSubmit() {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return { error, setError, busy, run };
}

/**
 * A form dialog's state: the draft (`init()` again, untouched and without an error, each time
 * the dialog opens or a dependency changes while open) and `useSubmit`'s busy and error.
 */
export function useDraftDialog<D>(open: boolean, init: () => D, deps: DependencyList) {
  const [draft, setDraft] = useState<D>(init);
  const [touched, setTouched] = useState(false);
  const submit = useSubmit();
  const { setError } = submit;
  useEffect(() => {
    if (open) {
      setDraft(init());
      setTouched(false);
      setError(null);
    }
    // `init` is a fresh closure each render; `deps` say when it gives something else.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, ...deps]);
  const update = (change: Partial<D>) => setDraft((d) => ({ ...d, ...change }));
  return { draft, setDraft, update, touched, setTouched, ...submit };
}

interface DialogActionsBarProps {
  busy: boolean;
  onCancel: () => void;
  /** The submit button's label when not busy. */
  submitLabel: ReactNode;
  busyLabel?: string;
  cancelLabel?: string;
  submitDisabled?: boolean;
  color?: "primary" | "error";
}

/** A form dialog's footer: Cancel, and the form's submit button, both disabled while busy. */
export function DialogActionsBar({ busy, onCancel, submitLabel, busyLabel = "Saving…", cancelLabel = "Cancel", submitDisabled, color }: DialogActionsBarProps) {
  return (
    <DialogActions>
      <Button onClick={onCancel} disabled={busy}>
        {cancelLabel}
      </Button>
      <Button type="submit" variant="contained" color={color} disabled={busy || submitDisabled}>
        {busy ? busyLabel : submitLabel}
      </Button>
    </DialogActions>
  );
}

interface FormDialogProps extends Omit<DialogActionsBarProps, "onCancel"> {
  open: boolean;
  onClose: () => void;
  /** The title's element id, the dialog's accessible name. */
  titleId: string;
  title: ReactNode;
  /** Runs on submit (the browser's own submission is prevented). */
  onSubmit: () => void | Promise<void>;
  scroll?: "paper" | "body";
  children: ReactNode;
}

/**
 * A dialog holding one form (the browser's validation off: the fields show their own errors):
 * its title, the fields, and `DialogActionsBar`. It cannot be dismissed while busy.
 */
export function FormDialog({ open, onClose, titleId, title, onSubmit, scroll, children, ...actions }: FormDialogProps) {
  return (
    <Dialog open={open} onClose={actions.busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby={titleId} scroll={scroll}>
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void onSubmit();
        }}
      >
        <DialogTitle id={titleId}>{title}</DialogTitle>
        <DialogContent>{children}</DialogContent>
        <DialogActionsBar onCancel={onClose} {...actions} />
      </form>
    </Dialog>
  );
}

/**
 * A group select's options (`String(id)` values), led by one for a selected group that is not
 * in the list (out of the caller's scope, or not loaded yet). An array, not a fragment: MUI's
 * Select takes its options as direct children.
 */
export function groupOptions(groups: readonly { id: number; name: string }[], selected: string, missingLabel = (id: string) => `Group ${id}`): ReactNode[] {
  const items = groups.map((g) => (
    <MenuItem key={g.id} value={String(g.id)}>
      {g.name}
    </MenuItem>
  ));
  if (selected && !groups.some((g) => String(g.id) === selected)) {
    items.unshift(
      <MenuItem key="missing" value={selected}>
        {missingLabel(selected)}
      </MenuItem>,
    );
  }
  return items;
}
