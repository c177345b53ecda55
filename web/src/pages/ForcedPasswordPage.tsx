import { useNavigate } from "react-router-dom";
import { Alert, Card, CardContent, Typography } from "@mui/material";
import { useQueryClient } from "@tanstack/react-query";
import { homeFor, meQuery, useMe } from "../auth/session";
import { ChangePasswordForm } from "../components/ChangePasswordForm";

/** The session may do nothing else until the password is changed. */
export function ForcedPasswordPage() {
  const me = useMe();
  const client = useQueryClient();
  const navigate = useNavigate();
  const username = me.data?.user.username ?? "";
  return (
    <Card variant="outlined" sx={{ maxWidth: 520, mx: "auto" }}>
      <CardContent sx={{ p: { xs: 2.5, sm: 4 } }}>
        <Typography variant="h5" component="h1" sx={{ fontWeight: 600 }}>
          Choose a new password
        </Typography>
        <Alert severity="info" sx={{ mt: 2 }}>
          Your password was set by an administrator (or is the first-start password). Choose your own before
          you continue.
        </Alert>
        <ChangePasswordForm
          username={username}
          submitLabel="Set new password"
          onDone={async () => {
            const who = await client.fetchQuery({ ...meQuery, staleTime: 0 });
            navigate(homeFor(who?.restriction), { replace: true });
          }}
        />
      </CardContent>
    </Card>
  );
}
