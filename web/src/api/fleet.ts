// Hosts, inventory, commands, enrollments, registration tokens, users and the audit log: typed
// with the types generated from the OpenAPI snapshot (src/api/schema.d.ts, `npm run gen:api`).

import { API_BASE, api } from "./client";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type HostView = Schemas["HostView"];
export type HostDetail = Schemas["HostDetail"];
export type PackageView = Schemas["PackageView"];
export type UpdateView = Schemas["UpdateView"];
export type CommandView = Schemas["CommandView"];
export type PackageChangeView = Schemas["PackageChangeView"];
export type FleetCommandRequest = Schemas["FleetCommandRequest"];
export type FleetCommandResponse = Schemas["FleetCommandResponse"];
export type GroupView = Schemas["GroupView"];
export type EnrollmentView = Schemas["EnrollmentView"];
export type RegistrationTokenView = Schemas["RegistrationTokenView"];
export type CreateRegistrationTokenRequest = Schemas["CreateRegistrationTokenRequest"];
export type CreatedRegistrationToken = Schemas["CreatedRegistrationToken"];
export type ManagedUser = Schemas["UserView"];
export type CreateUserRequest = Schemas["CreateUserRequest"];
export type CreatedUser = Schemas["CreatedUser"];
export type UpdateUserRequest = Schemas["UpdateUserRequest"];
export type AuditView = Schemas["AuditView"];
export type VerifyReport = Schemas["VerifyReport"];
export type Order = Schemas["Order"];
export type CreateHostRequest = Schemas["CreateHostRequest"];
export type PushBundle = Schemas["PushBundle"];
export type DiscoveryView = Schemas["DiscoveryView"];
export type DiscoveredHostView = Schemas["DiscoveredHostView"];
export type DiscoveryList = Schemas["DiscoveryList"];
export type StartDiscoveryRequest = Schemas["StartDiscoveryRequest"];
export type DeploymentView = Schemas["DeploymentView"];
export type DeploymentHostView = Schemas["DeploymentHostView"];
export type CreateDeploymentRequest = Schemas["CreateDeploymentRequest"];
export type RingRequest = Schemas["RingRequest"];
export type UpdateSelection = Schemas["UpdateSelection"];
export type GroupPolicyBody = Schemas["GroupPolicyBody"];
export type WorkersView = Schemas["WorkersView"];
export type WorkerView = Schemas["WorkersView"]["workers"][number];

/** Discovery states after which nothing changes any more (`running` is the only other one). */
export const DISCOVERY_FINAL_STATES: ReadonlySet<string> = new Set(["completed", "cancelled", "failed"]);

/** One page of a list, as every list endpoint returns it. */
export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

type QueryOf<P extends keyof paths, M extends "get"> = paths[P][M] extends { parameters: { query?: infer Q } }
  ? NonNullable<Q>
  : never;

export type HostListQuery = QueryOf<"/api/v1/hosts", "get">;
export type HostPackagesQuery = QueryOf<"/api/v1/hosts/{id}/packages", "get">;
export type HostUpdatesQuery = QueryOf<"/api/v1/hosts/{id}/updates", "get">;
export type CommandListQuery = QueryOf<"/api/v1/hosts/{id}/commands", "get">;
export type UserListQuery = QueryOf<"/api/v1/users", "get">;
export type AuditQuery = QueryOf<"/api/v1/audit", "get">;
export type SecurityEventsQuery = QueryOf<"/api/v1/security/events", "get">;
export type PageQuery = QueryOf<"/api/v1/registration-tokens", "get">;
export type DeploymentListQuery = QueryOf<"/api/v1/deployments", "get">;
export type DeploymentHostsQuery = QueryOf<"/api/v1/deployments/{id}/hosts", "get">;

/** `?a=1&b=x` from an object; `undefined`, `null` and `""` are left out. */
export function queryString(params: object): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    search.set(k, String(v));
  }
  const s = search.toString();
  return s ? `?${s}` : "";
}

