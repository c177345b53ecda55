-- The agent <-> manager protocol (docs/protocol.md): enrolment facts and check-in state on hosts,
-- each host's inventory (installed packages, available updates), and the command queue.
-- Keep table, column and index names identical to migrations/postgres/0003_agents.sql.

-- Hosts: approval, what the agent reports, and counts of the latest inventory.
-- SQLite adds one column per statement.
ALTER TABLE hosts ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved';
ALTER TABLE hosts ADD COLUMN agent_version TEXT;
ALTER TABLE hosts ADD COLUMN backend TEXT;
ALTER TABLE hosts ADD COLUMN version_format TEXT;
ALTER TABLE hosts ADD COLUMN os_pretty_name TEXT;
ALTER TABLE hosts ADD COLUMN kernel TEXT;
ALTER TABLE hosts ADD COLUMN arch TEXT;
ALTER TABLE hosts ADD COLUMN boot_id TEXT;
ALTER TABLE hosts ADD COLUMN reboot_required INTEGER NOT NULL DEFAULT 0 CHECK (reboot_required IN (0, 1));
-- JSON array of strings.
ALTER TABLE hosts ADD COLUMN addresses TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN inventory_hash TEXT;
ALTER TABLE hosts ADD COLUMN scanned_at INTEGER;
-- JSON of the latest check-in's metrics.
ALTER TABLE hosts ADD COLUMN metrics TEXT;
ALTER TABLE hosts ADD COLUMN metrics_at INTEGER;
ALTER TABLE hosts ADD COLUMN installed_count INTEGER NOT NULL DEFAULT 0 CHECK (installed_count >= 0);
ALTER TABLE hosts ADD COLUMN updates_count INTEGER NOT NULL DEFAULT 0 CHECK (updates_count >= 0);
ALTER TABLE hosts ADD COLUMN security_updates_count INTEGER NOT NULL DEFAULT 0 CHECK (security_updates_count >= 0);
ALTER TABLE hosts ADD COLUMN registration_token_id INTEGER REFERENCES registration_tokens (id) ON DELETE SET NULL;
-- The CSR of an enrolment waiting for approval; cleared once the certificate is issued.
ALTER TABLE hosts ADD COLUMN pending_csr TEXT;
CREATE INDEX hosts_registration_token_id_idx ON hosts (registration_token_id);

-- One row per installed package. version_key is patchdeck_version::sort_key(format, version)
-- (NULL when the version does not parse): byte order is version order, so "older than X" is a
-- range over (name, format, version_key) and never a comparison of version text.
CREATE TABLE host_packages (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    arch TEXT NOT NULL,
    version TEXT NOT NULL,
    version_key BLOB,
    format TEXT NOT NULL,
    source_package TEXT,
    source_version TEXT,
    origin TEXT,
    held INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1)),
    PRIMARY KEY (host_id, name, arch, version)
);
CREATE INDEX host_packages_fleet_idx ON host_packages (name, format, version_key);

CREATE TABLE host_updates (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    arch TEXT NOT NULL,
    current_version TEXT NOT NULL,
    candidate_version TEXT NOT NULL,
    repository TEXT,
    security_class TEXT NOT NULL,
    security_reason TEXT NOT NULL,
    advisory_id TEXT,
    severity TEXT,
    -- JSON array of CVE ids.
    cves TEXT NOT NULL DEFAULT '[]',
    reboot_likely INTEGER NOT NULL DEFAULT 0 CHECK (reboot_likely IN (0, 1))
);
CREATE INDEX host_updates_host_id_idx ON host_updates (host_id, name, arch);
CREATE INDEX host_updates_security_class_idx ON host_updates (security_class);

-- Commands queued for pull agents. `seq` orders them as they were queued (delivery order, and
-- "newest first" in listings), even when several share a millisecond; `id` is the UUID the
-- protocol names them by.
CREATE TABLE commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    -- JSON of patchdeck_proto::agent::Command.
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    deliver_by INTEGER NOT NULL,
    sent_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    job_id TEXT,
    error_code TEXT,
    error_message TEXT,
    output TEXT,
    -- JSON array of patchdeck_proto::agent::PackageChange.
    changes TEXT NOT NULL DEFAULT '[]',
    reboot_required INTEGER NOT NULL DEFAULT 0 CHECK (reboot_required IN (0, 1)),
    retry_of TEXT REFERENCES commands (id) ON DELETE SET NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX commands_id_key ON commands (id);
CREATE INDEX commands_host_state_idx ON commands (host_id, state, seq);
CREATE INDEX commands_state_idx ON commands (state);
CREATE INDEX commands_finished_at_idx ON commands (finished_at);
CREATE INDEX commands_retry_of_idx ON commands (retry_of);
