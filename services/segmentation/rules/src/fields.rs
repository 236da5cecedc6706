//! The fields a rule may test, their types, and the seeds' aliases.

/// The type of a field, which decides the operators and values it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Free text.
    Text,
    /// A whole number (counts, money in minor units, scores, days).
    Integer,
    /// A decimal number (probabilities).
    Decimal,
    /// An instant (UTC).
    Timestamp,
    /// True or false.
    Boolean,
    /// A custom trait (`attributes.<key>`): any JSON value.
    Any,
    /// Behaviour: "performed event E ... times within D days".
    Event,
}

/// Where a field comes from (for the field list and for the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    /// The customer profile (ingestion's customer events).
    Profile,
    /// Order aggregates (ingestion's order events; refunds and cancellations excluded).
    Orders,
    /// Scores published by cdp-analytics.
    Analytics,
    /// Delivery and engagement events (campaign and webhook services).
    Engagement,
    /// Tracked behaviour events.
    Behaviour,
}

/// One field of the catalogue.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Field {
    /// Canonical name.
    pub name: &'static str,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Origin.
    pub source: FieldSource,
    /// What it means.
    pub description: &'static str,
}

const fn field(
    name: &'static str,
    field_type: FieldType,
    source: FieldSource,
    description: &'static str,
) -> Field {
    Field {
        name,
        field_type,
        source,
        description,
    }
}

use FieldSource::*;
use FieldType::*;

/// Every field, as `GET /segments/fields` lists them.
pub const FIELDS: &[Field] = &[
    field("name", Text, Profile, "Full name"),
    field("email", Text, Profile, "Email (lower-case)"),
    field("phone", Text, Profile, "Phone"),
    field("city", Text, Profile, "City"),
    field("state", Text, Profile, "State or region"),
    field("country", Text, Profile, "Country"),
    field("zip_code", Text, Profile, "Postal code"),
    field("created_at", Timestamp, Profile, "Sign-up time"),
    field("loyalty_tier", Text, Profile, "Loyalty tier"),
    field("consent_email", Boolean, Profile, "Email marketing consent"),
    field("consent_sms", Boolean, Profile, "SMS marketing consent"),
    field("consent_push", Boolean, Profile, "Push consent"),
    field(
        "orders_count",
        Integer,
        Orders,
        "Orders, refunds and cancellations excluded",
    ),
    field(
        "total_spent",
        Integer,
        Orders,
        "Net spend in minor units (cents)",
    ),
    field(
        "avg_order_value",
        Integer,
        Orders,
        "Average order value in minor units",
    ),
    field("first_order_at", Timestamp, Orders, "First order"),
    field("last_order_at", Timestamp, Orders, "Last order"),
    field(
        "last_order_days_ago",
        Integer,
        Orders,
        "Whole days since the last order",
    ),
    field(
        "segment",
        Text,
        Analytics,
        "RFM segment (Champions ... Lost)",
    ),
    field("recency_score", Integer, Analytics, "RFM recency score 1-5"),
    field(
        "frequency_score",
        Integer,
        Analytics,
        "RFM frequency score 1-5",
    ),
    field(
        "monetary_score",
        Integer,
        Analytics,
        "RFM monetary score 1-5",
    ),
    field(
        "clv",
        Integer,
        Analytics,
        "Predicted lifetime value in minor units",
    ),
    field("clv_tier", Text, Analytics, "high, medium or low"),
    field(
        "churn_risk",
        Text,
        Analytics,
        "active, at_risk, churning or churned",
    ),
    field(
        "churn_probability",
        Decimal,
        Analytics,
        "1 - P(alive), 0..1",
    ),
    field("emails_opened", Integer, Engagement, "Emails opened"),
    field("emails_clicked", Integer, Engagement, "Emails clicked"),
    field(
        "unsubscribed",
        Boolean,
        Engagement,
        "Unsubscribed from email",
    ),
    field(
        "event",
        Event,
        Behaviour,
        "Performed an event (with event_type, value = times, within_days)",
    ),
];

/// Seed names that mean a canonical field (seeds 000, 001 and 004).
const ALIASES: &[(&str, &str)] = &[
    ("totalSpend", "total_spent"),
    ("totalSpent", "total_spent"),
    ("orderCount", "orders_count"),
    ("order_count", "orders_count"),
    ("ordersCount", "orders_count"),
    ("userCreatedAt", "created_at"),
    ("createdAt", "created_at"),
    ("signup_date", "created_at"),
    ("lastOrderDaysAgo", "last_order_days_ago"),
    ("lastOrderAt", "last_order_at"),
    ("firstOrderAt", "first_order_at"),
    ("avgOrderValue", "avg_order_value"),
    ("zipCode", "zip_code"),
    ("loyaltyTier", "loyalty_tier"),
    ("rfm_segment", "segment"),
    ("rfmSegment", "segment"),
    ("clvTier", "clv_tier"),
    ("churnRisk", "churn_risk"),
    ("churnProbability", "churn_probability"),
];

/// The canonical field for a name or alias. `attributes.<key>` is a custom trait.
pub fn resolve(name: &str) -> Option<Field> {
    if let Some(key) = name.strip_prefix("attributes.") {
        let valid = !key.is_empty()
            && key.len() <= 64
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        return valid.then_some(Field {
            name: "attributes",
            field_type: Any,
            source: Profile,
            description: "Custom trait",
        });
    }
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canonical)| canonical);
    FIELDS.iter().find(|f| f.name == canonical).copied()
}

/// The canonical spelling of a field name (aliases replaced, traits kept).
pub fn canonical_name(name: &str) -> String {
    if name.starts_with("attributes.") {
        return name.to_owned();
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canonical)| canonical)
        .to_owned()
}
