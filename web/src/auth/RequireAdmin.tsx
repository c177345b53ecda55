import type { ReactNode } from "react";
import { Alert } from "@mui/material";
import { useMe } from "./session";

/** Admin-only pages: others get a plain explanation (the server refuses them anyway). */
export function RequireAdmin({ children }: { children: ReactNode }) {
  const me = useMe();
  if (me.data?.user.role !== "admin") {
    return (
      <Alert severity="warning">
        This page is for administrators. Your role is {me.data?.user.role ?? "unknown"}; ask an administrator if you need
        access.
      </Alert>
    );
  }
  return <>{children}</>;
}
