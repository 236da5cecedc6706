-- What rules can test that other services publish: analytics scores (cdp-analytics'
-- analytics.scores.updated) and email engagement (delivery events). A table of its own:
-- different producers, and a missing row simply means "not known yet".
CREATE TABLE customer_scores (
    tenant_id         TEXT             NOT NULL,
    customer_id       UUID             NOT NULL,
    rfm_segment       TEXT,
    recency_score     INTEGER,
    frequency_score   INTEGER,
    monetary_score    INTEGER,
    clv               BIGINT,
    clv_tier          TEXT,
    churn_risk        TEXT,
    churn_probability DOUBLE PRECISION,
    emails_opened     BIGINT           NOT NULL DEFAULT 0,
    emails_clicked    BIGINT           NOT NULL DEFAULT 0,
    unsubscribed      BOOLEAN          NOT NULL DEFAULT FALSE,
    updated_at        TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
