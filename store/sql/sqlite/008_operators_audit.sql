-- Scepter store, SQLite schema 8: operator accounts, roles, the audit log.
-- Keep in step with ../postgres/008_operators_audit.sql.

-- Operator accounts.  password_hash is libsodium's crypto_pwhash_str string (Argon2id, its
-- parameters and salt inside); the password itself is never stored.
CREATE TABLE operators (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash    TEXT NOT NULL,
    disabled         INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL,
    updated          INTEGER NOT NULL,
    password_changed INTEGER NOT NULL,
    last_sign_in     INTEGER NOT NULL DEFAULT 0
);

-- API keys carry a role; the keys made before roles existed could do everything: admin.
ALTER TABLE apikeys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'operator', 'viewer'));

-- A console session signed in by an operator account (key_hash is '' then); NULL for a
-- session signed in with an API key.  Deleting the account ends its sessions.
ALTER TABLE sessions ADD COLUMN operator_id INTEGER REFERENCES operators (id) ON DELETE CASCADE;
CREATE INDEX sessions_operator ON sessions (operator_id);

-- Every change made through the API: who (an account or a key), from where, what (the
-- action, the route, the object) and a short summary (never a password or a key).
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor_type TEXT NOT NULL,              -- operator | api_key | anonymous
    actor_name TEXT NOT NULL,
    address    TEXT NOT NULL DEFAULT '',
    action     TEXT NOT NULL,              -- policy.update, operator.create, session.fail, ...
    route      TEXT NOT NULL,              -- "PUT /v1/policies/{id}"
    object     TEXT NOT NULL DEFAULT '',
    summary    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at);
