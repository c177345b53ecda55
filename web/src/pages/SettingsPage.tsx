import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControlLabel,
  MenuItem,
  Link,
  Skeleton,
  Stack,
  Switch,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from "@mui/material";
import CheckIcon from "@mui/icons-material/Check";
import RefreshIcon from "@mui/icons-material/Refresh";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { notificationKeys, notificationsApi } from "../api/notifications";
import {
  DAY,
  HOUR,
  MINUTE,
  formatDuration,
  settingsApi,
  settingsKeys,
  type BooleanSetting,
  type ManagerConfigView,
  type Settings,
  type SsoSettingsInput,
  type SsoSettingsView,
} from "../api/settings";
import { CopyButton } from "../components/CopyButton";
import { ErrorPanel, FormError, describeError, requestIdOf } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ScrollTable } from "../components/tables";
import { MONO_FONTS } from "../theme";

/** A titled card; the title is the section's heading. */
export function Section({ id, title, subtitle, children }: { id: string; title: string; subtitle?: ReactNode; children: ReactNode }) {
  return (
    <Card variant="outlined" component="section" aria-labelledby={id}>
      <CardContent>
        <Typography variant="h6" component="h2" id={id} sx={{ fontWeight: 600 }}>
          {title}
        </Typography>
        {subtitle && (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 0.5 }}>
            {subtitle}
          </Typography>
        )}
        <Box sx={{ mt: 2 }}>{children}</Box>
      </CardContent>
    </Card>
  );
}

/** Label / value pairs as a description list; values are text. */
export function Facts({ rows, label }: { rows: [string, ReactNode][]; label: string }) {
  return (
    <Box
      component="dl"
      aria-label={label}
      sx={{
        m: 0,
        display: "grid",
        gridTemplateColumns: { xs: "1fr", sm: "minmax(160px, max-content) 1fr" },
        columnGap: 3,
        rowGap: { xs: 0.25, sm: 1 },
        "& dt": { color: "text.secondary", typography: "body2", mt: { xs: 1, sm: 0 } },
        "& dd": { m: 0, typography: "body2", overflowWrap: "anywhere", minWidth: 0 },
      }}
    >
      {rows.map(([k, v]) => (
        <Box key={k} sx={{ display: "contents" }}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </Box>
      ))}
    </Box>
  );
}

const SECURITY: { key: BooleanSetting; label: string; help: ReactNode }[] = [
  {
    key: "mfa_required",
    label: "MFA required for local accounts",
    help: "Local accounts must set up a second factor (an authenticator app or a passkey) before they can use anything else. Accounts that sign in through single sign-on are not affected.",
  },
  {
    key: "enrollment_requires_approval",
    label: "Enrollment requires approval",
    help: (
      <>
        New agents wait on the{" "}
        <Link component={RouterLink} to="/enrollments">
          Enrollments
        </Link>{" "}
        page until an administrator approves them. Off: an agent with a valid registration token is accepted at once.
      </>
    ),
  },
  {
    key: "deployments_require_approval",
    label: "Every deployment needs approval",
    help: "Every deployment's plan waits for an approver (an administrator, or an operator other than its creator) before it runs. Off: only deployments to groups whose deployment policy asks for approval wait.",
  },
];

