-- The queue depth (/metrics' scepter_queue_depth, read at every scrape) counts the pending
-- entries.  Without an index of its own the count scanned queue_next, which holds every entry
-- ever queued: a scrape read the whole history (15 MB of index after an hour of the soak), and
-- each worker's SQLite page cache filled with it — scepter's RSS climbed with the history
-- (issue 18).  This partial index holds only the pending entries.
CREATE INDEX queue_pending ON queue (state) WHERE state = 0;
