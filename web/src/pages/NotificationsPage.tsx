import { useEffect, useState, type ReactNode } from "react";
import {
  Alert,
  AlertTitle,
  Box,
  Button,
  Checkbox,
  Chip,
  DialogContentText,
  FormControl,
  FormControlLabel,
  FormGroup,
  FormHelperText,
  FormLabel,
  MenuItem,
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
import AddIcon from "@mui/icons-material/Add";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys } from "../api/fleet";
import {
  DELIVERY_STATUSES,
  EVENT_KINDS,
  SMTP_MODES,
  WEBHOOK_FORMATS,
  channelTarget,
  notificationKeys,
  notificationsApi,
  smtpSettingsOf,
  splitAddresses,
  webhookSettingsOf,
  type ChannelKind,
  type ChannelView,
  type DeliveryQuery,
  type RuleRequest,
  type RuleView,
  type SmtpMode,
  type TestChannelResult,
  type WebhookFormat,
} from "../api/notifications";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { FormError } from "../components/errors";
import { FormDialog, groupOptions, useDraftDialog, useSubmit } from "../components/formDialog";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { EditDeleteButtons, RowButtons } from "../components/RowActions";
import { ListBody, ListCard, Pager, ScrollTable, StateChip } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { intParam, useUrlParams } from "../urlState";

const PAGE_SIZES = [25, 50, 100];

const KIND_LABELS: Record<string, string> = { smtp: "E-mail (SMTP)", webhook: "Webhook" };
const eventLabel = (e: string) => EVENT_KINDS.find((k) => k.value === e)?.label ?? e;

/** The form field a server error names: `settings.host` stays, `recipients[2]` → `recipients`. */
export function fieldOf(error: unknown): string | undefined {
  if (!isApiError(error) || error.status !== 400 || !error.field) return undefined;
  return error.field.replace(/\[\d+\]$/, "");
}

/** `error` and `helperText` for a field, the server's message when it names that field. */
function fieldProps(error: unknown, name: string, help?: ReactNode) {
  const on = fieldOf(error) === name;
  return { error: on, helperText: on && isApiError(error) ? `${error.message}` : help };
}

/** A form-level error, unless the server named one of the fields shown. */
function OtherError({ error, fields }: { error: unknown; fields: string[] }) {
  const f = fieldOf(error);
  if (f && fields.includes(f)) return null;
  return <FormError error={error} />;
}

function SectionTitle({ id, title, action, children }: { id: string; title: string; action?: ReactNode; children?: ReactNode }) {
  return (
    <Box sx={{ display: "flex", flexWrap: "wrap", alignItems: "flex-start", gap: 1, mb: 1.5 }}>
      <Box sx={{ flexGrow: 1, minWidth: 0 }}>
        <Typography variant="h6" component="h2" id={id} sx={{ fontWeight: 600 }}>
          {title}
        </Typography>
        {children && (
          <Typography variant="body2" color="text.secondary">
            {children}
          </Typography>
        )}
      </Box>
      {action}
    </Box>
  );
}

// ---- Channels -------------------------------------------------------------------------------

interface ChannelDraft {
  name: string;
  kind: ChannelKind;
  enabled: boolean;
  host: string;
  port: string;
  mode: SmtpMode;
  username: string;
  from: string;
  url: string;
  format: WebhookFormat;
  caPem: string;
  /** Create: the secret to set (empty: none). Edit: used when `secretAction` is `set`. */
  secret: string;
  secretAction: "keep" | "set" | "remove";
}

