ALTER TABLE import_jobs ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX import_jobs_runnable_idx ON import_jobs (created_at) WHERE status IN ('queued', 'processing');
DELETE FROM jobs WHERE queue = 'ingestion.imports';
