-- The installation's id, made once: providers tag what they start with
-- it, so that a restarted Berth tells its own clusters from another's.
CREATE TABLE installation (id TEXT NOT NULL);