function draftOf(c: ChannelView | null): ChannelDraft {
  const blank: ChannelDraft = {
    name: "",
    kind: "smtp",
    enabled: true,
    host: "",
    port: "",
    mode: "starttls",
    username: "",
    from: "",
    url: "",
    format: "generic",
    caPem: "",
    secret: "",
    secretAction: "keep",
  };
  if (!c) return blank;
  const kind: ChannelKind = c.kind === "webhook" ? "webhook" : "smtp";
  if (kind === "smtp") {
    const s = smtpSettingsOf(c.settings);
    return { ...blank, name: c.name, kind, enabled: c.enabled, host: s.host, port: s.port == null ? "" : String(s.port), mode: s.mode, username: s.username ?? "", from: s.from, caPem: s.ca_pem ?? "" };
  }
  const w = webhookSettingsOf(c.settings);
  return { ...blank, name: c.name, kind, enabled: c.enabled, url: w.url, format: w.format, caPem: w.ca_pem ?? "" };
}

/** The settings object the handlers check, from the form. */
export function settingsOf(d: ChannelDraft): Record<string, unknown> {
  const ca_pem = d.caPem.trim() === "" ? null : d.caPem;
  if (d.kind === "smtp") {
    return {
      host: d.host.trim(),
      port: d.port.trim() === "" ? null : Number(d.port),
      mode: d.mode,
      username: d.username.trim() === "" ? null : d.username.trim(),
      from: d.from.trim(),
      ca_pem,
    };
  }
  return { url: d.url.trim(), format: d.format, ca_pem };
}

const CHANNEL_FIELDS = ["name", "kind", "secret", "settings.host", "settings.port", "settings.mode", "settings.username", "settings.from", "settings.url", "settings.format", "settings.ca_pem"];

