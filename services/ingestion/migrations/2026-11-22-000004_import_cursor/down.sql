ALTER TABLE import_jobs DROP COLUMN processed_through;
