-- Command expiry (issue 21): a queue entry may carry the time after which it is not delivered
-- (0 = never).  The expiry job moves such entries to state 3 (expired, final: "Expired" in
-- the API); until it runs, the next-command lookups skip them.  The partial index holds only
-- pending entries that expire.
ALTER TABLE queue ADD COLUMN expires bigint NOT NULL DEFAULT 0;
CREATE INDEX queue_expiring ON queue (expires) WHERE state = 0 AND expires <> 0;
