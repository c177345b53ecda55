import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router-dom";
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  IconButton,
  List,
  ListItem,
  ListItemText,
  Skeleton,
  Stack,
  TextField,
  Tooltip,
  Typography,
} from "@mui/material";
import DeleteIcon from "@mui/icons-material/DeleteOutline";
import KeyIcon from "@mui/icons-material/Key";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { authApi } from "../api/auth";
import { isApiError } from "../api/client";
import type { PasskeyView, TotpSetupResponse } from "../api/types";
import { createPasskey, describePasskeyError, passkeysSupported } from "../api/webauthn";
import { homeFor, meKey, meQuery, useMe } from "../auth/session";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { ErrorPanel, FormError, sentence } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog, PasswordConfirmDialog } from "../components/PasswordConfirmDialog";
import { QrCode } from "../components/QrCode";
import { RecoveryCodes } from "../components/RecoveryCodes";
import { MONO_FONTS } from "../theme";

export const passkeysKey = ["auth", "passkeys"] as const;

/** "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP", easier to type. */
function groupSecret(secret: string): string {
  return secret.replace(/\s+/g, "").replace(/(.{4})/g, "$1 ").trim();
}

type TotpPhase = { phase: "idle" } | { phase: "setup"; setup: TotpSetupResponse } | { phase: "codes"; codes: string[] };

interface SectionProps {
  /** In a restricted session: the user may not leave until one factor is set up. */
  forced: boolean;
  username: string;
  /** A factor was added or removed. */
  onChanged: () => void;
}

function TotpSection({ enabled: enabledOnLoad, forced, username, onChanged }: SectionProps & { enabled: boolean }) {
  const [state, setState] = useState<TotpPhase>({ phase: "idle" });
  // What this page did last (the session is not reloaded behind a forced user's back).
  const [changedTo, setChangedTo] = useState<boolean | null>(null);
  const enabled = changedTo ?? enabledOnLoad;
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [dialog, setDialog] = useState<"remove" | "regenerate" | null>(null);

  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      setState({ phase: "setup", setup: await authApi.startTotp() });
      setCode("");
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { recovery_codes } = await authApi.confirmTotp(code);
      setChangedTo(true);
      setState({ phase: "codes", codes: recovery_codes });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const codeError = isApiError(error) && error.field === "code";

  return (
    <Card variant="outlined">
      <CardContent>
        <Stack direction="row" alignItems="center" spacing={1} sx={{ mb: 1 }}>
          <Typography variant="h6" component="h2">
            Authenticator app
          </Typography>
          {enabled && state.phase !== "codes" && <Chip size="small" color="success" label="On" />}
        </Stack>

        {state.phase === "codes" ? (
          <RecoveryCodes
            codes={state.codes}
            username={username}
            doneLabel={forced ? "Continue" : "Done"}
            onDone={() => {
              setState({ phase: "idle" });
              onChanged();
            }}
          />
        ) : state.phase === "setup" ? (
          <Box>
            <Typography variant="body2" color="text.secondary">
              1. Scan this QR code with an authenticator app (for example Aegis, Google Authenticator, 1Password
              or Microsoft Authenticator).
            </Typography>
            <Box sx={{ my: 2 }}>
              <QrCode text={state.setup.otpauth_uri} label="QR code for your authenticator app" />
            </Box>
            <Typography variant="body2" color="text.secondary">
              Can't scan it? Enter this key in the app instead (time-based, 6 digits, 30 seconds):
            </Typography>
            <Stack direction={{ xs: "column", sm: "row" }} spacing={1} alignItems={{ sm: "center" }} sx={{ my: 1 }}>
              <Box
                component="code"
                aria-label="Secret key"
                sx={{ fontFamily: MONO_FONTS, fontSize: "1rem", wordBreak: "break-all", p: 1, bgcolor: "action.hover", borderRadius: 1 }}
              >
                {groupSecret(state.setup.secret)}
              </Box>
              <CopyButton text={state.setup.secret} label="Copy key" />
            </Stack>
            <Box component="form" onSubmit={(e) => void confirm(e)} sx={{ mt: 2, maxWidth: 360 }}>
              <Typography variant="body2" color="text.secondary">
                2. Enter the 6-digit code the app now shows.
              </Typography>
              <TextField
                label="Code from the app"
                name="otp"
                required
                value={code}
                onChange={(e) => setCode(e.target.value.replace(/\D/g, "").slice(0, 6))}
                error={codeError}
                helperText={codeError ? "That is not the app's current code. Check the app and try the next code." : undefined}
                inputProps={{
                  inputMode: "numeric",
                  autoComplete: "one-time-code",
                  pattern: "[0-9]{6}",
                  maxLength: 6,
                  style: { fontFamily: MONO_FONTS, letterSpacing: "0.3em" },
                }}
              />
              {!codeError && <FormError error={error} />}
              <Stack direction="row" spacing={1} sx={{ mt: 2 }}>
                <Button type="submit" variant="contained" disabled={busy || code.length !== 6}>
                  {busy ? "Checking…" : "Turn on"}
                </Button>
                <Button onClick={() => setState({ phase: "idle" })} disabled={busy}>
                  Cancel
                </Button>
              </Stack>
            </Box>
          </Box>
        ) : enabled ? (
          <Box>
            <Typography variant="body2" color="text.secondary">
              Sign-ins ask for a code from your authenticator app. If you lose it, use one of your recovery codes.
            </Typography>
            <Stack direction={{ xs: "column", sm: "row" }} spacing={1} sx={{ mt: 2 }}>
              <Button variant="outlined" onClick={() => setDialog("regenerate")}>
                New recovery codes
              </Button>
              <Button variant="outlined" color="error" onClick={() => setDialog("remove")}>
                Remove authenticator app
              </Button>
            </Stack>
          </Box>
        ) : (
          <Box>
            <Typography variant="body2" color="text.secondary">
              Use a 6-digit code from an app on your phone as a second step when you sign in. You also get ten
              one-time recovery codes.
            </Typography>
            <FormError error={error} />
            <Button variant="contained" onClick={() => void start()} disabled={busy} sx={{ mt: 2 }}>
              {busy ? "Starting…" : "Set up authenticator app"}
            </Button>
          </Box>
        )}
      </CardContent>
      <PasswordConfirmDialog
        open={dialog === "remove"}
        title="Remove the authenticator app?"
        description="Sign-ins will no longer ask for its codes, and your recovery codes stop working."
        confirmLabel="Remove"
        danger
        onClose={() => setDialog(null)}
        onConfirm={async (password) => {
          await authApi.removeTotp(password);
          setChangedTo(false);
          setDialog(null);
          onChanged();
        }}
      />
      <PasswordConfirmDialog
        open={dialog === "regenerate"}
        title="Make new recovery codes?"
        description="Your current recovery codes stop working and ten new ones are shown once."
        confirmLabel="Make new codes"
        onClose={() => setDialog(null)}
        onConfirm={async (password) => {
          const { recovery_codes } = await authApi.regenerateRecoveryCodes(password);
          setDialog(null);
          setState({ phase: "codes", codes: recovery_codes });
        }}
      />
    </Card>
  );
}

