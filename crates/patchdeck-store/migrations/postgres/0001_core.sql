-- Patchdeck core schema, PostgreSQL flavour. Append-only: never edit a released migration, add a new one.
-- Keep table, column and index names identical to migrations/sqlite/0001_core.sql.
--
-- Types: only BIGINT, TEXT and BYTEA (what sqlx's Any driver decodes on both backends).
-- Booleans are BIGINT 0/1 like on SQLite, timestamps (`*_at`) are Unix milliseconds.
-- Identity columns never reuse an id.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    auth_source TEXT NOT NULL,
    oidc_issuer TEXT,
    oidc_subject TEXT,
    must_change_password BIGINT NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
    disabled BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    failed_logins BIGINT NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until_at BIGINT,
    last_login_at BIGINT,
    totp_secret BYTEA,
    totp_enabled BIGINT NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL))
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_oidc_key ON users (oidc_issuer, oidc_subject);
CREATE INDEX users_created_at_idx ON users (created_at);

CREATE TABLE recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE webauthn_credentials (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    sign_count BIGINT NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX webauthn_credentials_credential_id_key ON webauthn_credentials (credential_id);
CREATE INDEX webauthn_credentials_user_id_idx ON webauthn_credentials (user_id);

CREATE TABLE groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_name_key ON groups (name);

CREATE TABLE user_groups (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group_id_idx ON user_groups (group_id);

CREATE TABLE hosts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname TEXT NOT NULL,
    fqdn TEXT,
    address TEXT,
    transport TEXT NOT NULL,
    status TEXT NOT NULL,
    machine_id TEXT,
    os_name TEXT,
    os_version TEXT,
    last_seen_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
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
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (host_id, group_id)
);
CREATE INDEX host_groups_group_id_idx ON host_groups (group_id);

CREATE TABLE registration_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash BYTEA NOT NULL,
    label TEXT NOT NULL,
    seats_total BIGINT NOT NULL CHECK (seats_total > 0),
    seats_used BIGINT NOT NULL DEFAULT 0 CHECK (seats_used >= 0 AND seats_used <= seats_total),
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX registration_tokens_token_hash_key ON registration_tokens (token_hash);

CREATE TABLE sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT,
    source_ip TEXT,
    user_agent TEXT,
    mfa_method TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE certificates (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial TEXT NOT NULL,
    kind TEXT NOT NULL,
    common_name TEXT NOT NULL,
    -- A certificate outlives its host row: the CRL must still list it.
    host_id BIGINT REFERENCES hosts (id) ON DELETE SET NULL,
    not_before_at BIGINT NOT NULL,
    not_after_at BIGINT NOT NULL,
    pem TEXT NOT NULL,
    revoked_at BIGINT,
    revocation_reason TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX certificates_serial_key ON certificates (serial);
CREATE INDEX certificates_host_id_idx ON certificates (host_id);
CREATE INDEX certificates_revoked_at_idx ON certificates (revoked_at);

-- Hash-chained audit log. `id` is assigned from audit_head.seq inside the appending transaction
-- (dense, never reused). No foreign keys: an ON DELETE action would rewrite a hashed row.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_user_id BIGINT,
    action TEXT NOT NULL,
    target TEXT,
    source_ip TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor);
CREATE INDEX audit_log_action_idx ON audit_log (action);

-- The single row appenders lock first. seq = last id issued, hash = that row's hash.
-- anchor_id/anchor_hash: the first row verification expects and its prev_hash (moved by pruning).
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    anchor_id BIGINT NOT NULL,
    anchor_hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash, anchor_id, anchor_hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea, 1, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by BIGINT REFERENCES users (id) ON DELETE SET NULL
);
