import { Alert, Box, Button } from "@mui/material";
import { useQuery } from "@tanstack/react-query";
import { fleetApi, keys } from "../api/fleet";
import { ErrorPanel } from "./errors";

/** The audit log's hash chain, checked by the manager over the whole log (`GET /api/v1/audit/verify`). */
export function AuditChainStatus() {
  const verify = useQuery({
    queryKey: [...keys.audit, "verify"],
    queryFn: ({ signal }) => fleetApi.verifyAudit(signal),
    staleTime: 5 * 60_000,
  });
  if (verify.isPending) {
    return (
      <Alert severity="info" sx={{ mb: 2 }} role="status">
        Checking the log's hash chain…
      </Alert>
    );
  }
  if (verify.isError) {
    return (
      <Box sx={{ mb: 2 }}>
        <ErrorPanel error={verify.error} title="Could not check the hash chain" onRetry={() => void verify.refetch()} />
      </Box>
    );
  }
  const r = verify.data;
  const again = (
    <Button color="inherit" size="small" onClick={() => void verify.refetch()} disabled={verify.isFetching}>
      {verify.isFetching ? "Checking…" : "Check again"}
    </Button>
  );
  return r.status === "intact" ? (
    <Alert severity="success" sx={{ mb: 2 }} action={again}>
      Hash chain intact: {r.checked.toLocaleString()} entries checked.
    </Alert>
  ) : (
    <Alert severity="error" sx={{ mb: 2 }} action={again}>
      Hash chain broken{r.first_broken !== null && r.first_broken !== undefined ? ` at entry ${r.first_broken}` : ""}: an entry was
      changed or removed outside the manager ({r.checked.toLocaleString()} entries checked). Keep an export and investigate.
    </Alert>
  );
}
