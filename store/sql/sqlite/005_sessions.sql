-- Scepter store, SQLite schema 5: web console sessions.
-- Keep in step with ../postgres/005_sessions.sql.

-- One row per console sign-in.  The session id (the cookie) is never stored: only its SHA-256
-- (hex).  key_hash is the SHA-256 of the API key that signed in, so a deleted or rotated key
-- ends its sessions.
CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,
    csrf_token TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    peer       TEXT NOT NULL DEFAULT '',   -- the address that signed in
    created    INTEGER NOT NULL,
    expires    INTEGER NOT NULL,           -- absolute end (console_session_ttl after created)
    last_seen  INTEGER NOT NULL,           -- idle timeout counts from here
    revoked    INTEGER NOT NULL DEFAULT 0  -- 0 = not revoked (sign-out)
);
CREATE INDEX sessions_expires ON sessions (expires);
CREATE INDEX sessions_last_seen ON sessions (last_seen);
