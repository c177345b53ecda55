import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { browserTimeZone, timeIn } from "../api/maintenance";
import { ME_PATH, alice, apiError, json, meBody, mockFetch, noContent, type RecordedCall } from "../test/fetchMock";
import { hostDetail, page } from "../test/fixtures";
import { blackout, group, occurrence, window_ } from "../test/scheduleFixtures";
import { renderApp } from "../test/render";

const OCC = "GET /api/v1/maintenance-windows/occurrences";
const WINDOWS = "GET /api/v1/maintenance-windows";
const BLACKOUTS = "GET /api/v1/blackouts";
const meAs = (role: string) => ({ [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role } }) });
const groups = { "GET /api/v1/groups": json(200, page([group(3, "web servers"), group(5, "databases")], 2, 500)) };

const weekend = window_(4, "weekend", { time_zone: "Asia/Tokyo" });
const hostWindow = window_(6, "db nightly", {
  group_id: null,
  host_id: 17,
  recurrence: { kind: "daily" },
  start_time: "23:30",
  duration_minutes: 90,
  time_zone: "UTC",
  enabled: false,
  next_occurrence: null,
});
// Midday UTC: the same calendar day in any zone from UTC−11 to UTC+11.
const tokyo = { time_zone: "Asia/Tokyo" };
const dec1 = occurrence(4, "weekend", "2026-12-01T12:00:00Z", "2026-12-01T15:00:00Z", tokyo);
const dec12 = occurrence(4, "weekend", "2026-12-12T12:00:00Z", "2026-12-12T15:00:00Z", tokyo);
const dec26 = occurrence(4, "weekend", "2026-12-26T12:00:00Z", "2026-12-26T15:00:00Z", {
  ...tokyo,
  blocked: [{ start: "2026-12-26T12:00:00Z", end: "2026-12-26T15:00:00Z" }],
});
const jan12 = occurrence(6, "db nightly", "2027-01-12T12:00:00Z", "2027-01-12T13:30:00Z", {
  group_id: null,
  group_name: null,
  host_id: 17,
  host_name: "db-1",
});
const yearEnd = blackout(2, "year end", { starts_at: "2026-12-20T12:00:00Z", ends_at: "2026-12-22T12:00:00Z" });

/** Occurrences by the month the range is mostly in. */
const occurrences = (call: RecordedCall) => {
  const from = new Date(call.query.get("from") ?? "");
  const inJanuary = from >= new Date(2026, 11, 20);
  return json(200, { from: call.query.get("from"), to: call.query.get("to"), items: inJanuary ? [jan12] : [dec1, dec12, dec26] });
};

const common = {
  ...groups,
  [OCC]: occurrences,
  [WINDOWS]: json(200, page([weekend, hostWindow])),
  [BLACKOUTS]: json(200, page([yearEnd])),
  "GET /api/v1/hosts/17": json(200, hostDetail(17, "db-1")),
};

