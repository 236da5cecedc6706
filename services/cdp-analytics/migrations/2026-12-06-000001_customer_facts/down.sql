DROP TABLE customer_facts;
