-- cdp-analytics' own read model, fed by ingestion's and delivery events: enough to
-- score customers (orders) and to show the customer 360 and timeline.
CREATE TABLE customers (
    tenant_id   TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    external_id TEXT,
    email       TEXT,
    name        TEXT,
    signed_up_at TIMESTAMPTZ,
    -- Ingestion's version last applied (0: a stub made by an order or event first).
    version     BIGINT      NOT NULL,
    erased_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Every order's latest state. Cancelled and refunded orders stay (the timeline shows
-- them) but never count towards frequency, monetary or CLV.
CREATE TABLE orders (
    tenant_id    TEXT        NOT NULL,
    order_id     UUID        NOT NULL,
    customer_id  UUID        NOT NULL,
    external_id  TEXT,
    status       TEXT        NOT NULL,
    total_amount BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    items_count  INTEGER     NOT NULL,
    ordered_at   TIMESTAMPTZ NOT NULL,
    version      BIGINT      NOT NULL,
    -- When this service last saw the order change (drives "re-run only what changed").
    changed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, order_id)
);

CREATE INDEX orders_customer_idx ON orders (tenant_id, customer_id, ordered_at);
CREATE INDEX orders_changed_idx ON orders (tenant_id, changed_at);

-- Tracked behaviour and message delivery events, newest first per customer.
CREATE TABLE timeline_events (
    tenant_id   TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    customer_id UUID        NOT NULL,
    -- page_view, add_to_cart... or email_sent, email_opened, sms_delivered...
    kind        TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    details     JSONB       NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE INDEX timeline_events_customer_idx ON timeline_events (tenant_id, customer_id, occurred_at DESC);

-- The latest scores per customer (one processing run's output).
CREATE TABLE customer_scores (
    tenant_id         TEXT             NOT NULL,
    customer_id       UUID             NOT NULL,
    run_id            UUID             NOT NULL,
    as_of             TIMESTAMPTZ      NOT NULL,
    recency_days      INTEGER,
    frequency         INTEGER,
    monetary          BIGINT,
    recency_score     INTEGER,
    frequency_score   INTEGER,
    monetary_score    INTEGER,
    rfm_score         TEXT,
    rfm_segment       TEXT,
    historical_value  BIGINT,
    predicted_value   BIGINT,
    expected_purchases DOUBLE PRECISION,
    clv_tier          TEXT,
    churn_probability DOUBLE PRECISION,
    churn_risk        TEXT,
    last_order_at     TIMESTAMPTZ,
    currency          CHAR(3),
    PRIMARY KEY (tenant_id, customer_id)
);

CREATE INDEX customer_scores_segment_idx ON customer_scores (tenant_id, rfm_segment);
CREATE INDEX customer_scores_tier_idx ON customer_scores (tenant_id, clv_tier, predicted_value DESC);
CREATE INDEX customer_scores_risk_idx ON customer_scores (tenant_id, churn_risk, churn_probability DESC);

-- Processing runs: requested by the API or the nightly schedule, executed by a leased
-- worker, so a run survives a restart (an expired lease is picked up again).
CREATE TABLE processing_runs (
    id              UUID        PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    analyses        TEXT[]      NOT NULL,
    force           BOOLEAN     NOT NULL,
    as_of           TIMESTAMPTZ,
    -- queued | running | processed | skipped | failed
    status          TEXT        NOT NULL,
    trigger         TEXT        NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    lease_until     TIMESTAMPTZ,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    progress        DOUBLE PRECISION NOT NULL DEFAULT 0,
    records_processed BIGINT    NOT NULL DEFAULT 0,
    results         JSONB,
    model           JSONB,
    error           TEXT
);

CREATE INDEX processing_runs_tenant_idx ON processing_runs (tenant_id, requested_at DESC);
CREATE INDEX processing_runs_queue_idx ON processing_runs (status, requested_at) WHERE status IN ('queued', 'running');

-- At most one queued or running run per tenant: a second request joins the first.
CREATE UNIQUE INDEX processing_runs_one_active_idx ON processing_runs (tenant_id) WHERE status IN ('queued', 'running');
