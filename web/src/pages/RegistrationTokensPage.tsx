import { useState, type FormEvent } from "react";
import {
  Alert,
  AlertTitle,
  Box,
  Button,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
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
import { fleetApi, keys, type CreatedRegistrationToken, type RegistrationTokenView } from "../api/fleet";
import { CopyButton } from "../components/CopyButton";
import { DateTime } from "../components/DateTime";
import { EmptyState } from "../components/EmptyState";
import { FormError } from "../components/errors";
import { PageHeader } from "../components/PageHeader";
import { ConfirmDialog } from "../components/PasswordConfirmDialog";
import { ListBody, ListCard, Pager, ScrollTable, StateChip } from "../components/tables";
import { MONO_FONTS } from "../theme";
import { useUrlParams } from "../urlState";

const PAGE = 50;

function CreateTokenDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (t: CreatedRegistrationToken) => void }) {
  const [label, setLabel] = useState("");
  const [seats, setSeats] = useState("10");
  const [hours, setHours] = useState("24");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const field = isApiError(error) ? error.field : undefined;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await fleetApi.createRegistrationToken({
        label: label.trim(),
        seats: Number(seats),
        expires_in_hours: Number(hours),
      });
      setLabel("");
      onCreated(created);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} onClose={busy ? undefined : onClose} fullWidth maxWidth="sm" aria-labelledby="create-token-title">
      <form onSubmit={(e) => void submit(e)}>
        <DialogTitle id="create-token-title">New registration token</DialogTitle>
        <DialogContent>
          <DialogContentText>
            Agents present the token once to enroll. Anyone holding it can enroll a machine until it expires or its seats run out.
          </DialogContentText>
          <TextField
            label="Label"
            required
            autoFocus
            value={label}
            onChange={(e) => setLabel(e.target.value)}
            helperText={field === "label" ? undefined : "What it is for, e.g. web servers, rack 4"}
            error={field === "label"}
            inputProps={{ maxLength: 100 }}
          />
          <TextField
            label="Seats"
            type="number"
            required
            value={seats}
            onChange={(e) => setSeats(e.target.value)}
            inputProps={{ min: 1, max: 100000 }}
            helperText="How many agents may enroll with it (1–100000)"
            error={field === "seats"}
          />
          <TextField
            label="Expires in (hours)"
            type="number"
            required
            value={hours}
            onChange={(e) => setHours(e.target.value)}
            inputProps={{ min: 1, max: 8760 }}
            helperText="1 to 8760 (a year)"
            error={field === "expires_in_hours"}
          />
          <FormError error={error} />
        </DialogContent>
        <DialogActions>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="contained" disabled={busy || !label.trim()}>
            {busy ? "Creating…" : "Create token"}
          </Button>
        </DialogActions>
      </form>
    </Dialog>
  );
}

/** The new token's install command, shown once. */
function CreatedToken({ token, onDone }: { token: CreatedRegistrationToken; onDone: () => void }) {
  return (
    <Alert severity="success" sx={{ mb: 2 }} role="status">
      <AlertTitle>Token “{token.label}” created: copy the install command now</AlertTitle>
      <Typography variant="body2">
        Run it on each machine to enroll. The token is shown only this once; if you lose it, revoke it and create another.
      </Typography>
      <Box
        component="pre"
        aria-label="Install command"
        tabIndex={0}
        sx={{ fontFamily: MONO_FONTS, fontSize: "0.8125rem", whiteSpace: "pre-wrap", overflowWrap: "anywhere", p: 1.5, my: 1, bgcolor: "background.paper", borderRadius: 1 }}
      >
        {token.install_command}
      </Box>
      <Box sx={{ display: "flex", gap: 1, flexWrap: "wrap" }}>
        <CopyButton text={token.install_command} label="Copy install command" />
        <CopyButton text={token.token} label="Copy token only" />
        <Button size="small" onClick={onDone}>
          I have copied it
        </Button>
      </Box>
    </Alert>
  );
}

export function RegistrationTokensPage() {
  const client = useQueryClient();
  const { page, set } = useUrlParams();
  const q = { limit: PAGE, offset: page * PAGE };
  const tokens = useQuery({
    queryKey: [...keys.registrationTokens, q],
    queryFn: ({ signal }) => fleetApi.registrationTokens(q, signal),
    placeholderData: keepPreviousData,
  });
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedRegistrationToken | null>(null);
  const [revoking, setRevoking] = useState<RegistrationTokenView | null>(null);
  const items = tokens.data?.items ?? [];
  const refresh = () => client.invalidateQueries({ queryKey: keys.registrationTokens });

  return (
    <>
      <PageHeader
        title="Registration tokens"
        subtitle="Tokens that agents present once to enroll with this manager."
        actions={
          <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
            New token
          </Button>
        }
      />
      {created && <CreatedToken token={created} onDone={() => setCreated(null)} />}
      <ListCard>
        <ListBody
          query={tokens}
          what="registration tokens"
          isEmpty={items.length === 0}
          empty={
            <EmptyState title="No registration tokens" action={<Button variant="outlined" onClick={() => setCreating(true)}>Create the first token</Button>}>
              Create one to enroll agents: it comes with the install command to run on each machine.
            </EmptyState>
          }
        >
          <ScrollTable label="Registration tokens">
            <Table size="small" aria-label="Registration tokens">
              <TableHead>
                <TableRow>
                  <TableCell>Label</TableCell>
                  <TableCell>Status</TableCell>
                  <TableCell>Seats used</TableCell>
                  <TableCell>Expires</TableCell>
                  <TableCell>Created</TableCell>
                  <TableCell align="right">Actions</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {items.map((t) => (
                  <TableRow key={t.id}>
                    <TableCell>{t.label}</TableCell>
                    <TableCell>
                      <StateChip value={t.status} />
                    </TableCell>
                    <TableCell>
                      {t.seats_used} of {t.seats_total}
                    </TableCell>
                    <TableCell>
                      <DateTime value={t.expires_at} />
                    </TableCell>
                    <TableCell>
                      <DateTime value={t.created_at} />
                    </TableCell>
                    <TableCell align="right">
                      {t.status === "active" && (
                        <Button size="small" color="error" onClick={() => setRevoking(t)} aria-label={`Revoke ${t.label}`}>
                          Revoke
                        </Button>
                      )}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </ScrollTable>
        </ListBody>
        {tokens.data && tokens.data.total > PAGE && (
          <Pager total={tokens.data.total} page={page} limit={PAGE} onPage={(p) => set({ page: p === 0 ? "" : p + 1 }, { keepPage: true })} />
        )}
      </ListCard>
      <CreateTokenDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(t) => {
          setCreating(false);
          setCreated(t);
          void refresh();
        }}
      />
      <ConfirmDialog
        open={revoking !== null}
        title="Revoke this token?"
        description={`No more agents can enroll with “${revoking?.label ?? ""}”. Agents that already enrolled stay`}
        confirmLabel="Revoke"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await fleetApi.revokeRegistrationToken(revoking.id);
          setRevoking(null);
          await refresh();
        }}
      />
    </>
  );
}
