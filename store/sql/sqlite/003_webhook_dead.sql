-- Scepter store, SQLite schema 3: outbox events that keep failing become dead letters.
-- Keep in step with ../postgres/003_webhook_dead.sql.

-- dead_at: when the event was given up on after webhook_max_attempts failed deliveries (0 =
-- alive).  A dead letter is kept, never claimed, until an operator retries or drops it.
ALTER TABLE outbox ADD COLUMN dead_at INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_at) WHERE dead_at = 0;
CREATE INDEX outbox_dead ON outbox (dead_at) WHERE dead_at > 0;
