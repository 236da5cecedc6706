//! The reference evaluator's value semantics (`mkt_segment_rules::evaluate`), restated over one
//! stored value so the columns can apply them to a dictionary entry or a typed cell.
//!
//! Everything here must read exactly like the reference: the property test
//! (`tests/fast_engine_agreement.rs`) holds the two together. Where the reference would
//! panic (a look-back of millions of years overflowing chrono), this side answers
//! "no match" instead.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use mkt_segment_rules::Condition;

/// An RFC 3339 instant, as the reference's `parse_time` reads one.
pub(super) fn parse_time_str(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The reference's `text`: how a value reads for `contains`/`starts_with`/`ends_with`.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What an operator tests, with negative operators folded into their positive form
/// (the caller inverts the row's result, which also makes unset values match them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    IsSet,
    Equals,
    In,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Between,
    Contains,
    StartsWith,
    EndsWith,
    NewerThanDays,
    OlderThanDays,
    /// An operator the reference does not know for this kind of field: false throughout.
    Never,
}

/// The positive test behind an operator name and whether the result is inverted.
pub(super) fn operator(name: &str) -> (Op, bool) {
    match name {
        "is_set" => (Op::IsSet, false),
        "is_not_set" => (Op::IsSet, true),
        "equals" => (Op::Equals, false),
        "not_equals" => (Op::Equals, true),
        "in" => (Op::In, false),
        "not_in" => (Op::In, true),
        "greater_than" | "after" => (Op::Greater, false),
        "greater_than_or_equals" => (Op::GreaterOrEqual, false),
        "less_than" | "before" => (Op::Less, false),
        "less_than_or_equals" => (Op::LessOrEqual, false),
        "between" => (Op::Between, false),
        "contains" => (Op::Contains, false),
        "not_contains" => (Op::Contains, true),
        "starts_with" => (Op::StartsWith, false),
        "ends_with" => (Op::EndsWith, false),
        "newer_than_days" => (Op::NewerThanDays, false),
        "older_than_days" => (Op::OlderThanDays, false),
        _ => (Op::Never, false),
    }
}

/// A rule's value, read every way the reference may read it.
#[derive(Debug, Clone, Default)]
pub(super) struct Expected {
    /// `as_f64`.
    pub num: Option<f64>,
    /// `parse_time`.
    pub time: Option<DateTime<Utc>>,
    /// `as_str`, lower-cased.
    pub lower: Option<String>,
    /// `as_bool`.
    pub boolean: Option<bool>,
}

impl Expected {
    pub(super) fn of(value: Option<&Value>) -> Self {
        let Some(value) = value else {
            return Self::default();
        };
        Self {
            num: value.as_f64(),
            time: value.as_str().and_then(parse_time_str),
            lower: value.as_str().map(str::to_lowercase),
            boolean: value.as_bool(),
        }
    }
}

/// One stored value as the reference sees it. Text is stored lower-cased: every
/// reading of a string the reference makes (case-insensitive comparison, RFC 3339
/// parsing, which accepts `t`/`z`, and `text`) is the same for it and its lower case.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar<'a> {
    /// A string; `time` when it parses as an RFC 3339 instant.
    Str {
        text: &'a str,
        time: Option<DateTime<Utc>>,
    },
    /// A number; `text` as serde_json prints it.
    Num { value: f64, text: &'a str },
    /// A boolean. (Arrays and objects never get here: they equal nothing, order
    /// nothing and have no text, which the dictionary answers without them.)
    Bool(bool),
}

impl Scalar<'_> {
    fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            Scalar::Str { time, .. } => *time,
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Scalar::Str { text, .. } | Scalar::Num { text, .. } => Some(text),
            Scalar::Bool(true) => Some("true"),
            Scalar::Bool(false) => Some("false"),
        }
    }
}

/// The reference's `compare`: numbers, then instants, then text, then booleans.
pub(super) fn compare(actual: &Scalar, expected: &Expected) -> Option<Ordering> {
    match actual {
        Scalar::Num { value, .. } => expected.num.and_then(|e| value.partial_cmp(&e)),
        Scalar::Str { text, time } => {
            if let (Some(a), Some(e)) = (time, expected.time) {
                return Some(a.cmp(&e));
            }
            expected.lower.as_deref().map(|e| (*text).cmp(e))
        }
        Scalar::Bool(b) => expected.boolean.map(|e| b.cmp(&e)),
    }
}

/// The reference's `order`: only numbers and instants order.
pub(super) fn order(actual: &Scalar, expected: &Expected) -> Option<Ordering> {
    match actual {
        Scalar::Num { value, .. } => expected.num.and_then(|e| value.partial_cmp(&e)),
        Scalar::Str { time: Some(a), .. } => expected.time.map(|e| a.cmp(&e)),
        _ => None,
    }
}

/// `now - days`, or `None` where chrono cannot represent it.
pub(super) fn days_before(now: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
    Duration::try_days(days).and_then(|d| now.checked_sub_signed(d))
}

