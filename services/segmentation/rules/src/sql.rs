//! Compiles a canonical rule tree into a SQL predicate over `customer_profiles p` left
//! joined with `customer_scores s` (and `customer_events` for event conditions), with the same semantics as the reference
//! evaluator: case-insensitive text, negative operators true for unset values,
//! inclusive `between`, event windows ending at `now`.
//!
//! This is the straightforward SQL path (and the baseline the in-memory engine of the
//! segmentation issue is benchmarked against). Values are always bound, never spliced.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::fields::{self, FieldType};
use super::{Condition, Group, Logic};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    /// text
    Text(String),
    /// text[]
    TextArray(Vec<String>),
    /// float8
    Float(f64),
    /// float8[]
    FloatArray(Vec<f64>),
    /// timestamptz
    Time(DateTime<Utc>),
    /// bool
    Bool(bool),
    /// jsonb
    Json(Value),
    /// bigint
    BigInt(i64),
}

/// A SQL predicate with its `$n` parameters (numbered from `first_param`).
#[derive(Debug, Clone)]
pub struct Predicate {
    /// The boolean expression.
    pub sql: String,
    /// Parameters in `$n` order.
    pub binds: Vec<Bind>,
    first_param: usize,
}

impl Predicate {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.first_param + self.binds.len() - 1)
    }
}

/// The SQL expression of a (non-event) field and its type.
fn column(field: &str) -> Option<(String, FieldType)> {
    if let Some(key) = field.strip_prefix("attributes.") {
        // The key was validated as [A-Za-z0-9_-]; quoting keeps it a literal anyway.
        return Some((
            format!("(p.attributes -> '{}')", key.replace('\'', "''")),
            FieldType::Any,
        ));
    }
    let field_type = fields::resolve(field)?.field_type;
    let sql = match field {
        "created_at" => "p.signed_up_at".to_owned(),
        "segment" => "s.rfm_segment".to_owned(),
        "recency_score" | "frequency_score" | "monetary_score" | "clv" | "clv_tier"
        | "churn_risk" | "churn_probability" => {
            format!("s.{field}")
        }
        // No engagement row yet means nothing opened, clicked or unsubscribed.
        "emails_opened" | "emails_clicked" => format!("COALESCE(s.{field}, 0)"),
        "unsubscribed" => "COALESCE(s.unsubscribed, FALSE)".to_owned(),
        "avg_order_value" => {
            "(CASE WHEN p.orders_count > 0 THEN p.total_spent / p.orders_count END)".to_owned()
        }
        "last_order_days_ago" => {
            "trunc(extract(epoch FROM ($NOW - p.last_order_at)) / 86400)".to_owned()
        }
        "event" => return None,
        other => format!("p.{other}"),
    };
    Some((sql, field_type))
}

fn number(value: Option<&Value>) -> f64 {
    value.and_then(Value::as_f64).unwrap_or(0.0)
}

