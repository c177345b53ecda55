import { Chip, Tooltip } from "@mui/material";
import { certificateState, daysUntil, type CertificateView } from "../api/settings";

/** Certificate kinds in words. */
export const KIND_LABELS: Record<string, string> = {
  server: "server (push host listener)",
  client: "client",
  push_client: "push client (the manager's)",
};

/** Revoked, expired, "expires in 12 days" or valid, as a chip. */
export function ExpiryChip({ cert, now = new Date() }: { cert: CertificateView; now?: Date }) {
  const state = certificateState(cert, now);
  if (state === "revoked") {
    const chip = <Chip size="small" variant="outlined" label="revoked" />;
    return cert.revocation_reason ? (
      <Tooltip title={`Reason: ${cert.revocation_reason}`}>
        <span>{chip}</span>
      </Tooltip>
    ) : (
      chip
    );
  }
  if (state === "expired") return <Chip size="small" color="error" label="expired" />;
  if (state === "expiring") {
    const days = daysUntil(cert.not_after, now);
    return <Chip size="small" color="warning" label={days <= 0 ? "expires today" : `expires in ${days} ${days === 1 ? "day" : "days"}`} />;
  }
  return <Chip size="small" variant="outlined" color="success" label="valid" />;
}