function ChannelDialog({ open, channel, onClose, onSaved }: { open: boolean; channel: ChannelView | null; onClose: () => void; onSaved: () => void }) {
  const { draft: d, update: upd, error, busy, run } = useDraftDialog(open, () => draftOf(channel), [channel]);
  const editing = channel !== null;
  const secretName = d.kind === "smtp" ? "SMTP password" : "Signing secret";
  const submit = () =>
    run(async () => {
      const settings = settingsOf(d);
      if (channel) {
        const body: { name: string; enabled: boolean; settings: Record<string, unknown>; secret?: string } = { name: d.name.trim(), enabled: d.enabled, settings };
        if (d.secretAction === "set") body.secret = d.secret;
        if (d.secretAction === "remove") body.secret = "";
        await notificationsApi.updateChannel(channel.id, body);
      } else {
        await notificationsApi.createChannel({ name: d.name.trim(), kind: d.kind, enabled: d.enabled, settings, ...(d.secret !== "" ? { secret: d.secret } : {}) });
      }
      onSaved();
    });
  const secretField = (
    <TextField
      label={secretName}
      type="password"
      autoComplete="new-password"
      value={d.secret}
      onChange={(e) => upd({ secret: e.target.value })}
      required={editing}
      {...fieldProps(
        error,
        "secret",
        d.kind === "smtp"
          ? "Needed with a user name, not without. Write-only: the manager never shows it again."
          : "Required for the generic format: receivers check each request's HMAC-SHA256 signature with it. Write-only.",
      )}
    />
  );
  return (
    <FormDialog
      open={open}
      onClose={onClose}
      titleId="channel-title"
      title={channel ? `Edit channel ${channel.name}` : "New channel"}
      onSubmit={submit}
      busy={busy}
      submitLabel={editing ? "Save" : "Create channel"}
    >
      <Stack spacing={2} sx={{ pt: 1 }}>
        <TextField label="Name" required autoFocus value={d.name} onChange={(e) => upd({ name: e.target.value })} inputProps={{ maxLength: 64 }} {...fieldProps(error, "name", "1–64 characters, unique")} />
        <TextField select label="Kind" value={d.kind} disabled={editing} onChange={(e) => upd({ kind: e.target.value as ChannelKind })} {...fieldProps(error, "kind", editing ? "A channel's kind cannot change." : undefined)}>
          <MenuItem value="smtp">E-mail (SMTP)</MenuItem>
          <MenuItem value="webhook">Webhook (generic, Slack or Discord)</MenuItem>
        </TextField>
        {d.kind === "smtp" ? (
          <>
            <Box sx={{ display: "flex", gap: 2, flexDirection: { xs: "column", sm: "row" } }}>
              <TextField label="SMTP server" required value={d.host} onChange={(e) => upd({ host: e.target.value })} sx={{ flexGrow: 1 }} {...fieldProps(error, "settings.host", "Host name or address")} />
              <TextField
                label="Port"
                type="number"
                value={d.port}
                onChange={(e) => upd({ port: e.target.value })}
                inputProps={{ min: 1, max: 65535 }}
                sx={{ width: { sm: 140 } }}
                {...fieldProps(error, "settings.port", `Default ${SMTP_MODES.find((m) => m.value === d.mode)?.port ?? ""}`)}
              />
            </Box>
            <TextField select label="Encryption" value={d.mode} onChange={(e) => upd({ mode: e.target.value as SmtpMode })} {...fieldProps(error, "settings.mode")}>
              {SMTP_MODES.map((m) => (
                <MenuItem key={m.value} value={m.value}>
                  {m.label}
                </MenuItem>
              ))}
            </TextField>
            <TextField label="From" required value={d.from} onChange={(e) => upd({ from: e.target.value })} {...fieldProps(error, "settings.from", "e.g. Patchdeck <patchdeck@example.com>")} />
            <TextField label="User name" value={d.username} onChange={(e) => upd({ username: e.target.value })} autoComplete="off" {...fieldProps(error, "settings.username", "Leave empty for a relay that needs no sign-in")} />
          </>
        ) : (
          <>
            <TextField label="URL" required value={d.url} onChange={(e) => upd({ url: e.target.value })} inputProps={{ inputMode: "url" }} {...fieldProps(error, "settings.url", "https:// (plain http:// only to a loopback address); redirects are not followed")} />
            <TextField select label="Format" value={d.format} onChange={(e) => upd({ format: e.target.value as WebhookFormat })} {...fieldProps(error, "settings.format")}>
              {WEBHOOK_FORMATS.map((f) => (
                <MenuItem key={f.value} value={f.value}>
                  {f.label}
                </MenuItem>
              ))}
            </TextField>
          </>
        )}
        {channel ? (
          <Box>
            <TextField
              select
              label={secretName}
              value={d.secretAction}
              onChange={(e) => upd({ secretAction: e.target.value as ChannelDraft["secretAction"], secret: "" })}
              fullWidth
              helperText={channel.secret_set ? "Currently set. It is never shown." : "Currently not set."}
            >
              <MenuItem value="keep">{channel.secret_set ? "Keep the current one" : "Leave unset"}</MenuItem>
              <MenuItem value="set">{channel.secret_set ? "Replace it" : "Set one"}</MenuItem>
              {channel.secret_set && <MenuItem value="remove">Remove it</MenuItem>}
            </TextField>
            {d.secretAction === "set" && <Box sx={{ mt: 2 }}>{secretField}</Box>}
            {d.secretAction !== "set" && fieldOf(error) === "secret" && (
              <FormHelperText error>{isApiError(error) ? error.message : ""}</FormHelperText>
            )}
          </Box>
        ) : (
          secretField
        )}
        <TextField
          label="Extra CA certificate (PEM, optional)"
          multiline
          minRows={2}
          value={d.caPem}
          onChange={(e) => upd({ caPem: e.target.value })}
          inputProps={{ spellCheck: false, style: { fontFamily: MONO_FONTS, fontSize: "0.75rem" } }}
          {...fieldProps(error, "settings.ca_pem", "For a private server: its CA, trusted besides the public roots")}
        />
        <FormControlLabel control={<Switch checked={d.enabled} onChange={(e) => upd({ enabled: e.target.checked })} />} label="Enabled" />
      </Stack>
      <OtherError error={error} fields={CHANNEL_FIELDS} />
    </FormDialog>
  );
}

