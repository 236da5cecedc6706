-- Order aggregates per customer, kept from ingestion's order events. Orders arrive on a
-- different queue than customers, so a profile may be created by its first order (a
-- stub with version 0) and filled in by the customer event.
ALTER TABLE customer_profiles
    ADD COLUMN orders_count   BIGINT      NOT NULL DEFAULT 0,
    -- Net spend in minor units: cancelled and refunded orders excluded.
    ADD COLUMN total_spent    BIGINT      NOT NULL DEFAULT 0,
    ADD COLUMN first_order_at TIMESTAMPTZ,
    ADD COLUMN last_order_at  TIMESTAMPTZ;

-- The latest known state of every order (so a refund can be subtracted).
CREATE TABLE customer_orders (
    tenant_id    TEXT        NOT NULL,
    order_id     UUID        NOT NULL,
    customer_id  UUID        NOT NULL,
    status       TEXT        NOT NULL,
    total_amount BIGINT      NOT NULL,
    currency     CHAR(3)     NOT NULL,
    promo_code   TEXT,
    ordered_at   TIMESTAMPTZ NOT NULL,
    version      BIGINT      NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
);

CREATE INDEX customer_orders_customer_idx ON customer_orders (tenant_id, customer_id);

-- Behaviour events, for event conditions ("added to cart at least 2 times in 7 days").
CREATE TABLE customer_events (
    tenant_id   TEXT        NOT NULL,
    event_id    UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    event_type  TEXT        NOT NULL,
    properties  JSONB       NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE INDEX customer_events_customer_type_idx ON customer_events (tenant_id, customer_id, event_type, occurred_at);