describe("Maintenance windows page", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date(2026, 11, 3, 10, 0, 0));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows this month's occurrences on their days, today, blackouts, and moves between months", async () => {
    const user = userEvent.setup({ delay: null });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const mock = mockFetch({
      ...meAs("viewer"),
      ...common,
      [OCC]: async (call) => {
        await gate;
        return occurrences(call);
      },
    });
    renderApp("/maintenance-windows");
    expect(await screen.findByRole("status", { name: "Loading the calendar" })).toBeInTheDocument();
    release();
    const days = await screen.findByRole("list", { name: "Days of December 2026" });
    // The grid runs Monday 30 November to Sunday 3 January, and so does the request.
    const call = mock.callsTo(OCC)[0]!;
    expect(call.query.get("from")).toBe(new Date(2026, 10, 30).toISOString());
    expect(call.query.get("to")).toBe(new Date(2027, 0, 4).toISOString());
    expect(within(days).getAllByRole("listitem", { name: /^\w+, / })).toHaveLength(35);

    const day12 = within(days).getByRole("listitem", { name: /December 12, 2026/ });
    expect(day12).toHaveTextContent(`${timeIn(dec12.start)} weekend`);
    // The window's own zone and its group come with the occurrence (no lookups per window).
    if (browserTimeZone() !== "Asia/Tokyo") expect(day12).toHaveTextContent(`${timeIn(dec12.start, "Asia/Tokyo")} Asia/Tokyo`);
    expect(day12).toHaveTextContent("Group web servers");
    expect(within(days).getByRole("listitem", { name: /December 11, 2026/ })).not.toHaveTextContent("weekend");
    // Today is marked.
    const today = within(days).getByRole("listitem", { name: /December 3, 2026, today/ });
    expect(today).toHaveAttribute("aria-current", "date");
    // The blackout shades the days it covers; the occurrence inside it is marked blocked.
    expect(within(days).getByRole("listitem", { name: /December 21, 2026/ })).toHaveTextContent("Blackout: year end");
    expect(within(days).getByRole("listitem", { name: /December 23, 2026/ })).not.toHaveTextContent("Blackout");
    expect(within(days).getByRole("listitem", { name: /December 26, 2026/ })).toHaveTextContent("blocked by a blackout");
    // The phone list starts today: 1 December is not upcoming.
    const upcoming = screen.getByRole("list", { name: "Upcoming this month" });
    expect(within(upcoming).getByRole("listitem", { name: /December 12, 2026/ })).toHaveTextContent("weekend");
    expect(within(upcoming).queryByRole("listitem", { name: /December 1, 2026/ })).not.toBeInTheDocument();
    expect(screen.getByText(`Times in ${browserTimeZone()} (your time zone)`)).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Next month" }));
    const january = await screen.findByRole("list", { name: "Days of January 2027" });
    expect(screen.getByRole("heading", { level: 2, name: "January 2027" })).toBeInTheDocument();
    expect(within(january).getByRole("listitem", { name: /January 12, 2027/ })).toHaveTextContent(/db nightly\s*Host db-1/);
    expect(within(january).queryByRole("listitem", { current: "date" })).not.toBeInTheDocument();
    expect(mock.callsTo(OCC).at(-1)!.query.get("from")).toBe(new Date(2026, 11, 28).toISOString());
    // A month wholly ahead needs only the blackouts that have not ended.
    expect(mock.callsTo(BLACKOUTS).at(-1)!.query.get("current")).toBe("true");
    expect(mock.callsTo(BLACKOUTS)[0]!.query.get("current")).toBeNull();
    expect(screen.getByTestId("location")).toHaveTextContent("/maintenance-windows");

    await user.click(screen.getByRole("button", { name: "Previous month" }));
    await user.click(screen.getByRole("button", { name: "Previous month" }));
    expect(await screen.findByRole("list", { name: "Days of November 2026" })).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "This month" }));
    expect(await screen.findByRole("list", { name: "Days of December 2026" })).toBeInTheDocument();
  });

  it("reads one group's calendar with the global blackouts and the group's", async () => {
    const mock = mockFetch({ ...meAs("operator"), ...common });
    renderApp("/maintenance-windows?group=3&month=2026-12");
    await screen.findByRole("list", { name: "Days of December 2026" });
    expect(mock.callsTo(OCC)[0]!.query.get("group_id")).toBe("3");
    const blackoutQueries = mock.callsTo(BLACKOUTS).map((c) => c.query.toString());
    expect(blackoutQueries).toEqual(expect.arrayContaining(["global=true&limit=500", "group_id=3&limit=500"]));
  });

  it("shows a calendar error with Retry", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({ ...meAs("viewer"), ...common, [OCC]: [apiError(500, "internal", "boom", undefined, "req-9"), occurrences] });
    renderApp("/maintenance-windows?month=2026-12");
    expect(await screen.findByText("Could not load the calendar")).toBeInTheDocument();
    expect(screen.getByText("req-9")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("list", { name: "Days of December 2026" })).toBeInTheDocument();
  });

  it("lists the windows, and creates one (a field error shown on its field)", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...meAs("operator"),
      ...common,
      "POST /api/v1/maintenance-windows": [
        apiError(400, "validation_error", "time_zone: unknown time zone Mars/Olympus", { field: "time_zone" }),
        json(201, window_(8, "patch tuesday")),
      ],
    });
    renderApp("/maintenance-windows?tab=windows");
    const table = await screen.findByRole("table", { name: "Maintenance windows" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("weekend");
    expect(rows[1]).toHaveTextContent("Group web servers");
    expect(rows[1]).toHaveTextContent("Every Saturday and Sunday");
    expect(rows[1]).toHaveTextContent("02:00 Asia/Tokyo");
    expect(rows[1]).toHaveTextContent("3 h");
    expect(await within(rows[2]!).findByRole("link", { name: "db-1" })).toHaveAttribute("href", "/hosts/17");
    expect(rows[2]).toHaveTextContent("Every day");
    expect(rows[2]).toHaveTextContent("1 h 30 min");
    expect(rows[2]).toHaveTextContent("disabled");
    expect(screen.queryByRole("button", { name: "New blackout" })).not.toBeInTheDocument();

    // Create: the second Tuesday of every month, 22:00 New York time, for 4 hours.
    await user.click(screen.getByRole("button", { name: "New window" }));
    const dialog = await screen.findByRole("dialog", { name: "New maintenance window" });
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "patch tuesday");
    await user.click(within(dialog).getByRole("combobox", { name: "Group" }));
    await user.click(await screen.findByRole("option", { name: "web servers" }));
    await user.click(within(dialog).getByRole("combobox", { name: "Repeats" }));
    await user.click(await screen.findByRole("option", { name: "Monthly" }));
    await user.click(within(dialog).getByRole("combobox", { name: "On" }));
    await user.click(await screen.findByRole("option", { name: "A weekday of the month" }));
    fireEvent.change(within(dialog).getByLabelText(/Starts at/), { target: { value: "22:00" } });
    const duration = within(dialog).getByRole("spinbutton", { name: "Duration (minutes)" });
    await user.clear(duration);
    await user.type(duration, "240");
    expect(duration).toHaveAccessibleDescription("4 h; at most 7 days");
    const zone = within(dialog).getByRole("combobox", { name: "Time zone" });
    // (typed at once: the list of zones is long)
    fireEvent.change(zone, { target: { value: "Mars/Olympus" } });
    await user.click(within(dialog).getByRole("button", { name: "Create window" }));
    await waitFor(() => expect(zone).toHaveAccessibleDescription("Unknown time zone Mars/Olympus."));
    expect(zone).toHaveAttribute("aria-invalid", "true");
    expect(mock.callsTo("POST /api/v1/maintenance-windows")[0]!.body).toEqual({
      name: "patch tuesday",
      group_id: 3,
      host_id: null,
      recurrence: { kind: "monthly", rule: "nth_weekday", nth: 2, weekday: "tuesday" },
      start_time: "22:00",
      duration_minutes: 240,
      time_zone: "Mars/Olympus",
      enabled: true,
    });
    fireEvent.change(zone, { target: { value: "America/New_York" } });
    expect(zone).not.toHaveAttribute("aria-invalid", "true");
    await user.click(within(dialog).getByRole("button", { name: "Create window" }));
    await waitFor(() => expect(mock.callsTo("POST /api/v1/maintenance-windows")).toHaveLength(2));
    expect(mock.callsTo("POST /api/v1/maintenance-windows")[1]!.body).toMatchObject({ time_zone: "America/New_York" });
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
  });

  it("edits and deletes a window", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...meAs("operator"),
      ...common,
      "PUT /api/v1/maintenance-windows/4": json(200, weekend),
      "DELETE /api/v1/maintenance-windows/6": noContent(),
    });
    renderApp("/maintenance-windows?tab=windows");
    // Edit: weekdays and duration; every field is sent (PUT replaces).
    await user.click(await screen.findByRole("button", { name: "Edit window weekend" }));
    const edit = await screen.findByRole("dialog", { name: "Edit maintenance window" });
    expect(within(edit).getByRole("textbox", { name: "Name" })).toHaveValue("weekend");
    expect(within(edit).getByRole("checkbox", { name: "Saturday" })).toBeChecked();
    await user.click(within(edit).getByRole("checkbox", { name: "Friday" }));
    const editDuration = within(edit).getByRole("spinbutton", { name: "Duration (minutes)" });
    await user.clear(editDuration);
    await user.type(editDuration, "120");
    await user.click(within(edit).getByRole("button", { name: "Save" }));
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/maintenance-windows/4")).toHaveLength(1));
    expect(mock.callsTo("PUT /api/v1/maintenance-windows/4")[0]!.body).toEqual({
      name: "weekend",
      group_id: 3,
      host_id: null,
      recurrence: { kind: "weekly", days: ["friday", "saturday", "sunday"] },
      start_time: "02:00",
      duration_minutes: 120,
      time_zone: "Asia/Tokyo",
      enabled: true,
    });
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

    await user.click(screen.getByRole("button", { name: "Delete window db nightly" }));
    const confirm = await screen.findByRole("dialog", { name: "Delete this maintenance window?" });
    await user.click(within(confirm).getByRole("button", { name: "Delete window" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/maintenance-windows/6")).toHaveLength(1));
  });

  it("checks a window before sending it", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ ...meAs("admin"), ...common });
    renderApp("/maintenance-windows?tab=windows");
    await user.click(await screen.findByRole("button", { name: "New window" }));
    const dialog = await screen.findByRole("dialog", { name: "New maintenance window" });
    await user.click(within(dialog).getByRole("checkbox", { name: "Saturday" }));
    await user.click(within(dialog).getByRole("button", { name: "Create window" }));
    expect(within(dialog).getByRole("textbox", { name: "Name" })).toHaveAccessibleDescription("A name is required.");
    expect(within(dialog).getByText("Choose at least one day.")).toBeInTheDocument();
    expect(within(dialog).getByText("Choose a group.")).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/maintenance-windows")).toHaveLength(0);
  });

  it("lists blackouts, and an admin creates (field error on its field) and deletes one", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...meAs("admin"),
      ...common,
      "POST /api/v1/blackouts": [
        apiError(400, "validation_error", "ends_at: must be after starts_at", { field: "ends_at" }),
        json(201, blackout(9, "year end freeze")),
      ],
      "DELETE /api/v1/blackouts/2": noContent(),
    });
    renderApp("/maintenance-windows?tab=blackouts");
    const table = await screen.findByRole("table", { name: "Blackouts" });
    const rows = within(table).getAllByRole("row");
    expect(rows[1]).toHaveTextContent("year end");
    expect(rows[1]).toHaveTextContent("Every host");
    expect(rows[1]).toHaveTextContent("upcoming");
    expect(rows[1]).toHaveTextContent("finance closing");
    expect(mock.callsTo(BLACKOUTS)[0]!.query.get("current")).toBe("true");

    await user.click(screen.getByRole("button", { name: "New blackout" }));
    const dialog = await screen.findByRole("dialog", { name: "New blackout" });
    await user.type(within(dialog).getByRole("textbox", { name: "Name" }), "year end freeze");
    await user.click(within(dialog).getByRole("combobox", { name: "Applies to" }));
    await user.click(await screen.findByRole("option", { name: "databases" }));
    fireEvent.change(within(dialog).getByLabelText(/^Starts/), { target: { value: "2026-12-20T00:00" } });
    fireEvent.change(within(dialog).getByLabelText(/^Ends/), { target: { value: "2027-01-05T08:30" } });
    await user.type(within(dialog).getByRole("textbox", { name: "Reason" }), "finance closing");
    await user.click(within(dialog).getByRole("button", { name: "Create blackout" }));
    await waitFor(() => expect(within(dialog).getByLabelText(/^Ends/)).toHaveAccessibleDescription("Must be after starts_at."));
    expect(mock.callsTo("POST /api/v1/blackouts")[0]!.body).toEqual({
      name: "year end freeze",
      group_id: 5,
      starts_at: new Date(2026, 11, 20, 0, 0).toISOString(),
      ends_at: new Date(2027, 0, 5, 8, 30).toISOString(),
      reason: "finance closing",
    });
    await user.click(within(dialog).getByRole("button", { name: "Create blackout" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

    await user.click(screen.getByRole("button", { name: "Delete blackout year end" }));
    const confirm = await screen.findByRole("dialog", { name: "Delete this blackout?" });
    await user.click(within(confirm).getByRole("button", { name: "Delete blackout" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/blackouts/2")).toHaveLength(1));

    await user.click(await screen.findByRole("checkbox", { name: "Show ended blackouts" }));
    await waitFor(() => expect(mock.callsTo(BLACKOUTS).at(-1)!.query.get("current")).toBeNull());
  });

  it("hides every change from a viewer, and blackout changes from an operator", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({ ...meAs("viewer"), ...common });
    const { unmount } = renderApp("/maintenance-windows?tab=windows");
    const table = await screen.findByRole("table", { name: "Maintenance windows" });
    expect(within(table).getAllByRole("row")[1]).toHaveTextContent("weekend");
    expect(screen.queryByRole("button", { name: "New window" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "New blackout" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /^(Edit|Delete) window/ })).not.toBeInTheDocument();
    await user.click(screen.getByRole("tab", { name: "Blackouts" }));
    expect(await screen.findByRole("table", { name: "Blackouts" })).toHaveTextContent("year end");
    expect(screen.queryByRole("button", { name: /^(Edit|Delete) blackout/ })).not.toBeInTheDocument();
    unmount();

    mockFetch({ ...meAs("operator"), ...common });
    renderApp("/maintenance-windows?tab=blackouts");
    expect(await screen.findByRole("table", { name: "Blackouts" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "New window" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "New blackout" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /^(Edit|Delete) blackout/ })).not.toBeInTheDocument();
  });
});
