//! The reference evaluator: a direct reading of the rule semantics over one customer.
//! The fast engine must agree with it (property-tested).
//!
//! Semantics worth knowing:
//! - Text comparisons ignore case (`CA` equals `ca`).
//! - A missing value fails every test except `is_not_set` and the negative operators
//!   (`not_equals`, `not_in`, `not_contains`), which hold: a customer with no state is
//!   "not in CA".
//! - `between` is inclusive at both ends; `before`/`after` are strict; only numbers and
//!   instants order (text does not: collations differ between systems).
//! - `newer_than_days N` holds for instants within the last N days (inclusive);
//!   `older_than_days N` for instants before that.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Condition, Group, Logic};

/// A tracked behaviour event of a customer.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Type name.
    pub event_type: String,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// The event's properties: a JSON object (`{}` when none); `property` filters read its
    /// top-level keys.
    pub properties: Value,
}

/// Everything a rule can read about one customer.
#[derive(Debug, Clone, Default)]
pub struct Customer {
    /// Canonical field name -> value (timestamps as RFC 3339 strings; absent = unset).
    pub fields: BTreeMap<String, Value>,
    /// Custom traits.
    pub attributes: serde_json::Map<String, Value>,
    /// Behaviour events.
    pub events: Vec<EventRecord>,
}

impl Customer {
    fn value(&self, field: &str, now: DateTime<Utc>) -> Option<Value> {
        if let Some(key) = field.strip_prefix("attributes.") {
            return self.attributes.get(key).filter(|v| !v.is_null()).cloned();
        }
        match field {
            "last_order_days_ago" => {
                let last = self.timestamp("last_order_at")?;
                Some(Value::from((now - last).num_days()))
            }
            "avg_order_value" => {
                let count = self
                    .fields
                    .get("orders_count")?
                    .as_i64()
                    .filter(|c| *c > 0)?;
                let spent = self.fields.get("total_spent")?.as_i64()?;
                Some(Value::from(spent / count))
            }
            _ => self.fields.get(field).filter(|v| !v.is_null()).cloned(),
        }
    }

    fn timestamp(&self, field: &str) -> Option<DateTime<Utc>> {
        parse_time(self.fields.get(field)?)
    }
}

fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Orders two values of the same kind: numbers numerically, instants in time, text
/// case-insensitively; values of different kinds do not compare.
fn compare(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) {
        return a.partial_cmp(&b);
    }
    if let (Some(a), Some(b)) = (parse_time(left), parse_time(right)) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        return Some(a.to_lowercase().cmp(&b.to_lowercase()));
    }
    if let (Some(a), Some(b)) = (left.as_bool(), right.as_bool()) {
        return Some(a.cmp(&b));
    }
    None
}

/// Orders values for `greater_than`, `before`, `between`...: numbers numerically and
/// instants in time; text does not order (collations differ between systems).
fn order(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(a), Some(b)) = (left.as_f64(), right.as_f64()) {
        return a.partial_cmp(&b);
    }
    match (parse_time(left), parse_time(right)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => None,
    }
}

