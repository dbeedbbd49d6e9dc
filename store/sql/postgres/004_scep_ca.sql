-- Scepter store, PostgreSQL schema 4: the built-in SCEP certificate authority.
-- Keep in step with ../sqlite/004_scep_ca.sql.

-- Every certificate a built-in CA issued (never deleted: the CRL is built from it).
CREATE TABLE scep_certs (
    ca          text COLLATE "C" NOT NULL,  -- the CA's name ("default", or a name of scep_cas)
    serial      text COLLATE "C" NOT NULL,  -- upper-case hex, no leading zeros
    subject     text COLLATE "C" NOT NULL,
    sans        text COLLATE "C" NOT NULL,  -- "DNS:a, URI:b", '' when none
    device_id   text COLLATE "C",           -- the device, when a one-time challenge or renewal named it
    cert_sha256 text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,  -- 'PKCSReq' or 'RenewalReq'
    renewed_from text COLLATE "C",          -- RenewalReq: the serial of the certificate it replaces
    not_before  bigint NOT NULL,
    not_after   bigint NOT NULL,
    issued_at   bigint NOT NULL,
    revoked_at  bigint NOT NULL DEFAULT 0,  -- 0 = not revoked
    seq         bigserial,                  -- issue order (ties of issued_at); SQLite: rowid
    PRIMARY KEY (ca, serial)
);
CREATE INDEX scep_certs_device ON scep_certs (device_id);
CREATE INDEX scep_certs_revoked ON scep_certs (ca, revoked_at);

-- One-time SCEP challenges: one device, one use, an expiry.  Only the SHA-256 is kept.
CREATE TABLE scep_challenges (
    hash      text COLLATE "C" PRIMARY KEY,
    ca        text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    expires   bigint NOT NULL,
    created   bigint NOT NULL,
    used_at   bigint NOT NULL DEFAULT 0    -- 0 = not used yet
);
CREATE INDEX scep_challenges_expires ON scep_challenges (expires);
