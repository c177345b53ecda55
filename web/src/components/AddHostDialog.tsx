// Adding a host by hand (`POST /api/v1/hosts`): a push host, which the manager then reaches on
// its agent's port. Afterwards an administrator can issue its push bundle right here.

import { useState, type FormEvent } from "react";
import { Link as RouterLink } from "react-router-dom";
import {
  Alert,
  Button,
  Checkbox,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  ListItemText,
  MenuItem,
  TextField,
  Typography,
  useMediaQuery,
  useTheme,
} from "@mui/material";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { isApiError } from "../api/client";
import { fleetApi, keys, type HostDetail } from "../api/fleet";
import { describeError, FormError } from "./errors";
import { PushBundlePanel, PushBundleSteps } from "./PushBundle";

interface AddHostDialogProps {
  open: boolean;
  onClose: () => void;
  /** Administrators may issue the push bundle (the endpoint is theirs only). */
  isAdmin: boolean;
}

export function AddHostDialog({ open, onClose, isAdmin }: AddHostDialogProps) {
  const client = useQueryClient();
  const theme = useTheme();
  const phone = useMediaQuery(theme.breakpoints.down("sm"));
  const groups = useQuery({ queryKey: keys.groups, queryFn: ({ signal }) => fleetApi.groups(signal), staleTime: 60_000, enabled: open });
  const [fqdn, setFqdn] = useState("");
  const [address, setAddress] = useState("");
  const [groupIds, setGroupIds] = useState<number[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<HostDetail | null>(null);
  const field = isApiError(error) && error.status === 400 ? error.field : undefined;
  const fieldError = (name: string) => (field === name && isApiError(error) ? describeError(error) : undefined);
  const empty = !fqdn.trim() && !address.trim();
  const onAField = field !== undefined && ["fqdn", "hostname", "address", "groups"].includes(field);

  const reset = () => {
    setFqdn("");
    setAddress("");
    setGroupIds([]);
    setError(null);
    setCreated(null);
  };
  const close = () => {
    if (busy) return;
    reset();
    onClose();
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (empty) return;
    setBusy(true);
    setError(null);
    try {
      const host = await fleetApi.createHost({
        ...(fqdn.trim() ? { fqdn: fqdn.trim() } : {}),
        ...(address.trim() ? { address: address.trim() } : {}),
        ...(groupIds.length ? { groups: groupIds } : {}),
      });
      setCreated(host);
      void client.invalidateQueries({ queryKey: keys.hosts });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} onClose={close} fullWidth maxWidth="md" fullScreen={phone} aria-labelledby="add-host-title">
      {created ? (
        <>
          <DialogTitle id="add-host-title">Added {created.hostname}</DialogTitle>
          <DialogContent>
            <Alert severity="success" sx={{ mb: 2 }}>
              {created.hostname} is a push host: the manager will call its agent (on port 12443 unless configured otherwise) and mark it online when it answers.
            </Alert>
            <Typography variant="subtitle1" component="h3" sx={{ mb: 1 }}>
              Give its agent the push bundle
            </Typography>
            {isAdmin ? (
              <PushBundlePanel hostId={created.id} hostname={created.hostname} />
            ) : (
              <>
                <Typography variant="body2" sx={{ mb: 1 }}>
                  If the agent does not trust this manager yet, an administrator issues its bundle (the CA certificate, a server
                  certificate and key) from the host's page. Then:
                </Typography>
                <PushBundleSteps />
              </>
            )}
          </DialogContent>
          <DialogActions>
            <Button onClick={close}>Close</Button>
            <Button component={RouterLink} to={`/hosts/${created.id}`} variant="contained" onClick={close}>
              Open the host
            </Button>
          </DialogActions>
        </>
      ) : (
        <form onSubmit={(e) => void submit(e)} noValidate>
          <DialogTitle id="add-host-title">Add a push host</DialogTitle>
          <DialogContent>
            <DialogContentText>
              For a host whose agent runs in push mode (a Linux_Patch_API agent): the manager connects to it. Give its name, its
              address, or both. Agents that check in by themselves enroll with a registration token instead.
            </DialogContentText>
            <TextField
              label="FQDN"
              placeholder="db-01.example.com"
              autoFocus
              value={fqdn}
              onChange={(e) => setFqdn(e.target.value)}
              error={field === "fqdn" || field === "hostname"}
              helperText={fieldError("fqdn") ?? fieldError("hostname") ?? "The name in the agent's server certificate"}
              inputProps={{ spellCheck: false, autoCapitalize: "off", autoCorrect: "off" }}
            />
            <TextField
              label="Address"
              placeholder="10.0.4.17"
              value={address}
              onChange={(e) => setAddress(e.target.value)}
              error={field === "address"}
              helperText={fieldError("address") ?? "IPv4 or IPv6; the manager connects here (else to the FQDN)"}
              inputProps={{ spellCheck: false, autoCapitalize: "off", autoCorrect: "off" }}
            />
            <TextField
              select
              label="Groups"
              value={groupIds.map(String)}
              onChange={(e) => {
                const v = e.target.value as unknown as string[] | string;
                setGroupIds((typeof v === "string" ? v.split(",") : v).map(Number).filter((n) => n > 0));
              }}
              SelectProps={{
                multiple: true,
                renderValue: (selected) => {
                  const names = new Map((groups.data?.items ?? []).map((g) => [String(g.id), g.name]));
                  return (selected as string[]).map((id) => names.get(id) ?? `group ${id}`).join(", ");
                },
              }}
              error={field === "groups"}
              helperText={
                fieldError("groups") ??
                (groups.isError
                  ? "The groups could not be loaded; add the host without one, or close and try again."
                  : "Optional. Operators can only use their own groups.")
              }
              disabled={groups.isPending || groups.isError || (groups.data?.items.length ?? 0) === 0}
            >
              {(groups.data?.items ?? []).map((g) => (
                <MenuItem key={g.id} value={String(g.id)}>
                  <Checkbox checked={groupIds.includes(g.id)} size="small" />
                  <ListItemText primary={g.name} />
                </MenuItem>
              ))}
            </TextField>
            {error !== null && !onAField && <FormError error={error} />}
          </DialogContent>
          <DialogActions>
            <Button onClick={close} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant="contained" disabled={busy || empty}>
              {busy ? "Adding…" : "Add host"}
            </Button>
          </DialogActions>
        </form>
      )}
    </Dialog>
  );
}
