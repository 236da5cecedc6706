-- Large payloads (a processing run writes about a thousand 100 kB score messages) were
-- compressed with pglz on their way into TOAST, at tens of MB/s: seconds of a run.
-- lz4 compresses them several times faster at a similar ratio. Needs a server built
-- with lz4, as the official PostgreSQL packages and images are since 14.
ALTER TABLE outbox_messages ALTER COLUMN payload SET COMPRESSION lz4;