/**
 * A command, as `POST /api/v1/hosts/{id}/commands` and the fleet endpoint take it. The OpenAPI
 * document types it as a free-form object; this is `patchdeck_proto::agent::Command`.
 */
export type Command =
  | { type: "scan"; subsystems: ("packages" | "system" | "storage")[]; refresh?: boolean }
  | { type: "refresh_metadata" }
  | { type: "upgrade"; selection: { mode: "all" } | { mode: "security" } | { mode: "packages"; packages: string[] }; dry_run?: boolean }
  | { type: "install"; packages: string[]; dry_run?: boolean }
  | { type: "remove"; packages: string[]; dry_run?: boolean }
  | { type: "rollback"; command_id: string }
  | { type: "reboot"; delay_secs?: number; force?: boolean }
  | { type: "heartbeat"; enabled: boolean; interval_secs?: number; duration_secs?: number };

/** The commands the UI offers, by name. */
export const COMMANDS = {
  scan: (): Command => ({ type: "scan", subsystems: ["packages", "system", "storage"], refresh: true }),
  upgradeSecurity: (dryRun: boolean): Command => ({ type: "upgrade", selection: { mode: "security" }, dry_run: dryRun }),
  upgradeAll: (dryRun: boolean): Command => ({ type: "upgrade", selection: { mode: "all" }, dry_run: dryRun }),
  reboot: (): Command => ({ type: "reboot", delay_secs: 0, force: false }),
  rollback: (commandId: string): Command => ({ type: "rollback", command_id: commandId }),
  /** Rapid check-in (pull agents only): every 10 s for 15 minutes. */
  heartbeat: (): Command => ({ type: "heartbeat", enabled: true, interval_secs: 10, duration_secs: 15 * 60 }),
};

/** Why a push host cannot take a dry run, and why it has no rapid check-in (the API answers 409). */
export const PUSH_NO_DRY_RUN = "A push host's agent (Linux_Patch_API) has no dry run: every job it accepts changes the host.";
export const PUSH_NO_HEARTBEAT = "Rapid check-in is for agents that check in (pull mode); the manager polls a push host itself.";

/** Command states after which nothing changes any more. */
export const FINAL_STATES: ReadonlySet<string> = new Set(["completed", "failed", "timed_out", "cancelled"]);

/** Whether a finished command changed packages (so `rollback` can restore them). */
export function canRollBack(c: CommandView): boolean {
  if (c.state !== "completed" || c.changes.length === 0) return false;
  if (!["upgrade", "install", "remove"].includes(c.kind)) return false;
  return c.command["dry_run"] !== true;
}

const V = API_BASE;

