-- Scepter store, SQLite schema 2: who may (re-)enroll, and identities that can be revoked.
-- Keep in step with ../postgres/002_security.sql.

-- removed_at: an operator removed the device (DELETE /v1/devices/{udid}); its history stays.
-- reenroll_until: an operator allowed a new identity to replace the bound one until then.
ALTER TABLE devices ADD COLUMN removed_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN reenroll_until INTEGER NOT NULL DEFAULT 0;

-- Device identity certificates that are no longer accepted, by the SHA-256 of their DER:
-- revoked by an operator, superseded by a re-enrollment, or released by a device removal.
CREATE TABLE revoked_certs (
    cert_hash  TEXT PRIMARY KEY,
    device_id  TEXT,            -- the device it was bound to (NULL: none); no FK, history
    reason     TEXT NOT NULL,   -- 'revoked', 'superseded', 'removed'
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_certs_device ON revoked_certs (device_id);

-- Enrollment tokens an operator hands out: /mdm/enroll?token=...  Only the SHA-256 is kept.
CREATE TABLE enroll_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    hash       TEXT NOT NULL UNIQUE,
    note       TEXT,
    uses_total INTEGER NOT NULL,  -- 0 = unlimited until expiry
    uses       INTEGER NOT NULL DEFAULT 0,
    expires    INTEGER NOT NULL,  -- 0 = never
    created    INTEGER NOT NULL,
    last_used  INTEGER NOT NULL DEFAULT 0
);

-- Security events an operator must see (refused re-enrollments, revocations, removals).
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL,
    device_id TEXT,
    detail    TEXT NOT NULL,   -- JSON object
    created   INTEGER NOT NULL
);
CREATE INDEX events_device ON events (device_id, id);
CREATE INDEX events_created ON events (created);
