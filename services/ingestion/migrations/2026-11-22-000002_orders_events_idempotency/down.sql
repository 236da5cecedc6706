ALTER TABLE customers DROP COLUMN erased_at;
DROP TABLE idempotency_keys;
DROP TABLE behaviour_events;
DROP TABLE order_items;
DROP TABLE orders;
