// The /api/v1/auth endpoints, typed.

import { API_BASE, api } from "./client";
import type {
  AddPasskeyRequest,
  ApiTokenView,
  AuthMethods,
  ChangePasswordRequest,
  CreateApiTokenRequest,
  CreatedApiToken,
  LoginOk,
  LoginRequest,
  LoginResponse,
  MeResponse,
  MfaLoginRequest,
  PasskeyLoginOptionsResponse,
  PasskeyLoginRequest,
  PasskeyRegistrationOptionsResponse,
  PasskeyView,
  RecoveryCodesResponse,
  SessionView,
  TotpSetupResponse,
} from "./types";

const AUTH = `${API_BASE}/auth`;

/** Where the browser goes (full page) to sign in with the configured OIDC provider. */
export const SSO_LOGIN_URL = `${AUTH}/oidc/login`;

export const authApi = {
  methods: (signal?: AbortSignal) => api.get<AuthMethods>(`${AUTH}/methods`, signal),
  login: (body: LoginRequest) => api.post<LoginResponse>(`${AUTH}/login`, body),
  loginMfa: (body: MfaLoginRequest) => api.post<LoginOk>(`${AUTH}/login/mfa`, body),
  passkeyLoginOptions: (mfaToken: string) =>
    api.post<PasskeyLoginOptionsResponse>(`${AUTH}/login/passkey/options`, { mfa_token: mfaToken }),
  loginPasskey: (body: PasskeyLoginRequest) => api.post<LoginOk>(`${AUTH}/login/passkey`, body),
  logout: () => api.post<void>(`${AUTH}/logout`),
  me: (signal?: AbortSignal) => api.get<MeResponse>(`${AUTH}/me`, signal),
  changePassword: (body: ChangePasswordRequest) => api.post<void>(`${AUTH}/password`, body),

  startTotp: () => api.post<TotpSetupResponse>(`${AUTH}/mfa/totp`),
  confirmTotp: (code: string) => api.post<RecoveryCodesResponse>(`${AUTH}/mfa/totp/confirm`, { code }),
  removeTotp: (password: string) => api.delete(`${AUTH}/mfa/totp`, { password }),
  regenerateRecoveryCodes: (password: string) =>
    api.post<RecoveryCodesResponse>(`${AUTH}/mfa/recovery-codes`, { password }),

  passkeys: (signal?: AbortSignal) => api.get<PasskeyView[]>(`${AUTH}/mfa/passkeys`, signal),
  passkeyRegistrationOptions: () => api.post<PasskeyRegistrationOptionsResponse>(`${AUTH}/mfa/passkeys/options`),
  addPasskey: (body: AddPasskeyRequest) => api.post<PasskeyView | undefined>(`${AUTH}/mfa/passkeys`, body),
  deletePasskey: (id: number) => api.delete(`${AUTH}/mfa/passkeys/${encodeURIComponent(String(id))}`),

  sessions: (signal?: AbortSignal) => api.get<SessionView[]>(`${AUTH}/sessions`, signal),
  revokeSession: (id: number) => api.delete(`${AUTH}/sessions/${encodeURIComponent(String(id))}`),

  tokens: (signal?: AbortSignal) => api.get<ApiTokenView[]>(`${AUTH}/tokens`, signal),
  createToken: (body: CreateApiTokenRequest) => api.post<CreatedApiToken>(`${AUTH}/tokens`, body),
  revokeToken: (id: number) => api.delete(`${AUTH}/tokens/${encodeURIComponent(String(id))}`),
};