fn equal(left: &Value, right: &Value) -> bool {
    compare(left, right) == Some(std::cmp::Ordering::Equal)
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn matches_condition(condition: &Condition, customer: &Customer, now: DateTime<Utc>) -> bool {
    if condition.field == "event" {
        return matches_event(condition, customer, now);
    }
    let actual = customer.value(&condition.field, now);
    let expected = condition.value.as_ref();
    let op = condition.operator.as_str();
    let Some(actual) = actual else {
        return matches!(op, "is_not_set" | "not_equals" | "not_in" | "not_contains");
    };
    let list = || {
        expected
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let substring = |f: fn(&str, &str) -> bool| match (text(&actual), expected.and_then(text)) {
        (Some(a), Some(e)) => f(&a, &e),
        _ => false,
    };
    let ordering = || expected.and_then(|e| order(&actual, e));
    match op {
        "is_set" => true,
        "is_not_set" => false,
        "equals" => expected.is_some_and(|e| equal(&actual, e)),
        "not_equals" => !expected.is_some_and(|e| equal(&actual, e)),
        "in" => list().iter().any(|e| equal(&actual, e)),
        "not_in" => !list().iter().any(|e| equal(&actual, e)),
        "greater_than" | "after" => ordering() == Some(std::cmp::Ordering::Greater),
        "greater_than_or_equals" => ordering().is_some_and(|o| o.is_ge()),
        "less_than" | "before" => ordering() == Some(std::cmp::Ordering::Less),
        "less_than_or_equals" => ordering().is_some_and(|o| o.is_le()),
        "between" => {
            let low = expected
                .and_then(|e| order(&actual, e))
                .is_some_and(|o| o.is_ge());
            let high = condition
                .value2
                .as_ref()
                .and_then(|e| order(&actual, e))
                .is_some_and(|o| o.is_le());
            low && high
        }
        "contains" => substring(|a, e| a.contains(e)),
        "not_contains" => !substring(|a, e| a.contains(e)),
        "starts_with" => substring(|a, e| a.starts_with(e)),
        "ends_with" => substring(|a, e| a.ends_with(e)),
        "newer_than_days" | "older_than_days" => {
            let (Some(at), Some(days)) = (parse_time(&actual), expected.and_then(Value::as_i64))
            else {
                return false;
            };
            let Some(cutoff) = super::sql::days_before(now, days) else {
                return false;
            };
            if op == "newer_than_days" {
                at >= cutoff
            } else {
                at < cutoff
            }
        }
        _ => false,
    }
}

fn matches_event(condition: &Condition, customer: &Customer, now: DateTime<Utc>) -> bool {
    let (Some(event_type), Some(days)) = (condition.event_type.as_deref(), condition.within_days)
    else {
        return false;
    };
    let since = super::sql::days_before(now, days).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let count = customer
        .events
        .iter()
        .filter(|e| e.event_type == event_type && e.occurred_at >= since && e.occurred_at <= now)
        .filter(|e| {
            condition.property.as_ref().is_none_or(|p| {
                e.properties
                    .get(&p.name)
                    .is_some_and(|v| equal(v, &p.value))
            })
        })
        .count() as i64;
    let times = condition
        .value
        .as_ref()
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match condition.operator.as_str() {
        "performed_at_least" => count >= times,
        "performed_at_most" => count <= times,
        "performed_exactly" => count == times,
        "not_performed" => count == 0,
        _ => false,
    }
}

/// Whether `customer` is in the segment `group` describes, as of `now`.
pub fn evaluate(group: &Group, customer: &Customer, now: DateTime<Utc>) -> bool {
    let mut results = group
        .conditions
        .iter()
        .map(|c| matches_condition(c, customer, now))
        .chain(group.groups.iter().map(|g| evaluate(g, customer, now)));
    let result = match group.logic {
        Logic::And => results.all(|r| r),
        Logic::Or => results.any(|r| r),
    };
    result != group.negate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::normalise;
    use chrono::Duration;
    use serde_json::json;

    fn customer(fields: Value) -> Customer {
        let fields = fields
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Customer {
            fields,
            ..Default::default()
        }
    }

    #[test]
    fn seed_000_preview_rule_over_hand_computed_customers() {
        let rules = json!({"groups": [
            {"conditions": [
                {"field": "totalSpend", "operator": "greaterThan", "value": 10000},
                {"field": "state", "operator": "equals", "value": "CA"}
            ]},
            {"conditions": [{"field": "orderCount", "operator": "greaterThanOrEqual", "value": 5}]}
        ]});
        let (group, _) = normalise(Some(&rules), None).expect("valid");
        let now = Utc::now();
        let rich_ca = customer(json!({"total_spent": 20000, "state": "ca", "orders_count": 1}));
        let rich_tx = customer(json!({"total_spent": 20000, "state": "TX", "orders_count": 1}));
        let loyal_tx = customer(json!({"total_spent": 100, "state": "TX", "orders_count": 5}));
        let nobody = customer(json!({}));
        let members: Vec<bool> = [&rich_ca, &rich_tx, &loyal_tx, &nobody]
            .iter()
            .map(|c| evaluate(&group, c, now))
            .collect();
        assert_eq!(members, vec![true, false, true, false]);
    }

    #[test]
    fn negation_time_windows_missing_values_and_events() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().expect("time");
        let rules = json!({"logic": "AND", "conditions": [
            {"field": "created_at", "operator": "newer_than_days", "value": 14},
            {"field": "event", "operator": "performed_at_least", "value": 2, "event_type": "add_to_cart", "within_days": 7,
             "property": {"name": "category", "value": "shoes"}}
        ], "groups": [{"logic": "OR", "negate": true, "conditions": [
            {"field": "state", "operator": "in", "value": ["NY", "NJ"]}
        ]}]});
        let (group, _) = normalise(Some(&rules), None).expect("valid");
        let cart = |days: i64, category: &str| EventRecord {
            event_type: "add_to_cart".into(),
            occurred_at: now - Duration::days(days),
            properties: json!({"category": category}),
        };
        let mut fresh = customer(json!({"created_at": "2026-11-15T00:00:00Z", "state": "CA"}));
        fresh.events = vec![cart(1, "shoes"), cart(3, "shoes"), cart(2, "hats")];
        assert!(evaluate(&group, &fresh, now));
        let mut in_ny = fresh.clone();
        in_ny.fields.insert("state".into(), json!("ny"));
        assert!(!evaluate(&group, &in_ny, now), "negated group excludes NY");
        let mut stateless = fresh.clone();
        stateless.fields.remove("state");
        assert!(
            evaluate(&group, &stateless, now),
            "no state is not in NY/NJ"
        );
        let mut old_carts = fresh.clone();
        old_carts.events = vec![cart(1, "shoes"), cart(10, "shoes")];
        assert!(
            !evaluate(&group, &old_carts, now),
            "only one cart within 7 days"
        );
        let mut old_signup = fresh;
        old_signup
            .fields
            .insert("created_at".into(), json!("2026-10-01T00:00:00Z"));
        assert!(!evaluate(&group, &old_signup, now));
    }

    #[test]
    fn derived_order_fields_and_between_are_inclusive() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().expect("time");
        let criteria = json!({"last_order_days_ago": {"gte": 30}, "avg_order_value": {"between": [1000, 2000]}});
        let (group, _) = normalise(None, Some(&criteria)).expect("valid");
        let lapsed = customer(
            json!({"last_order_at": "2026-10-01T00:00:00Z", "orders_count": 2, "total_spent": 4000}),
        );
        let recent = customer(
            json!({"last_order_at": "2026-11-20T00:00:00Z", "orders_count": 2, "total_spent": 4000}),
        );
        let no_orders = customer(json!({"orders_count": 0, "total_spent": 0}));
        assert!(evaluate(&group, &lapsed, now));
        assert!(!evaluate(&group, &recent, now));
        assert!(!evaluate(&group, &no_orders, now));
    }
}
