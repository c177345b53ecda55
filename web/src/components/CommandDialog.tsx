import { useEffect, useState, type ReactNode } from "react";
import {
  Button,
  Checkbox,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  FormControlLabel,
} from "@mui/material";
import { COMMANDS, type Command } from "../api/fleet";
import { FormError } from "./errors";

/** The actions offered on hosts, one host or many. */
export type HostAction = "scan" | "upgradeSecurity" | "upgradeAll" | "reboot";

export const HOST_ACTIONS: Record<
  HostAction,
  { label: string; title: string; describe: (target: string) => string; dryRun: boolean; danger: boolean; make: (dryRun: boolean) => Command }
> = {
  scan: {
    label: "Scan now",
    title: "Scan now",
    describe: (t) => `Refresh package metadata and rescan packages, system and storage on ${t}. Nothing is installed.`,
    dryRun: false,
    danger: false,
    make: () => COMMANDS.scan(),
  },
  upgradeSecurity: {
    label: "Apply security updates",
    title: "Apply security updates",
    describe: (t) => `Install the updates classified as security fixes by the latest scan on ${t}.`,
    dryRun: true,
    danger: true,
    make: (d) => COMMANDS.upgradeSecurity(d),
  },
  upgradeAll: {
    label: "Apply all updates",
    title: "Apply all updates",
    describe: (t) => `Install every available update on ${t}.`,
    dryRun: true,
    danger: true,
    make: (d) => COMMANDS.upgradeAll(d),
  },
  reboot: {
    label: "Reboot",
    title: "Reboot",
    describe: (t) => `Reboot ${t} now. Jobs already running finish first.`,
    dryRun: false,
    danger: true,
    make: () => COMMANDS.reboot(),
  },
};

interface CommandDialogProps {
  action: HostAction | null;
  /** "web-01" or "12 hosts". */
  target: string;
  onClose: () => void;
  /** Queues the command; a thrown error stays in the dialog. */
  onConfirm: (command: Command) => Promise<void>;
  children?: ReactNode;
}

/** Confirms a command before it is queued, with a dry-run option for upgrades. */
export function CommandDialog({ action, target, onClose, onConfirm, children }: CommandDialogProps) {
  const [dryRun, setDryRun] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (action) {
      setDryRun(false);
      setError(null);
    }
  }, [action]);
  const spec = action ? HOST_ACTIONS[action] : null;
  const confirm = async () => {
    if (!spec) return;
    setBusy(true);
    setError(null);
    try {
      await onConfirm(spec.make(dryRun));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={spec !== null} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="command-dialog-title">
      {spec && (
        <>
          <DialogTitle id="command-dialog-title">
            {spec.title}: {target}
          </DialogTitle>
          <DialogContent>
            <DialogContentText>{spec.describe(target)}</DialogContentText>
            {spec.dryRun && (
              <FormControlLabel
                sx={{ mt: 1 }}
                control={<Checkbox checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} />}
                label="Dry run: only compute what would change, install nothing"
              />
            )}
            {children}
            <FormError error={error} />
          </DialogContent>
          <DialogActions>
            <Button onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button
              variant="contained"
              color={spec.danger && !dryRun ? "error" : "primary"}
              onClick={() => void confirm()}
              disabled={busy}
            >
              {busy ? "Queueing…" : dryRun ? "Queue dry run" : spec.label}
            </Button>
          </DialogActions>
        </>
      )}
    </Dialog>
  );
}
