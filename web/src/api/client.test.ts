import { describe, expect, it, vi } from "vitest";
import { ApiError, api, errorFromResponse, readCookie, setSessionLostHandler } from "./client";
import { apiError, json, mockFetch, noContent } from "../test/fetchMock";

const REFRESH = "POST /api/v1/auth/refresh";

describe("api client", () => {
  it("sends the CSRF cookie's value as X-CSRF-Token on POST, with cookies and JSON", async () => {
    document.cookie = "pd_csrf=abc%2F123; path=/";
    const mock = mockFetch({ "POST /api/v1/things": json(201, { id: 5 }) });
    const result = await api.post<{ id: number }>("/api/v1/things", { name: "web-1" });
    expect(result).toEqual({ id: 5 });
    const [call] = mock.calls;
    expect(call?.headers.get("X-CSRF-Token")).toBe("abc/123");
    expect(call?.headers.get("Content-Type")).toBe("application/json");
    expect(call?.credentials).toBe("same-origin");
    expect(call?.body).toEqual({ name: "web-1" });
  });

  it("sends X-CSRF-Token on DELETE but not on GET", async () => {
    document.cookie = "pd_csrf=tok; path=/";
    const mock = mockFetch({ "GET /api/v1/things": json(200, []), "DELETE /api/v1/things/1": noContent() });
    await api.get("/api/v1/things");
    await expect(api.delete("/api/v1/things/1")).resolves.toBeUndefined();
    expect(mock.calls[0]?.headers.has("X-CSRF-Token")).toBe(false);
    expect(mock.calls[0]?.headers.has("Content-Type")).toBe(false);
    expect(mock.calls[1]?.headers.get("X-CSRF-Token")).toBe("tok");
  });

  it("refreshes the session once on a 401 and retries the request", async () => {
    document.cookie = "pd_csrf=c1; path=/";
    const mock = mockFetch({
      "GET /api/v1/hosts": [apiError(401, "unauthorized", "the session token is invalid or expired"), json(200, [{ id: 1 }])],
      [REFRESH]: json(200, { status: "ok" }),
    });
    await expect(api.get("/api/v1/hosts")).resolves.toEqual([{ id: 1 }]);
    expect(mock.calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      "GET /api/v1/hosts",
      REFRESH,
      "GET /api/v1/hosts",
    ]);
    expect(mock.callsTo(REFRESH)[0]?.headers.get("X-CSRF-Token")).toBe("c1");
  });

  it("retries a POST with the same body after a refresh", async () => {
    const mock = mockFetch({
      "POST /api/v1/auth/tokens": [apiError(401, "unauthorized", "expired"), json(201, { token: "t" })],
      [REFRESH]: json(200, { status: "ok" }),
    });
    await api.post("/api/v1/auth/tokens", { label: "ci", expires_in_days: 30 });
    const posts = mock.callsTo("POST /api/v1/auth/tokens");
    expect(posts).toHaveLength(2);
    expect(posts[1]?.body).toEqual({ label: "ci", expires_in_days: 30 });
  });

  it("shares one refresh between concurrent 401s", async () => {
    const mock = mockFetch({
      "GET /api/v1/a": [apiError(401, "unauthorized", "expired"), json(200, "a")],
      "GET /api/v1/b": [apiError(401, "unauthorized", "expired"), json(200, "b")],
      [REFRESH]: () => new Promise((resolve) => setTimeout(() => resolve(json(200, { status: "ok" })), 10)),
    });
    const [a, b] = await Promise.all([api.get("/api/v1/a"), api.get("/api/v1/b")]);
    expect([a, b]).toEqual(["a", "b"]);
    expect(mock.callsTo(REFRESH)).toHaveLength(1);
  });

  it("goes to sign in when the refresh fails, and throws the original 401", async () => {
    const lost = vi.fn();
    setSessionLostHandler(lost);
    const mock = mockFetch({
      "GET /api/v1/hosts": apiError(401, "unauthorized", "the session has ended; sign in again", undefined, "rid-9"),
      [REFRESH]: apiError(401, "unauthorized", "no session; sign in"),
    });
    const error = await api.get("/api/v1/hosts").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).requestId).toBe("rid-9");
    expect(lost).toHaveBeenCalledTimes(1);
    // No second attempt of the original request.
    expect(mock.callsTo("GET /api/v1/hosts")).toHaveLength(1);
  });

  it("does not refresh after a 401 from login or refresh themselves", async () => {
    const lost = vi.fn();
    setSessionLostHandler(lost);
    const mock = mockFetch({
      "POST /api/v1/auth/login": apiError(401, "unauthorized", "wrong username or password"),
      "POST /api/v1/auth/login/mfa": apiError(401, "unauthorized", "wrong or already used code"),
      [REFRESH]: apiError(401, "unauthorized", "no session"),
    });
    await expect(api.post("/api/v1/auth/login", { username: "a", password: "b" })).rejects.toMatchObject({
      status: 401,
      code: "unauthorized",
      message: "wrong username or password",
    });
    await expect(api.post("/api/v1/auth/login/mfa", {})).rejects.toMatchObject({ status: 401 });
    await expect(api.post("/api/v1/auth/refresh")).rejects.toMatchObject({ status: 401 });
    expect(mock.callsTo(REFRESH)).toHaveLength(1); // only the explicit one
    expect(lost).not.toHaveBeenCalled();
  });

  it("parses the error envelope: code, message, status, request id, details", async () => {
    mockFetch({
      "POST /api/v1/auth/password": apiError(
        400,
        "validation_error",
        "new_password: must be at least 12 characters",
        { field: "new_password" },
        "01J9Z",
      ),
      "POST /api/v1/auth/login": apiError(429, "rate_limited", "too many login attempts", { retry_after_seconds: 42 }),
    });
    const e = (await api.post("/api/v1/auth/password", {}).catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.code).toBe("validation_error");
    expect(e.message).toBe("new_password: must be at least 12 characters");
    expect(e.requestId).toBe("01J9Z");
    expect(e.field).toBe("new_password");
    const r = (await api.post("/api/v1/auth/login", {}).catch((x: unknown) => x)) as ApiError;
    expect(r.code).toBe("rate_limited");
    expect(r.retryAfterSeconds).toBe(42);
  });

  it("describes an answer without an envelope (a proxy's 502) and keeps X-Request-Id", async () => {
    const e = await errorFromResponse(
      new Response("<html>Bad Gateway</html>", { status: 502, statusText: "Bad Gateway", headers: { "X-Request-Id": "px-1" } }),
    );
    expect(e.status).toBe(502);
    expect(e.code).toBe("http_502");
    expect(e.message).toContain("502 Bad Gateway");
    expect(e.requestId).toBe("px-1");
  });

  it("turns a network failure into a network_error with status 0", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))));
    await expect(api.get("/api/v1/health")).rejects.toMatchObject({ status: 0, code: "network_error" });
  });

  it("reads cookies by exact name", () => {
    document.cookie = "xpd_csrf=wrong; path=/";
    document.cookie = "pd_csrf=right; path=/";
    expect(readCookie("pd_csrf")).toBe("right");
    expect(readCookie("missing")).toBeNull();
  });
});
