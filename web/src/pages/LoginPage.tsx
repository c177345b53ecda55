import { useState, type FormEvent, type ReactElement } from "react";
import { Navigate, useLocation } from "react-router-dom";
import { Alert, Box, Button, Card, CardContent, Divider, Link, Stack, TextField, Typography } from "@mui/material";
import KeyIcon from "@mui/icons-material/Key";
import LoginIcon from "@mui/icons-material/Login";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { SSO_LOGIN_URL, authApi } from "../api/auth";
import { isApiError } from "../api/client";
import type { LoginOk, MfaMethod } from "../api/types";
import { describePasskeyError, getPasskeyAssertion, passkeysSupported } from "../api/webauthn";
import { FullPageProgress, homeFor, meQuery, useMe, type FromState } from "../auth/session";
import { FormError, sentence } from "../components/errors";
import { ColorModeMenu } from "../components/ColorModeMenu";
import { formatWait, useSecondsLeft } from "../hooks";
import { MONO_FONTS } from "../theme";

type Step =
  | { kind: "password" }
  | { kind: "mfa"; token: string; methods: MfaMethod[]; mode: "totp" | "recovery_code" | "passkey" };

function fromPath(state: unknown): string | null {
  const from = (state as FromState | null)?.from;
  if (!from || from.pathname === "/login") return null;
  return `${from.pathname}${from.search ?? ""}${from.hash ?? ""}`;
}