function TestDialog({ channel, onClose }: { channel: ChannelView | null; onClose: () => void }) {
  const [recipients, setRecipients] = useState("");
  const [result, setResult] = useState<TestChannelResult | null>(null);
  const { error, setError, busy, run } = useSubmit();
  useEffect(() => {
    if (channel) {
      setResult(null);
      setError(null);
    }
  }, [channel, setError]);
  const smtp = channel?.kind === "smtp";
  const submit = async () => {
    if (!channel) return;
    setResult(null);
    await run(async () => {
      setResult(await notificationsApi.testChannel(channel.id, smtp ? { recipients: splitAddresses(recipients) } : {}));
    });
  };
  return (
    <FormDialog
      open={channel !== null}
      onClose={onClose}
      titleId="test-title"
      title={<>Test {channel?.name}</>}
      onSubmit={submit}
      busy={busy}
      cancelLabel="Close"
      busyLabel="Sending…"
      submitLabel={result ? "Send again" : "Send test"}
      submitDisabled={smtp && splitAddresses(recipients).length === 0}
    >
      <DialogContentText sx={{ mb: 2 }}>
        Sends a test message now (not through the queue) and says whether the {smtp ? "SMTP server" : "receiver"} accepted it. The
        test is recorded in the audit log.
      </DialogContentText>
      {smtp && (
        <TextField
          label="Send to"
          required
          multiline
          minRows={2}
          autoFocus
          value={recipients}
          onChange={(e) => setRecipients(e.target.value)}
          {...fieldProps(error, "recipients", "E-mail addresses, one per line or separated by commas")}
        />
      )}
      <OtherError error={error} fields={["recipients"]} />
      <Box aria-live="polite">
        {result &&
          (result.delivered ? (
            <Alert severity="success" sx={{ mt: 2 }}>
              <AlertTitle>Delivered</AlertTitle>
              The {smtp ? "SMTP server" : "receiver"} accepted the test message.
            </Alert>
          ) : (
            <Alert severity="error" sx={{ mt: 2 }}>
              <AlertTitle>Not delivered</AlertTitle>
              {result.error ?? "The manager gave no reason."}
            </Alert>
          ))}
      </Box>
    </FormDialog>
  );
}

function ChannelsSection({ onChanged }: { onChanged: () => void }) {
  const channels = useQuery({ queryKey: notificationKeys.channels, queryFn: ({ signal }) => notificationsApi.channels(signal) });
  const [editing, setEditing] = useState<{ channel: ChannelView | null } | null>(null);
  const [testing, setTesting] = useState<ChannelView | null>(null);
  const [deleting, setDeleting] = useState<ChannelView | null>(null);
  const items = channels.data ?? [];
  return (
    <Box component="section" aria-labelledby="channels-title">
      <SectionTitle
        id="channels-title"
        title="Channels"
        action={
          <Button variant="contained" startIcon={<AddIcon />} onClick={() => setEditing({ channel: null })}>
            New channel
          </Button>
        }
      >
        Where messages go: an SMTP server, or a webhook (generic signed JSON, Slack or Discord).
      </SectionTitle>
      <ListCard>
        <ListBody
          query={channels}
          what="channels"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title="No channels" action={<Button variant="outlined" onClick={() => setEditing({ channel: null })}>Add the first channel</Button>}>
              Add an e-mail server or a webhook, then a rule that says which events go there.
            </EmptyState>
          }
        >
          <ScrollTable label="Channels">
            <Table size="small" aria-label="Channels">
              <TableHead>
                <TableRow>
                  <TableCell>Name</TableCell>
                  <TableCell>Kind</TableCell>
                  <TableCell>Sends to</TableCell>
                  <TableCell>Secret</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell align="right">Actions</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((c) => (
                  <TableRow key={c.id}>
                    <TableCell>{c.name}</TableCell>
                    <TableCell>{KIND_LABELS[c.kind] ?? c.kind}</TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 220, overflowWrap: "anywhere" }}>
                      {channelTarget(c)}
                    </TableCell>
                    <TableCell>
                      {c.kind === "smtp" ? "Password" : "Signing secret"}: {c.secret_set ? "set" : "not set"}
                    </TableCell>
                    <TableCell>
                      <StateChip value={c.enabled ? "active" : "disabled"} label={c.enabled ? "enabled" : "disabled"} />
                    </TableCell>
                    <TableCell align="right">
                      <RowButtons>
                        <Button size="small" onClick={() => setTesting(c)} aria-label={`Test ${c.name}`}>
                          Test
                        </Button>
                        <EditDeleteButtons name={c.name} onEdit={() => setEditing({ channel: c })} onDelete={() => setDeleting(c)} />
                      </RowButtons>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
      </ListCard>
      <ChannelDialog
        open={editing !== null}
        channel={editing?.channel ?? null}
        onClose={() => setEditing(null)}
        onSaved={() => {
          setEditing(null);
          onChanged();
        }}
      />
      <TestDialog channel={testing} onClose={() => setTesting(null)} />
      <ConfirmDialog
        open={deleting !== null}
        title="Delete this channel?"
        description={`“${deleting?.name ?? ""}” is deleted with its rules and its delivery history`}
        confirmLabel="Delete"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await notificationsApi.deleteChannel(deleting.id);
          setDeleting(null);
          onChanged();
        }}
      />
    </Box>
  );
}

