//! The segmentation schema as diesel sees it (`diesel print-schema --schema segmentation`).
#![allow(missing_docs)] // generated shape

diesel::table! {
    customer_profiles (tenant_id, customer_id) {
        tenant_id -> Text,
        customer_id -> Uuid,
        external_id -> Nullable<Text>,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        phone -> Nullable<Text>,
        city -> Nullable<Text>,
        state -> Nullable<Text>,
        zip_code -> Nullable<Text>,
        country -> Nullable<Text>,
        loyalty_tier -> Nullable<Text>,
        attributes -> Jsonb,
        consent_email -> Bool,
        consent_sms -> Bool,
        consent_push -> Bool,
        signed_up_at -> Nullable<Timestamptz>,
        version -> Int8,
        erased_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        orders_count -> Int8,
        total_spent -> Int8,
        first_order_at -> Nullable<Timestamptz>,
        last_order_at -> Nullable<Timestamptz>,
        revision -> Int8,
    }
}

diesel::table! {
    customer_orders (tenant_id, order_id) {
        tenant_id -> Text,
        order_id -> Uuid,
        customer_id -> Uuid,
        status -> Text,
        total_amount -> Int8,
        currency -> Bpchar,
        promo_code -> Nullable<Text>,
        ordered_at -> Timestamptz,
        version -> Int8,
    }
}

diesel::table! {
    customer_events (tenant_id, event_id) {
        tenant_id -> Text,
        event_id -> Uuid,
        customer_id -> Uuid,
        event_type -> Text,
        properties -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    customer_scores (tenant_id, customer_id) {
        tenant_id -> Text,
        customer_id -> Uuid,
        rfm_segment -> Nullable<Text>,
        recency_score -> Nullable<Int4>,
        frequency_score -> Nullable<Int4>,
        monetary_score -> Nullable<Int4>,
        clv -> Nullable<Int8>,
        clv_tier -> Nullable<Text>,
        churn_risk -> Nullable<Text>,
        churn_probability -> Nullable<Float8>,
        emails_opened -> Int8,
        emails_clicked -> Int8,
        unsubscribed -> Bool,
        updated_at -> Timestamptz,
        scores_computed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    customer_engagements (tenant_id, customer_id, message_id, kind) {
        tenant_id -> Text,
        customer_id -> Uuid,
        message_id -> Text,
        kind -> Text,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    segments (tenant_id, id) {
        tenant_id -> Text,
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        kind -> Text,
        rules -> Nullable<Jsonb>,
        member_ids -> Array<Uuid>,
        is_active -> Bool,
        cached_count -> Int8,
        count_cached_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        imported_rows -> Nullable<Int8>,
        unmatched_rows -> Nullable<Int8>,
    }
}

diesel::table! {
    segment_members (tenant_id, segment_id, customer_id) {
        tenant_id -> Text,
        segment_id -> Uuid,
        customer_id -> Uuid,
        entered_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    customer_profiles,
    customer_orders,
    customer_events,
    customer_scores,
    customer_engagements,
    segments,
    segment_members,
);