function PasskeysSection({ forced, onChanged }: SectionProps) {
  const client = useQueryClient();
  const passkeys = useQuery({ queryKey: passkeysKey, queryFn: ({ signal }) => authApi.passkeys(signal) });
  const [name, setName] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [added, setAdded] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<PasskeyView | null>(null);
  const supported = passkeysSupported();

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      const { options, ceremony } = await authApi.passkeyRegistrationOptions();
      const credential = await createPasskey(options).catch((err: unknown) => {
        throw new Error(describePasskeyError(err));
      });
      const label = name.trim();
      await authApi.addPasskey({ name: label, ceremony, credential });
      setAdded(label);
      setName("");
      await client.invalidateQueries({ queryKey: passkeysKey });
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const nameError = isApiError(error) && error.field === "name";

  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h6" component="h2" sx={{ mb: 1 }}>
          Passkeys
        </Typography>
        <Typography variant="body2" color="text.secondary">
          A passkey is kept by your device or a security key (Touch ID, Windows Hello, a YubiKey) and confirmed with
          your fingerprint, face or PIN.
        </Typography>

        {passkeys.isPending ? (
          <Box sx={{ mt: 2 }} aria-busy="true" aria-label="Loading passkeys">
            <Skeleton height={48} />
            <Skeleton height={48} />
          </Box>
        ) : passkeys.isError ? (
          <Box sx={{ mt: 2 }}>
            <ErrorPanel error={passkeys.error} title="Could not load your passkeys" onRetry={() => void passkeys.refetch()} />
          </Box>
        ) : passkeys.data.length === 0 ? (
          <EmptyState title="No passkeys yet">
            {supported ? "Name one below and add it; your browser will ask which device to use." : null}
          </EmptyState>
        ) : (
          <List aria-label="Your passkeys">
            {passkeys.data.map((p) => (
              <ListItem
                key={p.id}
                divider
                secondaryAction={
                  <Tooltip title="Remove">
                    <IconButton edge="end" aria-label={`Remove passkey ${p.name}`} onClick={() => setDeleting(p)}>
                      <DeleteIcon />
                    </IconButton>
                  </Tooltip>
                }
              >
                <ListItemText
                  primary={p.name}
                  secondary={
                    <>
                      Added <DateTime value={p.created_at} /> · last used <DateTime value={p.last_used_at} empty="never" />
                    </>
                  }
                />
              </ListItem>
            ))}
          </List>
        )}

        {added !== null && (
          <Alert severity="success" sx={{ mt: 2 }}>
            Passkey “{added}” added.
          </Alert>
        )}

        {supported ? (
          <Box component="form" onSubmit={(e) => void add(e)} sx={{ mt: 1, maxWidth: 420 }}>
            <TextField
              label="Name for the new passkey"
              placeholder="e.g. YubiKey 5, work laptop"
              required
              value={name}
              onChange={(e) => setName(e.target.value)}
              error={nameError}
              helperText={nameError && isApiError(error) ? sentence(error.message) : "So you can tell your passkeys apart."}
              inputProps={{ maxLength: 100 }}
            />
            {!nameError && <FormError error={error} />}
            <Button type="submit" variant={forced ? "contained" : "outlined"} startIcon={<KeyIcon />} disabled={busy || !name.trim()} sx={{ mt: 1 }}>
              {busy ? "Waiting for your device…" : "Add a passkey"}
            </Button>
          </Box>
        ) : (
          <Alert severity="info" sx={{ mt: 2 }}>
            This browser cannot create passkeys. Use a current browser over HTTPS, or set up an authenticator app.
          </Alert>
        )}
      </CardContent>
      <ConfirmDialog
        open={deleting !== null}
        title="Remove this passkey?"
        description={`“${deleting?.name ?? ""}” will no longer sign you in.`}
        confirmLabel="Remove"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await authApi.deletePasskey(deleting.id);
          setDeleting(null);
          await client.invalidateQueries({ queryKey: passkeysKey });
          onChanged();
        }}
      />
    </Card>
  );
}

