// The security health page's reads: the manager's key fingerprints (`GET /api/v1/settings/config`,
// only its `signing` member) and the certificates for their expiry (`GET /api/v1/certificates`).
// All admin-only on the server.

import { certificatesApi, settingsApi, settingsKeys, type CertificateView } from "./settings";

export type { CertificateView };

/** The most certificates one request returns (the API's `MAX_LIMIT`). */
export const CERTIFICATE_PAGE = 500;
/** Certificates expiring within this many days are called out. */
export const EXPIRY_WARNING_DAYS = 30;

export const securityApi = {
  /** The configuration in effect; this page reads its `signing` member (the settings page's read). */
  config: settingsApi.config,
  /** The newest valid (not revoked) certificates. */
  validCertificates: (signal?: AbortSignal) =>
    certificatesApi.list({ revoked: false, limit: CERTIFICATE_PAGE, offset: 0 }, signal),
};

export const securityKeys = {
  /** The settings page's key: same endpoint, same answer, one cached copy. */
  config: settingsKeys.config,
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
