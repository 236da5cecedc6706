-- The transactional outbox: a write and the events it produces commit together; the
-- relay publishes rows in `id` order and stamps `published_at` only after the broker
-- confirmed the message as routed.
CREATE TABLE outbox_messages (
    id           BIGSERIAL PRIMARY KEY,
    message_id   UUID        NOT NULL UNIQUE,
    tenant_id    TEXT        NOT NULL,
    aggregate_id TEXT        NOT NULL,
    routing_key  TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    -- W3C trace context captured at write time, so the publish joins the request's trace.
    headers      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    last_error   TEXT
);

-- The relay's hot query: the oldest unpublished rows.
CREATE INDEX outbox_messages_pending_idx ON outbox_messages (id) WHERE published_at IS NULL;
-- Pruning of published rows past retention.
CREATE INDEX outbox_messages_published_at_idx ON outbox_messages (published_at) WHERE published_at IS NOT NULL;

-- The inbox: one row per consumed message id, written in the same transaction as the
-- handler's effects, so a redelivered message has no second effect.
CREATE TABLE inbox_messages (
    message_id  UUID        PRIMARY KEY,
    routing_key TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX inbox_messages_received_at_idx ON inbox_messages (received_at);
