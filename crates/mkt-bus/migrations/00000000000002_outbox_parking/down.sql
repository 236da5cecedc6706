DROP INDEX outbox_messages_pending_aggregate_idx;
ALTER TABLE outbox_messages DROP COLUMN next_attempt_at;
