-- Lets the relay ask "is any pending row parked?" without scanning the pending rows, so
-- the common case (nothing parked) runs the plain oldest-first query.
CREATE INDEX outbox_messages_parked_idx ON outbox_messages (id) WHERE published_at IS NULL AND next_attempt_at IS NOT NULL;
