-- A job's then: the work its submitter says will follow it, as a JSON
-- list of {"pool", "jobs"}; NULL when it says none. Not named "then",
-- which is an SQL keyword.
ALTER TABLE jobs ADD COLUMN then_hints TEXT;
