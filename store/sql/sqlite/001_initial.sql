-- Scepter store, SQLite schema 1.  Times are UNIX seconds; booleans are 0/1.
-- Keep in step with ../postgres/001_initial.sql: both backends pass one conformance suite.

-- A device: the UDID, or the EnrollmentID of a user enrollment.
CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    type             INTEGER NOT NULL,            -- enum store_enroll_type
    serial_number    TEXT,
    device_name      TEXT,
    model            TEXT,
    model_name       TEXT,
    product_name     TEXT,
    os_version       TEXT,
    build_version    TEXT,
    imei             TEXT,
    meid             TEXT,
    platform         TEXT NOT NULL DEFAULT 'unknown', -- store_platform_name()
    topic            TEXT,
    unlock_token     BLOB,
    bootstrap_token  BLOB,
    authenticated_at INTEGER NOT NULL DEFAULT 0,
    checked_out_at   INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL,
    updated          INTEGER NOT NULL
);
CREATE INDEX devices_platform ON devices (platform);
CREATE INDEX devices_serial ON devices (serial_number);

-- A channel that receives commands: the device channel (id = device id) or a user channel.
CREATE TABLE enrollments (
    id                     TEXT PRIMARY KEY,
    device_id              TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type                   INTEGER NOT NULL,
    topic                  TEXT,
    user_id                TEXT,
    user_short_name        TEXT,
    user_long_name         TEXT,
    push_token             BLOB,
    push_magic             TEXT,
    token_valid            INTEGER NOT NULL DEFAULT 0, -- APNs has not reported the token dead
    token_invalid_at       INTEGER NOT NULL DEFAULT 0,
    enabled                INTEGER NOT NULL DEFAULT 0, -- TokenUpdate received, not checked out
    awaiting_configuration INTEGER NOT NULL DEFAULT 0,
    last_seen              INTEGER NOT NULL DEFAULT 0,
    token_updated_at       INTEGER NOT NULL DEFAULT 0,
    created                INTEGER NOT NULL
);
CREATE INDEX enrollments_device ON enrollments (device_id);
CREATE INDEX enrollments_repush ON enrollments (last_seen) WHERE enabled AND token_valid;

-- SHA-256 of a device identity certificate, bound to one device at Authenticate.
CREATE TABLE cert_bindings (
    cert_hash TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created   INTEGER NOT NULL
);
CREATE INDEX cert_bindings_device ON cert_bindings (device_id);

-- A command: the plist sent to the device(s).
CREATE TABLE commands (
    uuid           TEXT PRIMARY KEY,
    request_type   TEXT NOT NULL,
    plist          BLOB NOT NULL,
    priority       INTEGER NOT NULL DEFAULT 0,
    created        INTEGER NOT NULL,
    policy_id      INTEGER,
    policy_version INTEGER,
    policy_action  INTEGER NOT NULL DEFAULT 0    -- enum store_policy_action
);
CREATE INDEX commands_policy ON commands (policy_id) WHERE policy_id IS NOT NULL;

-- The per-enrollment queue and its results, one row per (enrollment, command).
--   state  0 pending (no final result), 1 finished, 2 cancelled/deactivated
--   status the last report: 0 none, 1 Acknowledged, 2 Error, 3 CommandFormatError, 4 NotNow
--   notnow skipped for the rest of the current exchange (NotNow); cleared by Idle
-- Two indexes are written per queued row: the key (command, enrollment) answers results and
-- per-command questions; queue_next (enrollment, state, order) answers "next command" and
-- an enrollment's whole queue.  The partial indexes only hold rows in rare states.
CREATE TABLE queue (
    seq            INTEGER PRIMARY KEY,
    enrollment_id  TEXT NOT NULL,
    command_uuid   TEXT NOT NULL,
    priority       INTEGER NOT NULL,
    created        INTEGER NOT NULL,
    state          INTEGER NOT NULL DEFAULT 0,
    status         INTEGER NOT NULL DEFAULT 0,
    notnow         INTEGER NOT NULL DEFAULT 0,
    notnow_count   INTEGER NOT NULL DEFAULT 0,
    last_notnow_at INTEGER NOT NULL DEFAULT 0,
    result_at      INTEGER NOT NULL DEFAULT 0,
    raw            BLOB,
    error_chain    TEXT,
    policy_id      INTEGER, -- the command's policy (NULL: none), for retention
    updated        INTEGER NOT NULL,
    UNIQUE (command_uuid, enrollment_id)
);
CREATE INDEX queue_next ON queue (enrollment_id, state, priority DESC, created);
CREATE INDEX queue_notnow ON queue (enrollment_id) WHERE notnow;
CREATE INDEX queue_done ON queue (updated) WHERE state <> 0;

CREATE TABLE device_groups (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX group_members_device ON group_members (device_id);

CREATE TABLE policies (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uid              TEXT NOT NULL UNIQUE,
    type             TEXT NOT NULL,
    platform         TEXT NOT NULL,
    name             TEXT NOT NULL,
    notes            TEXT,
    scep_url         TEXT,
    scep_name        TEXT,
    scep_challenge   TEXT,
    scep_fingerprint TEXT,
    scep_subject     TEXT,
    key_size         INTEGER NOT NULL DEFAULT 0,
    retries          INTEGER NOT NULL DEFAULT 0,
    retry_delay      INTEGER NOT NULL DEFAULT 0,
    key_extractable  INTEGER NOT NULL DEFAULT 0,
    key_usage        INTEGER NOT NULL DEFAULT 0,
    root_cert        BLOB,
    san_dns          TEXT,
    san_ntpn         TEXT,
    san_rfc822       TEXT,
    san_uri          TEXT,
    version          INTEGER NOT NULL DEFAULT 1,
    created          INTEGER NOT NULL,
    updated          INTEGER NOT NULL,
    UNIQUE (platform, name)
);

CREATE TABLE policy_devices (
    policy_id INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (policy_id, device_id)
);
CREATE INDEX policy_devices_device ON policy_devices (device_id);

CREATE TABLE policy_groups (
    policy_id INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    group_id  INTEGER NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (policy_id, group_id)
);
CREATE INDEX policy_groups_group ON policy_groups (group_id);

-- The APNs push certificate (one row); version moves on every change.
CREATE TABLE pushcerts (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    topic     TEXT NOT NULL,
    cert_pem  TEXT NOT NULL,
    key_pem   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    not_after INTEGER NOT NULL DEFAULT 0,
    updated   INTEGER NOT NULL
);

-- Operator API keys: only the SHA-256 of the key is kept.
CREATE TABLE apikeys (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE,
    created   INTEGER NOT NULL,
    last_used INTEGER NOT NULL DEFAULT 0
);

-- Events to deliver later (webhooks); next_at doubles as the claim lease.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created    INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (next_at);

-- Background-job leases.
CREATE TABLE leases (
    job     TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires INTEGER NOT NULL
);
