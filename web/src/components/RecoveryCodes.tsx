import { useState } from "react";
import { Alert, AlertTitle, Box, Button, Checkbox, FormControlLabel, Stack } from "@mui/material";
import DownloadIcon from "@mui/icons-material/Download";
import { CopyButton } from "./CopyButton";

function download(filename: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

interface RecoveryCodesProps {
  codes: string[];
  username: string;
  doneLabel: string;
  onDone: () => void;
}

/** One-time recovery codes: shown once, with copy and download, acknowledged before moving on. */
export function RecoveryCodes({ codes, username, doneLabel, onDone }: RecoveryCodesProps) {
  const [stored, setStored] = useState(false);
  const text = codes.join("\n");
  const file = [
    `Patchdeck recovery codes for ${username}`,
    `Created ${new Date().toISOString()} on ${window.location.host}`,
    "Each code signs you in once in place of an authenticator code.",
    "",
    ...codes,
    "",
  ].join("\n");
  return (
    <Box>
      <Alert severity="warning" sx={{ mb: 2 }}>
        <AlertTitle>Store these recovery codes now</AlertTitle>
        They are shown only this once. Each one signs you in once if you lose your authenticator. Keep them
        in a password manager or print them, somewhere other than this device.
      </Alert>
      <Box
        component="ol"
        aria-label="Recovery codes"
        sx={{
          m: 0,
          p: 2,
          pl: 5,
          display: "grid",
          gridTemplateColumns: { xs: "1fr", sm: "1fr 1fr" },
          columnGap: 4,
          rowGap: 0.5,
          fontFamily: "monospace",
          fontSize: "1rem",
          bgcolor: "action.hover",
          borderRadius: 1,
        }}
      >
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </Box>
      <Stack direction={{ xs: "column", sm: "row" }} spacing={1} sx={{ mt: 2 }}>
        <CopyButton text={text} label="Copy all" />
        <Button
          variant="outlined"
          size="small"
          startIcon={<DownloadIcon />}
          onClick={() => download("patchdeck-recovery-codes.txt", file)}
        >
          Download as text
        </Button>
      </Stack>
      <FormControlLabel
        sx={{ mt: 2, display: "flex" }}
        control={<Checkbox checked={stored} onChange={(e) => setStored(e.target.checked)} />}
        label="I have stored these codes somewhere safe"
      />
      <Button variant="contained" disabled={!stored} onClick={onDone} sx={{ mt: 1 }}>
        {doneLabel}
      </Button>
    </Box>
  );
}
