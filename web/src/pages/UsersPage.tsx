import { useEffect, useId, useMemo, useState, type FormEvent } from "react";
import { Link as RouterLink } from "react-router-dom";
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
  FormControlLabel,
  IconButton,
  ListItemText,
  Menu,
  MenuItem,
  Radio,
  RadioGroup,
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
import MoreVertIcon from "@mui/icons-material/MoreVert";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys, type CreatedUser, type ManagedUser, type UserListQuery } from "../api/fleet";
import { useMe } from "../auth/session";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { FormError, describeError, requestIdOf } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { ListBody, ListCard, Pager, ScrollTable } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { useSearchBox, useUrlParams } from "../urlState";
import { activeSessions, userKeys, usersApi } from "../api/users";

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

type RowAction = "password" | "mfa" | "sessions";

/** What an admin may do to another account from its row: SSO accounts have no local password, a disabled one has no sessions. */
function rowActions(u: ManagedUser): RowAction[] {
  const actions: RowAction[] = [];
  if (u.auth_source === "local") actions.push("password");
  actions.push("mfa");
  if (!u.disabled) actions.push("sessions");
  return actions;
}

const ACTION_LABEL: Record<RowAction, string> = {
  password: "Reset password…",
  mfa: "Reset MFA…",
  sessions: "Sign out everywhere…",
};

function UserActionsMenu({ user, onAction }: { user: ManagedUser; onAction: (a: RowAction) => void }) {
  const [anchor, setAnchor] = useState<HTMLElement | null>(null);
  const id = useId();
  const open = anchor !== null;
  return (
    <>
      <IconButton
        size="small"
        aria-label={`More actions for ${user.username}`}
        aria-haspopup="menu"
        aria-expanded={open ? "true" : undefined}
        aria-controls={open ? id : undefined}
        onClick={(e) => setAnchor(e.currentTarget)}
      >
        <MoreVertIcon fontSize="small" />
      </IconButton>
      <Menu
        id={id}
        anchorEl={anchor}
        open={open}
        onClose={() => setAnchor(null)}
        anchorOrigin={{ vertical: "bottom", horizontal: "right" }}
        transformOrigin={{ vertical: "top", horizontal: "right" }}
        MenuListProps={{ "aria-label": `Actions for ${user.username}` }}
      >
        {rowActions(user).map((a) => (
          <MenuItem
            key={a}
            onClick={() => {
              setAnchor(null);
              onAction(a);
            }}
          >
            <ListItemText>{ACTION_LABEL[a]}</ListItemText>
          </MenuItem>
        ))}
      </Menu>
    </>
  );
}

/** A password set by an admin: the generated one is kept only here until dismissed. */
interface PasswordReset {
  username: string;
  password: string | null;
}

