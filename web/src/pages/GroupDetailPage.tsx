import { useState, type ReactNode } from "react";
import { Link as RouterLink, useNavigate, useParams } from "react-router-dom";
import {
  Alert,
  Autocomplete,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  Link,
  Skeleton,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from "@mui/material";
import EditIcon from "@mui/icons-material/Edit";
import DeleteIcon from "@mui/icons-material/Delete";
import PersonRemoveIcon from "@mui/icons-material/PersonRemove";
import LinkOffIcon from "@mui/icons-material/LinkOff";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys, type HostView, type ManagedUser } from "../api/fleet";
import { groupKeys, groupsApi, type GroupUserView } from "../api/groups";
import { useMe } from "../auth/session";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError } from "../components/errors";
import { DeleteGroupDialog, GroupDialog } from "../components/GroupDialog";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { IconAction } from "../components/RowActions";
import { ScrollTable, StateChip, TableSkeleton } from "../components/tables";
import { useDebounced } from "../urlState";

/** Hosts listed on the page; the rest are in the host list filtered by the group. */
const HOSTS_SHOWN = 100;

interface PickerProps<T> {
  label: string;
  helper: string;
  search: (q: string, signal: AbortSignal) => Promise<T[]>;
  queryKey: (q: string) => readonly unknown[];
  exclude: Set<number>;
  idOf: (t: T) => number;
  labelOf: (t: T) => string;
  detailOf: (t: T) => string;
  onPick: (t: T) => Promise<void>;
}

/** A search box that adds what is picked (hosts or users). */
function MemberPicker<T>({ label, helper, search, queryKey, exclude, idOf, labelOf, detailOf, onPick }: PickerProps<T>) {
  const [input, setInput] = useState("");
  const q = useDebounced(input.trim(), 300);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const found = useQuery({ queryKey: queryKey(q), queryFn: ({ signal }) => search(q, signal) });
  const options = (found.data ?? []).filter((t) => !exclude.has(idOf(t)));
  return (
    <Box sx={{ mb: 2 }}>
      <Autocomplete<T, false, false, false>
        options={options}
        getOptionLabel={labelOf}
        isOptionEqualToValue={(a, b) => idOf(a) === idOf(b)}
        filterOptions={(o) => o}
        inputValue={input}
        onInputChange={(_, v) => setInput(v)}
        value={null}
        disabled={busy}
        onChange={(_, picked) => {
          if (!picked) return;
          setBusy(true);
          setError(null);
          onPick(picked)
            .then(() => setInput(""))
            .catch((err: unknown) => setError(err))
            .finally(() => setBusy(false));
        }}
        loading={found.isFetching}
        noOptionsText={found.isError ? "The search failed" : q ? "Nothing else matches" : "Type to search"}
        renderOption={(props, t) => (
          <li {...props} key={idOf(t)}>
            {labelOf(t)}
            <Typography component="span" variant="caption" color="text.secondary" sx={{ ml: 1 }}>
              {detailOf(t)}
            </Typography>
          </li>
        )}
        renderInput={(params) => <TextField {...params} label={label} size="small" helperText={helper} />}
      />
      <FormError error={error} />
    </Box>
  );
}