// ---- Rules ----------------------------------------------------------------------------------

interface RuleDraft {
  name: string;
  events: string[];
  channelId: string;
  recipients: string;
  groupId: string;
  enabled: boolean;
}

function ruleDraftOf(r: RuleView | null, channels: ChannelView[]): RuleDraft {
  if (!r) return { name: "", events: [], channelId: channels[0] ? String(channels[0].id) : "", recipients: "", groupId: "", enabled: true };
  return {
    name: r.name,
    events: r.events,
    channelId: String(r.channel_id),
    recipients: r.recipients.join("\n"),
    groupId: r.group_id == null ? "" : String(r.group_id),
    enabled: r.enabled,
  };
}

export function ruleRequestOf(d: RuleDraft, channel: ChannelView | undefined): RuleRequest {
  return {
    name: d.name.trim(),
    events: EVENT_KINDS.map((k) => k.value).filter((v) => d.events.includes(v)),
    channel_id: Number(d.channelId),
    recipients: channel?.kind === "smtp" ? splitAddresses(d.recipients) : [],
    group_id: d.groupId === "" ? null : Number(d.groupId),
    enabled: d.enabled,
  };
}

const RULE_FIELDS = ["name", "events", "channel_id", "recipients", "group_id"];

function RuleDialog({ open, rule, channels, onClose, onSaved }: { open: boolean; rule: RuleView | null; channels: ChannelView[]; onClose: () => void; onSaved: () => void }) {
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), enabled: open });
  const { draft: d, update: upd, error, busy, run } = useDraftDialog(open, () => ruleDraftOf(rule, channels), [rule]);
  const channel = channels.find((c) => String(c.id) === d.channelId);
  const submit = () =>
    run(async () => {
      const body = ruleRequestOf(d, channel);
      if (rule) await notificationsApi.updateRule(rule.id, body);
      else await notificationsApi.createRule(body);
      onSaved();
    });
  const eventsError = fieldProps(error, "events", "Pick at least one.");
  return (
    <FormDialog
      open={open}
      onClose={onClose}
      titleId="rule-title"
      title={rule ? `Edit rule ${rule.name}` : "New rule"}
      onSubmit={submit}
      busy={busy}
      submitLabel={rule ? "Save" : "Create rule"}
    >
      <Stack spacing={2} sx={{ pt: 1 }}>
        <TextField label="Name" required autoFocus value={d.name} onChange={(e) => upd({ name: e.target.value })} inputProps={{ maxLength: 64 }} {...fieldProps(error, "name", "1–64 characters, unique")} />
        <FormControl component="fieldset" error={eventsError.error}>
          <FormLabel component="legend">Events</FormLabel>
          <FormGroup>
            {EVENT_KINDS.map((k) => (
              <FormControlLabel
                key={k.value}
                control={
                  <Checkbox
                    checked={d.events.includes(k.value)}
                    onChange={(e) => upd({ events: e.target.checked ? [...d.events, k.value] : d.events.filter((v) => v !== k.value) })}
                  />
                }
                label={k.label}
              />
            ))}
          </FormGroup>
          <FormHelperText>{eventsError.helperText}</FormHelperText>
        </FormControl>
        <TextField select label="Channel" required value={d.channelId} onChange={(e) => upd({ channelId: e.target.value })} {...fieldProps(error, "channel_id")}>
          {channels.map((c) => (
            <MenuItem key={c.id} value={String(c.id)}>
              {c.name} ({KIND_LABELS[c.kind] ?? c.kind})
            </MenuItem>
          ))}
        </TextField>
        {channel?.kind === "smtp" ? (
          <TextField
            label="Recipients"
            required
            multiline
            minRows={2}
            value={d.recipients}
            onChange={(e) => upd({ recipients: e.target.value })}
            {...fieldProps(error, "recipients", "E-mail addresses, one per line or separated by commas (at most 50)")}
          />
        ) : (
          <Typography variant="body2" color="text.secondary">
            A webhook takes no recipients: everything goes to its URL.
          </Typography>
        )}
        <TextField
          select
          label="Only hosts of group"
          value={d.groupId}
          onChange={(e) => upd({ groupId: e.target.value })}
          {...fieldProps(error, "group_id", "Limits host events and the digest to this group's hosts; other events are not filtered")}
        >
          <MenuItem value="">Any group</MenuItem>
          {groupOptions(groups.data?.items ?? [], d.groupId, (id) => `Group #${id}`)}
        </TextField>
        <FormControlLabel control={<Switch checked={d.enabled} onChange={(e) => upd({ enabled: e.target.checked })} />} label="Enabled" />
      </Stack>
      <OtherError error={error} fields={RULE_FIELDS} />
    </FormDialog>
  );
}

