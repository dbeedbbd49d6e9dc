-- Scepter store, PostgreSQL schema 5: web console sessions.
-- Keep in step with ../sqlite/005_sessions.sql.

-- One row per console sign-in.  The session id (the cookie) is never stored: only its SHA-256
-- (hex).  key_hash is the SHA-256 of the API key that signed in, so a deleted or rotated key
-- ends its sessions.
CREATE TABLE sessions (
    hash       text COLLATE "C" PRIMARY KEY,
    csrf_token text COLLATE "C" NOT NULL,
    key_hash   text COLLATE "C" NOT NULL,
    peer       text NOT NULL DEFAULT '',   -- the address that signed in
    created    bigint NOT NULL,
    expires    bigint NOT NULL,            -- absolute end (console_session_ttl after created)
    last_seen  bigint NOT NULL,            -- idle timeout counts from here
    revoked    bigint NOT NULL DEFAULT 0   -- 0 = not revoked (sign-out)
);
CREATE INDEX sessions_expires ON sessions (expires);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
