// A stand-in for the browser's EventSource, so tests can push server-sent events.

import { vi } from "vitest";

export class FakeEventSource {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  static instances: FakeEventSource[] = [];

  readonly url: string;
  readonly withCredentials: boolean;
  readyState = FakeEventSource.CONNECTING;
  private listeners = new Map<string, Set<(e: MessageEvent) => void>>();

  constructor(url: string, init?: EventSourceInit) {
    this.url = url;
    this.withCredentials = init?.withCredentials ?? false;
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: (e: MessageEvent) => void) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(listener);
  }

  removeEventListener(type: string, listener: (e: MessageEvent) => void) {
    this.listeners.get(type)?.delete(listener);
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  /** The server sends `event: <type>` with `data: <JSON of data>`. */
  emit(type: string, data?: unknown) {
    if (type === "open") this.readyState = FakeEventSource.OPEN;
    const event = new MessageEvent(type, { data: data === undefined ? "" : JSON.stringify(data) });
    for (const l of this.listeners.get(type) ?? []) l(event);
  }
}

/** Installs the fake; returns the list of streams the app opened. */
export function mockEventSource() {
  FakeEventSource.instances = [];
  vi.stubGlobal("EventSource", FakeEventSource);
  return FakeEventSource.instances;
}
