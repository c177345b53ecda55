import { useMemo, useState, type FormEvent } from "react";
import {
  Alert,
  AlertTitle,
  Box,
  Button,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  MenuItem,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TableSortLabel,
  TextField,
  Typography,
} from "@mui/material";
import AddIcon from "@mui/icons-material/Add";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys, type CreatedUser, type ManagedUser, type UserListQuery } from "../api/fleet";
import { useMe } from "../auth/session";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { FormError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { ListBody, ListCard, Pager, ScrollTable } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { useSearchBox, useUrlParams } from "../urlState";

const PAGE = 50;
const ROLES = ["admin", "operator", "viewer"] as const;
const ROLE_HELP: Record<string, string> = {
  admin: "everything, including users and settings",
  operator: "sees and patches the hosts of their groups",
  viewer: "sees the hosts of their groups",
};
const SORTS = ["username", "created_at", "last_login_at"] as const;

function CreateUserDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (u: CreatedUser) => void }) {
  const [username, setUsername] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [role, setRole] = useState<string>("viewer");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const field = isApiError(error) ? error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await fleetApi.createUser({
        username: username.trim(),
        role,
        display_name: displayName.trim() || null,
        password: password || null,
      });
      setUsername("");
      setDisplayName("");
      setPassword("");
      setRole("viewer");
      onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="create-user-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="create-user-title">New user</DialogTitle>
        <DialogContent>
          <DialogContentText>A local account. The user must change the password at first sign-in.</DialogContentText>
          <TextField label="Username" required autoFocus autoComplete="off" value={username} onChange={(e) => setUsername(e.target.value)} error={field === "username"} />
          <TextField label="Display name" value={displayName} onChange={(e) => setDisplayName(e.target.value)} error={field === "display_name"} />
          <TextField select label="Role" value={role} onChange={(e) => setRole(e.target.value)} helperText={ROLE_HELP[role]} error={field === "role"}>
            {ROLES.map((r) => (
              <MenuItem key={r} value={r}>
                {r}
              </MenuItem>
            ))}
          </TextField>
          <TextField
            label="Initial password (optional)"
            type="password"
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            helperText="At least 12 characters. Leave empty to have one generated and shown once."
            error={field === "password"}
          />
          <FormError error={error} />
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" disabled={busy || !username.trim()}>
            {busy ? "Creating…" : "Create user"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

export function UsersPage() {
  const client = useQueryClient();
  const me = useMe();
  const { get, set, page } = useUrlParams();
  const [search, setSearch] = useSearchBox("q", get("q"), set);
  const sort = (SORTS as readonly string[]).includes(get("sort")) ? get("sort") : "username";
  const order = get("order") === "desc" ? "desc" : "asc";
  const q: UserListQuery = useMemo(
    () => ({
      q: get("q") || undefined,
      role: get("role") || undefined,
      sort: sort === "username" ? undefined : sort,
      order: order === "desc" ? "desc" : undefined,
      limit: PAGE,
      offset: page * PAGE,
    }),
    [get, sort, order, page],
  );
  const users = useQuery({
    queryKey: [...keys.users, q],
    queryFn: ({ signal }) => fleetApi.users(q, signal),
    placeholderData: keepPreviousData,
  });
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedUser | null>(null);
  const [disabling, setDisabling] = useState<ManagedUser | null>(null);
  const [error, setError] = useState<unknown>(null);
  const items = users.data?.items ?? [];
  const refresh = () => client.invalidateQueries({ queryKey: keys.users });

  const update = async (u: ManagedUser, change: { role?: string; disabled?: boolean }) => {
    setError(null);
    try {
      await fleetApi.updateUser(u.id, change);
      await refresh();
    } catch (e) {
      setError(e);
    }
  };
  const sortBy = (field: string) => {
    const nextOrder = sort === field && order === "asc" ? "desc" : "asc";
    set({ sort: field === "username" ? "" : field, order: nextOrder === "asc" ? "" : "desc" });
  };
  const header = (field: string, label: string) => (
    <TableCell sortDirection={sort === field ? order : false}>
      <TableSortLabel active={sort === field} direction={sort === field ? order : "asc"} onClick={() => sortBy(field)}>
        {label}
      </TableSortLabel>
    </TableCell>
  );

  return (
    <>
      <PageHeader
        title="Users"
        subtitle="Who may sign in, and with which role."
        actions={
          <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
            New user
          </Button>
        }
      />
      {created && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setCreated(null)}>
          <AlertTitle>Created {created.user.username}</AlertTitle>
          {created.password ? (
            <>
              Give them this initial password; it is shown only now. They must change it at first sign-in.
              <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mt: 1 }}>
                <Box component="code" aria-label="Initial password" sx={{ fontFamily: MONO_FONTS, p: 0.5, bgcolor: "background.paper", borderRadius: 1 }}>
                  {created.password}
                </Box>
                <CopyButton text={created.password} label="Copy password" />
              </Box>
            </>
          ) : (
            "They must change the password you set at first sign-in."
          )}
        </Alert>
      )}
      <Stack direction={{ xs: "column", sm: "row" }} spacing={1.5} sx={{ mb: 2 }} role="search" aria-label="Filter users">
        <TextField label="Search" placeholder="Username or display name" size="small" value={search} onChange={(e) => setSearch(e.target.value)} sx={{ m: 0 }} />
        <TextField select label="Role" size="small" value={get("role")} onChange={(e) => set({ role: e.target.value })} sx={{ m: 0, minWidth: 160 }}>
          <MenuItem value="">Any</MenuItem>
          {ROLES.map((r) => (
            <MenuItem key={r} value={r}>
              {r}
            </MenuItem>
          ))}
        </TextField>
      </Stack>
      <FormError error={error} />
      <Box sx={{ mt: error ? 2 : 0 }}>
        <ListCard>
          <ListBody
            query={users}
            what="users"
            isEmpty={items.length === 0}
            empty={<EmptyState title="No user matches">Change the search or the role filter.</EmptyState>}
          >
            <ScrollTable label="Users">
              <Table size="small" aria-label="Users">
                <TableHead>
                  <TableRow>
                    {header("username", "User")}
                    <TableCell>Role</TableCell>
                    <TableCell>Sign-in</TableCell>
                    <TableCell>State</TableCell>
                    {header("last_login_at", "Last sign-in")}
                    {header("created_at", "Created")}
                    <TableCell align="right">Actions</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {items.map((u) => {
                    const self = u.id === me.data?.user.id;
                    return (
                      <TableRow key={u.id}>
                        <TableCell>
                          {u.username}
                          {self ? " (you)" : ""}
                          {u.display_name && (
                            <Typography variant="caption" component="div" color="text.secondary">
                              {u.display_name}
                            </Typography>
                          )}
                        </TableCell>
                        <TableCell>
                          <TextField
                            select
                            size="small"
                            value={u.role}
                            onChange={(e) => void update(u, { role: e.target.value })}
                            disabled={self}
                            inputProps={{ "aria-label": `Role of ${u.username}` }}
                            sx={{ m: 0, minWidth: 120 }}
                          >
                            {ROLES.map((r) => (
                              <MenuItem key={r} value={r}>
                                {r}
                              </MenuItem>
                            ))}
                          </TextField>
                        </TableCell>
                        <TableCell>
                          {u.auth_source === "oidc" ? "single sign-on" : "password"}
                          {u.totp_enabled ? " + MFA" : ""}
                        </TableCell>
                        <TableCell>
                          <Stack direction="row" spacing={0.5}>
                            {u.disabled && <Chip size="small" color="default" label="disabled" />}
                            {u.locked_until && <Chip size="small" color="warning" label="locked" />}
                            {u.must_change_password && <Chip size="small" variant="outlined" label="must change password" />}
                            {!u.disabled && !u.locked_until && !u.must_change_password && <Chip size="small" color="success" variant="outlined" label="active" />}
                          </Stack>
                        </TableCell>
                        <TableCell>
                          <DateTime value={u.last_login_at} empty="never" />
                        </TableCell>
                        <TableCell>
                          <DateTime value={u.created_at} />
                        </TableCell>
                        <TableCell align="right">
                          {!self &&
                            (u.disabled ? (
                              <Button size="small" onClick={() => void update(u, { disabled: false })} aria-label={`Enable ${u.username}`}>
                                Enable
                              </Button>
                            ) : (
                              <Button size="small" color="error" onClick={() => setDisabling(u)} aria-label={`Disable ${u.username}`}>
                                Disable
                              </Button>
                            ))}
                        </TableCell>
                      </TableRow>
                    );
                  })}
                </TableBody>
              </Table>
            </ScrollTable>
          </ListBody>
          {users.data && users.data.total > PAGE && (
            <Pager total={users.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
          )}
        </ListCard>
      </Box>
      <CreateUserDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(u) => {
          setCreating(false);
          setCreated(u);
          void refresh();
        }}
      />
      <ConfirmDialog
        open={disabling !== null}
        title={`Disable ${disabling?.username ?? ""}?`}
        description="They cannot sign in any more, and their sessions and API tokens stop working. You can enable the account again later"
        confirmLabel="Disable"
        onClose={() => setDisabling(null)}
        onConfirm={async () => {
          if (!disabling) return;
          await fleetApi.updateUser(disabling.id, { disabled: true });
          setDisabling(null);
          await refresh();
        }}
      />
    </>
  );
}
