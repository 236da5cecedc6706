//! The segment rule language.
//!
//! The canonical form is seed 003's tree, `{id, logic, negate, conditions, groups}`,
//! nested to any depth. Seed 000's `rules.groups[].conditions[]` (groups ORed,
//! conditions ANDed, camelCase operators) and seed 001's `criteria` object are accepted
//! and normalised into it ([`dialects`]); a stored segment keeps only the canonical tree.
//! [`validate`] checks fields, operators and value types and reports the path of every
//! bad node; [`evaluate`] is the straightforward reference evaluator the fast engine is
//! checked against; [`sql`] compiles a tree to a parameterised SQL predicate.
//!
//! Pure: no database, HTTP or bus code here (the segmentation service binds the SQL and
//! owns every I/O), so the fast engine (`mkt-segment-engine`) can depend on it.

pub mod dialects;
pub mod evaluate;
pub mod fields;
pub mod sql;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use fields::FieldType;

/// How a group combines its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Logic {
    /// Every child must hold.
    #[serde(rename = "AND")]
    And,
    /// At least one child must hold.
    #[serde(rename = "OR")]
    Or,
}

/// A group of conditions and sub-groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Client-chosen id (echoed back; used in error paths).
    #[serde(default)]
    pub id: String,
    /// AND or OR.
    pub logic: Logic,
    /// Inverts the whole group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
    /// Leaf conditions, combined with the sub-groups by `logic`; may be empty.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Nested groups.
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// One test of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Client-chosen id.
    #[serde(default)]
    pub id: String,
    /// Field name (canonical after normalisation).
    pub field: String,
    /// Operator (canonical snake_case after normalisation).
    pub operator: String,
    /// The value compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The upper bound of `between`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value2: Option<Value>,
    /// Event conditions: which event type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event conditions: the look-back window in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<i64>,
    /// Event conditions: only events whose property `name` equals `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<PropertyFilter>,
}

/// An event-property filter of an event condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    /// Property name.
    pub name: String,
    /// Required value.
    pub value: Value,
}

impl Group {
    /// Every condition of the tree, depth first.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut all: Vec<&Condition> = self.conditions.iter().collect();
        for group in &self.groups {
            all.extend(group.conditions());
        }
        all
    }

    /// Whether the tree's result can change with nothing but the passing of time
    /// (relative windows, days since the last order, event look-backs), so the clock
    /// must re-evaluate it.
    pub fn is_time_relative(&self) -> bool {
        self.conditions().iter().any(|c| {
            c.field == "event"
                || c.field == "last_order_days_ago"
                || matches!(c.operator.as_str(), "newer_than_days" | "older_than_days")
        })
    }

    /// The longest event look-back in the tree (`None`: no event condition), so a
    /// loader fetches only the events a rule can see.
    pub fn event_window_days(&self) -> Option<i64> {
        self.conditions()
            .iter()
            .filter(|c| c.field == "event")
            .filter_map(|c| c.within_days)
            .max()
    }
}

/// Every canonical operator.
pub const OPERATORS: &[&str] = &[
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equals",
    "less_than",
    "less_than_or_equals",
    "between",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "is_set",
    "is_not_set",
    "before",
    "after",
    "newer_than_days",
    "older_than_days",
    "performed_at_least",
    "performed_at_most",
    "performed_exactly",
    "not_performed",
];

/// Operators each field type accepts.
pub fn operators_for(field_type: FieldType) -> &'static [&'static str] {
    match field_type {
        FieldType::Text => &[
            "equals",
            "not_equals",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "is_set",
            "is_not_set",
        ],
        FieldType::Integer | FieldType::Decimal => &[
            "equals",
            "not_equals",
            "greater_than",
            "greater_than_or_equals",
            "less_than",
            "less_than_or_equals",
            "between",
            "in",
            "not_in",
            "is_set",
            "is_not_set",
        ],
        FieldType::Timestamp => &[
            "before",
            "after",
            "between",
            "newer_than_days",
            "older_than_days",
            "is_set",
            "is_not_set",
        ],
        FieldType::Boolean => &["equals", "not_equals", "is_set", "is_not_set"],
        FieldType::Any => &[
            "equals",
            "not_equals",
            "greater_than",
            "greater_than_or_equals",
            "less_than",
            "less_than_or_equals",
            "between",
            "in",
            "not_in",
            "contains",
            "not_contains",
            "starts_with",
            "ends_with",
            "is_set",
            "is_not_set",
        ],
        FieldType::Event => &[
            "performed_at_least",
            "performed_at_most",
            "performed_exactly",
            "not_performed",
        ],
    }
}

/// Deepest nesting accepted (a guard against pathological inputs).
pub const MAX_DEPTH: usize = 16;
/// Most conditions in one tree.
pub const MAX_CONDITIONS: usize = 200;
/// Largest `newer_than_days`/`older_than_days` (100 years): anything larger says nothing
/// a smaller value doesn't, and unbounded values overflow date arithmetic.
pub const MAX_DAYS: i64 = 36_500;
/// Longest event look-back (`within_days`, ten years): events are kept that long at most.
pub const MAX_WINDOW_DAYS: i64 = 3_650;
/// Most items in an `in`/`not_in` list (each becomes a bound parameter of the SQL).
pub const MAX_LIST_ITEMS: usize = 1_000;

/// A problem at a path of the rule tree (`rules.groups[0].conditions[1].value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Where.
    pub path: String,
    /// What.
    pub message: String,
}

fn error(errors: &mut Vec<RuleError>, path: String, message: impl Into<String>) {
    errors.push(RuleError {
        path,
        message: message.into(),
    });
}

fn is_integer(value: &Value) -> bool {
    value.as_i64().is_some()
}

