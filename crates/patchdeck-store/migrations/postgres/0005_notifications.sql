-- Notifications (docs/notifications.md): channels (SMTP or webhook), rules that pick events and
-- recipients, and the outbox of deliveries the sender works through.
-- Keep table, column and index names identical to migrations/sqlite/0005_notifications.sql.

CREATE TABLE notification_channels (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    -- 'smtp' or 'webhook'.
    kind TEXT NOT NULL CHECK (kind IN ('smtp', 'webhook')),
    -- JSON of the kind's settings (never a secret).
    settings TEXT NOT NULL,
    -- The SMTP password or the webhook signing secret, sealed with secret.key.
    secret BYTEA,
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX notification_channels_name_key ON notification_channels (name);

CREATE TABLE notification_rules (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    -- JSON array of event kinds ('deployment.finished', …).
    events TEXT NOT NULL,
    channel_id BIGINT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    -- JSON array of e-mail addresses (SMTP channels).
    recipients TEXT NOT NULL DEFAULT '[]',
    -- Host events only for hosts of this group; a rule goes with its group.
    group_id BIGINT REFERENCES groups (id) ON DELETE CASCADE,
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX notification_rules_name_key ON notification_rules (name);
CREATE INDEX notification_rules_channel_id_idx ON notification_rules (channel_id);
CREATE INDEX notification_rules_group_id_idx ON notification_rules (group_id);

-- The outbox: one row per (event, rule, channel), written where the event happens.
CREATE TABLE notification_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    rule_id BIGINT REFERENCES notification_rules (id) ON DELETE SET NULL,
    event TEXT NOT NULL,
    -- UUID shared by the deliveries of one event.
    event_id TEXT NOT NULL,
    -- JSON array of e-mail addresses, copied from the rule.
    recipients TEXT NOT NULL DEFAULT '[]',
    -- JSON of the event.
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at BIGINT NOT NULL,
    -- While 'sending': when the claim lapses and the delivery is due again (a crashed sender).
    locked_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_channel_id_idx ON notification_deliveries (channel_id);
CREATE INDEX notification_deliveries_rule_id_idx ON notification_deliveries (rule_id);

-- Things notified once: 'certificate.expiring:<serial>', 'security.digest:<day>'.
CREATE TABLE notification_marks (
    key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Security updates already reported by a digest (forgotten when the update goes away).
CREATE TABLE notification_digest_items (
    host_id BIGINT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    arch TEXT NOT NULL,
    candidate_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, name, arch, candidate_version)
);
