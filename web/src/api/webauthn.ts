// Converts between the manager's WebAuthn JSON (binary fields as base64url) and the browser's
// `navigator.credentials` API (ArrayBuffers).

import { fromBase64url, toBase64url } from "./base64url";
import type {
  AuthenticationResponseJSON,
  CreationOptionsJSON,
  CredentialDescriptorJSON,
  RegistrationResponseJSON,
  RequestOptionsJSON,
} from "./types";

/** Whether this browser can use passkeys at all. */
export function passkeysSupported(): boolean {
  return (
    typeof window !== "undefined" &&
    typeof window.PublicKeyCredential !== "undefined" &&
    typeof navigator.credentials?.get === "function"
  );
}

function descriptor(d: CredentialDescriptorJSON): PublicKeyCredentialDescriptor {
  const out: PublicKeyCredentialDescriptor = { type: "public-key", id: fromBase64url(d.id) };
  if (d.transports) out.transports = d.transports as AuthenticatorTransport[];
  return out;
}

export function toCreationOptions(o: CreationOptionsJSON): PublicKeyCredentialCreationOptions {
  const out: PublicKeyCredentialCreationOptions = {
    rp: o.rp,
    user: { id: fromBase64url(o.user.id), name: o.user.name, displayName: o.user.displayName },
    challenge: fromBase64url(o.challenge),
    pubKeyCredParams: o.pubKeyCredParams,
    excludeCredentials: (o.excludeCredentials ?? []).map(descriptor),
  };
  if (o.timeout !== undefined) out.timeout = o.timeout;
  if (o.attestation) out.attestation = o.attestation as AttestationConveyancePreference;
  if (o.authenticatorSelection) {
    const s = o.authenticatorSelection;
    const sel: AuthenticatorSelectionCriteria = {};
    if (s.residentKey) sel.residentKey = s.residentKey as ResidentKeyRequirement;
    if (s.requireResidentKey !== undefined) sel.requireResidentKey = s.requireResidentKey;
    if (s.userVerification) sel.userVerification = s.userVerification as UserVerificationRequirement;
    if (s.authenticatorAttachment) sel.authenticatorAttachment = s.authenticatorAttachment as AuthenticatorAttachment;
    out.authenticatorSelection = sel;
  }
  return out;
}

export function toRequestOptions(o: RequestOptionsJSON): PublicKeyCredentialRequestOptions {
  const out: PublicKeyCredentialRequestOptions = {
    challenge: fromBase64url(o.challenge),
    allowCredentials: (o.allowCredentials ?? []).map(descriptor),
  };
  if (o.timeout !== undefined) out.timeout = o.timeout;
  if (o.rpId) out.rpId = o.rpId;
  if (o.userVerification) out.userVerification = o.userVerification as UserVerificationRequirement;
  return out;
}

function isPublicKeyCredential(c: Credential | null): c is PublicKeyCredential {
  return c !== null && c.type === "public-key" && "rawId" in c && "response" in c;
}

export function registrationToJSON(credential: PublicKeyCredential): RegistrationResponseJSON {
  const r = credential.response as AuthenticatorAttestationResponse;
  const json: RegistrationResponseJSON = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: "public-key",
    response: {
      clientDataJSON: toBase64url(r.clientDataJSON),
      attestationObject: toBase64url(r.attestationObject),
    },
  };
  if (typeof r.getTransports === "function") json.response.transports = r.getTransports();
  return json;
}

export function authenticationToJSON(credential: PublicKeyCredential): AuthenticationResponseJSON {
  const r = credential.response as AuthenticatorAssertionResponse;
  const json: AuthenticationResponseJSON = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: "public-key",
    response: {
      clientDataJSON: toBase64url(r.clientDataJSON),
      authenticatorData: toBase64url(r.authenticatorData),
      signature: toBase64url(r.signature),
    },
  };
  if (r.userHandle && r.userHandle.byteLength > 0) json.response.userHandle = toBase64url(r.userHandle);
  return json;
}

/** Runs `navigator.credentials.create` with the manager's options. */
export async function createPasskey(options: CreationOptionsJSON): Promise<RegistrationResponseJSON> {
  const credential = await navigator.credentials.create({ publicKey: toCreationOptions(options) });
  if (!isPublicKeyCredential(credential)) throw new Error("The browser returned no passkey.");
  return registrationToJSON(credential);
}

/** Runs `navigator.credentials.get` with the manager's options. */
export async function getPasskeyAssertion(options: RequestOptionsJSON): Promise<AuthenticationResponseJSON> {
  const credential = await navigator.credentials.get({ publicKey: toRequestOptions(options) });
  if (!isPublicKeyCredential(credential)) throw new Error("The browser returned no passkey.");
  return authenticationToJSON(credential);
}

/** A sentence for a failed passkey prompt (the browser's DOMException names are terse). */
export function describePasskeyError(e: unknown): string {
  if (e instanceof DOMException) {
    switch (e.name) {
      case "NotAllowedError":
        return "The passkey prompt was cancelled or timed out.";
      case "InvalidStateError":
        return "This authenticator already holds a passkey for this account.";
      case "SecurityError":
        return "The browser refused: this page's address does not match the manager's configured WebAuthn origin.";
      case "NotSupportedError":
        return "This authenticator does not support the algorithms the manager accepts (ES256, Ed25519).";
      default:
        return `The passkey prompt failed: ${e.message || e.name}`;
    }
  }
  return e instanceof Error ? e.message : "The passkey prompt failed.";
}
