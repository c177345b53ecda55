// Typed API fixtures for page tests (the types come from the OpenAPI snapshot, so a server change
// that breaks a fixture breaks the build).

import type {
  AuditView,
  CommandView,
  DeploymentHostView,
  DeploymentView,
  DiscoveredHostView,
  DiscoveryView,
  EnrollmentView,
  HostDetail,
  HostView,
  ManagedUser,
  Page,
  RegistrationTokenView,
} from "../api/fleet";

export function page<T>(items: T[], total = items.length, limit = 50, offset = 0): Page<T> {
  return { items, total, limit, offset };
}

export function host(id: number, hostname: string, extra: Partial<HostView> = {}): HostView {
  return {
    id,
    hostname,
    fqdn: `${hostname}.example.com`,
    address: `10.0.0.${id}`,
    transport: "pull",
    status: "online",
    approval: "approved",
    reboot_required: false,
    installed_count: 512,
    updates_count: 7,
    security_updates_count: 2,
    os_name: "debian",
    os_version: "12",
    os_pretty_name: "Debian GNU/Linux 12 (bookworm)",
    agent_version: "0.1.0",
    last_seen_at: "2026-12-03T10:00:00Z",
    created_at: "2026-11-01T00:00:00Z",
    updated_at: "2026-12-03T10:00:00Z",
    ...extra,
  };
}

export function hostDetail(id: number, hostname: string, extra: Partial<HostDetail> = {}): HostDetail {
  return {
    ...host(id, hostname),
    addresses: [`10.0.0.${id}`, "fd00::1"],
    group_ids: [3],
    kernel: "6.1.0-28-amd64",
    arch: "x86_64",
    backend: "apt",
    metrics: {
      load: [0.5, 0.25, 0.1],
      cpu_count: 4,
      cpu_percent: 12.5,
      memory_total_bytes: 8 * 1024 ** 3,
      memory_available_bytes: 6 * 1024 ** 3,
      swap_total_bytes: 0,
      swap_free_bytes: 0,
      disks: [{ mount_point: "/", filesystem: "ext4", total_bytes: 100 * 1024 ** 3, available_bytes: 40 * 1024 ** 3 }],
      uptime_secs: 3 * 86400 + 3600,
      boot_id: null,
      kernel: "6.1.0-28-amd64",
      reboot_required: false,
    },
    metrics_at: "2026-12-03T10:00:00Z",
    ...extra,
  };
}

export function command(id: string, extra: Partial<CommandView> = {}): CommandView {
  return {
    id,
    host_id: 1,
    kind: "upgrade",
    command: { type: "upgrade", selection: { mode: "security" }, dry_run: false },
    state: "completed",
    created_at: "2026-12-03T09:00:00Z",
    deliver_by: "2026-12-03T10:00:00Z",
    started_at: "2026-12-03T09:00:05Z",
    finished_at: "2026-12-03T09:01:00Z",
    changes: [{ name: "openssl", action: "upgrade", from: "3.0.11-1", to: "3.0.13-1", arch: "amd64" }],
    reboot_required: false,
    output: "Reading package lists...\nDone",
    ...extra,
  };
}

export function enrollment(id: number, hostname: string, extra: Partial<EnrollmentView> = {}): EnrollmentView {
  return { ...host(id, hostname, { approval: "pending", status: "pending" }), addresses: [`10.0.1.${id}`], machine_id: `m${id}abcdef`, ...extra };
}

export function token(id: number, label: string, extra: Partial<RegistrationTokenView> = {}): RegistrationTokenView {
  return {
    id,
    label,
    seats_total: 10,
    seats_used: 3,
    expires_at: "2026-12-10T00:00:00Z",
    created_at: "2026-12-01T00:00:00Z",
    status: "active",
    ...extra,
  };
}

