// Groups and their members (`/api/v1/groups…`): typed with the generated schema. Admins create,
// change and delete groups and memberships; everyone else reads only the groups they are in.

import { API_BASE, api } from "./client";
import { queryString, type Page } from "./fleet";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type GroupView = Schemas["GroupView"];
export type GroupMembers = Schemas["GroupMembers"];
export type GroupUserView = Schemas["GroupUserView"];
export type CreateGroupRequest = Schemas["CreateGroupRequest"];
export type UpdateGroupRequest = Schemas["UpdateGroupRequest"];
export type GroupListQuery = NonNullable<paths["/api/v1/groups"]["get"]["parameters"]["query"]>;

/** Longest group name and description (the handler's limits). */
export const GROUP_NAME_MAX = 64;
export const GROUP_DESCRIPTION_MAX = 500;

const V = API_BASE;

export const groupsApi = {
  list: (q: GroupListQuery, signal?: AbortSignal) => api.get<Page<GroupView>>(`${V}/groups${queryString(q)}`, signal),
  get: (id: number, signal?: AbortSignal) => api.get<GroupView>(`${V}/groups/${id}`, signal),
  create: (body: CreateGroupRequest) => api.post<GroupView>(`${V}/groups`, body),
  update: (id: number, body: UpdateGroupRequest) => api.patch<GroupView>(`${V}/groups/${id}`, body),
  remove: (id: number) => api.delete(`${V}/groups/${id}`),
  /** Every user and every host of the group (not paged). */
  members: (id: number, signal?: AbortSignal) => api.get<GroupMembers>(`${V}/groups/${id}/members`, signal),
  addHost: (id: number, hostId: number) => api.put<void>(`${V}/groups/${id}/hosts/${hostId}`),
  removeHost: (id: number, hostId: number) => api.delete(`${V}/groups/${id}/hosts/${hostId}`),
  addUser: (id: number, userId: number) => api.put<void>(`${V}/groups/${id}/users/${userId}`),
  removeUser: (id: number, userId: number) => api.delete(`${V}/groups/${id}/users/${userId}`),
};

/**
 * Query keys. All start with `["groups"]` (`keys.groups` in fleet.ts, the full list other pages
 * read), so invalidating that refreshes every group query.
 */
export const groupKeys = {
  all: ["groups"] as const,
  page: (q: GroupListQuery) => ["groups", "page", q] as const,
  one: (id: number) => ["groups", "one", id] as const,
  members: (id: number) => ["groups", "members", id] as const,
};
