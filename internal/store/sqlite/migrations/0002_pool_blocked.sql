-- A pool blocked by a permanent provider failure: when, why, and the
-- fingerprint of the configuration that failed (a changed one lifts it).
ALTER TABLE pool_state ADD COLUMN blocked_at INTEGER;
ALTER TABLE pool_state ADD COLUMN blocked_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE pool_state ADD COLUMN blocked_spec TEXT NOT NULL DEFAULT '';
