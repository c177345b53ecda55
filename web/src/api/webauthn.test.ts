import { describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "./base64url";
import { authenticationToJSON, registrationToJSON, toCreationOptions, toRequestOptions } from "./webauthn";

const b = (...v: number[]) => new Uint8Array(v).buffer;
const arr = (x: BufferSource | undefined) =>
  x instanceof ArrayBuffer ? Array.from(new Uint8Array(x)) : x ? Array.from(new Uint8Array(x.buffer)) : [];

describe("webauthn JSON conversion", () => {
  it("decodes the binary fields of request options", () => {
    const o = toRequestOptions({
      challenge: toBase64url(b(1, 2, 3)),
      timeout: 300000,
      rpId: "patchdeck.example",
      allowCredentials: [{ type: "public-key", id: toBase64url(b(9, 9)) }],
      userVerification: "preferred",
    });
    expect(arr(o.challenge)).toEqual([1, 2, 3]);
    expect(arr(o.allowCredentials?.[0]?.id)).toEqual([9, 9]);
    expect(o.rpId).toBe("patchdeck.example");
    expect(o.userVerification).toBe("preferred");
  });

  it("decodes the binary fields of creation options", () => {
    const o = toCreationOptions({
      rp: { id: "patchdeck.example", name: "Patchdeck" },
      user: { id: toBase64url(b(7, 7, 7)), name: "alice", displayName: "Alice" },
      challenge: toBase64url(b(4, 5)),
      pubKeyCredParams: [
        { type: "public-key", alg: -7 },
        { type: "public-key", alg: -8 },
      ],
      timeout: 300000,
      excludeCredentials: [{ type: "public-key", id: toBase64url(b(1)) }],
      authenticatorSelection: { residentKey: "preferred", requireResidentKey: false, userVerification: "preferred" },
      attestation: "none",
    });
    expect(arr(o.user.id)).toEqual([7, 7, 7]);
    expect(arr(o.challenge)).toEqual([4, 5]);
    expect(arr(o.excludeCredentials?.[0]?.id)).toEqual([1]);
    expect(o.authenticatorSelection).toEqual({ residentKey: "preferred", requireResidentKey: false, userVerification: "preferred" });
    expect(o.attestation).toBe("none");
  });

  it("encodes an assertion, leaving out an empty user handle", () => {
    const credential = {
      id: "AQI",
      rawId: b(1, 2),
      type: "public-key",
      response: { clientDataJSON: b(123), authenticatorData: b(5), signature: b(6, 7), userHandle: null },
    } as unknown as PublicKeyCredential;
    const json = authenticationToJSON(credential);
    expect(json).toEqual({
      id: "AQI",
      rawId: "AQI",
      type: "public-key",
      response: { clientDataJSON: "ew", authenticatorData: "BQ", signature: "Bgc" },
    });
    const withHandle = authenticationToJSON({
      ...credential,
      response: { ...credential.response, userHandle: b(0xff) },
    } as unknown as PublicKeyCredential);
    expect(withHandle.response.userHandle).toBe("_w");
  });

  it("encodes a registration with its transports", () => {
    const credential = {
      id: "AQI",
      rawId: fromBase64url("AQI"),
      type: "public-key",
      response: { clientDataJSON: b(1), attestationObject: b(2), getTransports: () => ["usb", "nfc"] },
    } as unknown as PublicKeyCredential;
    expect(registrationToJSON(credential)).toEqual({
      id: "AQI",
      rawId: "AQI",
      type: "public-key",
      response: { clientDataJSON: "AQ", attestationObject: "Ag", transports: ["usb", "nfc"] },
    });
  });
});
