-- A processing run rewrites every scored customer of a tenant (T grows every day, so
-- predicted value, tier and churn probability change for nearly all of them). With
-- three secondary indexes over exactly those columns, every nightly update was a
-- non-HOT update writing four index entries: 26 s of a 1M-customer run's 37 s
-- (docs/benchmarks.md, "CDP analytics"). Without them, and with half of each page
-- left free, the nightly upsert is a heap-only (HOT) update: the new version goes in
-- the same page and no index is touched. The analytics lists they served scan the
-- tenant's rows instead (their statistics scan them all already).
DROP INDEX customer_scores_segment_idx;
DROP INDEX customer_scores_tier_idx;
DROP INDEX customer_scores_risk_idx;
ALTER TABLE customer_scores SET (fillfactor = 50);
