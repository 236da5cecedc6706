-- A row the broker would not route (no queue bound for its routing key yet) is parked
-- until `next_attempt_at` instead of stalling the whole outbox; later rows of the same
-- aggregate and routing key wait behind it, so per-aggregate order holds.
ALTER TABLE outbox_messages ADD COLUMN next_attempt_at TIMESTAMPTZ;

CREATE INDEX outbox_messages_pending_aggregate_idx
    ON outbox_messages (aggregate_id, routing_key, id) WHERE published_at IS NULL;
