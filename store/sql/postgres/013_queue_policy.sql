-- A device's policy states (GET /v1/devices/{udid}, the console's device page, `scepterctl
-- device show`) are its latest policy-linked queue entry per policy.  Without an index of its
-- own the query walked queue_next over every entry the device ever had and read each row from
-- the table to test policy_id: the rows of one device lie all over the table, so every read
-- fetched about one page per command in the device's history — 500 pages (2 MB) of SQLite's
-- page cache per read six minutes into the soak, and growing with it: scepter's RSS climbed
-- with the history (issue 18).  This partial index holds only the policy-linked entries, in the order the query
-- wants them.
CREATE INDEX queue_policy ON queue (enrollment_id, policy_id, seq) WHERE policy_id IS NOT NULL;
