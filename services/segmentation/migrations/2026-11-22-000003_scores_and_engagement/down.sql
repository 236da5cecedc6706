DROP TABLE customer_scores;
