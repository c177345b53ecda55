// Admin actions on one account (`/api/v1/users/{id}/…`): set or generate a password, remove its
// second factors, list and end its sessions. The list, create and update calls are in fleet.ts.

import { API_BASE, api } from "./client";
import type { components } from "./schema";

type Schemas = components["schemas"];

export type SetPasswordRequest = Schemas["SetPasswordRequest"];
export type SetPasswordResponse = Schemas["SetPasswordResponse"];
export type UserSessionView = Schemas["SessionView"];

const V = API_BASE;
const user = (id: number) => `${V}/users/${encodeURIComponent(String(id))}`;

export const usersApi = {
  /**
   * Sets a local account's password (`password` given) or has one generated (`password: null`,
   * returned once). The user must change it at next sign-in; the account is unlocked and its
   * sessions end. Refused with 409 for single sign-on accounts.
   */
  setPassword: (id: number, body: SetPasswordRequest) => api.post<SetPasswordResponse>(`${user(id)}/password`, body),
  /** Removes the account's TOTP, passkeys and recovery codes. */
  resetMfa: (id: number) => api.delete(`${user(id)}/mfa`),
  /** Every session of the account, revoked and expired ones included (see `activeSessions`). */
  sessions: (id: number, signal?: AbortSignal) => api.get<UserSessionView[]>(`${user(id)}/sessions`, signal),
  /** Ends every session of the account (its API tokens are not affected). */
  revokeSessions: (id: number) => api.delete(`${user(id)}/sessions`),
};

/** The sessions that still work: not revoked and not expired at `now` (ms). */
export function activeSessions(sessions: readonly UserSessionView[], now = Date.now()): UserSessionView[] {
  return sessions.filter((s) => {
    if (s.revoked) return false;
    const expires = Date.parse(s.expires_at);
    return Number.isNaN(expires) || expires > now;
  });
}

/** Query keys, under `["users"]` (`keys.users` in fleet.ts) so a user change refreshes them too. */
export const userKeys = {
  sessions: (id: number) => ["users", id, "sessions"] as const,
};
