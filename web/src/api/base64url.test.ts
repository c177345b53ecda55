import { describe, expect, it } from "vitest";
import { fromBase64url, toBase64url } from "./base64url";

const enc = (s: string) => new TextEncoder().encode(s);
const bytes = (b: ArrayBuffer) => Array.from(new Uint8Array(b));

describe("base64url", () => {
  // RFC 4648 §10 test vectors, in the URL-safe alphabet without padding.
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  it.each(vectors)("encodes %j as %j and back", (plain, encoded) => {
    expect(toBase64url(enc(plain))).toBe(encoded);
    expect(bytes(fromBase64url(encoded))).toEqual(Array.from(enc(plain)));
  });

  it("uses - and _ instead of + and /", () => {
    expect(toBase64url(new Uint8Array([0xfb, 0xff, 0xbf]))).toBe("-_-_");
    expect(bytes(fromBase64url("-_-_"))).toEqual([0xfb, 0xff, 0xbf]);
  });

  it("round-trips every length and byte value, agreeing with Node's encoder", () => {
    for (let len = 0; len < 70; len++) {
      const data = new Uint8Array(len).map((_, i) => (i * 73 + len * 31) & 0xff);
      const text = toBase64url(data);
      expect(text).toBe(Buffer.from(data).toString("base64url"));
      expect(bytes(fromBase64url(text))).toEqual(Array.from(data));
    }
  });

  it("encodes a view into a larger buffer by its own bytes only", () => {
    const buffer = new Uint8Array([1, 2, 3, 4, 5]);
    expect(toBase64url(buffer.subarray(1, 3))).toBe(toBase64url(new Uint8Array([2, 3])));
    expect(toBase64url(buffer.buffer)).toBe("AQIDBAU");
  });

  it("tolerates padding and refuses foreign characters and impossible lengths", () => {
    expect(bytes(fromBase64url("Zg=="))).toEqual([0x66]);
    expect(() => fromBase64url("Zm+v")).toThrow(/invalid base64url character/);
    expect(() => fromBase64url("Zm/v")).toThrow(/invalid base64url/);
    expect(() => fromBase64url("Z")).toThrow(/impossible length/);
  });
});
