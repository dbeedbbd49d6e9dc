-- Scepter store, SQLite schema 10: Declarative Device Management.
-- Keep in step with ../postgres/010_ddm.sql.

-- What an enrollment last reported of each declaration it holds (the status item
-- management.declarations): one row per (enrollment, kind, identifier).  Declarations themselves
-- are not stored: they are computed from the policies (mdm/ddm.c).
CREATE TABLE ddm_status (
    enrollment_id TEXT NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,            -- activations, configurations, assets, management
    identifier    TEXT NOT NULL,
    server_token  TEXT NOT NULL DEFAULT '',
    active        INTEGER NOT NULL DEFAULT 0,
    valid         TEXT NOT NULL DEFAULT 'unknown',  -- valid, invalid, unknown
    reasons       TEXT,                     -- JSON array of {code, description, details}
    updated       INTEGER NOT NULL,
    PRIMARY KEY (enrollment_id, kind, identifier)
);

-- Device facts from status reports (device.model.family; device.operating-system.version is
-- also written to devices.os_version) and when the last report came.
CREATE TABLE ddm_devices (
    device_id     TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    model_family  TEXT,
    os_version    TEXT,
    last_report   INTEGER NOT NULL
);
