-- A job's execution role: the IAM role its steps run as on EMR, '' for
-- the cluster's own.
ALTER TABLE jobs ADD COLUMN execution_role_arn TEXT NOT NULL DEFAULT '';
