//! The cdp_analytics schema as diesel sees it (`diesel print-schema --schema cdp_analytics`).
#![allow(missing_docs)] // generated shape

diesel::table! {
    customers (tenant_id, customer_id) {
        tenant_id -> Text,
        customer_id -> Uuid,
        external_id -> Nullable<Text>,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        signed_up_at -> Nullable<Timestamptz>,
        version -> Int8,
        erased_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    orders (tenant_id, order_id) {
        tenant_id -> Text,
        order_id -> Uuid,
        customer_id -> Uuid,
        external_id -> Nullable<Text>,
        status -> Text,
        total_amount -> Int8,
        currency -> Bpchar,
        items_count -> Int4,
        ordered_at -> Timestamptz,
        version -> Int8,
        changed_at -> Timestamptz,
    }
}

diesel::table! {
    timeline_events (tenant_id, event_id) {
        tenant_id -> Text,
        event_id -> Text,
        customer_id -> Uuid,
        kind -> Text,
        occurred_at -> Timestamptz,
        details -> Jsonb,
    }
}

diesel::table! {
    customer_scores (tenant_id, customer_id) {
        tenant_id -> Text,
        customer_id -> Uuid,
        run_id -> Uuid,
        as_of -> Timestamptz,
        recency_days -> Nullable<Int4>,
        frequency -> Nullable<Int4>,
        monetary -> Nullable<Int8>,
        recency_score -> Nullable<Int4>,
        frequency_score -> Nullable<Int4>,
        monetary_score -> Nullable<Int4>,
        rfm_score -> Nullable<Text>,
        rfm_segment -> Nullable<Text>,
        historical_value -> Nullable<Int8>,
        predicted_value -> Nullable<Int8>,
        expected_purchases -> Nullable<Float8>,
        clv_tier -> Nullable<Text>,
        churn_probability -> Nullable<Float8>,
        churn_risk -> Nullable<Text>,
        last_order_at -> Nullable<Timestamptz>,
        currency -> Nullable<Bpchar>,
    }
}

diesel::table! {
    processing_runs (id) {
        id -> Uuid,
        tenant_id -> Text,
        analyses -> Array<Text>,
        force -> Bool,
        as_of -> Nullable<Timestamptz>,
        status -> Text,
        trigger -> Text,
        requested_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        progress -> Float8,
        records_processed -> Int8,
        results -> Nullable<Jsonb>,
        model -> Nullable<Jsonb>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    tenant_settings (tenant_id) {
        tenant_id -> Text,
        rfm_rules -> Nullable<Jsonb>,
        schedule_enabled -> Bool,
        schedule_hour_utc -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    customer_facts (tenant_id, customer_id, currency) {
        tenant_id -> Text,
        customer_id -> Uuid,
        currency -> Bpchar,
        orders -> Int8,
        spent -> Int8,
        first_day -> Int8,
        last_day -> Int8,
        purchase_days -> Int8,
        repeat_spent -> Int8,
        last_order_at -> Timestamptz,
    }
}

diesel::table! {
    score_partitions (tenant_id) {
        tenant_id -> Text,
        run_id -> Uuid,
        attached_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(customers, orders, customer_scores);

// The three integration tables below are what tenant integrations left behind when
// they moved to ingestion: no code of this service reads them. They stay until every
// deployment has run `ingestion migrate-integrations`; a later migration drops them
// (docs/integrations.md, "Moving from cdp-analytics").

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

diesel::table! {
    integration_orders (tenant_id, integration_id, external_order_id) {
        tenant_id -> Text,
        integration_id -> Uuid,
        external_order_id -> Text,
        order_id -> Uuid,
        source_status -> Text,
        synced_at -> Timestamptz,
    }
}
