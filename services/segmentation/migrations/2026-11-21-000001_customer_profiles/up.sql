-- Segmentation's read model of customers, fed by ingestion's customer events.
CREATE TABLE customer_profiles (
    tenant_id    TEXT        NOT NULL,
    customer_id  UUID        NOT NULL,
    external_id  TEXT,
    email        TEXT,
    name         TEXT,
    phone        TEXT,
    city         TEXT,
    state        TEXT,
    zip_code     TEXT,
    country      TEXT,
    loyalty_tier TEXT,
    attributes   JSONB       NOT NULL DEFAULT '{}'::jsonb,
    consent_email BOOLEAN    NOT NULL DEFAULT FALSE,
    consent_sms   BOOLEAN    NOT NULL DEFAULT FALSE,
    consent_push  BOOLEAN    NOT NULL DEFAULT FALSE,
    signed_up_at TIMESTAMPTZ,
    -- The ingestion version last applied; older or equal versions are ignored.
    version      BIGINT      NOT NULL,
    -- Set by customer.erased: PII is gone and no later upsert may bring it back.
    erased_at    TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
