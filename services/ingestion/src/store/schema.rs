//! The ingestion schema as diesel sees it (`diesel print-schema --schema ingestion`).
#![allow(missing_docs)] // generated shape

diesel::table! {
    customers (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        external_id -> Nullable<Text>,
        email -> Text,
        name -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        phone -> Nullable<Text>,
        street -> Nullable<Text>,
        city -> Nullable<Text>,
        state -> Nullable<Text>,
        zip_code -> Nullable<Text>,
        country -> Nullable<Text>,
        loyalty_tier -> Nullable<Text>,
        attributes -> Jsonb,
        consent_email -> Bool,
        consent_sms -> Bool,
        consent_push -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int8,
    }
}