function Section({ title, count, children }: { title: string; count?: number; children: ReactNode }) {
  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h6" component="h2" sx={{ mb: 1.5 }}>
          {title}
          {count !== undefined && (
            <Typography component="span" color="text.secondary" sx={{ ml: 1 }}>
              ({count})
            </Typography>
          )}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

type Removal = { kind: "host"; id: number; name: string } | { kind: "user"; id: number; name: string };

export function GroupDetailPage() {
  const { id: idText } = useParams();
  const id = Number(idText);
  const valid = Number.isInteger(id) && id > 0;
  const client = useQueryClient();
  const navigate = useNavigate();
  const me = useMe();
  const isAdmin = me.data?.user.role === "admin";
  const group = useQuery({ queryKey: groupKeys.one(id), queryFn: ({ signal }) => groupsApi.get(id, signal), enabled: valid });
  const members = useQuery({ queryKey: groupKeys.members(id), queryFn: ({ signal }) => groupsApi.members(id, signal), enabled: valid });
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [removing, setRemoving] = useState<Removal | null>(null);

  const refreshMembers = () =>
    Promise.all([client.invalidateQueries({ queryKey: groupKeys.members(id) }), client.invalidateQueries({ queryKey: keys.hosts })]);

  if (!valid) return <Alert severity="error">There is no group {idText}.</Alert>;
  if (group.isPending) {
    return (
      <Box aria-busy="true" aria-label="Loading the group" role="status">
        <Skeleton height={48} width="40%" />
        <Skeleton height={24} width="60%" />
        <Skeleton variant="rounded" height={160} sx={{ mt: 2 }} />
      </Box>
    );
  }
  if (group.isError) {
    const missing = isApiError(group.error) && group.error.status === 404;
    return (
      <>
        <BackLink />
        {missing ? (
          <Alert severity="warning">This group does not exist, or you are not in it.</Alert>
        ) : (
          <ErrorPanel error={group.error} title="Could not load the group" onRetry={() => void group.refetch()} />
        )}
      </>
    );
  }
  const g = group.data;
  const hosts = members.data?.hosts ?? [];
  const users = members.data?.users ?? [];

  return (
    <>
      <BackLink />
      <PageHeader
        title={g.name}
        subtitle={g.description || undefined}
        actions={
          isAdmin ? (
            <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
              <Button variant="outlined" startIcon={<EditIcon />} onClick={() => setEditing(true)}>
                Edit
              </Button>
              <Button variant="outlined" color="error" startIcon={<DeleteIcon />} onClick={() => setDeleting(true)}>
                Delete
              </Button>
            </Box>
          ) : undefined
        }
      />
      <Box component="nav" aria-label="About this group" sx={{ display: "flex", flexWrap: "wrap", gap: 1, mb: 3 }}>
        <Button variant="outlined" size="small" component={RouterLink} to={`/hosts?group=${g.id}`}>
          Hosts in the host list
        </Button>
        <Button variant="outlined" size="small" component={RouterLink} to={`/groups/${g.id}/policy`}>
          Deployment policy
        </Button>
        <Button variant="outlined" size="small" component={RouterLink} to={`/maintenance-windows?group=${g.id}`}>
          Maintenance windows
        </Button>
      </Box>

      {members.isError ? (
        <ErrorPanel error={members.error} title="Could not load the members" onRetry={() => void members.refetch()} />
      ) : (
        <Stack spacing={3}>
          <Section title="Hosts" count={members.data ? hosts.length : undefined}>
            {isAdmin && (
              <MemberPicker<HostView>
                label="Add a host"
                helper="Search by hostname, FQDN or address"
                queryKey={(q) => keys.hostList({ q: q || undefined, limit: 20, offset: 0 })}
                search={async (q, signal) => (await fleetApi.hosts({ q: q || undefined, limit: 20, offset: 0 }, signal)).items}
                exclude={new Set(hosts.map((h) => h.id))}
                idOf={(h) => h.id}
                labelOf={(h) => h.hostname}
                detailOf={(h) => h.address ?? h.fqdn ?? ""}
                onPick={async (h) => {
                  await groupsApi.addHost(g.id, h.id);
                  await refreshMembers();
                }}
              />
            )}
            {members.isPending ? (
              <TableSkeleton label="Loading the hosts" rows={3} />
            ) : hosts.length === 0 ? (
              <EmptyState title="No hosts in this group">
                {isAdmin ? "Add hosts with the search box above." : "An administrator adds hosts to groups."}
              </EmptyState>
            ) : (
              <HostTable hosts={hosts} groupId={g.id} canRemove={isAdmin} onRemove={(h) => setRemoving({ kind: "host", id: h.id, name: h.hostname })} />
            )}
          </Section>
          <Section title="Users" count={members.data ? users.length : undefined}>
            {isAdmin && (
              <MemberPicker<ManagedUser>
                label="Add a user"
                helper="Search by username or display name"
                queryKey={(q) => [...keys.users, "search", q]}
                search={async (q, signal) => (await fleetApi.users({ q: q || undefined, limit: 20 }, signal)).items}
                exclude={new Set(users.map((u) => u.id))}
                idOf={(u) => u.id}
                labelOf={(u) => u.username}
                detailOf={(u) => `${u.display_name} · ${u.role}`}
                onPick={async (u) => {
                  await groupsApi.addUser(g.id, u.id);
                  await refreshMembers();
                }}
              />
            )}
            {members.isPending ? (
              <TableSkeleton label="Loading the users" rows={2} />
            ) : users.length === 0 ? (
              <EmptyState title="No users in this group">
                {isAdmin ? "Add operators and viewers: they then see this group's hosts." : "An administrator adds users to groups."}
              </EmptyState>
            ) : (
              <UserTable users={users} canRemove={isAdmin} onRemove={(u) => setRemoving({ kind: "user", id: u.id, name: u.username })} />
            )}
          </Section>
        </Stack>
      )}

      <GroupDialog
        open={editing}
        group={g}
        onClose={() => setEditing(false)}
        onSaved={(saved) => {
          setEditing(false);
          client.setQueryData(groupKeys.one(id), saved);
          void client.invalidateQueries({ queryKey: groupKeys.all });
        }}
      />
      <DeleteGroupDialog
        open={deleting}
        group={g}
        onClose={() => setDeleting(false)}
        onDeleted={() => {
          setDeleting(false);
          client.removeQueries({ queryKey: groupKeys.one(id) });
          void client.invalidateQueries({ queryKey: groupKeys.all });
          navigate("/groups");
        }}
      />
      <ConfirmDialog
        open={removing !== null}
        title={removing?.kind === "host" ? "Take this host out of the group?" : "Take this user out of the group?"}
        description={
          removing?.kind === "host"
            ? `${removing.name} leaves “${g.name}”: the group's windows and policy no longer apply to it, and the group's users no longer see it (unless another of their groups has it). A host left in no group is visible to every operator and viewer`
            : `${removing?.name ?? ""} leaves “${g.name}” and no longer sees its hosts (unless another of their groups has them)`
        }
        confirmLabel="Remove"
        onClose={() => setRemoving(null)}
        onConfirm={async () => {
          if (!removing) return;
          if (removing.kind === "host") await groupsApi.removeHost(g.id, removing.id);
          else await groupsApi.removeUser(g.id, removing.id);
          setRemoving(null);
          await refreshMembers();
        }}
      />
    </>
  );
}

function BackLink() {
  return (
    <Box sx={{ mb: 1 }}>
      <Link component={RouterLink} to="/groups" variant="body2">
        ← Groups
      </Link>
    </Box>
  );
}

function HostTable({ hosts, groupId, canRemove, onRemove }: { hosts: HostView[]; groupId: number; canRemove: boolean; onRemove: (h: HostView) => void }) {
  return (
    <>
      <ScrollTable label="Hosts of the group">
        <Table size="small" aria-label="Hosts of the group">
          <TableHead>
            <TableRow>
              <TableCell>Host</TableCell>
              <TableCell>Status</TableCell>
              <TableCell>OS</TableCell>
              <TableCell align="right">Updates</TableCell>
              {canRemove && <TableCell align="right">Remove</TableCell>}
            </TableRow>
          </TableHead>
          <TableBody>
            {hosts.slice(0, HOSTS_SHOWN).map((h) => (
              <TableRow key={h.id}>
                <TableCell>
                  <Link component={RouterLink} to={`/hosts/${h.id}`}>
                    {h.hostname}
                  </Link>
                </TableCell>
                <TableCell>
                  <StateChip value={h.status} />
                </TableCell>
                <TableCell>{h.os_pretty_name ?? h.os_name ?? "—"}</TableCell>
                <TableCell align="right">
                  {h.updates_count}
                  {h.security_updates_count > 0 && <Chip size="small" color="warning" variant="outlined" label={`${h.security_updates_count} security`} sx={{ ml: 1 }} />}
                </TableCell>
                {canRemove && (
                  <TableCell align="right">
                    <IconAction title="Take out of the group" label={`Remove ${h.hostname} from the group`} onClick={() => onRemove(h)}>
                      <LinkOffIcon fontSize="small" />
                    </IconAction>
                  </TableCell>
                )}
              </TableRow>
            ))}
          </TableBody>
        </Table>
      </ScrollTable>
      {hosts.length > HOSTS_SHOWN && (
        <Typography variant="body2" sx={{ mt: 1 }}>
          Showing {HOSTS_SHOWN} of {hosts.length} hosts.{" "}
          <Link component={RouterLink} to={`/hosts?group=${groupId}`}>
            See them all in the host list
          </Link>
          .
        </Typography>
      )}
    </>
  );
}

function UserTable({ users, canRemove, onRemove }: { users: GroupUserView[]; canRemove: boolean; onRemove: (u: GroupUserView) => void }) {
  return (
    <ScrollTable label="Users of the group">
      <Table size="small" aria-label="Users of the group">
        <TableHead>
          <TableRow>
            <TableCell>Username</TableCell>
            <TableCell>Name</TableCell>
            <TableCell>Role</TableCell>
            {canRemove && <TableCell align="right">Remove</TableCell>}
          </TableRow>
        </TableHead>
        <TableBody>
          {users.map((u) => (
            <TableRow key={u.id}>
              <TableCell>{u.username}</TableCell>
              <TableCell>{u.display_name || "—"}</TableCell>
              <TableCell>{u.role}</TableCell>
              {canRemove && (
                <TableCell align="right">
                  <IconAction title="Take out of the group" label={`Remove ${u.username} from the group`} onClick={() => onRemove(u)}>
                    <PersonRemoveIcon fontSize="small" />
                  </IconAction>
                </TableCell>
              )}
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </ScrollTable>
  );
}
