//! Loads what rules can see about a few customers, in the reference evaluator's shape
//! (the consumers' incremental membership path evaluates each touched customer with it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use super::schema::{customer_events, customer_profiles, customer_scores};
use crate::domain::rules::evaluate::{Customer, EventRecord};

type ProfileColumns = (
    Uuid,
    (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (bool, bool, bool),
    Option<DateTime<Utc>>,
    serde_json::Value,
    (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>),
);

type ScoreColumns = (
    Uuid,
    (
        Option<String>,
        Option<i32>,
        Option<i32>,
        Option<i32>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<f64>,
    ),
    (i64, i64, bool),
);

fn put<T: Into<Value>>(
    fields: &mut std::collections::BTreeMap<String, Value>,
    k: &str,
    v: Option<T>,
) {
    if let Some(v) = v {
        fields.insert(k.to_owned(), v.into());
    }
}

/// The live (not erased) customers among `ids`, each with its profile, order aggregates,
/// scores, engagement and, when `events_since` is given, its behaviour events since then.
/// Customers not returned are unknown or erased: they match no segment.
pub async fn load(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
    events_since: Option<DateTime<Utc>>,
) -> QueryResult<HashMap<Uuid, Customer>> {
    use customer_profiles::dsl as p;
    let profiles: Vec<ProfileColumns> = p::customer_profiles
        .filter(p::tenant_id.eq(tenant))
        .filter(p::customer_id.eq_any(ids))
        .filter(p::erased_at.is_null())
        .select((
            p::customer_id,
            (
                p::name,
                p::email,
                p::phone,
                p::city,
                p::state,
                p::country,
                p::zip_code,
                p::loyalty_tier,
            ),
            (p::consent_email, p::consent_sms, p::consent_push),
            p::signed_up_at,
            p::attributes,
            (
                p::orders_count,
                p::total_spent,
                p::first_order_at,
                p::last_order_at,
            ),
        ))
        .load(conn)
        .await?;
    let mut customers = HashMap::with_capacity(profiles.len());
    for (id, text, consent, signed_up_at, attributes, orders) in profiles {
        let mut c = Customer::default();
        let f = &mut c.fields;
        let (name, email, phone, city, state, country, zip_code, loyalty_tier) = text;
        for (k, v) in [
            ("name", name),
            ("email", email),
            ("phone", phone),
            ("city", city),
            ("state", state),
            ("country", country),
            ("zip_code", zip_code),
            ("loyalty_tier", loyalty_tier),
        ] {
            put(f, k, v);
        }
        f.insert("consent_email".into(), json!(consent.0));
        f.insert("consent_sms".into(), json!(consent.1));
        f.insert("consent_push".into(), json!(consent.2));
        put(f, "created_at", signed_up_at.map(|t| t.to_rfc3339()));
        f.insert("orders_count".into(), json!(orders.0));
        f.insert("total_spent".into(), json!(orders.1));
        put(f, "first_order_at", orders.2.map(|t| t.to_rfc3339()));
        put(f, "last_order_at", orders.3.map(|t| t.to_rfc3339()));
        // No engagement known yet means none happened (as the SQL path's COALESCE).
        f.insert("emails_opened".into(), json!(0));
        f.insert("emails_clicked".into(), json!(0));
        f.insert("unsubscribed".into(), json!(false));
        if let Value::Object(map) = attributes {
            c.attributes = map;
        }
        customers.insert(id, c);
    }
    let live: Vec<Uuid> = customers.keys().copied().collect();
    if live.is_empty() {
        return Ok(customers);
    }
    use customer_scores::dsl as s;
    let scores: Vec<ScoreColumns> = s::customer_scores
        .filter(s::tenant_id.eq(tenant))
        .filter(s::customer_id.eq_any(&live))
        .select((
            s::customer_id,
            (
                s::rfm_segment,
                s::recency_score,
                s::frequency_score,
                s::monetary_score,
                s::clv,
                s::clv_tier,
                s::churn_risk,
                s::churn_probability,
            ),
            (s::emails_opened, s::emails_clicked, s::unsubscribed),
        ))
        .load(conn)
        .await?;
    for (id, analytics, engagement) in scores {
        let Some(c) = customers.get_mut(&id) else {
            continue;
        };
        let f = &mut c.fields;
        let (segment, recency, frequency, monetary, clv, clv_tier, churn_risk, churn_p) = analytics;
        put(f, "segment", segment);
        put(f, "recency_score", recency);
        put(f, "frequency_score", frequency);
        put(f, "monetary_score", monetary);
        put(f, "clv", clv);
        put(f, "clv_tier", clv_tier);
        put(f, "churn_risk", churn_risk);
        put(f, "churn_probability", churn_p);
        f.insert("emails_opened".into(), json!(engagement.0));
        f.insert("emails_clicked".into(), json!(engagement.1));
        f.insert("unsubscribed".into(), json!(engagement.2));
    }
    if let Some(since) = events_since {
        use customer_events::dsl as e;
        let events: Vec<(Uuid, String, DateTime<Utc>, Value)> = e::customer_events
            .filter(e::tenant_id.eq(tenant))
            .filter(e::customer_id.eq_any(&live))
            .filter(e::occurred_at.ge(since))
            .select((e::customer_id, e::event_type, e::occurred_at, e::properties))
            .load(conn)
            .await?;
        for (id, event_type, occurred_at, properties) in events {
            if let Some(c) = customers.get_mut(&id) {
                c.events.push(EventRecord {
                    event_type,
                    occurred_at,
                    properties,
                });
            }
        }
    }
    Ok(customers)
}

/// The live customers whose `key` is one of `values` (emails already lower-case).
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    key: crate::domain::segment::ImportKey,
    values: &[String],
) -> QueryResult<Vec<Uuid>> {
    use crate::domain::segment::ImportKey;
    use customer_profiles::dsl as p;
    let live = p::customer_profiles
        .filter(p::tenant_id.eq(tenant))
        .filter(p::erased_at.is_null())
        .select(p::customer_id)
        .into_boxed();
    let query = match key {
        ImportKey::Email => live.filter(p::email.eq_any(values)),
        ImportKey::ExternalId => live.filter(p::external_id.eq_any(values)),
        ImportKey::CustomerId => {
            let ids: Vec<Uuid> = values
                .iter()
                .filter_map(|v| Uuid::parse_str(v).ok())
                .collect();
            live.filter(p::customer_id.eq_any(ids))
        }
    };
    query.load(conn).await
}

