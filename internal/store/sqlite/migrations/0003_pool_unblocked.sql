-- When a pool was last unblocked: clusters started before then, failing on
-- the spec that was mended, do not block it again, across restarts too.
ALTER TABLE pool_state ADD COLUMN unblocked_at INTEGER;
