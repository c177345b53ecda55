import { describe, expect, it, vi } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch } from "../test/fetchMock";
import { host, hostDetail, page } from "../test/fixtures";
import { renderApp } from "../test/render";

const HOSTS = "GET /api/v1/hosts";
const GROUPS = "GET /api/v1/groups";

const fleet = page([host(1, "web-01"), host(2, "db-01", { status: "offline", security_updates_count: 0, reboot_required: true })], 10_000);

function lastQuery(mock: ReturnType<typeof mockFetch>): URLSearchParams {
  const calls = mock.callsTo(HOSTS);
  return calls[calls.length - 1]!.query;
}

/** A Blob's text (jsdom's Blob has no `text()`). */
function blobText(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsText(blob);
  });
}

describe("Hosts page", () => {
  it("shows the hosts of the first page, asking the server for one page only", async () => {
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [HOSTS]: json(200, fleet),
      [GROUPS]: json(200, page([{ id: 3, name: "web", description: "", created_at: "2026-01-01T00:00:00Z" }])),
    });
    renderApp("/hosts");
    const table = await screen.findByRole("table", { name: "Hosts" });
    const rows = within(table).getAllByRole("row");
    expect(rows).toHaveLength(3);
    expect(within(rows[1]!).getByRole("link", { name: "web-01" })).toHaveAttribute("href", "/hosts/1");
    expect(rows[1]).toHaveTextContent("Debian GNU/Linux 12 (bookworm)");
    expect(rows[2]).toHaveTextContent("offline");
    expect(rows[2]).toHaveTextContent("needed");
    expect(screen.getByText("10,000 approved hosts")).toBeInTheDocument();
    // One page: limit and offset, never the whole fleet.
    expect(lastQuery(mock).get("limit")).toBe("50");
    expect(lastQuery(mock).get("offset")).toBe("0");
    expect(screen.getByText("1–50 of 10000")).toBeInTheDocument();

    // The next page asks for the next offset.
    await userEvent.setup({ delay: null }).click(screen.getByRole("button", { name: /next page/i }));
    await waitFor(() => expect(lastQuery(mock).get("offset")).toBe("50"));
  });

  it("reads filters and sort from the URL and sends them to the API", async () => {
    const mock = mockFetch({ [ME_PATH]: json(200, meBody()), [HOSTS]: json(200, fleet), [GROUPS]: json(200, page([])) });
    renderApp("/hosts?status=online&security=true&reboot=false&scanned=false&transport=pull&group=3&os=debian&sort=last_seen&order=desc&page=3");
    await screen.findByRole("table", { name: "Hosts" });
    const q = lastQuery(mock);
    expect(Object.fromEntries(q)).toEqual({
      status: "online",
      security_updates: "true",
      reboot_required: "false",
      scanned: "false",
      transport: "pull",
      group: "3",
      os: "debian",
      sort: "last_seen",
      order: "desc",
      limit: "50",
      offset: "100",
    });
  });

  it("changes the request's query string when a filter, the search box or a sort header changes", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({ [ME_PATH]: json(200, meBody()), [HOSTS]: json(200, fleet), [GROUPS]: json(200, page([])) });
    renderApp("/hosts");
    await screen.findByRole("table", { name: "Hosts" });

    await user.click(screen.getByRole("combobox", { name: "Status" }));
    await user.click(await screen.findByRole("option", { name: "Offline" }));
    await waitFor(() => expect(lastQuery(mock).get("status")).toBe("offline"));

    await user.click(screen.getByRole("combobox", { name: "Security updates" }));
    await user.click(await screen.findByRole("option", { name: "Has security updates" }));
    await waitFor(() => expect(lastQuery(mock).get("security_updates")).toBe("true"));
    expect(lastQuery(mock).get("status")).toBe("offline");

    await user.click(screen.getByRole("combobox", { name: "Scanned" }));
    await user.click(await screen.findByRole("option", { name: "Not scanned yet" }));
    await waitFor(() => expect(lastQuery(mock).get("scanned")).toBe("false"));

    await user.type(screen.getByRole("textbox", { name: "Search" }), "web");
    await waitFor(() => expect(lastQuery(mock).get("q")).toBe("web"));
    // Typing does not send a request per key stroke.
    expect(mock.callsTo(HOSTS).filter((c) => c.query.get("q") === "w")).toHaveLength(0);

    await user.click(screen.getByRole("combobox", { name: "Last seen" }));
    await user.click(await screen.findByRole("option", { name: "Not for 7 days or more" }));
    await waitFor(() => expect(lastQuery(mock).get("seen_before")).toMatch(/^\d{4}-\d\d-\d\dT/));
    const before = Date.parse(lastQuery(mock).get("seen_before")!);
    expect(Date.now() - before).toBeGreaterThan(7 * 86400_000 - 120_000);

    await user.click(screen.getByRole("button", { name: "Security updates" }));
    await waitFor(() => expect(lastQuery(mock).get("sort")).toBe("security_updates"));
    expect(lastQuery(mock).get("order")).toBeNull();
    await user.click(screen.getByRole("button", { name: "Security updates" }));
    await waitFor(() => expect(lastQuery(mock).get("order")).toBe("desc"));

    await user.click(screen.getByRole("button", { name: "Clear filters" }));
    await waitFor(() => expect(lastQuery(mock).get("status")).toBeNull());
    expect(lastQuery(mock).get("q")).toBeNull();
    expect(lastQuery(mock).get("scanned")).toBeNull();
  });

  it("queues a bulk upgrade for the selected hosts through the fleet endpoint, after confirmation", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [HOSTS]: json(200, fleet),
      [GROUPS]: json(200, page([])),
      "POST /api/v1/commands": json(201, {
        commands: [],
        skipped: [{ host_id: 2, hostname: "db-01", reason: "push hosts cannot take commands" }],
      }),
    });
    renderApp("/hosts");
    await screen.findByRole("table", { name: "Hosts" });
    await user.click(screen.getByRole("checkbox", { name: "Select web-01" }));
    await user.click(screen.getByRole("checkbox", { name: "Select db-01" }));
    const toolbar = screen.getByRole("toolbar", { name: "Bulk actions" });
    expect(toolbar).toHaveTextContent("2 selected");

    await user.click(within(toolbar).getByRole("button", { name: "Apply security updates" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveTextContent("Apply security updates: 2 hosts");
    expect(dialog).toHaveTextContent("web-01, db-01");
    expect(mock.callsTo("POST /api/v1/commands")).toHaveLength(0);
    await user.click(within(dialog).getByRole("checkbox", { name: /dry run/i }));
    await user.click(within(dialog).getByRole("button", { name: "Queue dry run" }));

    await screen.findByText(/Queued 0 commands/);
    const posts = mock.callsTo("POST /api/v1/commands");
    expect(posts).toHaveLength(1);
    expect(posts[0]!.body).toEqual({ hosts: [1, 2], command: { type: "upgrade", selection: { mode: "security" }, dry_run: true } });
    expect(screen.getByText("Skipped db-01: push hosts cannot take commands")).toBeInTheDocument();
    expect(screen.queryByRole("toolbar", { name: "Bulk actions" })).not.toBeInTheDocument();
  });

  it("queues a command for every host of the filtered group, without fetching them", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [HOSTS]: json(200, page([host(1, "web-01")], 4_000)),
      [GROUPS]: json(200, page([{ id: 3, name: "web", description: "", created_at: "2026-01-01T00:00:00Z" }])),
      "POST /api/v1/commands": json(201, { commands: [], skipped: [] }),
    });
    renderApp("/hosts?group=3");
    await screen.findByRole("table", { name: "Hosts" });
    await user.click(screen.getByRole("button", { name: "Whole group…" }));
    await user.click(await screen.findByRole("menuitem", { name: "Apply all updates: every host of web" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog).toHaveTextContent("Apply all updates: every host of web");
    await user.click(within(dialog).getByRole("button", { name: "Apply all updates" }));
    await screen.findByText(/Queued 0 commands/);
    expect(mock.callsTo("POST /api/v1/commands")[0]!.body).toEqual({
      group: 3,
      command: { type: "upgrade", selection: { mode: "all" }, dry_run: false },
    });
    // Only the one page was ever read.
    expect(mock.callsTo(HOSTS).every((c) => c.query.get("limit") === "50")).toBe(true);
  });

  it("keeps a refused bulk reboot's error in the dialog", async () => {
    const user = userEvent.setup({ delay: null });
    const mock = mockFetch({
      [ME_PATH]: json(200, meBody()),
      [HOSTS]: json(200, fleet),
      [GROUPS]: json(200, page([])),
      "POST /api/v1/commands": apiError(409, "conflict", "host 2 (db-01) is a push host and cannot take commands"),
    });
    renderApp("/hosts");
    await screen.findByRole("table", { name: "Hosts" });
    await user.click(screen.getByRole("checkbox", { name: "Select every host on this page" }));
    await user.click(within(screen.getByRole("toolbar", { name: "Bulk actions" })).getByRole("button", { name: "Reboot" }));
    const dialog = await screen.findByRole("dialog");
    expect(within(dialog).queryByRole("checkbox", { name: /dry run/i })).not.toBeInTheDocument();
    await user.click(within(dialog).getByRole("button", { name: "Reboot" }));
    expect(await within(dialog).findByText("Host 2 (db-01) is a push host and cannot take commands.")).toBeInTheDocument();
    expect(mock.callsTo("POST /api/v1/commands")[0]!.body).toEqual({ hosts: [1, 2], command: { type: "reboot", delay_secs: 0, force: false } });
  });

  it("shows a load error with Retry, and hostnames as text", async () => {
    const user = userEvent.setup({ delay: null });
    mockFetch({
      [ME_PATH]: json(200, meBody()),
      [HOSTS]: [apiError(500, "internal", "boom"), json(200, page([host(1, "<script>alert(1)</script>")]))],
      [GROUPS]: json(200, page([])),
    });
    renderApp("/hosts");
    expect(await screen.findByText("Could not load hosts")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("link", { name: "<script>alert(1)</script>" })).toBeInTheDocument();
    expect(document.querySelector("script")).toBeNull();
  });

  it("folds the filters behind a button on a phone", async () => {
    const user = userEvent.setup({ delay: null });
    vi.spyOn(window, "matchMedia").mockImplementation(
      (query: string): MediaQueryList =>
        ({
          matches: query.includes("max-width"),
          media: query,
          onchange: null,
          addListener: () => undefined,
          removeListener: () => undefined,
          addEventListener: () => undefined,
          removeEventListener: () => undefined,
          dispatchEvent: () => false,
        }) as MediaQueryList,
    );
    mockFetch({ [ME_PATH]: json(200, meBody()), [HOSTS]: json(200, fleet), [GROUPS]: json(200, page([])) });
    renderApp("/hosts?status=offline");
    await screen.findByRole("table", { name: "Hosts" });
    expect(screen.getByRole("textbox", { name: "Search" })).toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Status" })).not.toBeInTheDocument();
    const toggle = screen.getByRole("button", { name: "Filters (1)" });
    await user.click(toggle);
    expect(toggle).toHaveAttribute("aria-expanded", "true");
    expect(screen.getByRole("combobox", { name: "Status" })).toHaveTextContent("Offline");
  });

  it("offers no selection or bulk actions to viewers", async () => {
    mockFetch({
      [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "viewer" } }),
      [HOSTS]: json(200, page([host(1, "web-01")])),
      [GROUPS]: json(200, page([])),
    });
    renderApp("/hosts");
    await screen.findByRole("table", { name: "Hosts" });
    expect(screen.queryByRole("checkbox")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Add host" })).not.toBeInTheDocument();
  });

  it("says how to enroll when the fleet is empty", async () => {
    mockFetch({ [ME_PATH]: json(200, meBody()), [HOSTS]: json(200, page([])), [GROUPS]: json(200, page([])) });
    renderApp("/hosts");
    expect(await screen.findByText("No hosts yet")).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Create a registration token" })).toHaveAttribute("href", "/registration-tokens");
  });

  describe("adding a host", () => {
    const bundle = {
      ca_certificate: "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
      server_certificate: "-----BEGIN CERTIFICATE-----\nSERVER\n-----END CERTIFICATE-----\n",
      server_key: "-----BEGIN PRIVATE KEY-----\n<script>KEY</script>\n-----END PRIVATE KEY-----\n",
      serial: "0a1b2c",
      not_after: "2027-12-03T00:00:00Z",
    };
    const groups = page([
      { id: 3, name: "web", description: "", created_at: "2026-01-01T00:00:00Z" },
      { id: 4, name: "db", description: "", created_at: "2026-01-01T00:00:00Z" },
    ]);

    it("adds a push host with name, address and groups, then issues its bundle to copy and download", async () => {
      const user = userEvent.setup({ delay: null });
      const writeText = vi.fn().mockResolvedValue(undefined);
      Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
      const createObjectURL = vi.fn((_: Blob) => "blob:bundle");
      const revokeObjectURL = vi.fn();
      // jsdom has neither; set them for this test only.
      Object.assign(URL, { createObjectURL, revokeObjectURL });
      const clicked: string[] = [];
      const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
        clicked.push(this.download);
      });
      const mock = mockFetch({
        [ME_PATH]: json(200, meBody()),
        [HOSTS]: json(200, page([host(1, "web-01")])),
        [GROUPS]: json(200, groups),
        "POST /api/v1/hosts": json(201, hostDetail(42, "db-01", { transport: "push", status: "pending", group_ids: [4] })),
        "POST /api/v1/hosts/42/push-bundle": json(201, bundle),
      });
      try {
        renderApp("/hosts");
        await user.click(await screen.findByRole("button", { name: "Add host" }));
        const dialog = await screen.findByRole("dialog", { name: "Add a push host" });
        const submit = within(dialog).getByRole("button", { name: "Add host" });
        expect(submit).toBeDisabled();
        await user.type(within(dialog).getByRole("textbox", { name: "FQDN" }), "db-01.example.com");
        await user.type(within(dialog).getByRole("textbox", { name: "Address" }), "10.0.4.17");
        await user.click(within(dialog).getByRole("combobox", { name: "Groups" }));
        await user.click(await screen.findByRole("option", { name: "db" }));
        await user.keyboard("{Escape}");
        await user.click(submit);

        const added = await screen.findByRole("dialog", { name: "Added db-01" });
        expect(mock.callsTo("POST /api/v1/hosts")[0]!.body).toEqual({ fqdn: "db-01.example.com", address: "10.0.4.17", groups: [4] });
        expect(added).toHaveTextContent("push.allowlist");
        await user.click(within(added).getByRole("button", { name: "Issue the push bundle" }));
        await waitFor(() => expect(mock.callsTo("POST /api/v1/hosts/42/push-bundle")).toHaveLength(1));

        expect(await within(added).findByText("Save the server key now")).toBeInTheDocument();
        expect(added).toHaveTextContent("The manager does not store the key");
        const key = within(added).getByText(/KEY/, { selector: "pre" });
        expect(key.textContent).toBe(bundle.server_key);
        expect(key.querySelector("script")).toBeNull();
        await user.click(within(added).getByRole("button", { name: "Copy server key" }));
        expect(writeText).toHaveBeenCalledWith(bundle.server_key);
        await user.click(within(added).getByRole("button", { name: "Copy CA certificate" }));
        expect(writeText).toHaveBeenLastCalledWith(bundle.ca_certificate);

        for (const file of ["ca.crt", "server.crt", "server.key"]) {
          await user.click(within(added).getByRole("button", { name: `Download ${file}` }));
        }
        expect(clicked).toEqual(["ca.crt", "server.crt", "server.key"]);
        const blobs = createObjectURL.mock.calls.map((c) => c[0]);
        expect(await blobText(blobs[2]!)).toBe(bundle.server_key);
        expect(await blobText(blobs[1]!)).toBe(bundle.server_certificate);
        // The Blob URLs are let go once the downloads have started.
        await waitFor(() => expect(revokeObjectURL).toHaveBeenCalledTimes(3));
        expect(revokeObjectURL).toHaveBeenCalledWith("blob:bundle");

        expect(within(added).getByRole("link", { name: "Open the host" })).toHaveAttribute("href", "/hosts/42");
      } finally {
        click.mockRestore();
        const u = URL as unknown as Record<string, unknown>;
        delete u["createObjectURL"];
        delete u["revokeObjectURL"];
      }
    });

    it("shows the server's objection on the field it is about, and other refusals plainly", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        [ME_PATH]: json(200, meBody()),
        [HOSTS]: json(200, page([])),
        [GROUPS]: json(200, groups),
        "POST /api/v1/hosts": [
          apiError(400, "validation_error", "must be an IPv4 or IPv6 address", { field: "address" }),
          apiError(409, "conflict", "a host with this name exists already"),
        ],
      });
      renderApp("/hosts");
      await user.click(await screen.findByRole("button", { name: "Add host" }));
      const dialog = await screen.findByRole("dialog", { name: "Add a push host" });
      const address = within(dialog).getByRole("textbox", { name: "Address" });
      await user.type(address, "10.0.4.300");
      await user.click(within(dialog).getByRole("button", { name: "Add host" }));
      await waitFor(() => expect(address).toHaveAttribute("aria-invalid", "true"));
      expect(address).toHaveAccessibleDescription("Must be an IPv4 or IPv6 address.");
      // Only the address was given: no fqdn, no groups.
      expect(mock.callsTo("POST /api/v1/hosts")[0]!.body).toEqual({ address: "10.0.4.300" });

      await user.click(within(dialog).getByRole("button", { name: "Add host" }));
      expect(await within(dialog).findByRole("alert")).toHaveTextContent("A host with this name exists already.");
    });

    it("tells operators that an administrator issues the bundle", async () => {
      const user = userEvent.setup({ delay: null });
      const mock = mockFetch({
        [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "operator" } }),
        [HOSTS]: json(200, page([host(1, "web-01")])),
        [GROUPS]: json(200, groups),
        "POST /api/v1/hosts": json(201, hostDetail(42, "db-01", { transport: "push", status: "pending" })),
      });
      renderApp("/hosts");
      await user.click(await screen.findByRole("button", { name: "Add host" }));
      const dialog = await screen.findByRole("dialog", { name: "Add a push host" });
      await user.type(within(dialog).getByRole("textbox", { name: "FQDN" }), "db-01.example.com");
      await user.click(within(dialog).getByRole("button", { name: "Add host" }));
      const added = await screen.findByRole("dialog", { name: "Added db-01" });
      expect(added).toHaveTextContent("an administrator issues its bundle");
      expect(within(added).queryByRole("button", { name: "Issue the push bundle" })).not.toBeInTheDocument();
      expect(mock.callsTo("POST /api/v1/hosts/42/push-bundle")).toHaveLength(0);
      // The list is re-read with the new host.
      await waitFor(() => expect(mock.callsTo(HOSTS).length).toBeGreaterThan(1));
    });
  });
});
