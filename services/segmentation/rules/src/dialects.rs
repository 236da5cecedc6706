//! The three rule dialects the seeds use, normalised into the canonical [`Group`] tree.

use serde_json::{Map, Value};

use super::{Condition, Group, Logic, RuleError, fields, validate};

/// Which dialect a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Seed 003's nested tree.
    Tree,
    /// Seed 000's `groups[].conditions[]` (groups ORed, conditions ANDed).
    Groups,
    /// Seed 001's `criteria` object (fields ANDed, scalars meaning equality).
    Criteria,
}

/// A canonical operator for any spelling the seeds use (`greaterThanOrEqual`, `gte`,
/// `>=`, `greater_than_or_equals`).
pub fn canonical_operator(raw: &str) -> String {
    let symbol = match raw.trim() {
        "=" | "==" | "eq" => Some("equals"),
        "!=" | "<>" | "ne" | "neq" => Some("not_equals"),
        ">" | "gt" => Some("greater_than"),
        ">=" | "gte" => Some("greater_than_or_equals"),
        "<" | "lt" => Some("less_than"),
        "<=" | "lte" => Some("less_than_or_equals"),
        "nin" => Some("not_in"),
        _ => None,
    };
    if let Some(op) = symbol {
        return op.to_owned();
    }
    let mut snake = String::new();
    for (i, c) in raw.trim().chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    match snake.as_str() {
        "equal" => "equals".into(),
        "not_equal" => "not_equals".into(),
        "greater_than_or_equal" | "greater_or_equal" => "greater_than_or_equals".into(),
        "less_than_or_equal" | "less_or_equal" => "less_than_or_equals".into(),
        "exists" => "is_set".into(),
        "not_exists" => "is_not_set".into(),
        _ => snake,
    }
}

fn canonicalise(group: &mut Group) {
    for condition in &mut group.conditions {
        condition.field = fields::canonical_name(&condition.field);
        condition.operator = canonical_operator(&condition.operator);
    }
    for child in &mut group.groups {
        canonicalise(child);
    }
}

fn shape_error(path: &str, message: impl Into<String>) -> Vec<RuleError> {
    vec![RuleError {
        path: path.to_owned(),
        message: message.into(),
    }]
}

fn condition(
    id: String,
    field: &str,
    operator: &str,
    value: Option<Value>,
    value2: Option<Value>,
) -> Condition {
    Condition {
        id,
        field: field.to_owned(),
        operator: operator.to_owned(),
        value,
        value2,
        event_type: None,
        within_days: None,
        property: None,
    }
}

/// Seed 000: `{"groups": [{"conditions": [...]}, ...]}`.
fn from_groups(rules: &Map<String, Value>) -> Result<Group, Vec<RuleError>> {
    let Some(Value::Array(groups)) = rules.get("groups") else {
        return Err(shape_error("rules.groups", "must be a list"));
    };
    let mut canonical = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let path = format!("rules.groups[{i}]");
        let conditions = group
            .get("conditions")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        let conditions: Vec<Condition> = serde_json::from_value(conditions)
            .map_err(|e| shape_error(&format!("{path}.conditions"), e.to_string()))?;
        canonical.push(Group {
            id: format!("g{i}"),
            logic: Logic::And,
            negate: false,
            conditions,
            groups: Vec::new(),
        });
    }
    Ok(Group {
        id: "root".into(),
        logic: Logic::Or,
        negate: false,
        conditions: Vec::new(),
        groups: canonical,
    })
}

/// Seed 001: `{"total_spent": {"gte": 500}, "loyalty_tier": {"in": [...]}, "clv_tier": "high"}`.
/// Returns the tree and, per condition index, the original key for error paths.
fn from_criteria(criteria: &Map<String, Value>) -> Result<(Group, Vec<String>), Vec<RuleError>> {
    let mut conditions = Vec::new();
    let mut origins = Vec::new();
    for (field, spec) in criteria {
        let mut push =
            |operator: &str, value: Option<Value>, value2: Option<Value>, origin: String| {
                conditions.push(condition(
                    format!("c{}", conditions.len()),
                    field,
                    operator,
                    value,
                    value2,
                ));
                origins.push(origin);
            };
        match spec {
            Value::Object(ops) if !ops.is_empty() => {
                for (op, value) in ops {
                    let origin = format!("criteria.{field}.{op}");
                    let operator = canonical_operator(op);
                    match (operator.as_str(), value) {
                        ("between", Value::Array(bounds)) if bounds.len() == 2 => push(
                            "between",
                            Some(bounds[0].clone()),
                            Some(bounds[1].clone()),
                            origin,
                        ),
                        ("is_set", Value::Bool(false)) => push("is_not_set", None, None, origin),
                        ("is_set" | "is_not_set", _) => push(&operator, None, None, origin),
                        _ => push(&operator, Some(value.clone()), None, origin),
                    }
                }
            }
            Value::Object(_) => {
                return Err(shape_error(
                    &format!("criteria.{field}"),
                    "needs at least one operator",
                ));
            }
            Value::Array(_) => push("in", Some(spec.clone()), None, format!("criteria.{field}")),
            Value::Null => push("is_not_set", None, None, format!("criteria.{field}")),
            scalar => push(
                "equals",
                Some(scalar.clone()),
                None,
                format!("criteria.{field}"),
            ),
        }
    }
    let group = Group {
        id: "root".into(),
        logic: Logic::And,
        negate: false,
        conditions,
        groups: Vec::new(),
    };
    Ok((group, origins))
}

