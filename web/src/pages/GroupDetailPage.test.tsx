import { describe, expect, it } from "vitest";
import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ME_PATH, alice, apiError, json, meBody, mockFetch, noContent, type RecordedCall } from "../test/fetchMock";
import { host, page, user as managedUser } from "../test/fixtures";
import { group, groupUser } from "../test/scheduleFixtures";
import { renderApp } from "../test/render";

const admin = { [ME_PATH]: json(200, meBody()) };
const viewer = { [ME_PATH]: json(200, { ...meBody(), user: { ...alice, role: "viewer" } }) };
const web = group(3, "web servers", { description: "Front ends" });
const members = { users: [groupUser(4, "olivia")], hosts: [host(1, "web-1"), host(2, "web-2", { security_updates_count: 0 })] };
/** Host search: `web-7` matches "web"; the members are found too (and left out of the options). */
const hostSearch = (call: RecordedCall) =>
  json(200, page(call.query.get("q") === "web" ? [host(1, "web-1"), host(7, "web-7")] : []));

const base = {
  "GET /api/v1/groups/3": json(200, web),
  "GET /api/v1/groups/3/members": json(200, members),
};

describe("Group page", () => {
  it("shows the group, its links, hosts and users", async () => {
    mockFetch({ ...admin, ...base });
    renderApp("/groups/3");
    expect(await screen.findByRole("heading", { name: "web servers" })).toBeInTheDocument();
    expect(screen.getByText("Front ends")).toBeInTheDocument();
    const nav = screen.getByRole("navigation", { name: "About this group" });
    expect(within(nav).getByRole("link", { name: "Hosts in the host list" })).toHaveAttribute("href", "/hosts?group=3");
    expect(within(nav).getByRole("link", { name: "Deployment policy" })).toHaveAttribute("href", "/groups/3/policy");
    expect(within(nav).getByRole("link", { name: "Maintenance windows" })).toHaveAttribute("href", "/maintenance-windows?group=3");
    const hosts = await screen.findByRole("table", { name: "Hosts of the group" });
    expect(within(hosts).getByRole("link", { name: "web-1" })).toHaveAttribute("href", "/hosts/1");
    expect(within(hosts).getAllByRole("row")[1]).toHaveTextContent("2 security");
    const users = screen.getByRole("table", { name: "Users of the group" });
    expect(within(users).getAllByRole("row")[1]).toHaveTextContent("olivia");
    expect(within(users).getAllByRole("row")[1]).toHaveTextContent("operator");
  });

  it("adds and removes hosts and users", async () => {
    const u = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      ...base,
      "GET /api/v1/hosts": hostSearch,
      "GET /api/v1/users": (call) => json(200, page(call.query.get("q") === "pat" ? [managedUser(8, "patrick", { role: "viewer" })] : [])),
      "PUT /api/v1/groups/3/hosts/7": noContent(),
      "DELETE /api/v1/groups/3/hosts/2": noContent(),
      "PUT /api/v1/groups/3/users/8": noContent(),
      "DELETE /api/v1/groups/3/users/4": noContent(),
    });
    renderApp("/groups/3");
    const addHost = await screen.findByRole("combobox", { name: "Add a host" });
    await u.type(addHost, "web");
    // web-1 is already a member: only web-7 is offered.
    const option = await screen.findByRole("option", { name: /web-7/ });
    expect(screen.queryByRole("option", { name: /web-1/ })).not.toBeInTheDocument();
    await u.click(option);
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/groups/3/hosts/7")).toHaveLength(1));
    // The members are read again.
    await waitFor(() => expect(mock.callsTo("GET /api/v1/groups/3/members").length).toBeGreaterThan(1));

    await u.click(screen.getByRole("button", { name: "Remove web-2 from the group" }));
    const confirm = await screen.findByRole("dialog", { name: "Take this host out of the group?" });
    expect(confirm).toHaveTextContent("A host left in no group is visible to every operator and viewer");
    await u.click(within(confirm).getByRole("button", { name: "Remove" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/groups/3/hosts/2")).toHaveLength(1));
    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());

    await u.type(screen.getByRole("combobox", { name: "Add a user" }), "pat");
    await u.click(await screen.findByRole("option", { name: /patrick/ }));
    await waitFor(() => expect(mock.callsTo("PUT /api/v1/groups/3/users/8")).toHaveLength(1));

    await u.click(screen.getByRole("button", { name: "Remove olivia from the group" }));
    const confirmUser = await screen.findByRole("dialog", { name: "Take this user out of the group?" });
    await u.click(within(confirmUser).getByRole("button", { name: "Remove" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/groups/3/users/4")).toHaveLength(1));
  });

  it("shows a refused membership change", async () => {
    const u = userEvent.setup({ delay: null });
    mockFetch({
      ...admin,
      ...base,
      "GET /api/v1/hosts": hostSearch,
      "PUT /api/v1/groups/3/hosts/7": apiError(404, "not_found", "host not found"),
    });
    renderApp("/groups/3");
    await u.type(await screen.findByRole("combobox", { name: "Add a host" }), "web");
    await u.click(await screen.findByRole("option", { name: /web-7/ }));
    expect(await screen.findByText("Host not found.")).toBeInTheDocument();
  });

  it("renames the group and deletes it, then goes back to the list", async () => {
    const u = userEvent.setup({ delay: null });
    const mock = mockFetch({
      ...admin,
      ...base,
      // Read again after the change.
      "GET /api/v1/groups/3": [json(200, web), json(200, group(3, "frontends", { description: "All front ends" }))],
      "PATCH /api/v1/groups/3": json(200, group(3, "frontends", { description: "All front ends" })),
      "DELETE /api/v1/groups/3": noContent(),
      "GET /api/v1/groups": json(200, page([])),
    });
    renderApp("/groups/3");
    await u.click(await screen.findByRole("button", { name: "Edit" }));
    const dialog = await screen.findByRole("dialog", { name: "Edit group" });
    const name = within(dialog).getByRole("textbox", { name: "Name" });
    await u.clear(name);
    await u.type(name, "frontends");
    const description = within(dialog).getByRole("textbox", { name: "Description" });
    await u.clear(description);
    await u.type(description, "All front ends");
    await u.click(within(dialog).getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("heading", { name: "frontends" })).toBeInTheDocument();
    expect(mock.callsTo("PATCH /api/v1/groups/3")[0]!.body).toEqual({ name: "frontends", description: "All front ends" });

    await waitFor(() => expect(screen.queryByRole("dialog")).not.toBeInTheDocument());
    await u.click(screen.getByRole("button", { name: "Delete" }));
    const confirm = await screen.findByRole("dialog", { name: "Delete this group?" });
    await u.click(within(confirm).getByRole("button", { name: "Delete group" }));
    await waitFor(() => expect(mock.callsTo("DELETE /api/v1/groups/3")).toHaveLength(1));
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent(/^\/groups$/));
  });

  it("shows a viewer the members without any admin action", async () => {
    const mock = mockFetch({ ...viewer, ...base });
    renderApp("/groups/3");
    expect(await screen.findByRole("table", { name: "Hosts of the group" })).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "Deployment policy" })).toBeInTheDocument();
    for (const name of ["Edit", "Delete"]) expect(screen.queryByRole("button", { name })).not.toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Add a host" })).not.toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Add a user" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /from the group/ })).not.toBeInTheDocument();
    // Nor does it search users (an admin-only list).
    expect(mock.callsTo("GET /api/v1/users")).toHaveLength(0);
  });

  it("says when the group is not visible, and retries a failed member list", async () => {
    const u = userEvent.setup({ delay: null });
    mockFetch({ ...viewer, "GET /api/v1/groups/4": apiError(404, "not_found", "group not found") });
    const { unmount } = renderApp("/groups/4");
    expect(await screen.findByText("This group does not exist, or you are not in it.")).toBeInTheDocument();
    unmount();

    mockFetch({
      ...viewer,
      "GET /api/v1/groups/3": json(200, web),
      "GET /api/v1/groups/3/members": [apiError(503, "unavailable", "the database does not answer"), json(200, members)],
    });
    renderApp("/groups/3");
    expect(await screen.findByText("Could not load the members")).toBeInTheDocument();
    await u.click(screen.getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("table", { name: "Hosts of the group" })).toBeInTheDocument();
  });
});
