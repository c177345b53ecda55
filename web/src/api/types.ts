// Types of the /api/v1/auth endpoints.
//
// Most are aliases of the types generated from the OpenAPI snapshot (src/api/schema.d.ts,
// `npm run gen:api`), so a change in the server breaks the build. Still written by hand: the
// error envelope, the login answer as a union on `status` (the document describes one object
// with optional fields), and the WebAuthn JSON the passkey endpoints carry inside free-form
// `options` objects.

import type { components } from "./schema";

/** The generated types (`npm run gen:api`). */
type Schemas = components["schemas"];

/** The error envelope every failed request carries. */
export interface ErrorEnvelope {
  error: {
    code: string;
    message: string;
    details?: Record<string, unknown>;
    request_id: string;
  };
}

export type UserView = Schemas["UserView"];

/** What a signed-in session must do before anything else. */
export type Restriction = Schemas["Restriction"];

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

export type AuthMethods = Schemas["AuthMethods"];

export type MeResponse = Schemas["MeResponse"];

export type ChangePasswordRequest = Schemas["ChangePasswordRequest"];

export type TotpSetupResponse = Schemas["TotpSetupResponse"];

export type RecoveryCodesResponse = Schemas["RecoveryCodesResponse"];

export type PasswordConfirmation = Schemas["PasswordConfirmation"];

export type SessionView = Schemas["SessionView"];

export type ApiTokenView = Schemas["ApiTokenView"];

export type CreateApiTokenRequest = Schemas["CreateApiTokenRequest"];

export type CreatedApiToken = Schemas["CreatedApiToken"];

export type PasskeyView = Schemas["PasskeyView"];

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
