import { useState, type FormEvent, type ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  AlertTitle,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  MenuItem,
  Skeleton,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from "@mui/material";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { authApi } from "../api/auth";
import { isApiError } from "../api/client";
import type { ApiTokenView, CreatedApiToken, SessionView } from "../api/types";
import { useMe, useSignOut } from "../auth/session";
import { ChangePasswordForm } from "../components/ChangePasswordForm";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError, sentence } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { MONO_FONTS } from "../theme";

export const sessionsKey = ["auth", "sessions"] as const;
export const tokensKey = ["auth", "tokens"] as const;

function TableSkeleton({ label, rows = 3 }: { label: string; rows?: number }) {
  return (
    <Box aria-busy="true" aria-label={label} sx={{ mt: 1 }}>
      {Array.from({ length: rows }, (_, i) => (
        <Skeleton key={i} height={44} />
      ))}
    </Box>
  );
}

function SectionCard({ title, subtitle, children }: { title: string; subtitle?: string; children: ReactNode }) {
  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h6" component="h2" sx={{ mb: subtitle ? 0 : 1 }}>
          {title}
        </Typography>
        {subtitle && (
          <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
            {subtitle}
          </Typography>
        )}
        {children}
      </CardContent>
    </Card>
  );
}

function Profile() {
  const me = useMe();
  if (!me.data) return null;
  const { user, mfa } = me.data;
  const rows: [string, ReactNode][] = [
    ["Username", user.username],
    ["Display name", user.display_name || "—"],
    ["Role", user.role],
    ["Signs in with", user.auth_source === "oidc" ? "Single sign-on" : "Password"],
    ["Two-factor", mfa.length > 0 ? mfa.map((m) => (m === "totp" ? "authenticator app" : "passkey")).join(", ") : "not set up"],
    ["Last sign-in", <DateTime key="l" value={user.last_login_at} empty="—" />],
  ];
  return (
    <SectionCard title="Profile">
      <Box component="dl" sx={{ display: "grid", gridTemplateColumns: "max-content 1fr", columnGap: 3, rowGap: 0.75, m: 0 }}>
        {rows.map(([k, v]) => (
          <Box key={k} sx={{ display: "contents" }}>
            <Typography component="dt" variant="body2" color="text.secondary">
              {k}
            </Typography>
            <Typography component="dd" variant="body2" sx={{ m: 0, overflowWrap: "anywhere" }}>
              {v}
            </Typography>
          </Box>
        ))}
      </Box>
      <Button component={RouterLink} to="/account/mfa" variant="outlined" sx={{ mt: 2 }}>
        Manage two-factor authentication
      </Button>
    </SectionCard>
  );
}

function ChangePassword() {
  const me = useMe();
  const [done, setDone] = useState(false);
  if (!me.data) return null;
  if (me.data.user.auth_source === "oidc") {
    return (
      <SectionCard title="Password">
        <Typography variant="body2" color="text.secondary">
          You sign in with single sign-on; your password is managed by your identity provider.
        </Typography>
      </SectionCard>
    );
  }
  return (
    <SectionCard title="Password" subtitle="Changing it signs out your other sessions.">
      {done && (
        <Alert severity="success" sx={{ mt: 1 }} onClose={() => setDone(false)}>
          Password changed. Your other sessions were signed out.
        </Alert>
      )}
      <Box sx={{ maxWidth: 420 }}>
        <ChangePasswordForm username={me.data.user.username} onDone={() => setDone(true)} />
      </Box>
    </SectionCard>
  );
}

