// The security health page's reads: the manager's key fingerprints (`GET /api/v1/settings/config`,
// only its `signing` member) and the certificates for their expiry (`GET /api/v1/certificates`).
// All admin-only on the server.

import { API_BASE, api } from "./client";
import { queryString, type Page } from "./fleet";
import type { components } from "./schema";

export type CertificateView = components["schemas"]["CertificateView"];

/** The fingerprints agents and administrators compare: of the command-signing key and of the CA. */
export type SigningFingerprints = components["schemas"]["SigningView"];
/** The part of `GET /api/v1/settings/config` this page reads. */
export type ConfigSigning = Pick<components["schemas"]["ManagerConfigView"], "signing">;

/** The most certificates one request returns (the API's `MAX_LIMIT`). */
export const CERTIFICATE_PAGE = 500;
/** Certificates expiring within this many days are called out. */
export const EXPIRY_WARNING_DAYS = 30;

const V = API_BASE;

export const securityApi = {
  config: (signal?: AbortSignal) => api.get<ConfigSigning>(`${V}/settings/config`, signal),
  /** The newest valid (not revoked) certificates. */
  validCertificates: (signal?: AbortSignal) =>
    api.get<Page<CertificateView>>(`${V}/certificates${queryString({ revoked: false, limit: CERTIFICATE_PAGE, offset: 0 })}`, signal),
};

export const securityKeys = {
  /** The same key as the settings page's (same endpoint, same answer), so the two share it. */
  config: ["settings", "config"] as const,
  certificateHealth: ["certificates", "health"] as const,
};

export interface CertificateHealth {
  /** Current certificates (the latest of each kind and subject) already expired. */
  expired: number;
  /** Current certificates expiring within `EXPIRY_WARNING_DAYS`. */
  expiring: number;
  /** The current certificates that expire first (expired ones first), at most `limit`. */
  soonest: CertificateView[];
  /** How many current certificates were counted. */
  current: number;
}

/**
 * Counts expired and soon-expiring certificates. A renewal leaves the old certificate valid until
 * it expires, so only the latest certificate of each kind and subject (host, or common name) is
 * counted: an expired one that was renewed is not a problem.
 */
export function certificateHealth(certs: CertificateView[], now: number, limit = 5): CertificateHealth {
  const latest = new Map<string, CertificateView & { until: number }>();
  for (const c of certs) {
    if (c.revoked_at) continue;
    const until = new Date(c.not_after).getTime();
    if (Number.isNaN(until)) continue;
    const key = `${c.kind}\u0000${c.host_id ?? ""}\u0000${c.common_name}`;
    const seen = latest.get(key);
    if (!seen || until > seen.until) latest.set(key, { ...c, until });
  }
  const current = [...latest.values()].sort((a, b) => a.until - b.until);
  const horizon = now + EXPIRY_WARNING_DAYS * 86_400_000;
  return {
    expired: current.filter((c) => c.until <= now).length,
    expiring: current.filter((c) => c.until > now && c.until <= horizon).length,
    soonest: current.slice(0, limit).map(({ until: _until, ...c }) => c),
    current: current.length,
  };
}
