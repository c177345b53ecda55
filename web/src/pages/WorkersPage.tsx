import { Alert, Box, Card, CardContent, Chip, Table, TableBody, TableCell, TableHead, TableRow, Typography } from "@mui/material";
import { useQuery } from "@tanstack/react-query";
import { deploymentsApi, keys } from "../api/fleet";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { PageHeader } from "../components/PageHeader";
import { ListBody, ListCard, ScrollTable, StateChip } from "../components/tables";

/** How often the page re-reads the workers (there is no event for them). */
export const WORKERS_POLL_MS = 10_000;

function Count({ label, value, warn }: { label: string; value: number; warn?: boolean }) {
  return (
    <Box sx={{ minWidth: 100 }}>
      <Typography variant="h5" component="p" color={warn ? "warning.main" : undefined}>
        {value.toLocaleString()}
      </Typography>
      <Typography variant="body2" color="text.secondary">
        {label}
      </Typography>
    </Box>
  );
}

export function WorkersPage() {
  const workers = useQuery({
    queryKey: keys.workers,
    queryFn: ({ signal }) => deploymentsApi.workers(signal),
    refetchInterval: WORKERS_POLL_MS,
  });
  const w = workers.data;
  const running = (w?.workers ?? []).filter((x) => !x.stopped_at);
  const stale = running.filter((x) => x.stale);
  return (
    <>
      <PageHeader
        title="Workers"
        subtitle="The manager processes that run background jobs (deployments, pushes, schedules), and the job queue. Re-read every 10 seconds."
      />
      {w && w.healthy === 0 && (
        <Alert severity="error" role="alert" sx={{ mb: 2 }}>
          No healthy worker: jobs are not being run. Start <code>patchdeck serve</code> or <code>patchdeck worker</code>, or check why
          the workers below stopped sending heartbeats.
        </Alert>
      )}
      {w && w.healthy > 0 && stale.length > 0 && (
        <Alert severity="warning" role="alert" sx={{ mb: 2 }}>
          {stale.length} {stale.length === 1 ? "worker has" : "workers have"} not sent a heartbeat recently (stale): the process may
          hang or have died without stopping cleanly.
        </Alert>
      )}
      {w && (
        <Card variant="outlined" sx={{ mb: 3 }} component="section" aria-labelledby="queue-title">
          <CardContent>
            <Typography variant="h6" component="h2" id="queue-title" sx={{ mb: 2 }}>
              Job queue
            </Typography>
            <Box sx={{ display: "flex", flexWrap: "wrap", gap: 3 }}>
              <Count label="Queued" value={w.jobs.queued} />
              <Count label="Due now" value={w.jobs.due} warn={w.jobs.due > 100} />
              <Count label="Running" value={w.jobs.running} />
              <Count label="Done" value={w.jobs.done} />
              <Count label="Failed" value={w.jobs.failed} warn={w.jobs.failed > 0} />
              <Count label="Healthy workers" value={w.healthy} warn={w.healthy === 0} />
            </Box>
            {w.jobs.due > 100 && (
              <Typography variant="body2" color="text.secondary" sx={{ mt: 2 }}>
                Many jobs are due: the workers do not keep up. Another <code>patchdeck worker</code> process would help.
              </Typography>
            )}
          </CardContent>
        </Card>
      )}
      <ListCard>
        <ListBody
          query={workers}
          what="workers"
          isEmpty={(w?.workers.length ?? 0) === 0}
          empty={
            <EmptyState title="No worker has registered">
              Every <code>patchdeck serve</code> or <code>patchdeck worker</code> process registers here when it starts.
            </EmptyState>
          }
        >
          <ScrollTable label="Workers">
            <Table size="small" aria-label="Workers">
              <TableHead>
                <TableRow>
                  <TableCell>Host</TableCell>
                  <TableCell>PID</TableCell>
                  <TableCell>Role</TableCell>
                  <TableCell>Version</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell>Last heartbeat</TableCell>
                  <TableCell>Started</TableCell>
                  <TableCell>Jobs run</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {(w?.workers ?? []).map((x) => (
                  <TableRow key={x.id}>
                    <TableCell>{x.hostname}</TableCell>
                    <TableCell>{x.pid}</TableCell>
                    <TableCell>{x.role}</TableCell>
                    <TableCell>{x.version}</TableCell>
                    <TableCell>
                      {x.stopped_at ? (
                        <Chip size="small" variant="outlined" label="stopped" />
                      ) : x.stale ? (
                        <Chip size="small" variant="outlined" color="warning" label="stale" />
                      ) : (
                        <StateChip value="running" />
                      )}
                    </TableCell>
                    <TableCell>
                      <DateTime value={x.heartbeat_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime value={x.started_at} />
                    </TableCell>
                    <TableCell>{x.jobs_run.toLocaleString()}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
      </ListCard>
    </>
  );
}
