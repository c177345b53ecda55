import { useMemo } from "react";
import { Box, Button, MenuItem, TextField } from "@mui/material";
import DownloadIcon from "@mui/icons-material/Download";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { AUDIT_EXPORT_URL, fleetApi, keys, type AuditQuery } from "../api/fleet";
import { AuditChainStatus } from "../components/AuditChainStatus";
import { AuditTable, localToRfc3339 } from "../components/AuditTable";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, Pager } from "../components/tables";
import { intParam, useSearchBox, useUrlParams } from "../urlState";

const PAGE_SIZES = [50, 100, 200];

export function AuditLogPage() {
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 50, PAGE_SIZES);
  const [action, setAction] = useSearchBox("action", get("action"), set);
  const [actor, setActor] = useSearchBox("actor", get("actor"), set);
  const [target, setTarget] = useSearchBox("target", get("target"), set);
  const q: AuditQuery = useMemo(
    () => ({
      action: get("action") || undefined,
      actor: get("actor") || undefined,
      target: get("target") || undefined,
      outcome: get("outcome") || undefined,
      from: localToRfc3339(get("from")),
      to: localToRfc3339(get("to")),
      limit,
      offset: page * limit,
    }),
    [get, limit, page],
  );
  const audit = useQuery({
    queryKey: [...keys.audit, q],
    queryFn: ({ signal }) => fleetApi.audit(q, signal),
    placeholderData: keepPreviousData,
  });
  const items = audit.data?.items ?? [];
  const filtered = Boolean(get("action") || get("actor") || get("target") || get("outcome") || get("from") || get("to"));

  return (
    <>
      <PageHeader
        title="Audit log"
        subtitle="Every security-relevant action, newest first, in a hash-chained log."
        actions={
          <Button component="a" href={AUDIT_EXPORT_URL} download="patchdeck-audit.jsonl" variant="outlined" startIcon={<DownloadIcon />}>
            Export (JSON lines)
          </Button>
        }
      />
      <AuditChainStatus />
      <Box
        component="form"
        role="search"
        aria-label="Filter the audit log"
        onSubmit={(e) => e.preventDefault()}
        sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2, "& .MuiTextField-root": { m: 0 } }}
      >
        <TextField label="Action" placeholder="auth. or user.create" size="small" value={action} onChange={(e) => setAction(e.target.value)} sx={{ flex: "1 1 160px" }} helperText="Starts with" />
        <TextField label="Actor" placeholder="user:alice" size="small" value={actor} onChange={(e) => setActor(e.target.value)} sx={{ flex: "1 1 160px" }} helperText="Exact" />
        <TextField label="Target" placeholder="host:12" size="small" value={target} onChange={(e) => setTarget(e.target.value)} sx={{ flex: "1 1 140px" }} helperText="Exact" />
        <TextField select label="Outcome" size="small" value={get("outcome")} onChange={(e) => set({ outcome: e.target.value })} sx={{ flex: "1 1 130px" }}>
          <MenuItem value="">Any</MenuItem>
          <MenuItem value="success">Success</MenuItem>
          <MenuItem value="failure">Failure</MenuItem>
          <MenuItem value="denied">Denied</MenuItem>
        </TextField>
        <TextField label="From" type="datetime-local" size="small" value={get("from")} onChange={(e) => set({ from: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "1 1 200px" }} />
        <TextField label="Before" type="datetime-local" size="small" value={get("to")} onChange={(e) => set({ to: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "1 1 200px" }} />
      </Box>
      <ListCard>
        <ListBody
          query={audit}
          what="the audit log"
          isEmpty={items.length === 0}
          empty={
            filtered ? (
              <EmptyState title="No entry matches these filters">Widen the time range or clear a filter. Action matches the start of the name (auth.), actor and target match exactly (user:alice, host:12).</EmptyState>
            ) : (
              <EmptyState title="The log is empty">Entries appear as soon as anyone signs in or changes something.</EmptyState>
            )
          }
        >
          <AuditTable items={items} label="Audit log entries" />
        </ListBody>
        {audit.data && audit.data.total > 0 && (
          <Pager
            total={audit.data.total}
            page={page}
            limit={limit}
            sizes={PAGE_SIZES}
            onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
            onLimit={(l) => set({ limit: l === 50 ? "" : l })}
          />
        )}
      </ListCard>
    </>
  );
}