function Sessions() {
  const client = useQueryClient();
  const signOut = useSignOut();
  const sessions = useQuery({ queryKey: sessionsKey, queryFn: ({ signal }) => authApi.sessions(signal) });
  const [revoking, setRevoking] = useState<SessionView | null>(null);
  let body: ReactNode;
  if (sessions.isPending) body = <TableSkeleton label="Loading sessions" />;
  else if (sessions.isError)
    body = <ErrorPanel error={sessions.error} title="Could not load your sessions" onRetry={() => void sessions.refetch()} />;
  else {
    const active = sessions.data.filter((s) => !s.revoked);
    body =
      active.length === 0 ? (
        <EmptyState title="No active sessions">Sessions appear here when you sign in from a browser.</EmptyState>
      ) : (
        <TableContainer>
          <Table size="small" aria-label="Your sessions">
            <TableHead>
              <TableRow>
                <TableCell>Browser</TableCell>
                <TableCell>Address</TableCell>
                <TableCell>Signed in</TableCell>
                <TableCell>Last used</TableCell>
                <TableCell>Expires</TableCell>
                <TableCell>Second factor</TableCell>
                <TableCell align="right">
                  <Box component="span" sx={visuallyHidden}>
                    Actions
                  </Box>
                </TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {active.map((s) => (
                <TableRow key={s.id}>
                  <TableCell sx={{ maxWidth: 280, overflowWrap: "anywhere" }}>
                    {s.user_agent || "Unknown browser"}
                    {s.current && <Chip size="small" color="primary" label="This session" sx={{ ml: 1 }} />}
                  </TableCell>
                  <TableCell>{s.source_ip ?? "—"}</TableCell>
                  <TableCell>
                    <DateTime value={s.created_at} />
                  </TableCell>
                  <TableCell>
                    <DateTime value={s.last_used_at} />
                  </TableCell>
                  <TableCell>
                    <DateTime value={s.expires_at} />
                  </TableCell>
                  <TableCell>{describeMfaMethod(s.mfa_method ?? null)}</TableCell>
                  <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>
                    {s.current ? (
                      <Button size="small" onClick={() => void signOut()}>
                        Sign out
                      </Button>
                    ) : (
                      <Button size="small" color="error" onClick={() => setRevoking(s)} aria-label={`Sign out session ${s.id}`}>
                        Sign out
                      </Button>
                    )}
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </TableContainer>
      );
  }
  return (
    <SectionCard title="Sessions" subtitle="Browsers signed in to your account. Sign out any you do not recognise.">
      {body}
      <ConfirmDialog
        open={revoking !== null}
        title="Sign out this session?"
        description={`The browser "${revoking?.user_agent ?? "unknown"}" will have to sign in again.`}
        confirmLabel="Sign out"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await authApi.revokeSession(revoking.id);
          setRevoking(null);
          await client.invalidateQueries({ queryKey: sessionsKey });
        }}
      />
    </SectionCard>
  );
}

function describeMfaMethod(method: string | null): string {
  switch (method) {
    case null:
      return "none";
    case "totp":
      return "authenticator app";
    case "recovery_code":
      return "recovery code";
    default:
      return method;
  }
}

const visuallyHidden = {
  border: 0,
  clip: "rect(0 0 0 0)",
  height: "1px",
  margin: "-1px",
  overflow: "hidden",
  padding: 0,
  position: "absolute",
  whiteSpace: "nowrap",
  width: "1px",
} as const;

const EXPIRY_CHOICES = [7, 30, 90, 180, 365];

function NewToken({ onCreated }: { onCreated: (t: CreatedApiToken) => void }) {
  const [label, setLabel] = useState("");
  const [days, setDays] = useState(90);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await authApi.createToken({ label: label.trim(), expires_in_days: days }));
      setLabel("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const field = isApiError(error) ? error.field : undefined;
  const fieldMessage = isApiError(error) ? sentence(error.message.replace(/^[a-z_]+: /, "")) : undefined;
  return (
    <Box component="form" onSubmit={(e) => void submit(e)} sx={{ mt: 2 }}>
      <Typography variant="subtitle2" component="h3">
        New token
      </Typography>
      <Stack direction={{ xs: "column", sm: "row" }} spacing={{ sm: 2 }} alignItems={{ sm: "flex-start" }}>
        <TextField
          label="What it is for"
          placeholder="e.g. prometheus, backup script"
          required
          value={label}
          onChange={(e) => setLabel(e.target.value)}
          error={field === "label"}
          helperText={field === "label" ? fieldMessage : "1 to 100 characters."}
          inputProps={{ maxLength: 100 }}
          sx={{ flex: 2 }}
        />
        <TextField
          select
          label="Expires after"
          value={days}
          onChange={(e) => setDays(Number(e.target.value))}
          error={field === "expires_in_days"}
          helperText={field === "expires_in_days" ? fieldMessage : " "}
          sx={{ flex: 1, minWidth: 160 }}
        >
          {EXPIRY_CHOICES.map((d) => (
            <MenuItem key={d} value={d}>
              {d} days
            </MenuItem>
          ))}
        </TextField>
      </Stack>
      {field !== "label" && field !== "expires_in_days" && <FormError error={error} />}
      <Button type="submit" variant="outlined" disabled={busy || !label.trim()} sx={{ mt: 1 }}>
        {busy ? "Creating…" : "Create token"}
      </Button>
    </Box>
  );
}

function ApiTokens() {
  const client = useQueryClient();
  const tokens = useQuery({ queryKey: tokensKey, queryFn: ({ signal }) => authApi.tokens(signal) });
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const [revoking, setRevoking] = useState<ApiTokenView | null>(null);
  let body: ReactNode;
  if (tokens.isPending) body = <TableSkeleton label="Loading API tokens" rows={2} />;
  else if (tokens.isError)
    body = <ErrorPanel error={tokens.error} title="Could not load your API tokens" onRetry={() => void tokens.refetch()} />;
  else if (tokens.data.length === 0)
    body = (
      <EmptyState title="No API tokens">
        Create one below for a script or a monitoring system. It acts with your role and never needs your password.
      </EmptyState>
    );
  else
    body = (
      <TableContainer>
        <Table size="small" aria-label="Your API tokens">
          <TableHead>
            <TableRow>
              <TableCell>Label</TableCell>
              <TableCell>Created</TableCell>
              <TableCell>Expires</TableCell>
              <TableCell>Last used</TableCell>
              <TableCell>Status</TableCell>
              <TableCell align="right">
                <Box component="span" sx={visuallyHidden}>
                  Actions
                </Box>
              </TableCell>
            </TableRow>
          </TableHead>
          <TableBody>
            {tokens.data.map((t) => {
              const expired = new Date(t.expires_at).getTime() < Date.now();
              return (
                <TableRow key={t.id}>
                  <TableCell sx={{ overflowWrap: "anywhere" }}>{t.label}</TableCell>
                  <TableCell>
                    <DateTime value={t.created_at} />
                  </TableCell>
                  <TableCell>
                    <DateTime value={t.expires_at} />
                  </TableCell>
                  <TableCell>
                    <DateTime value={t.last_used_at} empty="never" />
                  </TableCell>
                  <TableCell>
                    {t.revoked ? (
                      <Chip size="small" label="Revoked" />
                    ) : expired ? (
                      <Chip size="small" color="warning" label="Expired" />
                    ) : (
                      <Chip size="small" color="success" label="Active" />
                    )}
                  </TableCell>
                  <TableCell align="right" sx={{ whiteSpace: "nowrap" }}>
                    {!t.revoked && (
                      <Button size="small" color="error" onClick={() => setRevoking(t)} aria-label={`Revoke token ${t.label}`}>
                        Revoke
                      </Button>
                    )}
                  </TableCell>
                </TableRow>
              );
            })}
          </TableBody>
        </Table>
      </TableContainer>
    );
  return (
    <SectionCard
      title="Personal API tokens"
      subtitle="For scripts and tools: send as “Authorization: Bearer <token>”. A token has your rights, no more."
    >
      {created && (
        <Alert severity="warning" sx={{ my: 2 }} onClose={() => setCreated(null)}>
          <AlertTitle>Copy the token “{created.label}” now</AlertTitle>
          It is shown only this once.
          <Stack direction={{ xs: "column", sm: "row" }} spacing={1} alignItems={{ sm: "center" }} sx={{ mt: 1 }}>
            <Box
              component="code"
              aria-label="New API token"
              sx={{ fontFamily: MONO_FONTS, wordBreak: "break-all", p: 1, bgcolor: "action.hover", borderRadius: 1 }}
            >
              {created.token}
            </Box>
            <CopyButton text={created.token} label="Copy token" />
          </Stack>
        </Alert>
      )}
      {body}
      <NewToken
        onCreated={(t) => {
          setCreated(t);
          void client.invalidateQueries({ queryKey: tokensKey });
        }}
      />
      <ConfirmDialog
        open={revoking !== null}
        title="Revoke this token?"
        description={`Anything using “${revoking?.label ?? ""}” will stop working at once.`}
        confirmLabel="Revoke"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await authApi.revokeToken(revoking.id);
          setRevoking(null);
          await client.invalidateQueries({ queryKey: tokensKey });
        }}
      />
    </SectionCard>
  );
}

/** The signed-in user's own account: profile, password, sessions, API tokens. */
export function AccountPage() {
  return (
    <>
      <PageHeader title="Account" subtitle="Your profile, password, sessions and API tokens." />
      <Stack spacing={2}>
        <Profile />
        <ChangePassword />
        <Sessions />
        <ApiTokens />
      </Stack>
    </>
  );
}
