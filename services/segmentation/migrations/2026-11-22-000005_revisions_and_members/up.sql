-- A change feed for the in-memory engine of every replica: each write that changes what
-- a rule can see about a customer stamps the customer's profile with the writing
-- transaction's id. A reader that remembers the oldest transaction still running when it
-- last looked (pg_snapshot_xmin) and re-reads `revision >= that` never misses a change
-- that committed out of order, which a plain sequence could.
ALTER TABLE customer_profiles
    ADD COLUMN revision BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);

CREATE INDEX customer_profiles_revision_idx ON customer_profiles (tenant_id, revision);

-- Materialised membership of every segment: dynamic segments are kept by the consumers
-- (incrementally) and the clock (time-relative rules); static and imported ones are
-- written with the segment. Members pages and exports read this table.
CREATE TABLE segment_members (
    tenant_id   TEXT        NOT NULL,
    segment_id  UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    entered_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, segment_id, customer_id)
);

CREATE INDEX segment_members_customer_idx ON segment_members (tenant_id, customer_id);

-- Imported segments: how many rows the CSV had and how many matched no customer.
ALTER TABLE segments
    ADD COLUMN imported_rows  BIGINT,
    ADD COLUMN unmatched_rows BIGINT;

-- analytics.scores.updated: which run's scores a row holds, so a late older run is ignored.
ALTER TABLE customer_scores ADD COLUMN scores_computed_at TIMESTAMPTZ;

-- Engagement counted once per message: a second "opened" of one email (providers send
-- several) does not raise emails_opened again.
CREATE TABLE customer_engagements (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    message_id  TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, message_id, kind)
);

-- Imported segments match uploaded emails and external ids against profiles.
CREATE INDEX customer_profiles_email_idx ON customer_profiles (tenant_id, email);
CREATE INDEX customer_profiles_external_id_idx ON customer_profiles (tenant_id, external_id);