/** One switch: saved on change, with "Saved", or the error and Retry. */
function SettingSwitch({ setting, current }: { setting: (typeof SECURITY)[number]; current: boolean }) {
  const client = useQueryClient();
  const [pending, setPending] = useState<boolean | null>(null);
  const [saved, setSaved] = useState(false);
  const [failed, setFailed] = useState<{ error: unknown; value: boolean } | null>(null);
  const save = async (value: boolean) => {
    setPending(value);
    setSaved(false);
    setFailed(null);
    try {
      const next = await settingsApi.patch({ [setting.key]: value });
      client.setQueryData<Settings>(settingsKeys.settings, next);
      setSaved(true);
    } catch (error) {
      setFailed({ error, value });
    } finally {
      setPending(null);
    }
  };
  const helpId = `setting-${setting.key}-help`;
  return (
    <Box sx={{ py: 1.5, "&:not(:last-of-type)": { borderBottom: 1, borderColor: "divider" } }}>
      <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "center", gap: 1 }}>
        <FormControlLabel
          sx={{ flexGrow: 1, mr: 0 }}
          control={
            <Switch
              checked={pending ?? current}
              disabled={pending !== null}
              onChange={(e) => void save(e.target.checked)}
              inputProps={{ "aria-describedby": helpId }}
            />
          }
          label={setting.label}
        />
        <Box aria-live="polite" sx={{ minHeight: 24, display: "flex", alignItems: "center" }}>
          {pending !== null && (
            <Typography variant="body2" color="text.secondary">
              Saving…
            </Typography>
          )}
          {saved && pending === null && (
            <Typography variant="body2" color="success.main" sx={{ display: "flex", alignItems: "center", gap: 0.5 }}>
              <CheckIcon fontSize="small" /> Saved
            </Typography>
          )}
        </Box>
      </Box>
      <Typography variant="body2" color="text.secondary" id={helpId} sx={{ pl: { sm: 6 } }}>
        {setting.help}
      </Typography>
      {failed && (
        <Alert
          severity="error"
          role="alert"
          sx={{ mt: 1 }}
          action={
            <Button color="inherit" size="small" startIcon={<RefreshIcon />} onClick={() => void save(failed.value)}>
              Retry
            </Button>
          }
        >
          Could not {failed.value ? "turn on" : "turn off"} “{setting.label}”: {describeError(failed.error)}
          {requestIdOf(failed.error) && (
            <Box component="div" sx={{ mt: 0.5, fontSize: "0.8125rem", opacity: 0.85 }}>
              Request id: <code>{requestIdOf(failed.error)}</code>
            </Box>
          )}
        </Alert>
      )}
    </Box>
  );
}

function SecuritySection() {
  const settings = useQuery({ queryKey: settingsKeys.settings, queryFn: ({ signal }) => settingsApi.get(signal) });
  return (
    <Section id="settings-security" title="Security" subtitle="Saved as soon as you switch them; they apply at once to every manager process.">
      {settings.isPending ? (
        <Box role="status" aria-busy="true" aria-label="Loading the security settings">
          {SECURITY.map((s) => (
            <Skeleton key={s.key} height={56} />
          ))}
        </Box>
      ) : settings.isError ? (
        <ErrorPanel error={settings.error} title="Could not load the settings" onRetry={() => void settings.refetch()} />
      ) : (
        <Box>
          {SECURITY.map((s) => (
            <SettingSwitch key={s.key} setting={s} current={settings.data[s.key]} />
          ))}
        </Box>
      )}
    </Section>
  );
}

function listOrNone(values: string[]): string {
  return values.length ? values.join(", ") : "none";
}

function roleMapRows(map: Record<string, unknown>): [string, ReactNode][] {
  return (["admin", "operator", "viewer"] as const).map((role) => {
    const v = map[role];
    const values = Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
    return [`Claim values for ${role}`, listOrNone(values)];
  });
}

export function SsoFacts({ sso }: { sso: SsoSettingsView }) {
  const configured = sso.issuer_url !== "" || sso.client_id !== "";
  return (
    <Stack spacing={2}>
      <Box sx={{ display: "flex", gap: 1, alignItems: "center", flexWrap: "wrap" }}>
        <Chip
          size="small"
          variant="outlined"
          color={sso.enabled ? "success" : "default"}
          label={sso.enabled ? "Enabled" : configured ? "Disabled" : "Not set up"}
        />
        <Typography variant="body2" color="text.secondary">
          {sso.enabled
            ? `The sign-in page offers “${sso.name}”.`
            : configured
              ? "Configured, but the sign-in page does not offer it."
              : "Users sign in with local accounts only."}
        </Typography>
      </Box>
      {configured && (
        <Facts
          label="Single sign-on settings"
          rows={[
            ["Button label", sso.name || "—"],
            ["Issuer URL", sso.issuer_url || "—"],
            ["Client ID", sso.client_id || "—"],
            ["Client secret", sso.client_secret_set ? "set" : "not set"],
            ["Scopes", listOrNone(sso.scopes)],
            ["Role claim", sso.role_claim || "—"],
            ["Group claim", sso.group_claim || "—"],
            ...roleMapRows(sso.role_map),
            ["Users no claim maps", sso.default_role ? `get the ${sso.default_role} role` : "are refused"],
            ["Extra CA certificate", sso.ca_pem ? "set" : "none"],
            ["Plain-HTTP provider allowed", sso.allow_insecure_http ? "yes (development only)" : "no"],
          ]}
        />
      )}
      <Box>
        <Typography variant="body2" color="text.secondary" sx={{ mb: 0.5 }}>
          The callback (redirect) URL to register at the identity provider:
        </Typography>
        <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center" }}>
          <Box component="code" sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem", overflowWrap: "anywhere" }}>
            {sso.redirect_url}
          </Box>
          <CopyButton text={sso.redirect_url} label="Copy callback URL" />
        </Box>
      </Box>
    </Stack>
  );
}

