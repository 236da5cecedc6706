DROP TABLE processing_runs;
DROP TABLE customer_scores;
DROP TABLE timeline_events;
DROP TABLE orders;
DROP TABLE customers;
