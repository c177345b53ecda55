// The live event stream (`GET /api/v1/events`, Server-Sent Events) and what it invalidates.
//
// Wire format (crates/patchdeck/src/web/handlers/events.rs, `hub::LiveEvent`):
//   event: command  data: {"type":"command","host_id":7,"command_id":"…","kind":"upgrade","state":"running"}
//   event: host     data: {"type":"host","host_id":7,"status":"online","change":"status"}
//   event: job      data: {"type":"job","host_id":7,"command_id":"…","job_id":"…","status":"running","progress":40,"message":"…"}
//   event: resync   data: {"missed":12}          (events were lost: reload what is shown)
//
// The events only say *what* changed; the pages re-read the data through their queries. Bursts
// (a fleet-wide upgrade sends thousands of events) are batched: invalidations are collected and
// applied at most once per `BATCH_MS`. `job` events (a push host's agent job making progress)
// invalidate nothing: they carry the progress itself, which pages read with `useJobProgress`.

import { useEffect, useState } from "react";
import { useQueryClient, type QueryClient, type QueryKey } from "@tanstack/react-query";
import { API_BASE, api } from "./client";
import { dashboardKeys } from "./dashboard";
import { keys } from "./fleet";
import type { components } from "./schema";

export const EVENTS_URL = `${API_BASE}/events`;
const BATCH_MS = 1000;
const RECONNECT_MS = 5000;

/** `hub::LiveEvent`, as the OpenAPI document describes it (the stream itself is `text/event-stream`). */
export type LiveEvent = components["schemas"]["LiveEvent"];
/** A push host's agent job making progress. */
export type JobEvent = Extract<LiveEvent, { type: "job" }>;

// Who wants every parsed event as it arrives (the job progress of the pages that show it).
const listeners = new Set<(event: LiveEvent) => void>();

/** Calls `listener` with every event of the stream opened by `useLiveEvents`; returns the unsubscribe. */
export function subscribeLiveEvents(listener: (event: LiveEvent) => void): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** What the latest `job` event said about one command. */
export interface JobProgress {
  jobId: string;
  status: string;
  /** 0–100. */
  progress: number;
  message: string;
}

/**
 * The latest job progress of each command of one host (by command id), from the event stream
 * while mounted. Kept in memory only; the command list itself still comes from its query.
 */
export function useJobProgress(hostId: number): ReadonlyMap<string, JobProgress> {
  const [jobs, setJobs] = useState<ReadonlyMap<string, JobProgress>>(() => new Map());
  useEffect(() => {
    setJobs(new Map());
    return subscribeLiveEvents((e) => {
      if (e.type !== "job" || e.host_id !== hostId) return;
      setJobs((prev) => {
        const next = new Map(prev);
        next.set(e.command_id, {
          jobId: e.job_id,
          status: e.status,
          progress: Math.max(0, Math.min(100, e.progress)),
          message: e.message,
        });
        return next;
      });
    });
  }, [hostId]);
  return jobs;
}

/** The query keys an event makes stale. */
export function keysFor(event: LiveEvent): QueryKey[] {
  switch (event.type) {
    case "command":
      return [keys.command(event.command_id), keys.hostCommands(event.host_id), keys.commands];
    case "host": {
      // The dashboard's fleet numbers count hosts by status, reboot and pending security updates.
      const out: QueryKey[] = [["hosts", "list"], dashboardKeys.all];
      // A host's detail, and with an inventory change its packages and updates (prefix match).
      out.push(event.change === "inventory" ? keys.host(event.host_id) : keys.hostSelf(event.host_id));
      if (event.change === "enrolled" || event.change === "approval") out.push(keys.enrollments);
      return out;
    }
    case "job":
      // The progress is in the event; the command's own state changes come as `command` events.
      return [];
    case "deployment":
      // Its status shows in the list and in its page (the counts come with the detail); a
      // finished deployment changes the dashboard's security numbers.
      return [keys.deploymentList, keys.deploymentSelf(event.deployment_id), dashboardKeys.all];
    case "deployment_host":
      // A host moved: the deployment's counts and its host table (and the list's progress).
      return [keys.deploymentList, keys.deployment(event.deployment_id)];
  }
}

