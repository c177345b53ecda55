-- Patch orchestration: the job queue, worker heartbeats, deployments and group policies.
-- SQLite flavour; keep table, column and index names identical to migrations/postgres/0006_orchestration.sql.

-- The background job queue: one row per job key (`deployment:17`). A key is queued, running or
-- done; asking for a running key to run again sets `rerun`, so a job never runs twice at once
-- and a wake-up that arrives while it runs is not lost.
CREATE TABLE jobs (
    job_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    run_at INTEGER NOT NULL,
    rerun INTEGER NOT NULL DEFAULT 0 CHECK (rerun IN (0, 1)),
    locked_by TEXT,
    locked_until INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    runs INTEGER NOT NULL DEFAULT 0 CHECK (runs >= 0),
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_due_idx ON jobs (state, run_at);

-- Processes that run background jobs, and when each last said it was alive.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    role TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    jobs_run INTEGER NOT NULL DEFAULT 0 CHECK (jobs_run >= 0),
    stopped_at INTEGER
);
CREATE INDEX workers_heartbeat_at_idx ON workers (heartbeat_at);

-- Per-group orchestration policy: approval and post-patch health checks.
CREATE TABLE group_policies (
    group_id INTEGER PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    require_approval INTEGER NOT NULL DEFAULT 0 CHECK (require_approval IN (0, 1)),
    -- JSON array of systemd unit names.
    health_units TEXT NOT NULL DEFAULT '[]',
    -- JSON array of patchdeck_proto::agent::Probe.
    health_probes TEXT NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL
);

CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    -- JSON: what was asked for (hosts, groups, filter) and the selection.
    target TEXT NOT NULL,
    selection TEXT NOT NULL,
    schedule TEXT NOT NULL CHECK (schedule IN ('now', 'window')),
    reboot_policy TEXT NOT NULL CHECK (reboot_policy IN ('never', 'if_needed', 'always')),
    reboot_delay_secs INTEGER NOT NULL CHECK (reboot_delay_secs >= 0),
    rollback_on_failure INTEGER NOT NULL CHECK (rollback_on_failure IN (0, 1)),
    -- JSON array of rings: name, success threshold, soak time.
    rings TEXT NOT NULL,
    current_ring INTEGER NOT NULL DEFAULT 0,
    ring_finished_at INTEGER,
    requires_approval INTEGER NOT NULL CHECK (requires_approval IN (0, 1)),
    approved_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    approved_at INTEGER,
    reason TEXT,
    created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deployments_status_idx ON deployments (status);
CREATE INDEX deployments_created_at_idx ON deployments (created_at);

CREATE TABLE deployment_hosts (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    ring INTEGER NOT NULL,
    state TEXT NOT NULL,
    -- JSON array of planned packages: name, arch, from, to.
    plan TEXT NOT NULL,
    -- JSON of the dry run's answer (or why there is none).
    preview TEXT,
    preview_command TEXT,
    apply_command TEXT,
    reboot_command TEXT,
    health_command TEXT,
    rollback_command TEXT,
    boot_id_before TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    not_before INTEGER,
    window_end INTEGER,
    reboot_required INTEGER NOT NULL DEFAULT 0 CHECK (reboot_required IN (0, 1)),
    error_code TEXT,
    error_message TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, host_id)
);
CREATE INDEX deployment_hosts_host_id_idx ON deployment_hosts (host_id);
CREATE INDEX deployment_hosts_state_idx ON deployment_hosts (deployment_id, state);
