// A small fetch stand-in for unit tests: routes "METHOD /path" to canned responses and records
// every call with its headers and parsed JSON body.

import { vi } from "vitest";

export interface RecordedCall {
  method: string;
  path: string;
  /** The query string's parameters. */
  query: URLSearchParams;
  headers: Headers;
  credentials: RequestCredentials | undefined;
  body: unknown;
}

export type Reply = Response | ((call: RecordedCall) => Response | Promise<Response>);

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

export function noContent(): Response {
  return new Response(null, { status: 204 });
}

export function apiError(
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
  requestId = "req-test-1",
): Response {
  const error: Record<string, unknown> = { code, message, request_id: requestId };
  if (details) error["details"] = details;
  return json(status, { error }, { "X-Request-Id": requestId });
}

/**
 * Installs a fetch mock. `routes` maps "METHOD /path" to a reply or a list of replies used in
 * turn (the last one repeats). Unknown routes answer 404 with an envelope naming the route, so a
 * missing mock shows up in the page and in `unmatched`.
 */
export function mockFetch(routes: Record<string, Reply | Reply[]>) {
  const calls: RecordedCall[] = [];
  const unmatched: string[] = [];
  const used = new Map<string, number>();
  const fn = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url, "http://localhost");
    const method = (init.method ?? "GET").toUpperCase();
    let body: unknown = undefined;
    if (typeof init.body === "string") body = JSON.parse(init.body);
    const call: RecordedCall = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: new Headers(init.headers),
      credentials: init.credentials,
      body,
    };
    calls.push(call);
    const key = `${method} ${url.pathname}`;
    const route = routes[key];
    if (route === undefined) {
      unmatched.push(key);
      return apiError(404, "not_found", `no mock for ${key}`);
    }
    let reply: Reply;
    if (Array.isArray(route)) {
      const i = used.get(key) ?? 0;
      used.set(key, i + 1);
      reply = route[Math.min(i, route.length - 1)]!;
    } else {
      reply = route;
    }
    const response = typeof reply === "function" ? await reply(call) : reply.clone();
    return response;
  });
  vi.stubGlobal("fetch", fn);
  return {
    fn,
    calls,
    unmatched,
    /** Calls to one route, e.g. "POST /api/v1/auth/login". */
    callsTo: (key: string) => calls.filter((c) => `${c.method} ${c.path}` === key),
  };
}

export const ME_PATH = "GET /api/v1/auth/me";

export const alice = {
  id: 1,
  username: "alice",
  display_name: "Alice Smith",
  role: "admin",
  auth_source: "local",
  disabled: false,
  must_change_password: false,
  totp_enabled: true,
  locked_until: null,
  last_login_at: "2026-11-23T12:40:06Z",
  created_at: "2026-01-01T00:00:00Z",
};

export function meBody(restriction: "password_change" | "mfa_enrollment" | null = null, mfa: string[] = ["totp"]) {
  return { user: alice, restriction, mfa, session_id: 7 };
}
