-- Orders with their items. Money is integer minor units plus an ISO 4217 currency.
CREATE TABLE orders (
    tenant_id     TEXT        NOT NULL,
    id            UUID        NOT NULL,
    -- The store's own order id, unique per tenant when present.
    external_id   TEXT,
    customer_id   UUID        NOT NULL,
    total_amount  BIGINT      NOT NULL CHECK (total_amount >= 0),
    currency      CHAR(3)     NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled', 'refunded')),
    promo_code    TEXT,
    -- When the purchase happened (historical for backfills); created_at is when we learnt of it.
    ordered_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    version       BIGINT      NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE INDEX orders_tenant_customer_idx ON orders (tenant_id, customer_id, ordered_at DESC);
CREATE UNIQUE INDEX orders_tenant_external_id_key ON orders (tenant_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE order_items (
    tenant_id  TEXT    NOT NULL,
    order_id   UUID    NOT NULL,
    id         UUID    NOT NULL,
    position   INTEGER NOT NULL,
    product_id TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    price      BIGINT  NOT NULL CHECK (price >= 0),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    total      BIGINT  NOT NULL CHECK (total >= 0),
    PRIMARY KEY (tenant_id, order_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id) ON DELETE CASCADE
);

-- Behaviour events (seed 004's event tracking).
CREATE TABLE behaviour_events (
    tenant_id   TEXT        NOT NULL,
    id          UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    event_type  TEXT        NOT NULL,
    properties  JSONB       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE INDEX behaviour_events_customer_idx ON behaviour_events (tenant_id, customer_id, occurred_at DESC);

-- Idempotency keys: the first response to (tenant, key) is stored in the same
-- transaction as the write it describes, and replayed for a retry with the same body.
CREATE TABLE idempotency_keys (
    tenant_id     TEXT        NOT NULL,
    key           TEXT        NOT NULL,
    request_hash  TEXT        NOT NULL,
    status_code   SMALLINT    NOT NULL,
    response_body JSONB       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- GDPR erasure: the row stays (orders reference it) but every personal field is
-- wiped and `erased_at` set; erased customers are invisible to every read.
ALTER TABLE customers ADD COLUMN erased_at TIMESTAMPTZ;
