// Manager settings (`/api/v1/settings`, `/api/v1/settings/sso`, `/api/v1/settings/config`) and
// the internal CA (`/api/v1/ca/…`, `/api/v1/certificates…`): typed functions, types aliased from
// the generated schema, and the TanStack Query keys. All admin-only on the server.

import { API_BASE, api } from "./client";
import { queryString, type Page } from "./fleet";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type Settings = Schemas["Settings"];
export type SettingsPatch = Schemas["SettingsPatch"];
export type SsoSettingsView = Schemas["SsoSettingsView"];
export type SsoSettingsInput = Schemas["SsoSettingsInput"];
export type CertificateView = Schemas["CertificateView"];
export type RenewRequest = Schemas["RenewRequest"];
export type RevokeRequest = Schemas["RevokeRequest"];
export type CertificateQuery = NonNullable<paths["/api/v1/certificates"]["get"]["parameters"]["query"]>;

/** The manager's configuration file values admins may see (`GET /api/v1/settings/config`). */
export type ManagerConfigView = Schemas["ManagerConfigView"];

/** The run-time settings the Settings page switches, in the order shown. */
export type BooleanSetting = keyof Settings;

/** Certificate kinds, as the API names them. */
export const CERTIFICATE_KINDS = ["server", "client", "push_client"] as const;

const V = API_BASE;

/** Where the browser downloads the CA certificate and the CRL (public endpoints, PEM). */
export const CA_CERTIFICATE_URL = `${V}/ca/certificate`;
export const CA_CRL_URL = `${V}/ca/crl`;

export const settingsApi = {
  get: (signal?: AbortSignal) => api.get<Settings>(`${V}/settings`, signal),
  /** Changes the given settings; answers with all of them. */
  patch: (body: SettingsPatch) => api.patch<Settings>(`${V}/settings`, body),
  sso: (signal?: AbortSignal) => api.get<SsoSettingsView>(`${V}/settings/sso`, signal),
  /** Replaces the SSO settings; when enabling, the manager contacts the provider first. */
  setSso: (body: SsoSettingsInput) => api.put<SsoSettingsView>(`${V}/settings/sso`, body),
  config: (signal?: AbortSignal) => api.get<ManagerConfigView>(`${V}/settings/config`, signal),
};

const serialPath = (serial: string) => `${V}/certificates/${encodeURIComponent(serial)}`;

export const certificatesApi = {
  list: (q: CertificateQuery, signal?: AbortSignal) =>
    api.get<Page<CertificateView>>(`${V}/certificates${queryString(q)}`, signal),
  /** A new certificate for a new CSR, same subject and host; the old one stays valid. */
  renew: (serial: string, body: RenewRequest) => api.post<CertificateView>(`${serialPath(serial)}/renew`, body),
  revoke: (serial: string, body: RevokeRequest) => api.post<CertificateView>(`${serialPath(serial)}/revoke`, body),
};

export const settingsKeys = {
  settings: ["settings"] as const,
  sso: ["settings", "sso"] as const,
  config: ["settings", "config"] as const,
  certificates: ["certificates"] as const,
  certificateList: (q: CertificateQuery) => ["certificates", "list", q] as const,
};

/** "5 min", "1 h 30 min", "30 days": a duration in seconds in the largest whole units. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  if (seconds === 0) return "0 s";
  const units: [number, (n: number) => string][] = [
    [86_400, (n) => `${n} ${n === 1 ? "day" : "days"}`],
    [3_600, (n) => `${n} h`],
    [60, (n) => `${n} min`],
    [1, (n) => `${n} s`],
  ];
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [size, label] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(label(n));
      rest -= n * size;
    }
  }
  return parts.join(" ");
}

export const MINUTE = 60;
export const HOUR = 3_600;
export const DAY = 86_400;

/** How a certificate stands on `now`: revoked, expired, expiring within 30 days, or valid. */
export type CertificateState = "revoked" | "expired" | "expiring" | "valid";

export const EXPIRY_WARNING_DAYS = 30;

export function certificateState(c: Pick<CertificateView, "revoked_at" | "not_after">, now: Date = new Date()): CertificateState {
  if (c.revoked_at) return "revoked";
  const end = new Date(c.not_after).getTime();
  if (Number.isNaN(end)) return "valid";
  if (end <= now.getTime()) return "expired";
  if (end - now.getTime() <= EXPIRY_WARNING_DAYS * DAY * 1000) return "expiring";
  return "valid";
}

/** Whole days from `now` to `iso` (negative when past). */
export function daysUntil(iso: string, now: Date = new Date()): number {
  return Math.floor((new Date(iso).getTime() - now.getTime()) / (DAY * 1000));
}
