import { useState } from "react";
import { Box, Button, Tab, Table, TableBody, TableCell, TableHead, TableRow, Tabs, Typography } from "@mui/material";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { fleetApi, keys, type EnrollmentView } from "../api/fleet";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { FormError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { ListBody, ListCard, Pager, ScrollTable } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { useUrlParams } from "../urlState";

const PAGE = 50;

export function EnrollmentsPage() {
  const client = useQueryClient();
  const { get, set, page } = useUrlParams();
  const approval = get("approval") === "rejected" ? "rejected" : "pending";
  const q = { approval, limit: PAGE, offset: page * PAGE };
  const list = useQuery({
    queryKey: [...keys.enrollments, q],
    queryFn: ({ signal }) => fleetApi.enrollments(q, signal),
    placeholderData: keepPreviousData,
  });
  const [busy, setBusy] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [rejecting, setRejecting] = useState<EnrollmentView | null>(null);
  const items = list.data?.items ?? [];

  const refresh = async () => {
    await client.invalidateQueries({ queryKey: keys.enrollments });
    await client.invalidateQueries({ queryKey: keys.hosts });
  };
  const approve = async (e: EnrollmentView) => {
    setBusy(e.id);
    setError(null);
    try {
      await fleetApi.approveEnrollment(e.id);
      await refresh();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  return (
    <>
      <PageHeader
        title="Enrollments"
        subtitle="Machines that enrolled with a registration token and wait for an administrator. Compare the machine ID with the machine you expect before approving."
      />
      <Tabs value={approval} onChange={(_, v: string) => set({ approval: v === "pending" ? "" : v })} aria-label="Which enrollments" sx={{ mb: 2 }}>
        <Tab value="pending" label="Waiting" />
        <Tab value="rejected" label="Rejected" />
      </Tabs>
      <FormError error={error} />
      <Box sx={{ mt: error ? 2 : 0 }}>
        <ListCard>
          <ListBody
            query={list}
            what="enrollments"
            isEmpty={items.length === 0}
            empty={
              approval === "pending" ? (
                <EmptyState title="Nobody is waiting">
                  New agents appear here when the setting “enrollment requires approval” is on. Otherwise they join the host list directly.
                </EmptyState>
              ) : (
                <EmptyState title="No rejected enrollments">A rejected machine stays here, unable to enroll again, until its host is deleted.</EmptyState>
              )
            }
          >
            <ScrollTable label="Enrollments">
              <Table size="small" aria-label="Enrollments">
                <TableHead>
                  <TableRow>
                    <TableCell>Host</TableCell>
                    <TableCell>Machine ID</TableCell>
                    <TableCell>Addresses</TableCell>
                    <TableCell>OS</TableCell>
                    <TableCell>Agent</TableCell>
                    <TableCell>Enrolled</TableCell>
                    {approval === "pending" && <TableCell align="right">Decision</TableCell>}
                  </TableRow>
                </TableHead>
                <TableBody>
                  {items.map((e) => (
                    <TableRow key={e.id}>
                      <TableCell>
                        {e.hostname}
                        {e.fqdn && e.fqdn !== e.hostname && (
                          <Typography variant="caption" component="div" color="text.secondary">
                            {e.fqdn}
                          </Typography>
                        )}
                      </TableCell>
                      <TableCell sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem" }}>{e.machine_id ?? "—"}</TableCell>
                      <TableCell className="wrap">{e.addresses.length ? e.addresses.join(", ") : e.address ?? "—"}</TableCell>
                      <TableCell>{e.os_pretty_name ?? e.os_name ?? "—"}</TableCell>
                      <TableCell>{e.agent_version ?? "—"}</TableCell>
                      <TableCell>
                        <DateTime value={e.created_at} />
                      </TableCell>
                      {approval === "pending" && (
                        <TableCell align="right">
                          <Button size="small" variant="contained" disabled={busy === e.id} onClick={() => void approve(e)} aria-label={`Approve ${e.hostname}`}>
                            Approve
                          </Button>{" "}
                          <Button size="small" color="error" disabled={busy === e.id} onClick={() => setRejecting(e)} aria-label={`Reject ${e.hostname}`}>
                            Reject
                          </Button>
                        </TableCell>
                      )}
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </ScrollTable>
          </ListBody>
          {list.data && list.data.total > PAGE && (
            <Pager total={list.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
          )}
        </ListCard>
      </Box>
      <ConfirmDialog
        open={rejecting !== null}
        title={`Reject ${rejecting?.hostname ?? ""}?`}
        description="Its agent is told it was rejected and any certificate issued to it is revoked. The machine cannot enroll again until its host is deleted"
        confirmLabel="Reject"
        onClose={() => setRejecting(null)}
        onConfirm={async () => {
          if (!rejecting) return;
          await fleetApi.rejectEnrollment(rejecting.id);
          setRejecting(null);
          await refresh();
        }}
      />
    </>
  );
}
