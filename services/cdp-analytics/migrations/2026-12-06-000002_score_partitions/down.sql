CREATE TABLE customer_scores_unpartitioned (LIKE customer_scores INCLUDING ALL);
INSERT INTO customer_scores_unpartitioned SELECT * FROM customer_scores;
DROP TABLE customer_scores;
DROP TABLE score_partitions;
ALTER TABLE customer_scores_unpartitioned RENAME TO customer_scores;
ALTER TABLE customer_scores SET (fillfactor = 50);
ALTER TABLE customer_scores RENAME CONSTRAINT customer_scores_unpartitioned_pkey TO customer_scores_pkey;
