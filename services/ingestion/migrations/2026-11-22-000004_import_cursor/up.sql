-- The worker advances a cursor instead of deleting staged rows chunk by chunk: deleting
-- from the front of a queue table leaves dead index entries every later scan must step
-- over (quadratic on a million rows). Staged rows are dropped once the job completes.
ALTER TABLE import_jobs ADD COLUMN processed_through BIGINT NOT NULL DEFAULT 0;