function ResetPasswordDialog({ user, onClose, onDone }: { user: ManagedUser | null; onClose: () => void; onDone: (r: PasswordReset) => void }) {
  const [mode, setMode] = useState<"generate" | "type">("generate");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (user) {
      setMode("generate");
      setPassword("");
      setError(null);
    }
  }, [user]);
  const field = isApiError(error) ? error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!user) return;
    setBusy(true);
    setError(null);
    try {
      const answer = await usersApi.setPassword(user.id, { password: mode === "type" ? password : null });
      setPassword("");
      onDone({ username: user.username, password: answer.password ?? null });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={user !== null} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="reset-password-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="reset-password-title">Reset the password of {user?.username ?? ""}?</DialogTitle>
        <DialogContent>
          <DialogContentText>
            They must change it at their next sign-in. Their sessions end now, and a locked account is unlocked. Their MFA stays as it is.
          </DialogContentText>
          <RadioGroup value={mode} onChange={(e) => setMode(e.target.value === "type" ? "type" : "generate")} aria-label="How to set the new password" sx={{ mt: 1 }}>
            <FormControlLabel value="generate" control={<Radio />} label="Generate one and show it to me once" />
            <FormControlLabel value="type" control={<Radio />} label="Type one" />
          </RadioGroup>
          {mode === "type" && (
            <TextField
              label="New password"
              type="password"
              autoComplete="new-password"
              required
              autoFocus
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              helperText="At least 12 characters."
              error={field === "password"}
            />
          )}
          <FormError error={error} />
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" color="error" disabled={busy || (mode === "type" && !password)}>
            {busy ? "Working…" : "Reset password"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** "Sign out everywhere", saying how many sessions are active (read when the dialog opens). */
function SignOutDialog({ user, onClose, onDone }: { user: ManagedUser | null; onClose: () => void; onDone: (u: ManagedUser) => void }) {
  const sessions = useQuery({
    queryKey: userKeys.sessions(user?.id ?? 0),
    queryFn: ({ signal }) => usersApi.sessions(user!.id, signal),
    enabled: user !== null,
    staleTime: 0,
    retry: false,
  });
  const name = user?.username ?? "";
  const end = "Ending them signs them out of every browser now; they can sign in again. Their API tokens keep working";
  let description: string;
  if (sessions.isPending) description = `Counting the active sessions of ${name}… ${end}`;
  else if (sessions.isError) {
    const rid = requestIdOf(sessions.error);
    description = `The active sessions of ${name} could not be counted: ${describeError(sessions.error)}${rid ? ` (Request id: ${rid}.)` : ""} ${end}`;
  }
  else {
    const n = activeSessions(sessions.data).length;
    description =
      n === 0
        ? `There is no active session of ${name} to end, but you can still make sure. ${end}`
        : `There ${n === 1 ? "is" : "are"} ${plural(n, "active session", "active sessions")} of ${name}. ${end}`;
  }
  return (
    <ConfirmDialog
      open={user !== null}
      title={`Sign ${name} out everywhere?`}
      description={description}
      confirmLabel="Sign out everywhere"
      onClose={onClose}
      onConfirm={async () => {
        if (!user) return;
        await usersApi.revokeSessions(user.id);
        onDone(user);
      }}
    />
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
  const [action, setAction] = useState<{ kind: RowAction; user: ManagedUser } | null>(null);
  const [passwordReset, setPasswordReset] = useState<PasswordReset | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const actionUser = (kind: RowAction) => (action?.kind === kind ? action.user : null);
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
      {passwordReset && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setPasswordReset(null)}>
          <AlertTitle>New password for {passwordReset.username}</AlertTitle>
          {passwordReset.password ? (
            <>
              Give them this password; it is shown only now. They must change it at their next sign-in.
              <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap", mt: 1 }}>
                <Box component="code" aria-label="New password" sx={{ fontFamily: MONO_FONTS, p: 0.5, bgcolor: "background.paper", borderRadius: 1 }}>
                  {passwordReset.password}
                </Box>
                <CopyButton text={passwordReset.password} label="Copy password" />
              </Box>
            </>
          ) : (
            "They must change the password you set at their next sign-in."
          )}
        </Alert>
      )}
      {notice && (
        <Alert severity="success" sx={{ mb: 2 }} onClose={() => setNotice(null)}>
          {notice}
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
                        <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>
                          {self ? (
                            <Button size="small" component={RouterLink} to="/account">
                              Your account
                            </Button>
                          ) : (
                            <>
                              {u.disabled ? (
                                <Button size="small" onClick={() => void update(u, { disabled: false })} aria-label={`Enable ${u.username}`}>
                                  Enable
                                </Button>
                              ) : (
                                <Button size="small" color="error" onClick={() => setDisabling(u)} aria-label={`Disable ${u.username}`}>
                                  Disable
                                </Button>
                              )}
                              <UserActionsMenu
                                user={u}
                                onAction={(kind) => {
                                  setError(null);
                                  setNotice(null);
                                  setPasswordReset(null);
                                  setAction({ kind, user: u });
                                }}
                              />
                            </>
                          )}
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
      <ResetPasswordDialog
        user={actionUser("password")}
        onClose={() => setAction(null)}
        onDone={(r) => {
          setAction(null);
          setPasswordReset(r);
          void refresh();
        }}
      />
      <ConfirmDialog
        open={action?.kind === "mfa"}
        title={`Reset the MFA of ${action?.user.username ?? ""}?`}
        description={`This removes every second factor of ${action?.user.username ?? ""}: the authenticator app (TOTP), all passkeys and the recovery codes. Use it when they lost their phone or security key. Their password and sessions stay; where MFA is required they set it up again at their next sign-in`}
        confirmLabel="Reset MFA"
        onClose={() => setAction(null)}
        onConfirm={async () => {
          if (action?.kind !== "mfa") return;
          await usersApi.resetMfa(action.user.id);
          setAction(null);
          setNotice(`Removed the second factors of ${action.user.username}.`);
          await refresh();
        }}
      />
      <SignOutDialog
        user={actionUser("sessions")}
        onClose={() => setAction(null)}
        onDone={(u) => {
          setAction(null);
          setNotice(`Signed ${u.username} out everywhere.`);
          void client.invalidateQueries({ queryKey: userKeys.sessions(u.id) });
        }}
      />
    </>
  );
}
