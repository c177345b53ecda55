import { useEffect, useState, type FormEvent } from "react";
import { Button, Dialog, DialogActions, DialogContent, DialogContentText, DialogTitle, TextField } from "@mui/material";
import { isApiError } from "../api/client";
import { FormError, sentence } from "./errors";
import { DialogActionsBar, useSubmit } from "./formDialog";

interface PasswordConfirmDialogProps {
  open: boolean;
  title: string;
  description: string;
  confirmLabel: string;
  danger?: boolean;
  onClose: () => void;
  /** Runs the change; a thrown error is shown in the dialog. */
  onConfirm: (password: string) => Promise<void>;
}

/** Asks for the account password before a sensitive change. */
export function PasswordConfirmDialog(props: PasswordConfirmDialogProps) {
  const { open, title, description, confirmLabel, danger, onClose, onConfirm } = props;
  const [password, setPassword] = useState("");
  const { error, setError, busy, run } = useSubmit();

  useEffect(() => {
    if (open) {
      setPassword("");
      setError(null);
    }
  }, [open, setError]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await run(() => onConfirm(password));
  };

  const wrong = isApiError(error) && error.field === "password";

  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="xs" aria-labelledby="password-confirm-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="password-confirm-title">{title}</DialogTitle>
        <DialogContent>
          <DialogContentText>{description}</DialogContentText>
          <TextField
            label="Your password"
            type="password"
            autoComplete="current-password"
            autoFocus
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            error={wrong}
            helperText={wrong ? "That is not your current password." : undefined}
          />
          {!wrong && error ? <FormError error={error} /> : null}
        </DialogContent>
        <DialogActionsBar busy={busy} onCancel={onClose} submitLabel={confirmLabel} busyLabel="Working…" submitDisabled={!password} color={danger ? "error" : "primary"} />
      </form>
    </Dialog>
  );
}

interface ConfirmDialogProps {
  open: boolean;
  title: string;
  description: string;
  confirmLabel: string;
  onClose: () => void;
  onConfirm: () => Promise<void>;
}

/** "Are you sure?" for a destructive action; errors stay in the dialog. */
export function ConfirmDialog({ open, title, description, confirmLabel, onClose, onConfirm }: ConfirmDialogProps) {
  const { error, setError, busy, run } = useSubmit();
  useEffect(() => {
    if (open) setError(null);
  }, [open, setError]);
  const confirm = () => run(onConfirm);
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="xs" aria-labelledby="confirm-title">
      <DialogTitle id="confirm-title">{title}</DialogTitle>
      <DialogContent>
        <DialogContentText>{sentence(description)}</DialogContentText>
        <FormError error={error} />
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose} disabled={busy}>
          Cancel
        </Button>
        <Button variant="contained" color="error" onClick={() => void confirm()} disabled={busy}>
          {busy ? "Working…" : confirmLabel}
        </Button>
      </DialogActions>
    </Dialog>
  );
}
