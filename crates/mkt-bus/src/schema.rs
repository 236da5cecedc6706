//! The bus tables as diesel sees them (`diesel print-schema` of the bus migration).
#![allow(missing_docs)] // generated shape

diesel::table! {
    /// Events waiting to be (or already) published; see the migration for columns.
    outbox_messages (id) {
        id -> Int8,
        message_id -> Uuid,
        tenant_id -> Text,
        aggregate_id -> Text,
        routing_key -> Text,
        payload -> Bytea,
        headers -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// Message ids already consumed by this service.
    inbox_messages (message_id) {
        message_id -> Uuid,
        routing_key -> Text,
        received_at -> Timestamptz,
    }
}
