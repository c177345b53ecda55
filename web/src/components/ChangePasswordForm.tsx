import { useState, type FormEvent } from "react";
import { Box, Button, TextField } from "@mui/material";
import { authApi } from "../api/auth";
import { isApiError } from "../api/client";
import { FormError, sentence } from "./errors";

export const MIN_PASSWORD_LENGTH = 12;

type Field = "current_password" | "new_password" | "confirm";

/** The server says "new_password: must be at least 12 characters"; the field already shows its name. */
function fieldMessage(message: string, field: string): string {
  const prefix = `${field}: `;
  return sentence(message.startsWith(prefix) ? message.slice(prefix.length) : message);
}

interface ChangePasswordFormProps {
  username: string;
  submitLabel?: string;
  onDone: () => void | Promise<void>;
}

/** Current password, new password twice → `POST /auth/password`. */
export function ChangePasswordForm({ username, submitLabel = "Change password", onDone }: ChangePasswordFormProps) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirm, setConfirm] = useState("");
  const [fieldErrors, setFieldErrors] = useState<Partial<Record<Field, string>>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const errors: Partial<Record<Field, string>> = {};
    if ([...next].length < MIN_PASSWORD_LENGTH) errors.new_password = `Must be at least ${MIN_PASSWORD_LENGTH} characters.`;
    if (confirm !== next) errors.confirm = "Does not match the new password.";
    setFieldErrors(errors);
    if (Object.keys(errors).length > 0) return;
    setBusy(true);
    try {
      await authApi.changePassword({ current_password: current, new_password: next });
      setCurrent("");
      setNext("");
      setConfirm("");
      await onDone();
    } catch (err) {
      const field = isApiError(err) ? err.field : undefined;
      if (isApiError(err) && (field === "current_password" || field === "new_password")) {
        setFieldErrors({ [field]: fieldMessage(err.message, field) });
      } else {
        setError(err);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Box component="form" onSubmit={(e) => void submit(e)} noValidate>
      {/* Lets password managers file the new password under the right account. */}
      <input type="text" name="username" autoComplete="username" value={username} readOnly hidden />
      <TextField
        label="Current password"
        name="current-password"
        type="password"
        autoComplete="current-password"
        required
        value={current}
        onChange={(e) => setCurrent(e.target.value)}
        error={Boolean(fieldErrors.current_password)}
        helperText={fieldErrors.current_password}
      />
      <TextField
        label="New password"
        name="new-password"
        type="password"
        autoComplete="new-password"
        required
        value={next}
        onChange={(e) => setNext(e.target.value)}
        error={Boolean(fieldErrors.new_password)}
        helperText={fieldErrors.new_password ?? `At least ${MIN_PASSWORD_LENGTH} characters. A passphrase of several words works well.`}
      />
      <TextField
        label="Repeat the new password"
        name="confirm-password"
        type="password"
        autoComplete="new-password"
        required
        value={confirm}
        onChange={(e) => setConfirm(e.target.value)}
        error={Boolean(fieldErrors.confirm)}
        helperText={fieldErrors.confirm}
      />
      <FormError error={error} />
      <Button type="submit" variant="contained" disabled={busy || !current || !next || !confirm} sx={{ mt: 2 }}>
        {busy ? "Saving…" : submitLabel}
      </Button>
    </Box>
  );
}
