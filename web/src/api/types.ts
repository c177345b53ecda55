// Hand-written types for the /api/v1/auth endpoints.
//
// These mirror crates/patchdeck/src/web/handlers/auth.rs (and the passkey and SSO endpoints that
// are still being written). Once the OpenAPI snapshot exists, `npm run gen:api` writes
// src/api/schema.d.ts and these will be replaced by aliases of the generated ones.

/** The error envelope every failed request carries. */
export interface ErrorEnvelope {
  error: {
    code: string;
    message: string;
    details?: Record<string, unknown>;
    request_id: string;
  };
}

/** A user as the API shows it. Times are RFC 3339 strings. */
export interface UserView {
  id: number;
  username: string;
  display_name: string;
  /** `admin`, `operator` or `viewer`. */
  role: string;
  /** `local` or `oidc`. */
  auth_source: string;
  disabled: boolean;
  must_change_password: boolean;
  totp_enabled: boolean;
  locked_until: string | null;
  last_login_at: string | null;
  created_at: string;
}

/** What a signed-in session must do before anything else. */
export type Restriction = "password_change" | "mfa_enrollment";

/** A second factor offered at login. */
export type MfaMethod = "totp" | "recovery_code" | "passkey";

export interface LoginRequest {
  username: string;
  password: string;
}

/** Signed in: the session cookies are set. */
export interface LoginOk {
  status: "ok";
  user: UserView;
  restriction?: Restriction | null;
}

/** The password was right; a second factor is needed. */
export interface LoginMfaRequired {
  status: "mfa_required";
  mfa_token: string;
  methods: MfaMethod[];
}

export type LoginResponse = LoginOk | LoginMfaRequired;

export interface MfaLoginRequest {
  mfa_token: string;
  method: "totp" | "recovery_code";
  code: string;
}

/** `GET /api/v1/auth/methods`: how one may sign in here. */
export interface AuthMethods {
  password: boolean;
  sso?: { enabled: boolean; name?: string | null } | null;
}

/** `GET /api/v1/auth/me`. */
export interface MeResponse {
  user: UserView;
  restriction: Restriction | null;
  /** Second factors set up: `totp`, `passkey`. */
  mfa: ("totp" | "passkey")[];
  session_id: number | null;
}

export interface ChangePasswordRequest {
  current_password: string;
  new_password: string;
}

export interface TotpSetupResponse {
  /** Base32, for typing in by hand. */
  secret: string;
  /** `otpauth://totp/…`, shown as a QR code. */
  otpauth_uri: string;
}

export interface RecoveryCodesResponse {
  recovery_codes: string[];
}

export interface PasswordConfirmation {
  password: string;
}

export interface SessionView {
  id: number;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  source_ip: string | null;
  user_agent: string | null;
  mfa_method: string | null;
  current: boolean;
  revoked: boolean;
}

export interface ApiTokenView {
  id: number;
  label: string;
  created_at: string;
  expires_at: string;
  last_used_at: string | null;
  revoked: boolean;
}

export interface CreateApiTokenRequest {
  label: string;
  expires_in_days: number;
}

/** The secret `token` appears only in this response. */
export interface CreatedApiToken extends ApiTokenView {
  token: string;
}

export interface PasskeyView {
  id: number;
  name: string;
  created_at: string;
  last_used_at: string | null;
}

// WebAuthn Level 3 JSON forms (binary fields as unpadded base64url), as the manager's
// patchdeck-crypto::webauthn module writes and reads them.

export interface CredentialDescriptorJSON {
  type: "public-key";
  id: string;
  transports?: string[];
}

export interface CreationOptionsJSON {
  rp: { id: string; name: string };
  user: { id: string; name: string; displayName: string };
  challenge: string;
  pubKeyCredParams: { type: "public-key"; alg: number }[];
  timeout?: number;
  excludeCredentials?: CredentialDescriptorJSON[];
  authenticatorSelection?: {
    residentKey?: string;
    requireResidentKey?: boolean;
    userVerification?: string;
    authenticatorAttachment?: string;
  };
  attestation?: string;
}

export interface RequestOptionsJSON {
  challenge: string;
  timeout?: number;
  rpId?: string;
  allowCredentials?: CredentialDescriptorJSON[];
  userVerification?: string;
}

export interface PasskeyLoginOptionsResponse {
  options: RequestOptionsJSON;
  ceremony: string;
}

export interface PasskeyRegistrationOptionsResponse {
  options: CreationOptionsJSON;
  ceremony: string;
}

export interface RegistrationResponseJSON {
  id: string;
  rawId: string;
  type: "public-key";
  response: {
    clientDataJSON: string;
    attestationObject: string;
    transports?: string[];
  };
}

export interface AuthenticationResponseJSON {
  id: string;
  rawId: string;
  type: "public-key";
  response: {
    clientDataJSON: string;
    authenticatorData: string;
    signature: string;
    userHandle?: string;
  };
}

export interface PasskeyLoginRequest {
  mfa_token: string;
  ceremony: string;
  credential: AuthenticationResponseJSON;
}

export interface AddPasskeyRequest {
  name: string;
  ceremony: string;
  credential: RegistrationResponseJSON;
}