const words = (text: string) => text.split(/[\s,]+/).filter((w) => w !== "");

function roleList(map: Record<string, unknown>, role: string): string {
  const v = map[role];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").join(", ") : "";
}

interface SsoDraft {
  enabled: boolean;
  name: string;
  issuer_url: string;
  client_id: string;
  client_secret: string;
  scopes: string;
  role_claim: string;
  group_claim: string;
  admin: string;
  operator: string;
  viewer: string;
  default_role: string;
  ca_pem: string;
  allow_insecure_http: boolean;
}

function ssoDraftOf(s: SsoSettingsView): SsoDraft {
  return {
    enabled: s.enabled,
    name: s.name,
    issuer_url: s.issuer_url,
    client_id: s.client_id,
    client_secret: "",
    scopes: s.scopes.join(" "),
    role_claim: s.role_claim,
    group_claim: s.group_claim,
    admin: roleList(s.role_map, "admin"),
    operator: roleList(s.role_map, "operator"),
    viewer: roleList(s.role_map, "viewer"),
    default_role: s.default_role ?? "",
    ca_pem: s.ca_pem ?? "",
    allow_insecure_http: s.allow_insecure_http,
  };
}

/** The PUT body: the secret only when a new one was typed (left out, the stored one stays). */
export function ssoInputOf(d: SsoDraft): SsoSettingsInput {
  const body: SsoSettingsInput = {
    enabled: d.enabled,
    name: d.name.trim(),
    issuer_url: d.issuer_url.trim(),
    client_id: d.client_id.trim(),
    scopes: words(d.scopes),
    role_claim: d.role_claim.trim(),
    group_claim: d.group_claim.trim(),
    role_map: { admin: words(d.admin), operator: words(d.operator), viewer: words(d.viewer) },
    default_role: d.default_role === "" ? null : d.default_role,
    ca_pem: d.ca_pem.trim() === "" ? null : d.ca_pem,
    allow_insecure_http: d.allow_insecure_http,
  };
  if (d.client_secret !== "") body.client_secret = d.client_secret;
  return body;
}

const SSO_FIELDS = ["name", "issuer_url", "client_id", "client_secret", "default_role", "ca_pem"];