function RulesSection({ onChanged }: { onChanged: () => void }) {
  const rules = useQuery({ queryKey: notificationKeys.rules, queryFn: ({ signal }) => notificationsApi.rules(signal) });
  const channels = useQuery({ queryKey: notificationKeys.channels, queryFn: ({ signal }) => notificationsApi.channels(signal) });
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal) });
  const [editing, setEditing] = useState<{ rule: RuleView | null } | null>(null);
  const [deleting, setDeleting] = useState<RuleView | null>(null);
  const items = rules.data ?? [];
  const chans = channels.data ?? [];
  const noChannels = channels.isSuccess && chans.length === 0;
  const channelName = (id: number) => chans.find((c) => c.id === id)?.name ?? `channel #${id}`;
  const groupName = (id: number) => groups.data?.items.find((g) => g.id === id)?.name ?? `group #${id}`;
  return (
    <Box component="section" aria-labelledby="rules-title">
      <SectionTitle
        id="rules-title"
        title="Rules"
        action={
          <Button variant="contained" startIcon={<AddIcon />} disabled={!channels.isSuccess || noChannels} onClick={() => setEditing({ rule: null })}>
            New rule
          </Button>
        }
      >
        Which events go to which channel, and for e-mail, to whom.
      </SectionTitle>
      <ListCard>
        <ListBody
          query={rules}
          what="rules"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title="No rules">
              {noChannels ? "Add a channel first, then a rule that sends events to it." : "Add a rule: without one, no event is sent anywhere."}
            </EmptyState>
          }
        >
          <ScrollTable label="Rules">
            <Table size="small" aria-label="Rules">
              <TableHead>
                <TableRow>
                  <TableCell>Name</TableCell>
                  <TableCell>Events</TableCell>
                  <TableCell>Channel</TableCell>
                  <TableCell>Recipients</TableCell>
                  <TableCell>Hosts</TableCell>
                  <TableCell>State</TableCell>
                  <TableCell align="right">Actions</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((r) => (
                  <TableRow key={r.id}>
                    <TableCell>{r.name}</TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 200 }}>
                      <Box sx={{ display: "flex", flexWrap: "wrap", gap: 0.5 }}>
                        {r.events.map((e) => (
                          <Chip key={e} size="small" label={e} title={eventLabel(e)} />
                        ))}
                      </Box>
                    </TableCell>
                    <TableCell>{channelName(r.channel_id)}</TableCell>
                    <TableCell className="wrap" sx={{ overflowWrap: "anywhere" }}>
                      {r.recipients.length ? r.recipients.join(", ") : "—"}
                    </TableCell>
                    <TableCell>{r.group_id == null ? "all" : groupName(r.group_id)}</TableCell>
                    <TableCell>
                      <StateChip value={r.enabled ? "active" : "disabled"} label={r.enabled ? "enabled" : "disabled"} />
                    </TableCell>
                    <TableCell align="right">
                      <RowButtons>
                        <EditDeleteButtons name={`rule ${r.name}`} onEdit={() => setEditing({ rule: r })} onDelete={() => setDeleting(r)} editDisabled={!channels.isSuccess} />
                      </RowButtons>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
      </ListCard>
      <RuleDialog
        open={editing !== null}
        rule={editing?.rule ?? null}
        channels={chans}
        onClose={() => setEditing(null)}
        onSaved={() => {
          setEditing(null);
          onChanged();
        }}
      />
      <ConfirmDialog
        open={deleting !== null}
        title="Delete this rule?"
        description={`“${deleting?.name ?? ""}” stops sending; its past deliveries stay in the list`}
        confirmLabel="Delete"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await notificationsApi.deleteRule(deleting.id);
          setDeleting(null);
          onChanged();
        }}
      />
    </Box>
  );
}

