// Filters, sort and page kept in the URL's query string, so a filtered list can be bookmarked,
// shared, and survives a reload or the Back button.

import { useCallback, useEffect, useState } from "react";
import { useSearchParams } from "react-router-dom";

/** Reads and updates query-string parameters. Setting a filter goes back to the first page. */
export function useUrlParams() {
  const [params, setParams] = useSearchParams();
  const get = useCallback((name: string): string => params.get(name) ?? "", [params]);
  const set = useCallback(
    (changes: Record<string, string | number | null | undefined>, options: { keepPage?: boolean } = {}) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          for (const [k, v] of Object.entries(changes)) {
            if (v === null || v === undefined || v === "") next.delete(k);
            else next.set(k, String(v));
          }
          if (!options.keepPage && !("page" in changes)) next.delete("page");
          return next;
        },
        { replace: true },
      );
    },
    [setParams],
  );
  const page = Math.max(0, (Number.parseInt(params.get("page") ?? "1", 10) || 1) - 1);
  return { params, get, set, page };
}

/** A positive integer from the URL, or `fallback`. */
export function intParam(value: string, fallback: number, allowed?: number[]): number {
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n <= 0) return fallback;
  if (allowed && !allowed.includes(n)) return fallback;
  return n;
}

/** `value` after it stopped changing for `ms` (search boxes). */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = window.setTimeout(() => setSettled(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return settled;
}

/**
 * A search box bound to a URL parameter: typing updates the box at once and the URL (hence the
 * request) once typing pauses.
 */
export function useSearchBox(name: string, urlValue: string, set: (c: Record<string, string>) => void, ms = 300) {
  const [text, setText] = useState(urlValue);
  const settled = useDebounced(text, ms);
  useEffect(() => {
    if (settled.trim() !== urlValue) set({ [name]: settled.trim() });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [settled]);
  // The URL changed from elsewhere (Back button, a link): follow it.
  useEffect(() => {
    setText((t) => (t.trim() === urlValue ? t : urlValue));
  }, [urlValue]);
  return [text, setText] as const;
}