function SsoDialog({ sso, open, onClose }: { sso: SsoSettingsView; open: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const [d, setD] = useState<SsoDraft>(() => ssoDraftOf(sso));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (open) {
      setD(ssoDraftOf(sso));
      setError(null);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);
  const upd = (patch: Partial<SsoDraft>) => setD((p) => ({ ...p, ...patch }));
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;
  const fp = (name: string, help?: ReactNode) => ({
    error: field === name,
    helperText: field === name && isApiError(error) ? error.message : help,
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      client.setQueryData(settingsKeys.sso, await settingsApi.setSso(ssoInputOf(d)));
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="sso-title">
      <form onSubmit={(e) => void submit(e)} noValidate>
        <DialogTitle id="sso-title">Single sign-on</DialogTitle>
        <DialogContent>
          <DialogContentText sx={{ mb: 2 }}>
            An OpenID Connect provider. When enabled, the manager contacts the provider before saving and refuses settings it cannot
            use.
          </DialogContentText>
          <Stack spacing={2}>
            <FormControlLabel control={<Switch checked={d.enabled} onChange={(e) => upd({ enabled: e.target.checked })} />} label="Offer single sign-on on the sign-in page" />
            <TextField label="Button label" required value={d.name} onChange={(e) => upd({ name: e.target.value })} inputProps={{ maxLength: 60 }} {...fp("name", "e.g. Company SSO (1–60 characters)")} />
            <TextField label="Issuer URL" required value={d.issuer_url} onChange={(e) => upd({ issuer_url: e.target.value })} inputProps={{ inputMode: "url" }} {...fp("issuer_url")} />
            <TextField label="Client ID" required value={d.client_id} onChange={(e) => upd({ client_id: e.target.value })} {...fp("client_id")} />
            <TextField
              label="Client secret"
              type="password"
              autoComplete="new-password"
              value={d.client_secret}
              onChange={(e) => upd({ client_secret: e.target.value })}
              {...fp("client_secret", sso.client_secret_set ? "Set. Leave empty to keep it; it is never shown." : "Not set. Required to enable single sign-on.")}
            />
            <TextField label="Scopes" value={d.scopes} onChange={(e) => upd({ scopes: e.target.value })} {...fp("scopes", "Separated by spaces")} />
            <Box sx={{ display: "flex", gap: 2, flexDirection: { xs: "column", sm: "row" } }}>
              <TextField label="Role claim" value={d.role_claim} onChange={(e) => upd({ role_claim: e.target.value })} fullWidth />
              <TextField label="Group claim" value={d.group_claim} onChange={(e) => upd({ group_claim: e.target.value })} fullWidth />
            </Box>
            <TextField label="Claim values for admin" value={d.admin} onChange={(e) => upd({ admin: e.target.value })} helperText="Separated by commas or spaces; the highest matching role wins" />
            <TextField label="Claim values for operator" value={d.operator} onChange={(e) => upd({ operator: e.target.value })} />
            <TextField label="Claim values for viewer" value={d.viewer} onChange={(e) => upd({ viewer: e.target.value })} />
            <TextField select label="Users no claim maps" value={d.default_role} onChange={(e) => upd({ default_role: e.target.value })} {...fp("default_role")}>
              <MenuItem value="">are refused</MenuItem>
              <MenuItem value="viewer">get the viewer role</MenuItem>
              <MenuItem value="operator">get the operator role</MenuItem>
              <MenuItem value="admin">get the admin role</MenuItem>
            </TextField>
            <TextField
              label="Extra CA certificate (PEM, optional)"
              multiline
              minRows={2}
              value={d.ca_pem}
              onChange={(e) => upd({ ca_pem: e.target.value })}
              inputProps={{ spellCheck: false, style: { fontFamily: MONO_FONTS, fontSize: "0.75rem" } }}
              {...fp("ca_pem", "For a provider whose certificate a private CA signed")}
            />
            <FormControlLabel
              control={<Switch checked={d.allow_insecure_http} onChange={(e) => upd({ allow_insecure_http: e.target.checked })} />}
              label="Allow a plain-HTTP provider (development only)"
            />
          </Stack>
          {!(field && SSO_FIELDS.includes(field)) && <FormError error={error} />}
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" disabled={busy}>
            {busy ? (d.enabled ? "Checking the provider…" : "Saving…") : "Save"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

function SsoSection() {
  const sso = useQuery({ queryKey: settingsKeys.sso, queryFn: ({ signal }) => settingsApi.sso(signal) });
  const [editing, setEditing] = useState(false);
  return (
    <Section id="settings-sso" title="Single sign-on" subtitle="Sign-in through an OpenID Connect identity provider.">
      {sso.isPending ? (
        <Box role="status" aria-busy="true" aria-label="Loading the single sign-on settings">
          <Skeleton height={32} width="40%" />
          <Skeleton height={120} />
        </Box>
      ) : sso.isError ? (
        <ErrorPanel error={sso.error} title="Could not load the single sign-on settings" onRetry={() => void sso.refetch()} />
      ) : (
        <>
          <SsoFacts sso={sso.data} />
          <Button variant="outlined" sx={{ mt: 2 }} onClick={() => setEditing(true)}>
            Edit single sign-on
          </Button>
          <SsoDialog sso={sso.data} open={editing} onClose={() => setEditing(false)} />
        </>
      )}
    </Section>
  );
}

function NotificationsSection() {
  const channels = useQuery({ queryKey: notificationKeys.channels, queryFn: ({ signal }) => notificationsApi.channels(signal) });
  const rules = useQuery({ queryKey: notificationKeys.rules, queryFn: ({ signal }) => notificationsApi.rules(signal) });
  const failedQuery = { status: "failed", limit: 1 };
  const failed = useQuery({
    queryKey: notificationKeys.deliveryList(failedQuery),
    queryFn: ({ signal }) => notificationsApi.deliveries(failedQuery, signal),
  });
  const queries = [channels, rules, failed];
  const firstError = queries.find((q) => q.isError);
  let body: ReactNode;
  if (queries.some((q) => q.isPending && !q.isError)) {
    body = <Skeleton height={48} aria-label="Loading the notification summary" />;
  } else if (firstError) {
    body = (
      <ErrorPanel
        error={firstError.error}
        title="Could not load the notification summary"
        onRetry={() => queries.filter((q) => q.isError).forEach((q) => void q.refetch())}
      />
    );
  } else {
    const ch = channels.data ?? [];
    const rl = rules.data ?? [];
    const enabledCh = ch.filter((c) => c.enabled).length;
    const enabledRl = rl.filter((r) => r.enabled).length;
    const failedCount = failed.data?.total ?? 0;
    body =
      ch.length === 0 ? (
        <Typography variant="body2">No channels yet: nobody is notified of failed deployments, unreachable hosts or expiring certificates.</Typography>
      ) : (
        <Stack spacing={1}>
          <Typography variant="body2">
            {ch.length} {ch.length === 1 ? "channel" : "channels"} ({enabledCh} enabled), {rl.length} {rl.length === 1 ? "rule" : "rules"} ({enabledRl}{" "}
            enabled).
          </Typography>
          {failedCount > 0 ? (
            <Alert severity="warning">
              {failedCount} {failedCount === 1 ? "delivery" : "deliveries"} failed for good. The notifications page says why.
            </Alert>
          ) : (
            <Typography variant="body2" color="text.secondary">
              No failed deliveries.
            </Typography>
          )}
        </Stack>
      );
  }
  return (
    <Section id="settings-notifications" title="Notifications" subtitle="E-mail and webhooks for failed deployments, unreachable hosts, the daily security digest and expiring certificates.">
      {body}
      <Button component={RouterLink} to="/notifications" variant="outlined" sx={{ mt: 2 }}>
        Open notifications
      </Button>
    </Section>
  );
}

type ConfigRow = { label: string; key: string; value: string };

/** The configuration file's values in words, with the key each comes from. */
export function configRows(c: ManagerConfigView): ConfigRow[] {
  const times = (n: number) => `${n} failed ${n === 1 ? "sign-in" : "sign-ins"} in a row`;
  return [
    { label: "Agent check-in interval (idle agents call this often; silent for two intervals is offline)", key: "agents.checkin_interval_secs", value: formatDuration(c.agents.checkin_interval_secs) },
    { label: "Push host health check", key: "push.health_interval_secs", value: `every ${formatDuration(c.push.health_interval_secs)}` },
    { label: "Push host inventory read", key: "push.inventory_interval_secs", value: `every ${formatDuration(c.push.inventory_interval_secs)}` },
    { label: "Job workers look for due jobs", key: "deployments.poll_interval_secs", value: `every ${formatDuration(c.deployments.poll_interval_secs)}` },
    { label: "Finished commands, deployments and jobs kept", key: "deployments.retention_days", value: formatDuration(c.deployments.retention_days * DAY) },
    { label: "Audit log kept", key: "audit.retention_days", value: formatDuration(c.audit.retention_days * DAY) },
    { label: "Sent and failed notifications kept", key: "notifications.retention_days", value: formatDuration(c.notifications.retention_days * DAY) },
    { label: "Access token lifetime", key: "auth.access_token_minutes", value: formatDuration(c.auth.access_token_minutes * MINUTE) },
    { label: "A session unused for this long ends", key: "auth.refresh_idle_minutes", value: formatDuration(c.auth.refresh_idle_minutes * MINUTE) },
    { label: "A session ends after this long whatever its use", key: "auth.session_max_hours", value: formatDuration(c.auth.session_max_hours * HOUR) },
    { label: "An account is locked after", key: "auth.lockout_threshold", value: times(c.auth.lockout_threshold) },
    { label: "A locked account stays locked for", key: "auth.lockout_minutes", value: formatDuration(c.auth.lockout_minutes * MINUTE) },
    { label: "Longest lifetime of a personal API token", key: "auth.api_token_max_days", value: formatDuration(c.auth.api_token_max_days * DAY) },
  ];
}

function Fingerprint({ label, value, help }: { label: string; value: string; help: string }) {
  return (
    <Box>
      <Typography variant="subtitle2" component="h3">
        {label}
      </Typography>
      <Typography variant="body2" color="text.secondary">
        {help}
      </Typography>
      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center", mt: 0.5 }}>
        <Box component="code" aria-label={label} sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem", overflowWrap: "anywhere", minWidth: 0 }}>
          {value}
        </Box>
        <CopyButton text={value} label={`Copy ${label.toLowerCase()}`} />
      </Box>
    </Box>
  );
}

export function SigningFingerprints({ config }: { config: ManagerConfigView }) {
  return (
    <Stack spacing={2}>
      <Fingerprint
        label="CA fingerprint"
        value={config.signing.ca_fingerprint}
        help="SHA-256 of the CA certificate: agents pin it when they enroll (--ca-fingerprint)."
      />
      <Fingerprint
        label="Command-signing key fingerprint"
        value={config.signing.command_key_fingerprint}
        help="Agents check every command's signature against this key."
      />
    </Stack>
  );
}

function ConfigSection() {
  const config = useQuery({ queryKey: settingsKeys.config, queryFn: ({ signal }) => settingsApi.config(signal) });
  return (
    <Section
      id="settings-config"
      title="Manager configuration"
      subtitle={
        <>
          Read-only here. These come from the manager's configuration file (<code>patchdeck.toml</code>, by default{" "}
          <code>/etc/patchdeck/patchdeck.toml</code>) under the key shown, and take effect when the manager restarts. The{" "}
          <code>PATCHDECK_*</code> environment variables override only start-up options (data directory, database, listen
          address, public URL, TLS mode, log format), none of these.
        </>
      }
    >
      {config.isPending ? (
        <Box role="status" aria-busy="true" aria-label="Loading the manager configuration">
          {Array.from({ length: 6 }, (_, i) => (
            <Skeleton key={i} height={36} />
          ))}
        </Box>
      ) : config.isError ? (
        <ErrorPanel error={config.error} title="Could not load the manager configuration" onRetry={() => void config.refetch()} />
      ) : (
        <Stack spacing={3}>
          <ScrollTable label="Manager configuration">
            <Table size="small" aria-label="Manager configuration">
              <TableHead>
                <TableRow>
                  <TableCell>Setting</TableCell>
                  <TableCell>Value</TableCell>
                  <TableCell>Key in patchdeck.toml</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {configRows(config.data).map((r) => (
                  <TableRow key={r.key}>
                    <TableCell className="wrap" sx={{ minWidth: 200 }}>
                      {r.label}
                    </TableCell>
                    <TableCell>{r.value}</TableCell>
                    <TableCell>
                      <code>{r.key}</code>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
          <SigningFingerprints config={config.data} />
        </Stack>
      )}
    </Section>
  );
}

export function SettingsPage() {
  return (
    <>
      <PageHeader title="Settings" subtitle="Manager-wide settings: what admins change at run time, and what the configuration file sets." />
      <Stack spacing={3}>
        <SecuritySection />
        <SsoSection />
        <NotificationsSection />
        <ConfigSection />
      </Stack>
    </>
  );
}
