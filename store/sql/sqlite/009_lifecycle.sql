-- Command expiry (issue 21): a queue entry may carry the time after which it is not delivered
-- (0 = never).  The expiry job moves such entries to state 3 (expired, final: "Expired" in
-- the API); until it runs, the next-command lookups skip them.  The partial index holds only
-- pending entries that expire.
ALTER TABLE queue ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_expiring ON queue (expires) WHERE state = 0 AND expires <> 0;

-- Identity renewal (issue 21): the notAfter of each bound certificate (0 = not known), and per
-- device the renewal outstanding: the InstallProfile that carries the new identity, when it was
-- queued, the certificate it will present when Scepter issued it (SHA-256) and that
-- certificate's notAfter; renewed_at is when the last renewal was bound.
ALTER TABLE cert_bindings ADD COLUMN not_after INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cert_bindings_not_after ON cert_bindings (not_after) WHERE not_after <> 0;
ALTER TABLE devices ADD COLUMN renewal_uuid TEXT;
ALTER TABLE devices ADD COLUMN renewal_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN renewal_cert TEXT;
ALTER TABLE devices ADD COLUMN renewal_not_after INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN renewed_at INTEGER NOT NULL DEFAULT 0;
