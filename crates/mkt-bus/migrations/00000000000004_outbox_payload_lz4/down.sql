ALTER TABLE outbox_messages ALTER COLUMN payload SET COMPRESSION default;
