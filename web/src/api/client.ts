// A typed fetch wrapper for the manager's REST API.
//
// - Same origin only, cookies sent (`credentials: "same-origin"`), JSON in and out.
// - Unsafe methods carry `X-CSRF-Token` with the value of the `pd_csrf` cookie.
// - Failures throw `ApiError`, built from the manager's error envelope
//   `{"error": {"code", "message", "details"?, "request_id"}}`.
// - A 401 from anything but the login and refresh endpoints triggers one
//   `POST /api/v1/auth/refresh` (shared by concurrent callers), then the request is retried once.
//   If the refresh fails, the "session lost" handler runs (the app sends the user to sign in).
//
// The session lives only in HttpOnly cookies: nothing here reads or stores a token.

import type { ErrorEnvelope } from "./types";

export const API_BASE = "/api/v1";
export const CSRF_COOKIE = "pd_csrf";
export const CSRF_HEADER = "X-CSRF-Token";
const REFRESH_PATH = `${API_BASE}/auth/refresh`;
const LOGIN_PATH = `${API_BASE}/auth/login`;

/** A failed API call. `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | null;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    status: number,
    code: string,
    message: string,
    requestId: string | null,
    details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.details = details;
  }

  /** The request field a `validation_error` is about (`details.field`). */
  get field(): string | undefined {
    const field = this.details?.["field"];
    return typeof field === "string" ? field : undefined;
  }

  /** For `rate_limited`: how long to wait (`details.retry_after_seconds`). */
  get retryAfterSeconds(): number | undefined {
    const wait = this.details?.["retry_after_seconds"];
    return typeof wait === "number" && Number.isFinite(wait) && wait >= 0 ? wait : undefined;
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isErrorEnvelope(v: unknown): v is ErrorEnvelope {
  if (!isRecord(v) || !isRecord(v["error"])) return false;
  const e = v["error"];
  return typeof e["code"] === "string" && typeof e["message"] === "string";
}

/** Turns a failed response into an `ApiError`, with or without the error envelope. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const headerId = response.headers.get("X-Request-Id");
  let body: unknown = undefined;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (isErrorEnvelope(body)) {
    const e = body.error;
    const requestId = typeof e.request_id === "string" && e.request_id !== "" ? e.request_id : headerId;
    const details = isRecord(e.details) ? e.details : undefined;
    return new ApiError(response.status, e.code, e.message, requestId, details);
  }
  // Not from the manager itself (a proxy, the dev server): say what we know.
  const statusText = response.statusText ? ` ${response.statusText}` : "";
  return new ApiError(
    response.status,
    `http_${response.status}`,
    `The server answered ${response.status}${statusText} without an error description.`,
    headerId,
  );
}

/** The value of a cookie readable by script, or null. */
export function readCookie(name: string): string | null {
  if (typeof document === "undefined") return null;
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return null;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

const SAFE_METHODS: ReadonlySet<Method> = new Set<Method>(["GET"]);

export interface RequestOptions {
  /** A JSON body. */
  body?: unknown;
  signal?: AbortSignal;
}

type SessionLostHandler = () => void;

let onSessionLost: SessionLostHandler = () => {
  if (typeof window !== "undefined" && window.location.pathname !== "/login") {
    window.location.assign("/login");
  }
};

/** Sets what happens when the session cannot be refreshed (the app routes to the login page). */
export function setSessionLostHandler(handler: SessionLostHandler): void {
  onSessionLost = handler;
}

let refreshing: Promise<boolean> | null = null;

/** `POST /auth/refresh`, once at a time: concurrent 401s wait for the same refresh. */
function refreshSession(): Promise<boolean> {
  if (!refreshing) {
    refreshing = send("POST", REFRESH_PATH, {})
      .then((r) => r.ok)
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

function mayRefresh(path: string): boolean {
  return path !== REFRESH_PATH && path !== LOGIN_PATH && !path.startsWith(`${LOGIN_PATH}/`);
}

async function send(method: Method, path: string, options: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const init: RequestInit = { method, headers, credentials: "same-origin" };
  if (options.signal) init.signal = options.signal;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  if (!SAFE_METHODS.has(method)) {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) headers[CSRF_HEADER] = csrf;
  }
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network_error", "The manager could not be reached. Check the network and try again.", null);
  }
}

async function parseBody<T>(response: Response): Promise<T> {
  if (response.status === 204 || response.status === 205) return undefined as T;
  const text = await response.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(
      response.status,
      "bad_response",
      "The server's answer was not valid JSON.",
      response.headers.get("X-Request-Id"),
    );
  }
}

/**
 * Calls the API. `path` is absolute (`/api/v1/…`). Resolves with the parsed JSON body
 * (`undefined` for 204) or throws `ApiError`.
 */
export async function request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  let response = await send(method, path, options);
  if (response.status === 401 && mayRefresh(path)) {
    if (await refreshSession()) {
      response = await send(method, path, options);
    } else {
      const error = await errorFromResponse(response);
      onSessionLost();
      throw error;
    }
  }
  if (!response.ok) throw await errorFromResponse(response);
  return parseBody<T>(response);
}

export const api = {
  get: <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, signal ? { signal } : {}),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, { body }),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, { body }),
  patch: <T>(path: string, body?: unknown) => request<T>("PATCH", path, { body }),
  delete: <T = void>(path: string, body?: unknown) => request<T>("DELETE", path, { body }),
};
