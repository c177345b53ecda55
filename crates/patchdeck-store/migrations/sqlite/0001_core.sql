-- Patchdeck core schema, SQLite flavour. Append-only: never edit a released migration, add a new one.
-- Keep table, column and index names identical to migrations/postgres/0001_core.sql.
--
-- Types: only INTEGER, TEXT and BLOB (what sqlx's Any driver decodes on both backends).
-- Booleans are INTEGER 0/1, timestamps (`*_at`) are Unix milliseconds.
-- AUTOINCREMENT: an id is never reused after a delete (a stale token naming user 7 must not
-- become valid for the next user 7).

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    auth_source TEXT NOT NULL,
    oidc_issuer TEXT,
    oidc_subject TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until_at INTEGER,
    last_login_at INTEGER,
    totp_secret BLOB,
    totp_enabled INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL))
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_oidc_key ON users (oidc_issuer, oidc_subject);
CREATE INDEX users_created_at_idx ON users (created_at);

CREATE TABLE recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE webauthn_credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL,
    public_key BLOB NOT NULL,
    sign_count INTEGER NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX webauthn_credentials_credential_id_key ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id_idx ON webauthn_credentials (user_id);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX groups_name_key ON groups (name);

CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group_id_idx ON user_groups (group_id);

CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL,
    fqdn TEXT,
    address TEXT,
    transport TEXT NOT NULL,
    status TEXT NOT NULL,
    machine_id TEXT,
    os_name TEXT,
    os_version TEXT,
    last_seen_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX hosts_hostname_idx ON hosts (hostname);
CREATE INDEX hosts_status_idx ON hosts (status);
CREATE INDEX hosts_last_seen_at_idx ON hosts (last_seen_at);
-- The agent's machine ID is bound at enrollment: one host row per machine.
CREATE UNIQUE INDEX hosts_machine_id_key ON hosts (machine_id);
-- Push hosts are reached at their FQDN or address: two rows for one endpoint are a mistake.
-- Pull hosts may share an FQDN (cloned images report the same name); their identity is machine_id.
CREATE UNIQUE INDEX hosts_push_fqdn_key ON hosts (fqdn) WHERE transport = 'push' AND fqdn IS NOT NULL;
CREATE UNIQUE INDEX hosts_push_address_key ON hosts (address) WHERE transport = 'push' AND address IS NOT NULL;

CREATE TABLE host_groups (
    host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (host_id, group_id)
);
CREATE INDEX host_groups_group_id_idx ON host_groups (group_id);

CREATE TABLE registration_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash BLOB NOT NULL,
    label TEXT NOT NULL,
    seats_total INTEGER NOT NULL CHECK (seats_total > 0),
    seats_used INTEGER NOT NULL DEFAULT 0 CHECK (seats_used >= 0 AND seats_used <= seats_total),
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX registration_tokens_token_hash_key ON registration_tokens (token_hash);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT,
    source_ip TEXT,
    user_agent TEXT,
    mfa_method TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    serial TEXT NOT NULL,
    kind TEXT NOT NULL,
    common_name TEXT NOT NULL,
    -- A certificate outlives its host row: the CRL must still list it.
    host_id INTEGER REFERENCES hosts (id) ON DELETE SET NULL,
    not_before_at INTEGER NOT NULL,
    not_after_at INTEGER NOT NULL,
    pem TEXT NOT NULL,
    revoked_at INTEGER,
    revocation_reason TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX certificates_serial_key ON certificates (serial);
CREATE INDEX certificates_host_id_idx ON certificates (host_id);
CREATE INDEX certificates_revoked_at_idx ON certificates (revoked_at);

-- Hash-chained audit log. `id` is assigned from audit_head.seq inside the appending transaction
-- (dense, never reused). No foreign keys: an ON DELETE action would rewrite a hashed row.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    actor_user_id INTEGER,
    action TEXT NOT NULL,
    target TEXT,
    source_ip TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor);
CREATE INDEX audit_log_action_idx ON audit_log (action);

-- The single row appenders lock first. seq = last id issued, hash = that row's hash.
-- anchor_id/anchor_hash: the first row verification expects and its prev_hash (moved by pruning).
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    anchor_id INTEGER NOT NULL,
    anchor_hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash, anchor_id, anchor_hash)
VALUES (1, 0, zeroblob(32), 1, zeroblob(32));

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by INTEGER REFERENCES users (id) ON DELETE SET NULL
);
