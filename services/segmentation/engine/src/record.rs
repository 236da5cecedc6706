//! Everything a rule can read about one customer, typed: what the engine indexes and
//! what `store::snapshot` loads from PostgreSQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::semantics::{from_micros, record_micros};
use mkt_segment_rules::evaluate::{Customer, EventRecord};

/// One customer: profile, order aggregates, scores and engagement, custom traits and
/// behaviour events. Instants are kept to the microsecond (PostgreSQL's precision):
/// the engine and [`CustomerRecord::to_reference`] both drop anything finer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerRecord {
    /// Customer id.
    pub id: Uuid,
    /// Full name.
    pub name: Option<String>,
    /// Email as ingestion stored it (lower-cased); rules compare text case-insensitively.
    pub email: Option<String>,
    /// Phone number as given to ingestion (not normalised); compared case-insensitively as text.
    pub phone: Option<String>,
    /// City as given; rules compare it case-insensitively.
    pub city: Option<String>,
    /// State or region as given; rules compare it case-insensitively.
    pub state: Option<String>,
    /// Country as given (free text, not an ISO code); rules compare it case-insensitively.
    pub country: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// The store's tier label (free text); rules compare it case-insensitively.
    pub loyalty_tier: Option<String>,
    /// Sign-up time (the `created_at` field of rules).
    pub signed_up_at: Option<DateTime<Utc>>,
    /// Email marketing consent.
    pub consent_email: bool,
    /// SMS marketing consent.
    pub consent_sms: bool,
    /// Push consent.
    pub consent_push: bool,
    /// Orders, refunds and cancellations excluded.
    pub orders_count: i64,
    /// Net spend in minor units.
    pub total_spent: i64,
    /// Instant of the first counted order (`None`: never ordered); kept to the microsecond.
    pub first_order_at: Option<DateTime<Utc>>,
    /// Instant of the latest counted order; `last_order_days_ago` counts whole days from it.
    pub last_order_at: Option<DateTime<Utc>>,
    /// Analytics scores and engagement (`None`: no `customer_scores` row yet).
    pub scores: Option<Scores>,
    /// Custom traits (`attributes.<key>`).
    pub attributes: Map<String, Value>,
    /// Behaviour events.
    pub events: Vec<BehaviourEvent>,
}

/// A customer's `customer_scores` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// RFM segment (the `segment` field).
    pub rfm_segment: Option<String>,
    /// RFM recency score.
    pub recency_score: Option<i32>,
    /// RFM frequency score.
    pub frequency_score: Option<i32>,
    /// RFM monetary score.
    pub monetary_score: Option<i32>,
    /// Predicted lifetime value in minor units.
    pub clv: Option<i64>,
    /// high, medium or low.
    pub clv_tier: Option<String>,
    /// active, at_risk, churning or churned.
    pub churn_risk: Option<String>,
    /// 1 - P(alive). Not-a-number and infinities read as unset (JSON has neither).
    pub churn_probability: Option<f64>,
    /// Campaign emails the customer opened, as cdp-analytics last counted them.
    pub emails_opened: i64,
    /// Campaign emails in which the customer clicked a link, as cdp-analytics last counted them.
    pub emails_clicked: i64,
    /// Whether the customer unsubscribed from email (kept apart from the consent flags).
    pub unsubscribed: bool,
}

/// A tracked behaviour event.
#[derive(Debug, Clone, PartialEq)]
pub struct BehaviourEvent {
    /// Type name (compared exactly, case included).
    pub event_type: String,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// The event's properties: always a JSON object (`{}` when none were sent).
    pub properties: Value,
}

/// `t` as the engine keeps it.
fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(record_micros(t))
}

impl CustomerRecord {
    /// A customer with nothing known but its id (what a stub profile holds).
    pub fn new(id: Uuid) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }

    /// The same customer in the reference evaluator's shape, with the field names and
    /// defaults the SQL path uses (no scores row: nothing opened, clicked or
    /// unsubscribed).
    pub fn to_reference(&self) -> Customer {
        let mut fields = BTreeMap::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(name.to_owned(), value);
            }
        };
        let text = |v: &Option<String>| v.clone().map(Value::String);
        let instant = |v: Option<DateTime<Utc>>| v.map(|t| Value::String(stored(t).to_rfc3339()));
        put("name", text(&self.name));
        put("email", text(&self.email));
        put("phone", text(&self.phone));
        put("city", text(&self.city));
        put("state", text(&self.state));
        put("country", text(&self.country));
        put("zip_code", text(&self.zip_code));
        put("loyalty_tier", text(&self.loyalty_tier));
        put("created_at", instant(self.signed_up_at));
        put("consent_email", Some(Value::Bool(self.consent_email)));
        put("consent_sms", Some(Value::Bool(self.consent_sms)));
        put("consent_push", Some(Value::Bool(self.consent_push)));
        put("orders_count", Some(Value::from(self.orders_count)));
        put("total_spent", Some(Value::from(self.total_spent)));
        put("first_order_at", instant(self.first_order_at));
        put("last_order_at", instant(self.last_order_at));
        let none = Scores::default();
        let scores = self.scores.as_ref().unwrap_or(&none);
        put("segment", text(&scores.rfm_segment));
        put("recency_score", scores.recency_score.map(Value::from));
        put("frequency_score", scores.frequency_score.map(Value::from));
        put("monetary_score", scores.monetary_score.map(Value::from));
        put("clv", scores.clv.map(Value::from));
        put("clv_tier", text(&scores.clv_tier));
        put("churn_risk", text(&scores.churn_risk));
        put(
            "churn_probability",
            scores.churn_probability.map(Value::from),
        );
        put("emails_opened", Some(Value::from(scores.emails_opened)));
        put("emails_clicked", Some(Value::from(scores.emails_clicked)));
        put("unsubscribed", Some(Value::Bool(scores.unsubscribed)));
        Customer {
            fields,
            attributes: self.attributes.clone(),
            events: self
                .events
                .iter()
                .map(|e| EventRecord {
                    event_type: e.event_type.clone(),
                    occurred_at: stored(e.occurred_at),
                    properties: e.properties.clone(),
                })
                .collect(),
        }
    }
}