/// Reads a request's rules in any dialect, normalises them and validates the result.
/// `rules` is seed 003's tree or seed 000's groups; `criteria` is seed 001's object.
pub fn normalise(
    rules: Option<&Value>,
    criteria: Option<&Value>,
) -> Result<(Group, Dialect), Vec<RuleError>> {
    match (rules, criteria) {
        (Some(_), Some(_)) => Err(shape_error(
            "rules",
            "give either rules or criteria, not both",
        )),
        (None, None) => Err(shape_error("rules", "is required (or criteria)")),
        (None, Some(Value::Object(criteria))) => {
            let (mut group, origins) = from_criteria(criteria)?;
            if group.conditions.is_empty() {
                return Err(shape_error("criteria", "needs at least one field"));
            }
            canonicalise(&mut group);
            validate("criteria", &group).map_err(|errors| {
                errors
                    .into_iter()
                    .map(|e| {
                        // criteria.conditions[3].value -> criteria.total_spent.gte
                        let path = e
                            .path
                            .strip_prefix("criteria.conditions[")
                            .and_then(|rest| rest.split_once(']'))
                            .and_then(|(index, _)| index.parse::<usize>().ok())
                            .and_then(|i| origins.get(i).cloned())
                            .unwrap_or(e.path);
                        RuleError {
                            path,
                            message: e.message,
                        }
                    })
                    .collect::<Vec<_>>()
            })?;
            Ok((group, Dialect::Criteria))
        }
        (None, Some(_)) => Err(shape_error("criteria", "must be an object")),
        (Some(Value::Object(map)), None) => {
            let tree = map.contains_key("logic") || map.contains_key("conditions");
            let (mut group, dialect) = if tree {
                let group: Group = serde_json::from_value(Value::Object(map.clone()))
                    .map_err(|e| shape_error("rules", e.to_string()))?;
                (group, Dialect::Tree)
            } else {
                (from_groups(map)?, Dialect::Groups)
            };
            canonicalise(&mut group);
            validate("rules", &group)?;
            Ok((group, dialect))
        }
        (Some(_), None) => Err(shape_error("rules", "must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_000_groups_become_an_or_of_ands_with_canonical_names() {
        let rules = json!({"groups": [
            {"conditions": [
                {"field": "totalSpend", "operator": "greaterThan", "value": 10000},
                {"field": "state", "operator": "equals", "value": "CA"}
            ]},
            {"conditions": [{"field": "orderCount", "operator": "greaterThanOrEqual", "value": 5}]}
        ]});
        let (group, dialect) = normalise(Some(&rules), None).expect("valid");
        assert_eq!(dialect, Dialect::Groups);
        assert_eq!(group.logic, Logic::Or);
        assert_eq!(group.groups[0].logic, Logic::And);
        assert_eq!(group.groups[0].conditions[0].field, "total_spent");
        assert_eq!(group.groups[0].conditions[0].operator, "greater_than");
        assert_eq!(group.groups[1].conditions[0].field, "orders_count");
        assert_eq!(
            group.groups[1].conditions[0].operator,
            "greater_than_or_equals"
        );
    }

    #[test]
    fn seed_001_criteria_become_an_and_with_scalars_as_equality() {
        let criteria = json!({"total_spent": {"gte": 500}, "order_count": {"gte": 10}, "loyalty_tier": {"in": ["gold", "platinum"]}, "clv_tier": "high"});
        let (group, dialect) = normalise(None, Some(&criteria)).expect("valid");
        assert_eq!(dialect, Dialect::Criteria);
        assert_eq!(group.logic, Logic::And);
        let ops: Vec<(&str, &str)> = group
            .conditions
            .iter()
            .map(|c| (c.field.as_str(), c.operator.as_str()))
            .collect();
        assert!(ops.contains(&("clv_tier", "equals")));
        assert!(ops.contains(&("orders_count", "greater_than_or_equals")));
        assert!(ops.contains(&("loyalty_tier", "in")));
    }

    #[test]
    fn seed_003_trees_keep_their_shape_and_errors_carry_paths() {
        let rules = json!({"id": "root", "logic": "AND",
            "conditions": [{"id": "c1", "field": "orders_count", "operator": "greater_than_or_equals", "value": 5}],
            "groups": [{"id": "g1", "logic": "OR", "negate": true, "conditions": [
                {"id": "c2", "field": "segment", "operator": "equals", "value": "Champions"},
                {"id": "c3", "field": "total_spent", "operator": "between", "value": 100}
            ], "groups": []}]});
        let errors = normalise(Some(&rules), None).expect_err("missing value2");
        assert_eq!(errors[0].path, "rules.groups[0].conditions[1].value2");
        let bad = json!({"logic": "AND", "conditions": [
            {"field": "shoe_size", "operator": "equals", "value": 1},
            {"field": "orders_count", "operator": "starts_with", "value": "x"},
            {"field": "orders_count", "operator": "equals", "value": "five"}
        ]});
        let errors = normalise(Some(&bad), None).expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "rules.conditions[0].field",
                "rules.conditions[1].operator",
                "rules.conditions[2].value"
            ]
        );
        let criteria = json!({"total_spent": {"gte": "lots"}});
        assert_eq!(
            normalise(None, Some(&criteria)).expect_err("invalid")[0].path,
            "criteria.total_spent.gte"
        );
    }
}
