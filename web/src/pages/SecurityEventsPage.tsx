import { useMemo } from "react";
import { Alert, Box, TextField } from "@mui/material";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { fleetApi, keys, type SecurityEventsQuery } from "../api/fleet";
import { AuditTable, localToRfc3339 } from "../components/AuditTable";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, Pager } from "../components/tables";
import { useUrlParams } from "../urlState";

const PAGE = 50;
/** The API pages security events only this deep; the audit export has everything. */
const MAX_OFFSET = 10_000;

export function SecurityEventsPage() {
  const { get, set, page } = useUrlParams();
  const q: SecurityEventsQuery = useMemo(
    () => ({ from: localToRfc3339(get("from")), to: localToRfc3339(get("to")), limit: PAGE, offset: Math.min(page * PAGE, MAX_OFFSET) }),
    [get, page],
  );
  const events = useQuery({
    queryKey: [...keys.securityEvents, q],
    queryFn: ({ signal }) => fleetApi.securityEvents(q, signal),
    placeholderData: keepPreviousData,
  });
  const items = events.data?.items ?? [];
  const total = events.data?.total ?? 0;
  const pageable = Math.min(total, MAX_OFFSET + PAGE);
  return (
    <>
      <PageHeader
        title="Security events"
        subtitle="Machine IDs that do not match their certificate, machines that tried to enroll twice, commands agents refused, and requests refused for a role."
      />
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2, "& .MuiTextField-root": { m: 0 } }} role="search" aria-label="Filter security events">
        <TextField label="From" type="datetime-local" size="small" value={get("from")} onChange={(e) => set({ from: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "0 1 240px" }} />
        <TextField label="Before" type="datetime-local" size="small" value={get("to")} onChange={(e) => set({ to: e.target.value })} InputLabelProps={{ shrink: true }} sx={{ flex: "0 1 240px" }} />
      </Box>
      {total > pageable && (
        <Alert severity="info" sx={{ mb: 2 }}>
          Only the newest {pageable.toLocaleString()} of {total.toLocaleString()} events can be paged here: narrow the time range, or use the audit log's export.
        </Alert>
      )}
      <ListCard>
        <ListBody
          query={events}
          what="security events"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title={get("from") || get("to") ? "No security events in this time range" : "No security events"}>
              Nothing suspicious was recorded. Events appear here when an agent presents the wrong machine ID, refuses a command, or someone is denied a request.
            </EmptyState>
          }
        >
          <AuditTable items={items} label="Security events" />
        </ListBody>
        {total > PAGE && (
          <Pager total={pageable} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
    </>
  );
}
