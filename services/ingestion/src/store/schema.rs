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
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    orders (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        external_id -> Nullable<Text>,
        customer_id -> Uuid,
        total_amount -> Int8,
        currency -> Bpchar,
        status -> Text,
        promo_code -> Nullable<Text>,
        ordered_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> Int8,
    }
}

diesel::table! {
    order_items (tenant_id, order_id, id) {
        tenant_id -> Text,
        order_id -> Uuid,
        id -> Uuid,
        position -> Int4,
        product_id -> Text,
        name -> Text,
        price -> Int8,
        quantity -> Int4,
        total -> Int8,
    }
}

diesel::table! {
    behaviour_events (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        customer_id -> Uuid,
        event_type -> Text,
        properties -> Jsonb,
        occurred_at -> Timestamptz,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key) {
        tenant_id -> Text,
        key -> Text,
        request_hash -> Text,
        status_code -> Int2,
        response_body -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    import_jobs (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        kind -> Text,
        status -> Text,
        header -> Array<Text>,
        total_rows -> Int8,
        processed_rows -> Int8,
        succeeded_rows -> Int8,
        rejected_rows -> Int8,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        processed_through -> Int8,
    }
}

diesel::table! {
    import_rows (tenant_id, job_id, row_number) {
        tenant_id -> Text,
        job_id -> Uuid,
        row_number -> Int8,
        fields -> Array<Text>,
    }
}

diesel::table! {
    import_rejections (tenant_id, job_id, row_number) {
        tenant_id -> Text,
        job_id -> Uuid,
        row_number -> Int8,
        reason -> Text,
        fields -> Array<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(customers, orders, order_items, behaviour_events);

diesel::table! {
    tenant_integrations (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        integration_type -> Text,
        account_name -> Text,
        environment -> Text,
        is_active -> Bool,
        credentials_key_id -> Text,
        credentials_nonce -> Bytea,
        credentials_ciphertext -> Bytea,
        app_key_last4 -> Text,
        last_sync_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    integration_sync_runs (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        integration_id -> Uuid,
        status -> Text,
        phase -> Text,
        orders_since -> Timestamptz,
        orders_until -> Timestamptz,
        orders_cursor -> Nullable<Timestamptz>,
        counts -> Jsonb,
        item_errors -> Jsonb,
        error -> Nullable<Text>,
        attempts -> Int4,
        lease_until -> Nullable<Timestamptz>,
        requested_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}
