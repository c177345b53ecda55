// A push host's bundle (`POST /api/v1/hosts/{id}/push-bundle`): the manager's CA certificate, a
// new server certificate for the host's listener and its private key. The manager does not keep
// the key: it lives only in this component's memory until the page is left.

import { useState } from "react";
import { Alert, AlertTitle, Box, Button, Stack, Typography } from "@mui/material";
import DownloadIcon from "@mui/icons-material/Download";
import { fleetApi, type PushBundle } from "../api/fleet";
import { MONO_FONTS } from "../theme";
import { CopyButton } from "./CopyButton";
import { DateTime } from "./DateTime";
import { FormError } from "./errors";

/** Saves `text` as a file through a Blob URL (nothing leaves the browser). */
export function downloadText(filename: string, text: string, type = "application/x-pem-file") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  document.body.removeChild(a);
  // Give the browser a moment to start the download before the URL goes.
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The three parts, with the file names `patchdeck admin add-push-host --bundle-dir` writes. */
const PARTS = [
  { key: "ca_certificate", file: "ca.crt", title: "CA certificate", copy: "Copy CA certificate", setting: "push.ca_bundle" },
  { key: "server_certificate", file: "server.crt", title: "Server certificate", copy: "Copy server certificate", setting: "push.server_cert" },
  { key: "server_key", file: "server.key", title: "Server key", copy: "Copy server key", setting: "push.server_key" },
] as const;

function Pem({ id, text }: { id: string; text: string }) {
  return (
    <Box
      component="pre"
      id={id}
      tabIndex={0}
      sx={{
        m: 0,
        p: 1.5,
        maxHeight: 160,
        overflow: "auto",
        bgcolor: "action.hover",
        borderRadius: 1,
        fontFamily: MONO_FONTS,
        fontSize: "0.75rem",
        whiteSpace: "pre-wrap",
        overflowWrap: "anywhere",
      }}
    >
      {text}
    </Box>
  );
}

/** What to do with the bundle on the agent, after docs/manager.md "Push hosts". */
export function PushBundleSteps() {
  return (
    <Box component="ol" sx={{ m: 0, pl: 3, "& li": { mb: 0.5 } }}>
      <li>
        <Typography variant="body2">
          Put the three files on the host and point the agent's <code>push.ca_bundle</code>, <code>push.server_cert</code> and{" "}
          <code>push.server_key</code> at them (the key readable only by the agent).
        </Typography>
      </li>
      <li>
        <Typography variant="body2">
          List the manager's address in the agent's allow-list (<code>push.allowlist</code>); connections from anywhere else are
          closed.
        </Typography>
      </li>
      <li>
        <Typography variant="body2">
          The agent reloads the files by itself. The manager checks the host's health within minutes; it turns online when the
          agent answers.
        </Typography>
      </li>
    </Box>
  );
}

/** The bundle once issued: each part to copy or download, and the key's warning. */
export function PushBundleView({ bundle, hostname }: { bundle: PushBundle; hostname: string }) {
  return (
    <Stack spacing={2}>
      <Alert severity="warning" role="status">
        <AlertTitle>Save the server key now</AlertTitle>
        The manager does not store the key: it is shown only this once. If it is lost, issue a new bundle (a new certificate and
        key).
      </Alert>
      <Typography variant="body2" color="text.secondary">
        Certificate {bundle.serial} for {hostname}, valid until <DateTime value={bundle.not_after} />.
      </Typography>
      {PARTS.map((p) => (
        <Box key={p.key} component="section" aria-labelledby={`bundle-${p.key}`}>
          <Box sx={{ display: "flex", flexWrap: "wrap", gap: 1, alignItems: "center", mb: 0.5 }}>
            <Typography variant="subtitle2" component="h3" id={`bundle-${p.key}`} sx={{ flexGrow: 1 }}>
              {p.title} <Typography component="span" variant="caption" color="text.secondary">({p.file} → {p.setting})</Typography>
            </Typography>
            <CopyButton text={bundle[p.key]} label={p.copy} />
            <Button size="small" variant="outlined" startIcon={<DownloadIcon />} onClick={() => downloadText(p.file, bundle[p.key])}>
              Download {p.file}
            </Button>
          </Box>
          <Pem id={`bundle-${p.key}-pem`} text={bundle[p.key]} />
        </Box>
      ))}
    </Stack>
  );
}

/** A button that issues the bundle, then the bundle with the steps. For administrators. */
export function PushBundlePanel({ hostId, hostname }: { hostId: number; hostname: string }) {
  const [bundle, setBundle] = useState<PushBundle | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const issue = async () => {
    setBusy(true);
    setError(null);
    try {
      setBundle(await fleetApi.pushBundle(hostId));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Stack spacing={2}>
      <PushBundleSteps />
      {bundle ? (
        <PushBundleView bundle={bundle} hostname={hostname} />
      ) : (
        <Box>
          <Button variant="contained" onClick={() => void issue()} disabled={busy}>
            {busy ? "Issuing…" : "Issue the push bundle"}
          </Button>
          <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
            Issues a new server certificate and key for {hostname}, with the manager's CA certificate. Each press makes a new one.
          </Typography>
          <FormError error={error} />
        </Box>
      )}
    </Stack>
  );
}
