-- Scepter store, SQLite schema 4: the built-in SCEP certificate authority.
-- Keep in step with ../postgres/004_scep_ca.sql.

-- Every certificate a built-in CA issued (never deleted: the CRL is built from it).
CREATE TABLE scep_certs (
    ca          TEXT NOT NULL,     -- the CA's name ("default", or a name of scep_cas)
    serial      TEXT NOT NULL,     -- upper-case hex, no leading zeros
    subject     TEXT NOT NULL,
    sans        TEXT NOT NULL,     -- "DNS:a, URI:b", '' when none
    device_id   TEXT,              -- the device, when a one-time challenge or renewal named it
    cert_sha256 TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- 'PKCSReq' or 'RenewalReq'
    renewed_from TEXT,             -- RenewalReq: the serial of the certificate it replaces
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL DEFAULT 0,  -- 0 = not revoked
    PRIMARY KEY (ca, serial)
);
CREATE INDEX scep_certs_device ON scep_certs (device_id);
CREATE INDEX scep_certs_revoked ON scep_certs (ca, revoked_at);

-- One-time SCEP challenges: one device, one use, an expiry.  Only the SHA-256 is kept.
CREATE TABLE scep_challenges (
    hash      TEXT PRIMARY KEY,
    ca        TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    created   INTEGER NOT NULL,
    used_at   INTEGER NOT NULL DEFAULT 0   -- 0 = not used yet
);
CREATE INDEX scep_challenges_expires ON scep_challenges (expires);