/** Everything the stream keeps fresh, after a `resync` or a reconnect. */
export const RESYNC_KEYS: QueryKey[] = [keys.hosts, keys.commands, keys.enrollments, keys.deployments, dashboardKeys.all];

function parse(data: string): LiveEvent | null {
  try {
    const v: unknown = JSON.parse(data);
    if (typeof v !== "object" || v === null) return null;
    const e = v as Record<string, unknown>;
    if (e["type"] === "deployment") {
      return typeof e["deployment_id"] === "number" && typeof e["status"] === "string" ? (v as LiveEvent) : null;
    }
    if (typeof e["host_id"] !== "number") return null;
    if (e["type"] === "deployment_host") {
      return typeof e["deployment_id"] === "number" && typeof e["state"] === "string" ? (v as LiveEvent) : null;
    }
    if (e["type"] === "command" && typeof e["command_id"] === "string" && typeof e["state"] === "string") {
      return v as LiveEvent;
    }
    if (e["type"] === "host" && typeof e["change"] === "string") return v as LiveEvent;
    if (
      e["type"] === "job" &&
      typeof e["command_id"] === "string" &&
      typeof e["job_id"] === "string" &&
      typeof e["status"] === "string" &&
      typeof e["progress"] === "number" &&
      Number.isFinite(e["progress"]) &&
      typeof e["message"] === "string"
    ) {
      return v as LiveEvent;
    }
    return null;
  } catch {
    return null;
  }
}

/** Collects query keys and invalidates them together. */
export function makeBatcher(client: QueryClient, delay = BATCH_MS) {
  const pending = new Map<string, QueryKey>();
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = () => {
    timer = null;
    const batch = [...pending.values()];
    pending.clear();
    for (const queryKey of batch) void client.invalidateQueries({ queryKey });
  };
  return {
    add(list: QueryKey[]) {
      for (const k of list) pending.set(JSON.stringify(k), k);
      if (timer === null) timer = setTimeout(flush, delay);
    },
    flush,
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      pending.clear();
    },
  };
}

/**
 * Subscribes to the event stream while mounted and invalidates the queries events affect. The
 * stream authenticates with the session cookies; when the server ends it with an error (the
 * access token expired), the session is refreshed through the API client and the stream reopened.
 */
export function useLiveEvents(enabled = true) {
  const client = useQueryClient();
  useEffect(() => {
    if (!enabled || typeof EventSource === "undefined") return;
    const batch = makeBatcher(client);
    let source: EventSource | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let opened = false;
    let stopped = false;

    const onEvent = (e: MessageEvent<string>) => {
      const event = parse(e.data);
      if (!event) return;
      const stale = keysFor(event);
      if (stale.length) batch.add(stale);
      for (const listener of [...listeners]) listener(event);
    };
    const connect = () => {
      if (stopped) return;
      const s = new EventSource(EVENTS_URL, { withCredentials: true });
      source = s;
      s.addEventListener("open", () => {
        // Events sent while disconnected are gone: re-read what is shown.
        if (opened) batch.add(RESYNC_KEYS);
        opened = true;
      });
      s.addEventListener("command", onEvent as EventListener);
      s.addEventListener("host", onEvent as EventListener);
      s.addEventListener("job", onEvent as EventListener);
      s.addEventListener("deployment", onEvent as EventListener);
      s.addEventListener("deployment_host", onEvent as EventListener);
      s.addEventListener("resync", () => batch.add(RESYNC_KEYS));
      s.addEventListener("error", () => {
        // CONNECTING: the browser retries by itself. CLOSED: the server refused (401): refresh
        // the session through the API client, then reconnect.
        if (s.readyState !== EventSource.CLOSED || stopped) return;
        s.close();
        retry = setTimeout(() => {
          api.get(`${API_BASE}/auth/me`).then(connect, connect);
        }, RECONNECT_MS);
      });
    };
    connect();
    return () => {
      stopped = true;
      if (retry !== null) clearTimeout(retry);
      source?.close();
      batch.cancel();
    };
  }, [client, enabled]);
}
