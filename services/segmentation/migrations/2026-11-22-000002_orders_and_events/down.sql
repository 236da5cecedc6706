DROP TABLE customer_events;
DROP TABLE customer_orders;
ALTER TABLE customer_profiles DROP COLUMN orders_count, DROP COLUMN total_spent, DROP COLUMN first_order_at, DROP COLUMN last_order_at;
