-- Customers: the raw truth about each store's customers. Upserted by (tenant, email).
CREATE TABLE customers (
    tenant_id     TEXT        NOT NULL,
    id            UUID        NOT NULL,
    -- The store's own id, unique per tenant when present.
    external_id   TEXT,
    -- Lower-cased, so the (tenant, email) key is case-insensitive.
    email         TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    first_name    TEXT,
    last_name     TEXT,
    phone         TEXT,
    street        TEXT,
    city          TEXT,
    state         TEXT,
    zip_code      TEXT,
    country       TEXT,
    loyalty_tier  TEXT,
    attributes    JSONB       NOT NULL DEFAULT '{}'::jsonb,
    consent_email BOOLEAN     NOT NULL DEFAULT FALSE,
    consent_sms   BOOLEAN     NOT NULL DEFAULT FALSE,
    consent_push  BOOLEAN     NOT NULL DEFAULT FALSE,
    -- Sign-up time; may be historical for backfills.
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    -- Bumped on every change; events carry it so consumers never regress.
    version       BIGINT      NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);

CREATE UNIQUE INDEX customers_tenant_email_key ON customers (tenant_id, email);
CREATE UNIQUE INDEX customers_tenant_external_id_key ON customers (tenant_id, external_id) WHERE external_id IS NOT NULL;