export const fleetApi = {
  hosts: (q: HostListQuery, signal?: AbortSignal) => api.get<Page<HostView>>(`${V}/hosts${queryString(q)}`, signal),
  host: (id: number, signal?: AbortSignal) => api.get<HostDetail>(`${V}/hosts/${id}`, signal),
  packages: (id: number, q: HostPackagesQuery, signal?: AbortSignal) =>
    api.get<Page<PackageView>>(`${V}/hosts/${id}/packages${queryString(q)}`, signal),
  updates: (id: number, q: HostUpdatesQuery, signal?: AbortSignal) =>
    api.get<Page<UpdateView>>(`${V}/hosts/${id}/updates${queryString(q)}`, signal),
  hostCommands: (id: number, q: CommandListQuery, signal?: AbortSignal) =>
    api.get<Page<CommandView>>(`${V}/hosts/${id}/commands${queryString(q)}`, signal),
  queueCommand: (hostId: number, command: Command) => api.post<CommandView>(`${V}/hosts/${hostId}/commands`, command),
  queueFleetCommand: (body: FleetCommandRequest) => api.post<FleetCommandResponse>(`${V}/commands`, body),
  command: (id: string, signal?: AbortSignal) => api.get<CommandView>(`${V}/commands/${encodeURIComponent(id)}`, signal),
  cancelCommand: (id: string) => api.post<CommandView>(`${V}/commands/${encodeURIComponent(id)}/cancel`),
  retryCommand: (id: string) => api.post<CommandView>(`${V}/commands/${encodeURIComponent(id)}/retry`),
  groups: (signal?: AbortSignal) => api.get<Page<GroupView>>(`${V}/groups?limit=500`, signal),
  /** Adds a host by hand (a push host unless `transport` says otherwise). */
  createHost: (body: CreateHostRequest) => api.post<HostDetail>(`${V}/hosts`, body),
  /** A new server certificate and key for a push host's listener, with the CA; the key is not kept by the manager. */
  pushBundle: (hostId: number) => api.post<PushBundle>(`${V}/hosts/${hostId}/push-bundle`),

  discoveries: (signal?: AbortSignal) => api.get<DiscoveryList>(`${V}/discoveries`, signal),
  discovery: (id: string, signal?: AbortSignal) => api.get<DiscoveryView>(`${V}/discoveries/${encodeURIComponent(id)}`, signal),
  startDiscovery: (body: StartDiscoveryRequest) => api.post<DiscoveryView>(`${V}/discoveries`, body),
  cancelDiscovery: (id: string) => api.post<DiscoveryView>(`${V}/discoveries/${encodeURIComponent(id)}/cancel`),

  enrollments: (q: { approval?: string; limit?: number; offset?: number }, signal?: AbortSignal) =>
    api.get<Page<EnrollmentView>>(`${V}/enrollments${queryString(q)}`, signal),
  approveEnrollment: (id: number) => api.post<EnrollmentView>(`${V}/enrollments/${id}/approve`),
  rejectEnrollment: (id: number) => api.post<EnrollmentView>(`${V}/enrollments/${id}/reject`),

  registrationTokens: (q: PageQuery, signal?: AbortSignal) =>
    api.get<Page<RegistrationTokenView>>(`${V}/registration-tokens${queryString(q)}`, signal),
  createRegistrationToken: (body: CreateRegistrationTokenRequest) =>
    api.post<CreatedRegistrationToken>(`${V}/registration-tokens`, body),
  revokeRegistrationToken: (id: number) => api.delete(`${V}/registration-tokens/${id}`),

  users: (q: UserListQuery, signal?: AbortSignal) => api.get<Page<ManagedUser>>(`${V}/users${queryString(q)}`, signal),
  createUser: (body: CreateUserRequest) => api.post<CreatedUser>(`${V}/users`, body),
  updateUser: (id: number, body: UpdateUserRequest) => api.patch<ManagedUser>(`${V}/users/${id}`, body),

  audit: (q: AuditQuery, signal?: AbortSignal) => api.get<Page<AuditView>>(`${V}/audit${queryString(q)}`, signal),
  verifyAudit: (signal?: AbortSignal) => api.get<VerifyReport>(`${V}/audit/verify`, signal),
  securityEvents: (q: SecurityEventsQuery, signal?: AbortSignal) =>
    api.get<Page<AuditView>>(`${V}/security/events${queryString(q)}`, signal),
};

/** What a deployment action does, by its path segment. */
export type DeploymentAction = "approve" | "cancel" | "retry" | "rollback";

export const deploymentsApi = {
  list: (q: DeploymentListQuery, signal?: AbortSignal) => api.get<Page<DeploymentView>>(`${V}/deployments${queryString(q)}`, signal),
  get: (id: number, signal?: AbortSignal) => api.get<DeploymentView>(`${V}/deployments/${id}`, signal),
  hosts: (id: number, q: DeploymentHostsQuery, signal?: AbortSignal) =>
    api.get<Page<DeploymentHostView>>(`${V}/deployments/${id}/hosts${queryString(q)}`, signal),
  create: (body: CreateDeploymentRequest) => api.post<DeploymentView>(`${V}/deployments`, body),
  act: (id: number, action: DeploymentAction) => api.post<DeploymentView>(`${V}/deployments/${id}/${action}`),
  groupPolicy: (groupId: number, signal?: AbortSignal) => api.get<GroupPolicyBody>(`${V}/groups/${groupId}/policy`, signal),
  setGroupPolicy: (groupId: number, body: GroupPolicyBody) => api.put<GroupPolicyBody>(`${V}/groups/${groupId}/policy`, body),
  workers: (signal?: AbortSignal) => api.get<WorkersView>(`${V}/workers`, signal),
};