/// What a members page and an export show of one customer.
#[derive(Debug, Clone, Queryable)]
pub struct MemberRow {
    /// Id.
    pub customer_id: Uuid,
    /// The store's own id.
    pub external_id: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Orders (refunds and cancellations excluded).
    pub orders_count: i64,
    /// Net spend, minor units.
    pub total_spent: i64,
    /// Last order.
    pub last_order_at: Option<DateTime<Utc>>,
    /// RFM segment.
    pub rfm_segment: Option<String>,
    /// 1-5.
    pub recency_score: Option<i32>,
    /// 1-5.
    pub frequency_score: Option<i32>,
    /// 1-5.
    pub monetary_score: Option<i32>,
    /// Predicted CLV, minor units.
    pub clv: Option<i64>,
    /// high | medium | low.
    pub clv_tier: Option<String>,
    /// Churn risk level.
    pub churn_risk: Option<String>,
}

/// Display rows of `ids` (in id order); erased customers are left out.
pub async fn member_rows(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
) -> QueryResult<Vec<MemberRow>> {
    use customer_profiles::dsl as p;
    use customer_scores::dsl as s;
    p::customer_profiles
        .left_join(
            s::customer_scores.on(s::tenant_id
                .eq(p::tenant_id)
                .and(s::customer_id.eq(p::customer_id))),
        )
        .filter(p::tenant_id.eq(tenant))
        .filter(p::customer_id.eq_any(ids))
        .filter(p::erased_at.is_null())
        .order(p::customer_id)
        .select((
            p::customer_id,
            p::external_id,
            p::name,
            p::email,
            p::phone,
            p::city,
            p::state,
            p::country,
            p::orders_count,
            p::total_spent,
            p::last_order_at,
            s::rfm_segment.nullable(),
            s::recency_score.nullable(),
            s::frequency_score.nullable(),
            s::monetary_score.nullable(),
            s::clv.nullable(),
            s::clv_tier.nullable(),
            s::churn_risk.nullable(),
        ))
        .load(conn)
        .await
}
