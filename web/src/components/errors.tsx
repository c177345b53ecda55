import { Alert, AlertTitle, Box, Button } from "@mui/material";
import RefreshIcon from "@mui/icons-material/Refresh";
import { isApiError } from "../api/client";

/** "wrong or already used code" → "Wrong or already used code." */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** A plain-language description of any error thrown by a call. */
export function describeError(error: unknown): string {
  if (isApiError(error)) {
    switch (error.code) {
      case "forbidden":
        return "Your role does not allow this.";
      case "internal":
        return "The manager hit an internal error. Its log has the cause under the request id below.";
      default:
        return sentence(error.message);
    }
  }
  if (error instanceof Error && error.message) return sentence(error.message);
  return "Something went wrong.";
}

/** The request id to quote when reporting a problem, if any. */
export function requestIdOf(error: unknown): string | null {
  return isApiError(error) ? error.requestId : null;
}

interface ErrorPanelProps {
  error: unknown;
  title?: string;
  onRetry?: () => void;
}

/** An error shown plainly, with the request id and a Retry button. */
export function ErrorPanel({ error, title = "Could not load this", onRetry }: ErrorPanelProps) {
  const requestId = requestIdOf(error);
  return (
    <Alert
      severity="error"
      role="alert"
      action={
        onRetry ? (
          <Button color="inherit" size="small" startIcon={<RefreshIcon />} onClick={onRetry}>
            Retry
          </Button>
        ) : undefined
      }
    >
      <AlertTitle>{title}</AlertTitle>
      {describeError(error)}
      {requestId && (
        <Box component="div" sx={{ mt: 0.5, fontSize: "0.8125rem", opacity: 0.85 }}>
          Request id: <code>{requestId}</code>
        </Box>
      )}
    </Alert>
  );
}

/** A one-line error for forms (a failed submit), with the request id when there is one. */
export function FormError({ error }: { error: unknown }) {
  if (!error) return null;
  const requestId = requestIdOf(error);
  return (
    <Alert severity="error" role="alert" sx={{ mt: 2 }}>
      {describeError(error)}
      {requestId && (
        <Box component="div" sx={{ mt: 0.5, fontSize: "0.8125rem", opacity: 0.85 }}>
          Request id: <code>{requestId}</code>
        </Box>
      )}
    </Alert>
  );
}