fn time(value: Option<&Value>) -> DateTime<Utc> {
    value
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

fn lower(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.to_lowercase(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Compiles one condition.
fn condition(p: &mut Predicate, c: &Condition, now: DateTime<Utc>) -> String {
    if c.field == "event" {
        return event(p, c, now);
    }
    let Some((col, field_type)) = column(&c.field) else {
        return "FALSE".into();
    };
    let now_param = if col.contains("$NOW") {
        Some(p.bind(Bind::Time(now)))
    } else {
        None
    };
    let col = match now_param {
        Some(param) => col.replace("$NOW", &format!("{param}::timestamptz")),
        None => col,
    };
    let op = c.operator.as_str();
    if op == "is_set" {
        return format!("({col} IS NOT NULL AND {col}::text <> 'null')");
    }
    if op == "is_not_set" {
        return format!("({col} IS NULL OR {col}::text = 'null')");
    }
    // How this field's value reads as text, number, instant or boolean.
    let (text, num, ts, boolean) = match field_type {
        FieldType::Any => (
            format!("lower({col} #>> '{{}}')"),
            format!(
                "(CASE WHEN jsonb_typeof({col}) = 'number' THEN ({col} #>> '{{}}')::float8 END)"
            ),
            format!(
                "(CASE WHEN jsonb_typeof({col}) = 'string' AND ({col} #>> '{{}}') ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}T' THEN ({col} #>> '{{}}')::timestamptz END)"
            ),
            format!(
                "(CASE WHEN jsonb_typeof({col}) = 'boolean' THEN ({col} #>> '{{}}')::bool END)"
            ),
        ),
        _ => (
            format!("lower({col}::text)"),
            format!("{col}::float8"),
            col.clone(),
            col.clone(),
        ),
    };
    // Compare like the evaluator: by the expected value's kind.
    let equals = |p: &mut Predicate, value: Option<&Value>| -> String {
        match value {
            Some(Value::Number(n)) => {
                format!("{num} = {}", p.bind(Bind::Float(n.as_f64().unwrap_or(0.0))))
            }
            Some(Value::Bool(b)) => format!("{boolean} = {}", p.bind(Bind::Bool(*b))),
            Some(Value::String(s)) if field_type == FieldType::Timestamp => {
                format!(
                    "{ts} = {}",
                    p.bind(Bind::Time(time(Some(&Value::String(s.clone())))))
                )
            }
            other => format!("{text} = {}", p.bind(Bind::Text(lower(other)))),
        }
    };
    let ordered = |p: &mut Predicate, value: Option<&Value>, cmp: &str| -> String {
        match value {
            // Text does not order; a string bound is an instant or matches nothing.
            Some(Value::String(_)) => match value
                .and_then(Value::as_str)
                .map(DateTime::parse_from_rfc3339)
            {
                Some(Ok(at)) => {
                    format!("{ts} {cmp} {}", p.bind(Bind::Time(at.with_timezone(&Utc))))
                }
                _ => "FALSE".to_owned(),
            },
            _ => format!("{num} {cmp} {}", p.bind(Bind::Float(number(value)))),
        }
    };
    let positive = match op {
        "equals" | "not_equals" => equals(p, c.value.as_ref()),
        "in" | "not_in" => {
            let items = c
                .value
                .as_ref()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.iter().all(Value::is_number) {
                format!(
                    "{num} = ANY({})",
                    p.bind(Bind::FloatArray(
                        items.iter().filter_map(Value::as_f64).collect()
                    ))
                )
            } else {
                format!(
                    "{text} = ANY({})",
                    p.bind(Bind::TextArray(
                        items.iter().map(|v| lower(Some(v))).collect()
                    ))
                )
            }
        }
        "greater_than" | "after" => ordered(p, c.value.as_ref(), ">"),
        "greater_than_or_equals" => ordered(p, c.value.as_ref(), ">="),
        "less_than" | "before" => ordered(p, c.value.as_ref(), "<"),
        "less_than_or_equals" => ordered(p, c.value.as_ref(), "<="),
        "between" => {
            let low = ordered(p, c.value.as_ref(), ">=");
            let high = ordered(p, c.value2.as_ref(), "<=");
            format!("({low} AND {high})")
        }
        "contains" | "not_contains" => format!(
            "strpos({text}, {}) > 0",
            p.bind(Bind::Text(lower(c.value.as_ref())))
        ),
        "starts_with" => {
            let v = p.bind(Bind::Text(lower(c.value.as_ref())));
            format!("left({text}, length({v})) = {v}")
        }
        "ends_with" => {
            let v = p.bind(Bind::Text(lower(c.value.as_ref())));
            format!("right({text}, length({v})) = {v}")
        }
        "newer_than_days" | "older_than_days" => {
            let days = c.value.as_ref().and_then(Value::as_i64).unwrap_or(0);
            // Checked: the validator caps days, but a stored rule must never panic the
            // compiler. No representable cutoff matches nothing, as in the engines.
            match days_before(now, days) {
                None => "FALSE".into(),
                Some(cutoff) => {
                    let cutoff = p.bind(Bind::Time(cutoff));
                    if op == "newer_than_days" {
                        format!("{ts} >= {cutoff}")
                    } else {
                        format!("{ts} < {cutoff}")
                    }
                }
            }
        }
        _ => "FALSE".into(),
    };
    if matches!(op, "not_equals" | "not_in" | "not_contains") {
        format!("NOT COALESCE(({positive}), FALSE)")
    } else {
        format!("COALESCE(({positive}), FALSE)")
    }
}

/// `now - days`, or `None` when that is not a representable instant.
pub(super) fn days_before(now: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
    Duration::try_days(days).and_then(|d| now.checked_sub_signed(d))
}

fn event(p: &mut Predicate, c: &Condition, now: DateTime<Utc>) -> String {
    let event_type = p.bind(Bind::Text(c.event_type.clone().unwrap_or_default()));
    // No representable start (an unchecked window) means no lower bound, as in the engines.
    let since = match days_before(now, c.within_days.unwrap_or(0)) {
        Some(since) => format!(" AND e.occurred_at >= {}", p.bind(Bind::Time(since))),
        None => String::new(),
    };
    let until = p.bind(Bind::Time(now));
    let mut count = format!(
        "(SELECT count(*) FROM customer_events e WHERE e.tenant_id = p.tenant_id AND e.customer_id = p.customer_id \
         AND e.event_type = {event_type}{since} AND e.occurred_at <= {until}"
    );
    if let Some(property) = &c.property {
        let name = p.bind(Bind::Text(property.name.clone()));
        // Same comparison as the evaluator: numbers numerically, text ignoring case.
        let matches = match &property.value {
            Value::Number(n) => format!(
                "(jsonb_typeof(e.properties -> {name}) = 'number' AND (e.properties ->> {name})::float8 = {})",
                p.bind(Bind::Float(n.as_f64().unwrap_or(0.0)))
            ),
            other => format!(
                "lower(e.properties ->> {name}) = {}",
                p.bind(Bind::Text(lower(Some(other))))
            ),
        };
        count.push_str(&format!(" AND {matches}"));
    }
    count.push(')');
    let times = p.bind(Bind::BigInt(
        c.value.as_ref().and_then(Value::as_i64).unwrap_or(0),
    ));
    match c.operator.as_str() {
        "performed_at_least" => format!("{count} >= {times}"),
        "performed_at_most" => format!("{count} <= {times}"),
        "performed_exactly" => format!("{count} = {times}"),
        _ => format!("{count} = 0"),
    }
}

fn group(p: &mut Predicate, g: &Group, now: DateTime<Utc>) -> String {
    let mut parts: Vec<String> = g.conditions.iter().map(|c| condition(p, c, now)).collect();
    for child in &g.groups {
        parts.push(group(p, child, now));
    }
    let joined = if parts.is_empty() {
        match g.logic {
            Logic::And => "TRUE".to_owned(),
            Logic::Or => "FALSE".to_owned(),
        }
    } else {
        let glue = match g.logic {
            Logic::And => " AND ",
            Logic::Or => " OR ",
        };
        format!("({})", parts.join(glue))
    };
    if g.negate {
        format!("(NOT {joined})")
    } else {
        joined
    }
}

/// Compiles a validated tree; parameters are numbered from `first_param`.
pub fn compile(tree: &Group, now: DateTime<Utc>, first_param: usize) -> Predicate {
    let mut predicate = Predicate {
        sql: String::new(),
        binds: Vec::new(),
        first_param,
    };
    predicate.sql = group(&mut predicate, tree, now);
    predicate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::normalise;
    use crate::evaluate::{Customer, evaluate};
    use crate::{MAX_DAYS, MAX_LIST_ITEMS};
    use serde_json::json;

    /// A tree as a stored rule could hold it, built without the validator.
    fn unchecked(condition: Value) -> Group {
        serde_json::from_value(json!({"logic": "AND", "conditions": [condition]})).expect("tree")
    }

    #[test]
    fn overflowing_day_counts_compile_and_evaluate_without_panicking() {
        let now = Utc::now();
        let customer = Customer {
            fields: [("created_at".to_owned(), json!(now.to_rfc3339()))].into(),
            ..Default::default()
        };
        for op in ["newer_than_days", "older_than_days"] {
            for days in [1_000_000_000_i64, i64::MAX, i64::MIN] {
                let tree = unchecked(json!({"field": "created_at", "operator": op, "value": days}));
                let predicate = compile(&tree, now, 1);
                assert!(
                    predicate.sql.contains("FALSE"),
                    "{op} {days}: {}",
                    predicate.sql
                );
                assert!(!evaluate(&tree, &customer, now), "{op} {days}");
            }
        }
        let tree = unchecked(
            json!({"field": "event", "operator": "performed_at_least", "value": 1,
            "event_type": "page_view", "within_days": i64::MAX}),
        );
        let predicate = compile(&tree, now, 1);
        assert!(
            !predicate.sql.contains("occurred_at >="),
            "{}",
            predicate.sql
        );
        assert!(!evaluate(&tree, &customer, now));
    }

    #[test]
    fn the_validator_caps_days_windows_and_lists() {
        let refused = |rules: Value, path: &str| {
            let errors = normalise(Some(&rules), None).expect_err("over the cap");
            assert!(errors.iter().any(|e| e.path.ends_with(path)), "{errors:?}");
        };
        refused(
            json!({"logic": "AND", "conditions": [{"field": "created_at", "operator": "newer_than_days", "value": 1_000_000_000}]}),
            "value",
        );
        refused(
            json!({"logic": "AND", "conditions": [{"field": "created_at", "operator": "older_than_days", "value": MAX_DAYS + 1}]}),
            "value",
        );
        refused(
            json!({"logic": "AND", "conditions": [{"field": "event", "operator": "performed_at_least", "value": 1,
                "event_type": "page_view", "within_days": 1_000_000_000}]}),
            "within_days",
        );
        let items: Vec<String> = (0..=MAX_LIST_ITEMS).map(|i| i.to_string()).collect();
        refused(
            json!({"logic": "AND", "conditions": [{"field": "city", "operator": "in", "value": items}]}),
            "value",
        );
        let ok = json!({"logic": "AND", "conditions": [{"field": "created_at", "operator": "newer_than_days", "value": MAX_DAYS}]});
        assert!(normalise(Some(&ok), None).is_ok());
    }
}