export function user(id: number, username: string, extra: Partial<ManagedUser> = {}): ManagedUser {
  return {
    id,
    username,
    display_name: `${username} display`,
    role: "viewer",
    auth_source: "local",
    disabled: false,
    must_change_password: false,
    totp_enabled: false,
    locked_until: null,
    last_login_at: null,
    created_at: "2026-01-01T00:00:00Z",
    ...extra,
  };
}

export function auditEntry(id: number, action: string, extra: Partial<AuditView> = {}): AuditView {
  return {
    id,
    at: "2026-12-03T08:00:00Z",
    actor: "user:alice",
    action,
    outcome: "success",
    details: {},
    hash: `h${id}`,
    prev_hash: `h${id - 1}`,
    target: null,
    source_ip: "192.0.2.1",
    ...extra,
  };
}

export function discovery(id: string, extra: Partial<DiscoveryView> = {}): DiscoveryView {
  return {
    id,
    cidr: "10.0.4.0/24",
    port: 12443,
    state: "completed",
    progress: { probed: 256, total: 256, listening: 2, found: 1 },
    started_by: "user:alice",
    started_at: "2026-12-03T09:00:00Z",
    finished_at: "2026-12-03T09:00:04Z",
    error: null,
    hosts: [],
    ...extra,
  };
}

export function found(address: string, extra: Partial<DiscoveredHostView> = {}): DiscoveredHostView {
  return {
    address,
    fqdn_from_cert: `agent-${address.split(".").at(-1)}.example.com`,
    version: "1.4.0",
    answered_as_lpa: true,
    reason: null,
    host_id: null,
    ...extra,
  };
}

/**
 * A deployment of four hosts: a canary ring (group 3) with one succeeded and one running, and the
 * rest with two queued. `total_hosts` follows `hosts` unless given.
 */
export function deployment(id: number, name: string, extra: Partial<DeploymentView> = {}): DeploymentView {
  const hosts = extra.hosts ?? { succeeded: 1, running: 1, queued: 2 };
  return {
    id,
    name,
    status: "running",
    target: { host_ids: [1, 2], group_ids: [] },
    selection: { type: "security" },
    schedule: "window",
    reboot_policy: "if_needed",
    reboot_delay_secs: 300,
    rollback_on_failure: true,
    rings: [
      { name: "canary", group_id: 3, percent: null, success_threshold: 1, soak_secs: 1800, hosts: { succeeded: 1, running: 1 } },
      { name: "rest", group_id: null, percent: null, success_threshold: 0.9, soak_secs: 0, hosts: { queued: 2 } },
    ],
    current_ring: 0,
    requires_approval: false,
    approved_by: null,
    approved_at: null,
    reason: null,
    created_by: 1,
    created_at: "2026-12-03T09:00:00Z",
    started_at: "2026-12-03T09:01:00Z",
    finished_at: null,
    hosts,
    total_hosts: Object.values(hosts).reduce((a, n) => a + n, 0),
    ...extra,
  };
}

export function deploymentHost(hostId: number, hostname: string, extra: Partial<DeploymentHostView> = {}): DeploymentHostView {
  return {
    host_id: hostId,
    hostname,
    ring: 0,
    state: "queued",
    plan: [{ name: "openssl", arch: "amd64", from: "3.0.11-1", to: "3.0.13-1" }],
    preview: {
      available: true,
      installs: [],
      upgrades: [{ name: "openssl", arch: "amd64", from: "3.0.11-1", to: "3.0.13-1" }],
      removals: [{ name: "libssl1.1", arch: "amd64", from: "1.1.1w-0", to: null }],
      reboot_required: false,
    },
    preview_command: "c-prev",
    apply_command: null,
    reboot_command: null,
    health_command: null,
    rollback_command: null,
    attempts: 0,
    not_before: "2026-12-04T02:00:00Z",
    window_end: "2026-12-04T04:00:00Z",
    reboot_required: false,
    error_code: null,
    error_message: null,
    started_at: null,
    finished_at: null,
    ...extra,
  };
}
