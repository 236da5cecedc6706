-- Processing runs execute on the shared job runner (mkt-jobs' `jobs` table, migrated
-- before this): the lease moves there, and runs waiting or running at the upgrade get
-- their job, so none is stranded (a running one starts again).
INSERT INTO jobs (id, queue, tenant_id, max_attempts, created_at)
SELECT id, 'cdp-analytics.processing-runs', tenant_id, 3, requested_at
FROM processing_runs
WHERE status IN ('queued', 'running')
ON CONFLICT (id) DO NOTHING;

DROP INDEX processing_runs_queue_idx;
ALTER TABLE processing_runs DROP COLUMN lease_until;
