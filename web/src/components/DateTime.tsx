const FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Formats an RFC 3339 time from the server in the viewer's locale and time zone. */
export function formatDateTime(value: string): string {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : FORMAT.format(d);
}

export function DateTime({ value, empty = "—" }: { value: string | null | undefined; empty?: string }) {
  if (!value) return <span>{empty}</span>;
  return (
    <time dateTime={value} title={value}>
      {formatDateTime(value)}
    </time>
  );
}
