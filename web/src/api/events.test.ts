import { createElement, type ReactNode } from "react";
import { describe, expect, it, vi } from "vitest";
import { act, renderHook } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { FakeEventSource, mockEventSource } from "../test/eventSource";
import { ME_PATH, json, meBody, mockFetch } from "../test/fetchMock";
import { keysFor, makeBatcher, RESYNC_KEYS, useJobProgress, useLiveEvents } from "./events";

describe("live events", () => {
  it("maps a command event to the command, its host's command list and the command lists", () => {
    expect(keysFor({ type: "command", host_id: 7, command_id: "c-1", kind: "upgrade", state: "running" })).toEqual([
      ["commands", "c-1"],
      ["hosts", "detail", 7, "commands"],
      ["commands"],
    ]);
  });

  it("refreshes only a host's own record on a status change, and its inventory on an inventory change", () => {
    expect(keysFor({ type: "host", host_id: 7, status: "offline", change: "status" })).toEqual([
      ["hosts", "list"],
      ["dashboard"],
      ["hosts", "detail", 7, "self"],
    ]);
    expect(keysFor({ type: "host", host_id: 7, status: "online", change: "inventory" })).toEqual([
      ["hosts", "list"],
      ["dashboard"],
      ["hosts", "detail", 7],
    ]);
    expect(keysFor({ type: "host", host_id: 7, status: "pending", change: "enrolled" })).toContainEqual(["enrollments"]);
  });

  it("refreshes a deployment on its status, and its hosts and counts when a host moves", () => {
    expect(keysFor({ type: "deployment", deployment_id: 3, status: "running" })).toEqual([
      ["deployments", "list"],
      ["deployments", "detail", 3, "self"],
      ["dashboard"],
    ]);
    expect(keysFor({ type: "deployment_host", deployment_id: 3, host_id: 7, state: "verifying" })).toEqual([
      ["deployments", "list"],
      ["deployments", "detail", 3],
    ]);
    expect(RESYNC_KEYS).toContainEqual(["deployments"]);
    expect(RESYNC_KEYS).toContainEqual(["dashboard"]);
  });

  it("invalidates a burst of events once per key", () => {
    vi.useFakeTimers();
    try {
      const client = new QueryClient();
      const invalidate = vi.spyOn(client, "invalidateQueries").mockResolvedValue();
      const batch = makeBatcher(client, 1000);
      for (let i = 0; i < 500; i++) {
        batch.add(keysFor({ type: "host", host_id: 7, status: i % 2 ? "online" : "offline", change: "status" }));
      }
      batch.add(RESYNC_KEYS);
      expect(invalidate).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1000);
      expect(invalidate).toHaveBeenCalledTimes(2 + RESYNC_KEYS.length);
      expect(invalidate).toHaveBeenCalledWith({ queryKey: ["hosts", "list"] });
      expect(invalidate).toHaveBeenCalledWith({ queryKey: ["hosts"] });
    } finally {
      vi.useRealTimers();
    }
  });

  it("reopens the stream through a session refresh when the server ends it, then re-reads what is live", async () => {
    vi.useFakeTimers();
    try {
      const streams = mockEventSource();
      const mock = mockFetch({ [ME_PATH]: json(200, meBody()) });
      const client = new QueryClient();
      const invalidate = vi.spyOn(client, "invalidateQueries").mockResolvedValue();
      const wrapper = ({ children }: { children: ReactNode }) => createElement(QueryClientProvider, { client }, children);
      const { unmount } = renderHook(() => useLiveEvents(), { wrapper });
      expect(streams).toHaveLength(1);
      streams[0]!.emit("open");

      // The access token expired: the server answers 401 and the browser gives up (CLOSED).
      streams[0]!.readyState = FakeEventSource.CLOSED;
      streams[0]!.emit("error");
      await vi.advanceTimersByTimeAsync(5000);
      expect(mock.callsTo(ME_PATH)).toHaveLength(1);
      expect(streams).toHaveLength(2);

      streams[1]!.emit("open");
      await vi.advanceTimersByTimeAsync(1000);
      for (const queryKey of RESYNC_KEYS) expect(invalidate).toHaveBeenCalledWith({ queryKey });

      unmount();
      expect(streams[1]!.readyState).toBe(FakeEventSource.CLOSED);
    } finally {
      vi.useRealTimers();
    }
  });

  it("hands job events to the pages that follow a host's jobs, and invalidates nothing for them", async () => {
    vi.useFakeTimers();
    try {
      const streams = mockEventSource();
      const client = new QueryClient();
      const invalidate = vi.spyOn(client, "invalidateQueries").mockResolvedValue();
      const wrapper = ({ children }: { children: ReactNode }) => createElement(QueryClientProvider, { client }, children);
      const { result, unmount } = renderHook(
        () => {
          useLiveEvents();
          return [useJobProgress(7), useJobProgress(8)] as const;
        },
        { wrapper },
      );
      expect(keysFor({ type: "job", host_id: 7, command_id: "c-1", job_id: "j", status: "running", progress: 5, message: "" })).toEqual([]);
      act(() => {
        streams[0]!.emit("job", { type: "job", host_id: 7, command_id: "c-1", job_id: "j-1", status: "running", progress: 30, message: "Downloading" });
        streams[0]!.emit("job", { type: "job", host_id: 7, command_id: "c-1", job_id: "j-1", status: "running", progress: 140, message: "Past the end" });
        // Malformed: no message.
        streams[0]!.emit("job", { type: "job", host_id: 7, command_id: "c-2", job_id: "j-2", status: "running", progress: 10 });
      });
      const [seven, eight] = result.current;
      expect(seven.get("c-1")).toEqual({ jobId: "j-1", status: "running", progress: 100, message: "Past the end" });
      expect(seven.has("c-2")).toBe(false);
      expect(eight.size).toBe(0);
      await vi.advanceTimersByTimeAsync(2000);
      expect(invalidate).not.toHaveBeenCalled();
      unmount();
    } finally {
      vi.useRealTimers();
    }
  });
});
