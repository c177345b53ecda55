import { useMemo } from "react";
import { Link as RouterLink } from "react-router-dom";
import { Box, Button, Link, MenuItem, Table, TableBody, TableCell, TableHead, TableRow, TextField } from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { DEPLOYMENT_STATUSES, deploymentsApi, keys, type DeploymentListQuery } from "../api/fleet";
import { useMe } from "../auth/session";
import { DateTime } from "../components/DateTime";
import { DeploymentProgress, SCHEDULE_LABELS, selectionLabel } from "../components/DeploymentProgress";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, Pager, ScrollTable, StateChip } from "../components/tables";
import { intParam, useUrlParams } from "../urlState";

const PAGE_SIZES = [25, 50, 100];

export function DeploymentsPage() {
  const me = useMe();
  const canAct = me.data?.user.role === "admin" || me.data?.user.role === "operator";
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 25, PAGE_SIZES);
  const status = (DEPLOYMENT_STATUSES as readonly string[]).includes(get("status")) ? get("status") : "";
  const query: DeploymentListQuery = useMemo(() => ({ status: status || undefined, limit, offset: page * limit }), [status, limit, page]);
  const list = useQuery({
    queryKey: keys.deploymentListQuery(query),
    queryFn: ({ signal }) => deploymentsApi.list(query, signal),
    placeholderData: keepPreviousData,
  });
  const items = list.data?.items ?? [];

  return (
    <>
      <PageHeader
        title="Deployments"
        subtitle="Patch rollouts across hosts and groups: planned, approved, run ring by ring, and rolled back if needed."
        actions={
          canAct ? (
            <Button variant="contained" startIcon={<AddIcon />} component={RouterLink} to="/deployments/new">
              New deployment
            </Button>
          ) : undefined
        }
      />
      <Box component="form" role="search" aria-label="Filter deployments" onSubmit={(e) => e.preventDefault()} sx={{ display: "flex", gap: 1.5, mb: 2 }}>
        <TextField
          select
          label="Status"
          size="small"
          value={status}
          onChange={(e) => set({ status: e.target.value })}
          sx={{ minWidth: 220 }}
        >
          <MenuItem value="">Any</MenuItem>
          {DEPLOYMENT_STATUSES.map((s) => (
            <MenuItem key={s} value={s}>
              {s.replace(/_/g, " ")}
            </MenuItem>
          ))}
        </TextField>
        {status && <Button onClick={() => set({ status: "" })}>Clear filter</Button>}
      </Box>
      <ListCard>
        <ListBody
          query={list}
          what="deployments"
          isEmpty={items.length === 0}
          empty={
            status ? (
              <EmptyState title={`No deployment is ${status.replace(/_/g, " ")}`}>Choose another status, or clear the filter.</EmptyState>
            ) : (
              <EmptyState
                title="No deployments yet"
                action={
                  canAct ? (
                    <Button variant="outlined" component={RouterLink} to="/deployments/new">
                      New deployment
                    </Button>
                  ) : undefined
                }
              >
                {canAct
                  ? "Create one to patch hosts or groups in rings, in their maintenance windows or now. Selecting hosts on the Hosts page also offers it."
                  : "Operators and administrators create deployments; they will be listed here."}
              </EmptyState>
            )
          }
        >
          <ScrollTable label="Deployments">
            <Table size="small" aria-label="Deployments">
              <TableHead>
                <TableRow>
                  <TableCell>Name</TableCell>
                  <TableCell>Status</TableCell>
                  <TableCell>Progress</TableCell>
                  <TableCell>Updates</TableCell>
                  <TableCell>Schedule</TableCell>
                  <TableCell>Rings</TableCell>
                  <TableCell>Created</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((d) => (
                  <TableRow key={d.id} hover>
                    <TableCell className="wrap" sx={{ minWidth: 180 }}>
                      <Link component={RouterLink} to={`/deployments/${d.id}`}>
                        {d.name}
                      </Link>
                    </TableCell>
                    <TableCell>
                      <StateChip value={d.status} />
                    </TableCell>
                    <TableCell>
                      {/* The list carries each deployment's counts: no per-row request. */}
                      <DeploymentProgress counts={d.hosts} total={d.total_hosts} label={d.name} />
                    </TableCell>
                    <TableCell>{selectionLabel(d.selection)}</TableCell>
                    <TableCell>{SCHEDULE_LABELS[d.schedule] ?? d.schedule}</TableCell>
                    <TableCell>
                      {d.rings.length > 1 ? `${Math.min(d.current_ring + 1, d.rings.length)} of ${d.rings.length}` : d.rings.length}
                    </TableCell>
                    <TableCell>
                      <DateTime value={d.created_at} />
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
          <Pager
            total={list.data?.total ?? 0}
            page={page}
            limit={limit}
            sizes={PAGE_SIZES}
            onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
            onLimit={(l) => set({ limit: l })}
          />
        </ListBody>
      </ListCard>
    </>
  );
}