/**
 * Two-factor authentication: an authenticator app (TOTP) and passkeys. `forced` when the session is
 * restricted to enrolling MFA: then nothing else is reachable until a factor is set up.
 */
export function MfaSetupPage({ forced = false }: { forced?: boolean }) {
  const me = useMe();
  const client = useQueryClient();
  const navigate = useNavigate();
  const [enrolled, setEnrolled] = useState(false);
  const [continuing, setContinuing] = useState<unknown>(null);
  const user = me.data?.user;
  const totpEnabled = me.data?.mfa.includes("totp") ?? false;

  const onChanged = () => {
    if (forced) {
      // Do not reload the session here: that would move the user off this page at once, maybe
      // before the recovery codes are stored. "Continue" does it.
      setEnrolled(true);
    } else {
      void client.invalidateQueries({ queryKey: meKey });
    }
  };

  const proceed = async () => {
    setContinuing(null);
    try {
      const who = await client.fetchQuery({ ...meQuery, staleTime: 0 });
      navigate(homeFor(who?.restriction), { replace: true });
    } catch (e) {
      setContinuing(e);
    }
  };

  return (
    <>
      <PageHeader
        title={forced ? "Set up two-factor authentication" : "Two-factor authentication"}
        subtitle="A second step at sign-in, so a stolen password alone is not enough."
      />
      {forced && !enrolled && (
        <Alert severity="info" sx={{ mb: 2 }}>
          This manager requires two-factor authentication. Set up an authenticator app or a passkey to continue.
        </Alert>
      )}
      {forced && enrolled && (
        <Alert
          severity="success"
          sx={{ mb: 2 }}
          action={
            <Button color="inherit" variant="outlined" size="small" onClick={() => void proceed()}>
              Continue
            </Button>
          }
        >
          Two-factor authentication is set up. You can add another factor as a backup, or continue.
        </Alert>
      )}
      {continuing ? <FormError error={continuing} /> : null}
      <Stack spacing={2}>
        <TotpSection enabled={totpEnabled} forced={forced} username={user?.username ?? ""} onChanged={onChanged} />
        <PasskeysSection forced={forced} username={user?.username ?? ""} onChanged={onChanged} />
      </Stack>
    </>
  );
}
