DROP TABLE inbox_messages;
DROP TABLE outbox_messages;