/** Deployment statuses, in the order a deployment goes through them. */
export const DEPLOYMENT_STATUSES = [
  "planning",
  "awaiting_approval",
  "running",
  "halted",
  "succeeded",
  "partially_failed",
  "failed",
  "cancelled",
  "rolling_back",
  "rolled_back",
] as const;

/** States of a host within a deployment. */
export const DEPLOYMENT_HOST_STATES = [
  "planning",
  "queued",
  "waiting_for_window",
  "running",
  "rebooting",
  "verifying",
  "rolling_back",
  "succeeded",
  "failed",
  "skipped",
  "cancelled",
  "rolled_back",
] as const;

/** Host states after which the host is done (for progress). */
export const DEPLOYMENT_HOST_DONE: ReadonlySet<string> = new Set(["succeeded", "failed", "skipped", "cancelled", "rolled_back"]);

/** Which actions a deployment's status allows (mirrors the handlers' transitions). */
export function deploymentActions(status: string): DeploymentAction[] {
  const out: DeploymentAction[] = [];
  if (status === "awaiting_approval") out.push("approve");
  if (["planning", "awaiting_approval", "running", "halted"].includes(status)) out.push("cancel");
  if (["partially_failed", "failed", "halted"].includes(status)) out.push("retry");
  if (["running", "halted", "succeeded", "partially_failed", "failed", "cancelled"].includes(status)) out.push("rollback");
  return out;
}

/** Where the browser downloads the whole audit log (JSON lines). */
export const AUDIT_EXPORT_URL = `${V}/audit/export`;

/** Query keys, so that live events can invalidate exactly what they change. */
export const keys = {
  hosts: ["hosts"] as const,
  hostList: (q: HostListQuery) => ["hosts", "list", q] as const,
  /** Prefix of everything about one host (its detail, packages, updates and commands). */
  host: (id: number) => ["hosts", "detail", id] as const,
  hostSelf: (id: number) => ["hosts", "detail", id, "self"] as const,
  hostPackages: (id: number, q: HostPackagesQuery) => ["hosts", "detail", id, "packages", q] as const,
  hostUpdates: (id: number, q: HostUpdatesQuery) => ["hosts", "detail", id, "updates", q] as const,
  hostCommands: (id: number) => ["hosts", "detail", id, "commands"] as const,
  commands: ["commands"] as const,
  command: (id: string) => ["commands", id] as const,
  groups: ["groups"] as const,
  enrollments: ["enrollments"] as const,
  registrationTokens: ["registration-tokens"] as const,
  users: ["users"] as const,
  audit: ["audit"] as const,
  securityEvents: ["security-events"] as const,
  discoveries: ["discoveries"] as const,
  discoveryList: ["discoveries", "list"] as const,
  discovery: (id: string) => ["discoveries", "one", id] as const,
  deployments: ["deployments"] as const,
  deploymentList: ["deployments", "list"] as const,
  deploymentListQuery: (q: DeploymentListQuery) => ["deployments", "list", q] as const,
  /** Prefix of everything about one deployment (itself and its hosts). */
  deployment: (id: number) => ["deployments", "detail", id] as const,
  deploymentSelf: (id: number) => ["deployments", "detail", id, "self"] as const,
  deploymentHosts: (id: number, q: DeploymentHostsQuery) => ["deployments", "detail", id, "hosts", q] as const,
  groupPolicy: (id: number) => ["groups", "policy", id] as const,
  workers: ["workers"] as const,
};