// ---- Deliveries -----------------------------------------------------------------------------

function DeliveriesSection() {
  const { get, set, page } = useUrlParams();
  const limit = intParam(get("limit"), 25, PAGE_SIZES);
  const status = (DELIVERY_STATUSES as readonly string[]).includes(get("status")) ? get("status") : "";
  const channelId = intParam(get("channel"), 0);
  const q: DeliveryQuery = {
    limit,
    offset: page * limit,
    ...(status ? { status } : {}),
    ...(channelId ? { channel_id: channelId } : {}),
  };
  const deliveries = useQuery({
    queryKey: notificationKeys.deliveryList(q),
    queryFn: ({ signal }) => notificationsApi.deliveries(q, signal),
    placeholderData: keepPreviousData,
  });
  const channels = useQuery({ queryKey: notificationKeys.channels, queryFn: ({ signal }) => notificationsApi.channels(signal) });
  const chans = channels.data ?? [];
  const channelName = (id: number) => chans.find((c) => c.id === id)?.name ?? `channel #${id}`;
  const items = deliveries.data?.items ?? [];
  const filtered = status !== "" || channelId !== 0;
  return (
    <Box component="section" aria-labelledby="deliveries-title">
      <SectionTitle id="deliveries-title" title="Recent deliveries">
        Newest first: what was sent, what waits for a retry, and what failed and why.
      </SectionTitle>
      <Box component="form" role="search" aria-label="Filter deliveries" onSubmit={(e) => e.preventDefault()} sx={{ display: "flex", flexWrap: "wrap", gap: 1.5, mb: 2 }}>
        <TextField select label="Status" size="small" value={status} onChange={(e) => set({ status: e.target.value })} sx={{ minWidth: 160 }}>
          <MenuItem value="">Any</MenuItem>
          {DELIVERY_STATUSES.map((s) => (
            <MenuItem key={s} value={s}>
              {s}
            </MenuItem>
          ))}
        </TextField>
        <TextField
          select
          label="Channel"
          size="small"
          value={channelId ? String(channelId) : ""}
          onChange={(e) => set({ channel: e.target.value })}
          sx={{ minWidth: 180 }}
        >
          <MenuItem value="">Any</MenuItem>
          {chans.map((c) => (
            <MenuItem key={c.id} value={String(c.id)}>
              {c.name}
            </MenuItem>
          ))}
          {channelId !== 0 && !chans.some((c) => c.id === channelId) && <MenuItem value={String(channelId)}>channel #{channelId}</MenuItem>}
        </TextField>
      </Box>
      <ListCard>
        <ListBody
          query={deliveries}
          what="deliveries"
          isEmpty={items.length === 0}
          empty={
            filtered ? (
              <EmptyState title="No deliveries match these filters" action={<Button variant="outlined" onClick={() => set({ status: "", channel: "" })}>Clear the filters</Button>} />
            ) : (
              <EmptyState title="Nothing sent yet">Deliveries appear here when an event matches a rule. A channel's Test is not listed (see the audit log).</EmptyState>
            )
          }
        >
          <ScrollTable label="Deliveries">
            <Table size="small" aria-label="Deliveries">
              <TableHead>
                <TableRow>
                  <TableCell>Created</TableCell>
                  <TableCell>Event</TableCell>
                  <TableCell>Channel</TableCell>
                  <TableCell>Recipients</TableCell>
                  <TableCell>Status</TableCell>
                  <TableCell>Attempts</TableCell>
                  <TableCell>Sent / next attempt</TableCell>
                  <TableCell>Error</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((dl) => (
                  <TableRow key={dl.id}>
                    <TableCell>
                      <DateTime value={dl.created_at} />
                    </TableCell>
                    <TableCell title={eventLabel(dl.event)}>{dl.event}</TableCell>
                    <TableCell>{channelName(dl.channel_id)}</TableCell>
                    <TableCell className="wrap" sx={{ overflowWrap: "anywhere" }}>
                      {dl.recipients.length ? dl.recipients.join(", ") : "—"}
                    </TableCell>
                    <TableCell>
                      <StateChip value={dl.status} />
                    </TableCell>
                    <TableCell>{dl.attempts}</TableCell>
                    <TableCell>
                      {dl.sent_at ? (
                        <DateTime value={dl.sent_at} />
                      ) : dl.status === "pending" ? (
                        <>
                          next <DateTime value={dl.next_attempt_at} />
                        </>
                      ) : (
                        "—"
                      )}
                    </TableCell>
                    <TableCell className="wrap" sx={{ minWidth: 200, overflowWrap: "anywhere" }}>
                      {dl.last_error ?? "—"}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {deliveries.data && deliveries.data.total > 0 && (
          <Pager
            total={deliveries.data.total}
            page={page}
            limit={limit}
            sizes={PAGE_SIZES}
            onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })}
            onLimit={(l) => set({ limit: l === 25 ? "" : l })}
          />
        )}
      </ListCard>
    </Box>
  );
}

export function NotificationsPage() {
  const client = useQueryClient();
  const refresh = () => void client.invalidateQueries({ queryKey: notificationKeys.all });
  return (
    <>
      <PageHeader
        title="Notifications"
        subtitle="E-mail and webhooks for finished, failed or halted deployments, unreachable hosts, the daily security digest and expiring certificates."
      />
      <Stack spacing={4}>
        <ChannelsSection onChanged={refresh} />
        <RulesSection onChanged={refresh} />
        <DeliveriesSection />
      </Stack>
    </>
  );
}