/** Password, then (if the account has one) a second factor; or SSO when it is configured. */
export function LoginPage() {
  const me = useMe();
  const location = useLocation();
  const client = useQueryClient();
  const methods = useQuery({
    queryKey: ["auth", "methods"],
    queryFn: ({ signal }) => authApi.methods(signal),
    retry: false,
    staleTime: 5 * 60_000,
  });

  const [step, setStep] = useState<Step>({ kind: "password" });
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [limitedUntil, setLimitedUntil] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const secondsLeft = useSecondsLeft(limitedUntil);
  const limited = secondsLeft > 0;

  if (me.isPending) return <FullPageProgress label="Checking your session" />;
  if (me.data) return <Navigate to={fromPath(location.state) ?? homeFor(me.data.restriction)} replace />;

  const fail = (e: unknown) => {
    if (isApiError(e) && e.code === "rate_limited") {
      setLimitedUntil(Date.now() + (e.retryAfterSeconds ?? 60) * 1000);
    }
    setError(e);
  };

  const signedIn = async (_ok: LoginOk) => {
    // The cookies are set now; ask who we are (the guard then routes on).
    const who = await client.fetchQuery({ ...meQuery, staleTime: 0 });
    if (!who) {
      throw new Error(
        "The manager accepted the sign-in but the browser did not keep the session. Open the manager over HTTPS: its cookies are Secure.",
      );
    }
  };

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };

  const submitPassword = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const result = await authApi.login({ username, password });
      if (result.status === "mfa_required") {
        setPassword("");
        setCode("");
        const mode = result.methods.includes("totp") ? "totp" : "passkey";
        setStep({ kind: "mfa", token: result.mfa_token, methods: result.methods, mode });
        return;
      }
      await signedIn(result);
    });
  };

  const submitCode = (e: FormEvent) => {
    e.preventDefault();
    if (step.kind !== "mfa" || step.mode === "passkey") return;
    const method = step.mode;
    void run(async () => {
      const result = await authApi.loginMfa({ mfa_token: step.token, method, code: code.trim() });
      await signedIn(result);
    });
  };

  const usePasskey = () => {
    if (step.kind !== "mfa") return;
    void run(async () => {
      const { options, ceremony } = await authApi.passkeyLoginOptions(step.token);
      const credential = await getPasskeyAssertion(options).catch((e: unknown) => {
        throw new Error(describePasskeyError(e));
      });
      const result = await authApi.loginPasskey({ mfa_token: step.token, ceremony, credential });
      await signedIn(result);
    });
  };

  const startOver = () => {
    setStep({ kind: "password" });
    setCode("");
    setError(null);
  };

  const setMode = (mode: "totp" | "recovery_code") => {
    if (step.kind !== "mfa") return;
    setStep({ ...step, mode });
    setCode("");
    setError(null);
  };

  const sso = methods.data?.sso?.enabled ? methods.data.sso : null;
  const passwordAllowed = methods.data?.password !== false;

  let message: ReactElement | null = null;
  if (isApiError(error) && error.code === "rate_limited") {
    message = limited ? (
      <Alert severity="warning" role="alert" sx={{ mt: 2 }}>
        Too many attempts. Try again in {formatWait(secondsLeft)}.
        <Box component="div" sx={{ mt: 0.5, fontSize: "0.8125rem" }}>
          {sentence(error.message)}
        </Box>
      </Alert>
    ) : null;
  } else if (isApiError(error) && error.code === "unauthorized") {
    message = (
      <Alert severity="error" role="alert" sx={{ mt: 2 }}>
        {step.kind === "password" ? "Wrong username or password." : sentence(error.message)}
      </Alert>
    );
  } else if (error) {
    message = <FormError error={error} />;
  }

  return (
    <Box sx={{ minHeight: "100vh", display: "flex", flexDirection: "column" }}>
      <Box sx={{ display: "flex", justifyContent: "flex-end", p: 1 }}>
        <ColorModeMenu />
      </Box>
      <Box component="main" sx={{ flexGrow: 1, display: "grid", placeItems: "center", px: 2, pb: 6 }}>
        <Card variant="outlined" sx={{ width: "100%", maxWidth: 420 }}>
          <CardContent sx={{ p: { xs: 2.5, sm: 4 } }}>
            <Typography variant="h5" component="h1" sx={{ fontWeight: 600 }}>
              Patchdeck
            </Typography>

            {step.kind === "password" ? (
              <>
                <Typography variant="body2" color="text.secondary" sx={{ mb: 1 }}>
                  Sign in to manage your fleet.
                </Typography>
                {passwordAllowed && (
                  <Box component="form" onSubmit={submitPassword} noValidate={false}>
                    <TextField
                      label="Username"
                      name="username"
                      autoComplete="username"
                      autoFocus
                      required
                      value={username}
                      onChange={(e) => setUsername(e.target.value)}
                      inputProps={{ autoCapitalize: "none", spellCheck: false }}
                    />
                    <TextField
                      label="Password"
                      name="password"
                      type="password"
                      autoComplete="current-password"
                      required
                      value={password}
                      onChange={(e) => setPassword(e.target.value)}
                    />
                    {message}
                    <Button
                      type="submit"
                      variant="contained"
                      fullWidth
                      size="large"
                      disabled={busy || limited || !username || !password}
                      sx={{ mt: 2 }}
                    >
                      {busy ? "Signing in…" : "Sign in"}
                    </Button>
                  </Box>
                )}
                {sso && (
                  <>
                    {passwordAllowed && <Divider sx={{ my: 2 }}>or</Divider>}
                    <Button
                      component="a"
                      href={SSO_LOGIN_URL}
                      variant="outlined"
                      fullWidth
                      size="large"
                      startIcon={<LoginIcon />}
                      sx={{ mt: passwordAllowed ? 0 : 2 }}
                    >
                      Sign in with {sso.name || "SSO"}
                    </Button>
                  </>
                )}
              </>
            ) : (
              <>
                <Typography variant="h6" component="h2" sx={{ mt: 1 }}>
                  Two-factor authentication
                </Typography>
                {step.mode !== "passkey" && (
                  <Box component="form" onSubmit={submitCode}>
                    {step.mode === "totp" ? (
                      <>
                        <Typography variant="body2" color="text.secondary">
                          Enter the 6-digit code from your authenticator app.
                        </Typography>
                        <TextField
                          key="totp"
                          label="Authentication code"
                          name="otp"
                          autoFocus
                          required
                          value={code}
                          onChange={(e) => setCode(e.target.value.replace(/\D/g, "").slice(0, 6))}
                          inputProps={{
                            inputMode: "numeric",
                            autoComplete: "one-time-code",
                            pattern: "[0-9]{6}",
                            maxLength: 6,
                            style: { fontFamily: MONO_FONTS, letterSpacing: "0.3em", fontSize: "1.25rem" },
                          }}
                        />
                      </>
                    ) : (
                      <>
                        <Typography variant="body2" color="text.secondary">
                          Enter one of the recovery codes you stored when you set up two-factor authentication.
                          Each code works once.
                        </Typography>
                        <TextField
                          key="recovery"
                          label="Recovery code"
                          name="recovery-code"
                          autoFocus
                          required
                          value={code}
                          onChange={(e) => setCode(e.target.value)}
                          inputProps={{
                            autoComplete: "off",
                            autoCapitalize: "none",
                            spellCheck: false,
                            style: { fontFamily: MONO_FONTS },
                          }}
                        />
                      </>
                    )}
                    {message}
                    <Button
                      type="submit"
                      variant="contained"
                      fullWidth
                      size="large"
                      disabled={busy || limited || (step.mode === "totp" ? code.length !== 6 : !code.trim())}
                      sx={{ mt: 2 }}
                    >
                      {busy ? "Checking…" : "Verify"}
                    </Button>
                    {step.methods.includes("totp") && (
                      <Box sx={{ mt: 1.5 }}>
                        {step.mode === "totp" ? (
                          <Link component="button" type="button" variant="body2" onClick={() => setMode("recovery_code")}>
                            Use a recovery code instead
                          </Link>
                        ) : (
                          <Link component="button" type="button" variant="body2" onClick={() => setMode("totp")}>
                            Use your authenticator app instead
                          </Link>
                        )}
                      </Box>
                    )}
                  </Box>
                )}
                {step.mode === "passkey" && message}
                {step.methods.includes("passkey") && (
                  <>
                    {step.mode !== "passkey" && <Divider sx={{ my: 2 }}>or</Divider>}
                    {passkeysSupported() ? (
                      <Button
                        variant={step.mode === "passkey" ? "contained" : "outlined"}
                        fullWidth
                        size="large"
                        startIcon={<KeyIcon />}
                        disabled={busy || limited}
                        onClick={usePasskey}
                        sx={{ mt: step.mode === "passkey" ? 2 : 0 }}
                      >
                        Use a passkey
                      </Button>
                    ) : (
                      <Alert severity="info" sx={{ mt: 2 }}>
                        Your account has a passkey, but this browser cannot use passkeys.
                        {step.methods.includes("totp") ? " Use your authenticator app or a recovery code." : ""}
                      </Alert>
                    )}
                  </>
                )}
                <Stack direction="row" sx={{ mt: 2 }}>
                  <Button size="small" onClick={startOver}>
                    Start over
                  </Button>
                </Stack>
              </>
            )}
          </CardContent>
        </Card>
      </Box>
    </Box>
  );
}
