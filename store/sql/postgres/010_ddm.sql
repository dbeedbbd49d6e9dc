-- Scepter store, PostgreSQL schema 10: Declarative Device Management.
-- Keep in step with ../sqlite/010_ddm.sql.

-- What an enrollment last reported of each declaration it holds (the status item
-- management.declarations): one row per (enrollment, kind, identifier).  Declarations themselves
-- are not stored: they are computed from the policies (mdm/ddm.c).
CREATE TABLE ddm_status (
    enrollment_id text COLLATE "C" NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    kind          text NOT NULL,            -- activations, configurations, assets, management
    identifier    text NOT NULL,
    server_token  text NOT NULL DEFAULT '',
    active        boolean NOT NULL DEFAULT false,
    valid         text NOT NULL DEFAULT 'unknown',  -- valid, invalid, unknown
    reasons       text,                     -- JSON array of {code, description, details}
    updated       bigint NOT NULL,
    PRIMARY KEY (enrollment_id, kind, identifier)
);

-- Device facts from status reports (device.model.family; device.operating-system.version is
-- also written to devices.os_version) and when the last report came.
CREATE TABLE ddm_devices (
    device_id     text COLLATE "C" PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    model_family  text,
    os_version    text,
    last_report   bigint NOT NULL
);
