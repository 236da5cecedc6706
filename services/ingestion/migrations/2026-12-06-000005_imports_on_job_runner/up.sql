-- Imports run on the shared job runner (mkt-jobs' `jobs` table, migrated before this):
-- the lease moves there, and imports that were waiting or running at the upgrade get
-- their job, so none is stranded. A running one resumes at its cursor.
INSERT INTO jobs (id, queue, tenant_id, max_attempts, created_at)
SELECT id, 'ingestion.imports', tenant_id, 10, created_at
FROM import_jobs
WHERE status IN ('queued', 'processing')
ON CONFLICT (id) DO NOTHING;

DROP INDEX import_jobs_runnable_idx;
ALTER TABLE import_jobs DROP COLUMN lease_until;