fn check_value(errors: &mut Vec<RuleError>, path: String, field_type: FieldType, value: &Value) {
    let ok = match field_type {
        FieldType::Text => value.is_string(),
        FieldType::Integer => is_integer(value),
        FieldType::Decimal => value.is_number(),
        FieldType::Timestamp => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Any => !value.is_null(),
        FieldType::Event => is_integer(value),
    };
    if !ok {
        let expected = match field_type {
            FieldType::Text => "a string",
            FieldType::Integer | FieldType::Event => "a whole number",
            FieldType::Decimal => "a number",
            FieldType::Timestamp => "an RFC 3339 instant",
            FieldType::Boolean => "true or false",
            FieldType::Any => "a value",
        };
        error(errors, path, format!("must be {expected}"));
    }
}

fn validate_condition(errors: &mut Vec<RuleError>, path: &str, condition: &Condition) {
    let Some(field) = fields::resolve(&condition.field) else {
        error(
            errors,
            format!("{path}.field"),
            format!("unknown field {:?}", condition.field),
        );
        return;
    };
    if !operators_for(field.field_type).contains(&condition.operator.as_str()) {
        let message = if OPERATORS.contains(&condition.operator.as_str()) {
            format!(
                "operator {:?} does not apply to {} field {:?}",
                condition.operator,
                serde_json::to_string(&field.field_type)
                    .unwrap_or_default()
                    .trim_matches('"'),
                condition.field
            )
        } else {
            format!("unknown operator {:?}", condition.operator)
        };
        error(errors, format!("{path}.operator"), message);
        return;
    }
    let value_path = format!("{path}.value");
    match condition.operator.as_str() {
        "is_set" | "is_not_set" => {}
        "in" | "not_in" => match &condition.value {
            Some(Value::Array(items)) if items.len() > MAX_LIST_ITEMS => error(
                errors,
                value_path,
                format!("must list at most {MAX_LIST_ITEMS} items"),
            ),
            Some(Value::Array(items)) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    check_value(errors, format!("{value_path}[{i}]"), field.field_type, item);
                }
            }
            _ => error(errors, value_path, "must be a non-empty list"),
        },
        "between" => match (&condition.value, &condition.value2) {
            (Some(low), Some(high)) => {
                check_value(errors, value_path.clone(), field.field_type, low);
                check_value(errors, format!("{path}.value2"), field.field_type, high);
                let ordered = match (low.as_f64(), high.as_f64(), low.as_str(), high.as_str()) {
                    (Some(a), Some(b), _, _) => a <= b,
                    (_, _, Some(a), Some(b)) => match (
                        chrono::DateTime::parse_from_rfc3339(a),
                        chrono::DateTime::parse_from_rfc3339(b),
                    ) {
                        (Ok(a), Ok(b)) => a <= b,
                        _ => true,
                    },
                    _ => true,
                };
                if !ordered {
                    error(
                        errors,
                        format!("{path}.value2"),
                        "must not be less than value",
                    );
                }
            }
            (_, None) => error(errors, format!("{path}.value2"), "is required for between"),
            (None, _) => error(errors, value_path, "is required"),
        },
        "newer_than_days" | "older_than_days" => {
            match condition.value.as_ref().and_then(Value::as_i64) {
                Some(days) if (0..=MAX_DAYS).contains(&days) => {}
                _ => error(
                    errors,
                    value_path,
                    format!("must be a whole number of days between 0 and {MAX_DAYS}"),
                ),
            }
        }
        "contains" | "not_contains" | "starts_with" | "ends_with" => match &condition.value {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => error(errors, value_path, "must be a non-empty string"),
        },
        "performed_at_least" | "performed_at_most" | "performed_exactly" | "not_performed" => {
            if condition
                .event_type
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
            {
                error(
                    errors,
                    format!("{path}.event_type"),
                    "is required for event conditions",
                );
            }
            match condition.within_days {
                Some(days) if (1..=MAX_WINDOW_DAYS).contains(&days) => {}
                _ => error(
                    errors,
                    format!("{path}.within_days"),
                    format!("must be between 1 and {MAX_WINDOW_DAYS}"),
                ),
            }
            if condition.operator != "not_performed" {
                match condition.value.as_ref().and_then(Value::as_i64) {
                    Some(times) if times >= 0 => {}
                    _ => error(
                        errors,
                        value_path,
                        "must be a whole number of times (0 or more)",
                    ),
                }
            }
        }
        _ => match &condition.value {
            Some(value) => check_value(errors, value_path, field.field_type, value),
            None => error(errors, value_path, "is required"),
        },
    }
}

fn validate_group(
    errors: &mut Vec<RuleError>,
    path: &str,
    group: &Group,
    depth: usize,
    count: &mut usize,
) {
    if depth > MAX_DEPTH {
        error(
            errors,
            path.to_owned(),
            format!("groups may nest at most {MAX_DEPTH} deep"),
        );
        return;
    }
    if group.conditions.is_empty() && group.groups.is_empty() {
        error(
            errors,
            path.to_owned(),
            "a group needs at least one condition or group",
        );
    }
    for (i, condition) in group.conditions.iter().enumerate() {
        *count += 1;
        validate_condition(errors, &format!("{path}.conditions[{i}]"), condition);
    }
    for (i, child) in group.groups.iter().enumerate() {
        validate_group(
            errors,
            &format!("{path}.groups[{i}]"),
            child,
            depth + 1,
            count,
        );
    }
}

/// Checks a canonical tree; every problem with its path under `root_path`.
pub fn validate(root_path: &str, group: &Group) -> Result<(), Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut count = 0;
    validate_group(&mut errors, root_path, group, 1, &mut count);
    if count > MAX_CONDITIONS {
        error(
            &mut errors,
            root_path.to_owned(),
            format!("at most {MAX_CONDITIONS} conditions"),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
