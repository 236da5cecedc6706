-- CSV import jobs. An upload is streamed into `import_rows` (so memory never grows with
-- the file) and a worker turns staged rows into customers or orders chunk by chunk, each
-- chunk one transaction that also advances the job's counters (and, since migration 4,
-- its cursor): a crash resumes where the last committed chunk ended.
CREATE TABLE import_jobs (
    tenant_id      TEXT        NOT NULL,
    id             UUID        NOT NULL,
    kind           TEXT        NOT NULL CHECK (kind IN ('customers', 'orders')),
    status         TEXT        NOT NULL CHECK (status IN ('receiving', 'queued', 'processing', 'completed', 'failed')),
    header         TEXT[]      NOT NULL,
    total_rows     BIGINT      NOT NULL DEFAULT 0,
    processed_rows BIGINT      NOT NULL DEFAULT 0,
    succeeded_rows BIGINT      NOT NULL DEFAULT 0,
    rejected_rows  BIGINT      NOT NULL DEFAULT 0,
    error          TEXT,
    -- A worker owns a processing job until this instant; an expired lease means the
    -- worker died and another may take the job over.
    lease_until    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX import_jobs_runnable_idx ON import_jobs (created_at) WHERE status IN ('queued', 'processing');

CREATE TABLE import_rows (
    tenant_id  TEXT   NOT NULL,
    job_id     UUID   NOT NULL,
    row_number BIGINT NOT NULL,
    fields     TEXT[] NOT NULL,
    PRIMARY KEY (tenant_id, job_id, row_number)
);

CREATE TABLE import_rejections (
    tenant_id  TEXT   NOT NULL,
    job_id     UUID   NOT NULL,
    row_number BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    fields     TEXT[] NOT NULL,
    PRIMARY KEY (tenant_id, job_id, row_number)
);
