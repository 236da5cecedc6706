DROP TABLE customer_profiles;
