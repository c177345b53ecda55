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
  FormHelperText,
  Tooltip,
} from "@mui/material";
import { COMMANDS, type Command } from "../api/fleet";
import { FormError } from "./errors";

/** The actions offered on hosts, one host or many. */
export type HostAction = "scan" | "upgradeSecurity" | "upgradeAll" | "reboot" | "heartbeat";

export const HOST_ACTIONS: Record<
  HostAction,
  {
    label: string;
    title: string;
    describe: (target: string) => string;
    dryRun: boolean;
    danger: boolean;
    make: (dryRun: boolean) => Command;
    /** Offered for one host only, not for a selection or a group. */
    single?: boolean;
  }
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
  heartbeat: {
    label: "Rapid check-in",
    title: "Rapid check-in",
    describe: (t) => `Ask the agent on ${t} to check in every 10 seconds, with fresh metrics, for the next 15 minutes.`,
    dryRun: false,
    danger: false,
    make: () => COMMANDS.heartbeat(),
    single: true,
  },
};

/** The actions offered for many hosts at once. */
export const BULK_ACTIONS = (Object.keys(HOST_ACTIONS) as HostAction[]).filter((a) => !HOST_ACTIONS[a].single);

interface CommandDialogProps {
  action: HostAction | null;
  /** "web-01" or "12 hosts". */
  target: string;
  onClose: () => void;
  /** Queues the command; a thrown error stays in the dialog. */
  onConfirm: (command: Command) => Promise<void>;
  /** Why a dry run cannot be offered (a push host), if it cannot: the option is shown disabled. */
  noDryRun?: string;
  children?: ReactNode;
}

/** Confirms a command before it is queued, with a dry-run option for upgrades. */
export function CommandDialog({ action, target, onClose, onConfirm, noDryRun, children }: CommandDialogProps) {
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
      await onConfirm(spec.make(dryRun && !noDryRun));
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
            {spec.dryRun && !noDryRun && (
              <FormControlLabel
                sx={{ mt: 1 }}
                control={<Checkbox checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} />}
                label="Dry run: only compute what would change, install nothing"
              />
            )}
            {spec.dryRun && noDryRun && (
              <>
                <Tooltip title={noDryRun}>
                  {/* A disabled control gets no pointer events: the tooltip hangs on its wrapper. */}
                  <span>
                    <FormControlLabel
                      sx={{ mt: 1 }}
                      disabled
                      control={<Checkbox checked={false} inputProps={{ "aria-describedby": "dry-run-why" }} />}
                      label="Dry run: only compute what would change, install nothing"
                    />
                  </span>
                </Tooltip>
                <FormHelperText id="dry-run-why" sx={{ mt: 0 }}>
                  Not available: {noDryRun}
                </FormHelperText>
              </>
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
