-- Berth's first schema.
--
-- Times are INTEGER unix nanoseconds in UTC, so they round-trip exactly and
-- sort as numbers; NULL stands for the zero time.Time. Booleans are 0/1.
-- What only Berth reads whole (a job's steps, an attempt's steps, labels) is
-- JSON text; what is filtered or joined on has a column and an index.

-- seq is the rowid: AUTOINCREMENT makes it strictly increasing and never
-- reused, which is what the loop's JobsAfter and the list cursor rely on.
CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    pool              TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    steps             TEXT    NOT NULL,
    priority          INTEGER NOT NULL,
    affinity          TEXT    NOT NULL,
    affinity_required INTEGER NOT NULL,
    retries           INTEGER NOT NULL,
    max_infra_retries INTEGER NOT NULL,
    timeout_ns        INTEGER NOT NULL,
    resume            TEXT    NOT NULL,
    -- NULL when the job has none, so the unique index ignores it.
    idempotency_key   TEXT,
    -- JSON object; NULL when the job has no labels. job_labels is the
    -- queryable copy.
    labels            TEXT,
    state             TEXT    NOT NULL,
    cluster_id        TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    created_at        INTEGER,
    started_at        INTEGER,
    ended_at          INTEGER,
    not_before        INTEGER,
    user_failures     INTEGER NOT NULL,
    infra_failures    INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    cost              REAL    NOT NULL
);
-- Idempotent submission rests on this index: two racing submissions of the
-- same key cannot both insert.
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_state_seq ON jobs (state, seq);
CREATE INDEX jobs_pool_seq ON jobs (pool, seq);
-- The loop asks for pending cancel requests on every pass: this index holds
-- only those, so the question costs nothing however long the queue is.
CREATE INDEX jobs_cancel_pending ON jobs (seq) WHERE cancel_requested = 1 AND state IN ('queued', 'running');

CREATE TABLE job_labels (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX job_labels_key_value ON job_labels (key, value);

CREATE TABLE attempts (
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    n          INTEGER NOT NULL,
    cluster_id TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    started_at INTEGER,
    ended_at   INTEGER,
    first_step INTEGER NOT NULL,
    steps      TEXT    NOT NULL,
    cost       REAL    NOT NULL,
    PRIMARY KEY (job_id, n)
);
CREATE INDEX attempts_cluster_id ON attempts (cluster_id, started_at);

-- Clusters carry no foreign key from attempts or events: history outlives
-- whatever happens to a cluster row, and the loop owns consistency.
CREATE TABLE clusters (
    id             TEXT    PRIMARY KEY,
    pool           TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    provider_id    TEXT    NOT NULL,
    fallback       INTEGER NOT NULL,
    slots          INTEGER NOT NULL,
    price_per_hour REAL    NOT NULL,
    created_at     INTEGER,
    ready_at       INTEGER,
    idle_since     INTEGER,
    ended_at       INTEGER,
    reason         TEXT    NOT NULL,
    capacity       INTEGER NOT NULL,
    ends_lost      INTEGER NOT NULL
);
CREATE INDEX clusters_created_at ON clusters (created_at, id);
CREATE INDEX clusters_pool ON clusters (pool, created_at, id);
CREATE INDEX clusters_state ON clusters (state, created_at, id);

CREATE TABLE pool_state (
    pool              TEXT    PRIMARY KEY,
    capacity_failures INTEGER NOT NULL,
    first_failure_at  INTEGER,
    fallback_until    INTEGER
);

CREATE TABLE affinity (
    key        TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER,
    job_id     TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX events_job_id ON events (job_id, seq);
CREATE INDEX events_cluster_id ON events (cluster_id, seq);
