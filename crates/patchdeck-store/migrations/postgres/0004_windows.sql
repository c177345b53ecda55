-- Maintenance windows and blackout (change-freeze) periods (docs/maintenance-windows.md).
-- Keep table, column and index names identical to migrations/sqlite/0004_windows.sql.

-- A window belongs to exactly one host or one group. A host's windows are its own plus its
-- groups'. `recurrence` is JSON (patchdeck_schedule::Recurrence); `start_time` is local 'HH:MM'
-- in `time_zone` (an IANA name); the duration is elapsed minutes.
CREATE TABLE maintenance_windows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    host_id BIGINT REFERENCES hosts (id) ON DELETE CASCADE,
    group_id BIGINT REFERENCES groups (id) ON DELETE CASCADE,
    recurrence TEXT NOT NULL,
    start_time TEXT NOT NULL,
    duration_minutes BIGINT NOT NULL CHECK (duration_minutes BETWEEN 1 AND 10080),
    time_zone TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((host_id IS NULL) <> (group_id IS NULL))
);
CREATE INDEX maintenance_windows_host_id_idx ON maintenance_windows (host_id);
CREATE INDEX maintenance_windows_group_id_idx ON maintenance_windows (group_id);

-- A blackout with no group is global. [starts_at, ends_at) in Unix milliseconds.
CREATE TABLE blackouts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    group_id BIGINT REFERENCES groups (id) ON DELETE CASCADE,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX blackouts_group_id_idx ON blackouts (group_id);
CREATE INDEX blackouts_ends_at_idx ON blackouts (ends_at);
