ALTER TABLE processing_runs ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX processing_runs_queue_idx ON processing_runs (status, requested_at) WHERE status IN ('queued', 'running');
DELETE FROM jobs WHERE queue = 'cdp-analytics.processing-runs';
