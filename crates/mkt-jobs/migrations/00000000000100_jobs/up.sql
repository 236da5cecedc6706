-- The job queue of mkt-jobs, migrated into every service's schema (like the bus tables).
-- A domain table (import_jobs, processing_runs...) keeps what users see; this row is only
-- the scheduling: who runs the job, until when, and how often it was tried.
CREATE TABLE jobs (
    id           UUID        PRIMARY KEY,
    -- `<service>.<kind>`, e.g. `ingestion.imports`: one worker loop per queue.
    queue        TEXT        NOT NULL,
    tenant_id    TEXT        NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'queued'
                             CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    -- Starts so far; the current attempt's number fences its heartbeats and its end, so a
    -- worker that lost its lease cannot finish a job another worker took over.
    attempts     INTEGER     NOT NULL DEFAULT 0,
    max_attempts INTEGER     NOT NULL DEFAULT 5,
    -- Not before: a retry waits here with its backoff.
    run_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The running worker owns the job until this instant; its heartbeat extends it.
    lease_until  TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ
);

CREATE INDEX jobs_runnable_idx ON jobs (queue, run_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_tenant_idx ON jobs (tenant_id, created_at);
