DROP INDEX customer_profiles_email_idx;
DROP INDEX customer_profiles_external_id_idx;
DROP TABLE customer_engagements;
ALTER TABLE customer_scores DROP COLUMN scores_computed_at;
ALTER TABLE segments DROP COLUMN imported_rows, DROP COLUMN unmatched_rows;
DROP TABLE segment_members;
DROP INDEX customer_profiles_revision_idx;
ALTER TABLE customer_profiles DROP COLUMN revision;
