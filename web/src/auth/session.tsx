// Who is signed in, and the guards that send the user where they must go.

import { useCallback, type ReactNode } from "react";
import { Navigate, useLocation, useNavigate, type Location } from "react-router-dom";
import { Box, CircularProgress } from "@mui/material";
import { queryOptions, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { authApi } from "../api/auth";
import { isApiError } from "../api/client";
import type { MeResponse, Restriction } from "../api/types";
import { ErrorPanel } from "../components/errors";

export const meKey = ["auth", "me"] as const;

/**
 * `GET /auth/me`; `null` when nobody is signed in. Never refetched behind the user's back (a
 * restricted session must not be moved off a page showing recovery codes): only on purpose,
 * through `refreshMe`.
 */
export const meQuery = queryOptions({
  queryKey: meKey,
  queryFn: async ({ signal }): Promise<MeResponse | null> => {
    try {
      return await authApi.me(signal);
    } catch (e) {
      if (isApiError(e) && e.status === 401) return null;
      throw e;
    }
  },
  staleTime: Infinity,
  refetchOnWindowFocus: false,
  refetchOnReconnect: false,
  retry: (failures, e) => !(isApiError(e) && e.status >= 400 && e.status < 500) && failures < 2,
});

export function useMe() {
  return useQuery(meQuery);
}

/** Reloads who is signed in (after login, a password change, MFA enrollment). */
export function refreshMe(client: QueryClient): Promise<void> {
  return client.invalidateQueries({ queryKey: meKey });
}

/** Forgets everything about the session (nothing is kept once signed out). */
export function forgetSession(client: QueryClient): void {
  client.removeQueries({ predicate: (q) => q.queryKey[0] !== meKey[0] || q.queryKey[1] !== meKey[1] });
  client.setQueryData(meKey, null);
}

/** Where a session with this restriction must go. */
export function homeFor(restriction: Restriction | null | undefined): string {
  switch (restriction) {
    case "password_change":
      return "/change-password";
    case "mfa_enrollment":
      return "/setup-mfa";
    default:
      return "/";
  }
}

export interface FromState {
  from?: Pick<Location, "pathname" | "search" | "hash">;
}

/** Signs out on the server, forgets the session here and goes to the login page. */
export function useSignOut(): () => Promise<void> {
  const client = useQueryClient();
  const navigate = useNavigate();
  return useCallback(async () => {
    try {
      await authApi.logout();
    } catch {
      // The session may already be gone; the user is signed out here either way.
    }
    forgetSession(client);
    navigate("/login", { replace: true });
  }, [client, navigate]);
}

export function FullPageProgress({ label }: { label: string }) {
  return (
    <Box sx={{ display: "grid", placeItems: "center", minHeight: "60vh" }} role="status" aria-live="polite">
      <CircularProgress aria-label={label} />
    </Box>
  );
}

interface RequireSessionProps {
  /** The restriction this page serves (`null`: the normal app, no restriction). */
  restriction: Restriction | null;
  children: ReactNode;
}

/**
 * Renders `children` only for a signed-in user whose restriction is the one this page serves;
 * everyone else is sent to the login page or to the page their restriction requires.
 */
export function RequireSession({ restriction, children }: RequireSessionProps) {
  const me = useMe();
  const location = useLocation();
  if (me.isPending) return <FullPageProgress label="Loading your session" />;
  if (me.isError) {
    return (
      <Box sx={{ p: 3, maxWidth: 640, mx: "auto" }}>
        <ErrorPanel error={me.error} title="Could not check your session" onRetry={() => void me.refetch()} />
      </Box>
    );
  }
  if (!me.data) {
    const state: FromState = { from: { pathname: location.pathname, search: location.search, hash: location.hash } };
    return <Navigate to="/login" replace state={state} />;
  }
  const actual = me.data.restriction ?? null;
  if (actual !== restriction) return <Navigate to={homeFor(actual)} replace />;
  return <>{children}</>;
}
