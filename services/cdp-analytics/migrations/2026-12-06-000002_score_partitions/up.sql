-- A processing run rewrote every score row of its tenant in place: 6.8 s of a
-- 1M-customer run even as heap-only updates (docs/benchmarks.md). Now each run loads its
-- scores into a fresh table with binary COPY, builds that table's primary key once, and
-- swaps it in as the tenant's partition; the previous run's table is dropped whole. No
-- updates, no dead rows, nothing for vacuum. `score_partitions` records each tenant's
-- current run, so the swap knows which table to detach; it changes in the same
-- transaction as the partitions.
ALTER TABLE customer_scores RENAME TO customer_scores_before_partitions;
ALTER TABLE customer_scores_before_partitions
    RENAME CONSTRAINT customer_scores_pkey TO customer_scores_before_partitions_pkey;

-- The same columns, now partitioned (a partitioned table takes no fillfactor).
CREATE TABLE customer_scores (
    LIKE customer_scores_before_partitions INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (tenant_id, customer_id)
) PARTITION BY LIST (tenant_id);

-- Each tenant's current run: its partition of `customer_scores` is that run's table,
-- `customer_scores_r<run id without dashes>`.
CREATE TABLE score_partitions (
    tenant_id   TEXT        PRIMARY KEY,
    run_id      UUID        NOT NULL,
    attached_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Existing scores become one partition per tenant, named as a run's load table is.
DO $$
DECLARE
    scored RECORD;
    name TEXT;
BEGIN
    FOR scored IN
        SELECT tenant_id, max(run_id::text)::uuid AS run_id
        FROM customer_scores_before_partitions GROUP BY tenant_id
    LOOP
        name := 'customer_scores_r' || replace(scored.run_id::text, '-', '');
        EXECUTE format('CREATE TABLE %I PARTITION OF customer_scores FOR VALUES IN (%L)',
                       name, scored.tenant_id);
        EXECUTE format('INSERT INTO %I SELECT * FROM customer_scores_before_partitions '
                       'WHERE tenant_id = %L', name, scored.tenant_id);
        INSERT INTO score_partitions (tenant_id, run_id) VALUES (scored.tenant_id, scored.run_id);
    END LOOP;
END $$;

DROP TABLE customer_scores_before_partitions;