/// One non-event condition, compiled against `now`: the positive test of a set value.
#[derive(Debug, Clone)]
pub(super) struct Test {
    pub op: Op,
    /// Invert the row's result (negative operators, `is_not_set`).
    pub negate: bool,
    pub value: Expected,
    pub value2: Expected,
    /// `in`/`not_in` items.
    pub list: Vec<Expected>,
    /// `contains`/`starts_with`/`ends_with`: the reference's `text` of the value.
    pub needle: Option<String>,
    /// `newer_than_days`/`older_than_days`: `now - value days`.
    pub cutoff: Option<DateTime<Utc>>,
}

impl Test {
    pub(super) fn compile(condition: &Condition, now: DateTime<Utc>) -> Self {
        let (op, negate) = operator(&condition.operator);
        let value = condition.value.as_ref();
        Self {
            op,
            negate,
            value: Expected::of(value),
            value2: Expected::of(condition.value2.as_ref()),
            list: value
                .and_then(Value::as_array)
                .map(|items| items.iter().map(|i| Expected::of(Some(i))).collect())
                .unwrap_or_default(),
            needle: value.and_then(text_of),
            cutoff: value
                .and_then(Value::as_i64)
                .and_then(|days| days_before(now, days)),
        }
    }

    /// `equals value`: an event-property filter.
    pub(super) fn equals(value: &Value) -> Self {
        Self {
            op: Op::Equals,
            negate: false,
            value: Expected::of(Some(value)),
            value2: Expected::default(),
            list: Vec::new(),
            needle: None,
            cutoff: None,
        }
    }

    /// Whether a set value passes the positive test.
    pub(super) fn holds(&self, actual: &Scalar) -> bool {
        let equal = |e: &Expected| compare(actual, e) == Some(Ordering::Equal);
        let substring = |f: fn(&str, &str) -> bool| match (actual.text(), &self.needle) {
            (Some(a), Some(n)) => f(a, n),
            _ => false,
        };
        match self.op {
            Op::IsSet => true,
            Op::Equals => equal(&self.value),
            Op::In => self.list.iter().any(equal),
            Op::Greater => order(actual, &self.value) == Some(Ordering::Greater),
            Op::GreaterOrEqual => order(actual, &self.value).is_some_and(Ordering::is_ge),
            Op::Less => order(actual, &self.value) == Some(Ordering::Less),
            Op::LessOrEqual => order(actual, &self.value).is_some_and(Ordering::is_le),
            Op::Between => {
                order(actual, &self.value).is_some_and(Ordering::is_ge)
                    && order(actual, &self.value2).is_some_and(Ordering::is_le)
            }
            Op::Contains => substring(|a, n| a.contains(n)),
            Op::StartsWith => substring(|a, n| a.starts_with(n)),
            Op::EndsWith => substring(|a, n| a.ends_with(n)),
            Op::NewerThanDays => match (actual.time(), self.cutoff) {
                (Some(at), Some(cutoff)) => at >= cutoff,
                _ => false,
            },
            Op::OlderThanDays => match (actual.time(), self.cutoff) {
                (Some(at), Some(cutoff)) => at < cutoff,
                _ => false,
            },
            Op::Never => false,
        }
    }
}

/// An instant in whole microseconds since the epoch, rounded down, and whether that
/// was exact. A leap second (`23:59:60.x`) sorts after every instant of its second
/// and before the next one, so it rounds down to the second's last microsecond,
/// inexactly.
pub(super) fn micros_floor(t: DateTime<Utc>) -> (i64, bool) {
    let nanos = t.timestamp_subsec_nanos();
    let base = t.timestamp().saturating_mul(1_000_000);
    if nanos >= 1_000_000_000 {
        (base.saturating_add(999_999), false)
    } else {
        (
            base.saturating_add(i64::from(nanos / 1000)),
            nanos.is_multiple_of(1000),
        )
    }
}

/// The smallest whole microsecond not before `t`.
pub(super) fn micros_ceil(t: DateTime<Utc>) -> i64 {
    let (floor, exact) = micros_floor(t);
    if exact {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// How a stored instant (whole microseconds) is kept and shown to the reference: the
/// engine stores instants at PostgreSQL's precision, so records are cut to it first.
pub(super) fn record_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant of stored microseconds.
pub(super) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How the reference reads a stored instant as a value: its RFC 3339 text.
pub(super) fn instant_text(micros: i64) -> String {
    from_micros(micros).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parsing_ignores_case() {
        let upper = parse_time_str("2026-11-21T12:00:00Z");
        assert!(upper.is_some());
        assert_eq!(parse_time_str("2026-11-21t12:00:00z"), upper);
    }

    #[test]
    fn micro_rounding() {
        let t = parse_time_str("2026-11-21T12:00:00.0000015Z").expect("time");
        let (floor, exact) = micros_floor(t);
        assert!(!exact);
        assert_eq!(micros_ceil(t), floor + 1);
        let leap = parse_time_str("2016-12-31T23:59:60.5Z").expect("leap second");
        let next = parse_time_str("2017-01-01T00:00:00Z").expect("time");
        assert!(leap < next);
        assert_eq!(micros_ceil(leap), micros_floor(next).0);
    }
}
