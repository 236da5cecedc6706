//! When people buy: seasonality by date, weekday and hour.

use super::rng::Rng;
use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Timelike, Utc, Weekday};

/// Order intensity by date: Black Friday / Cyber Monday week, holiday gifting until the
/// shipping cut-off, a January lull.
pub(super) fn date_weight(at: DateTime<Utc>) -> f64 {
    let month = match (at.month(), at.day()) {
        (1, _) => 0.8,
        (2, _) => 0.75,
        (3, _) => 0.85,
        (4 | 6 | 9, _) => 0.9,
        (5 | 7 | 8, _) => 0.95,
        (10, _) => 1.0,
        (11, d) if d >= 24 => 3.2,
        (11, _) => 1.4,
        (12, d) if d <= 20 => 2.0,
        _ => 1.1,
    };
    let weekday = match at.weekday() {
        Weekday::Sat => 1.35,
        Weekday::Sun => 1.3,
        Weekday::Fri => 1.1,
        _ => 0.9,
    };
    month * weekday
}
pub(super) const MAX_DATE_WEIGHT: f64 = 3.2 * 1.35;

/// Shopping by hour (UTC, close enough for a demo): lunch and evening peaks.
pub(super) const HOUR_WEIGHTS: [f64; 24] = [
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.2, 1.4, 1.3, 1.1, 1.0, 1.0, 1.1, 1.3,
    1.6, 1.8, 1.7, 1.2, 0.6,
];

pub(super) fn time_of_day(rng: &mut Rng) -> TimeDelta {
    let hour = rng.weighted(&HOUR_WEIGHTS) as i64;
    TimeDelta::seconds(hour * 3600 + rng.below(3600) as i64)
}

pub(super) fn midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    at - TimeDelta::seconds(i64::from(at.num_seconds_from_midnight()))
        - TimeDelta::nanoseconds(i64::from(at.nanosecond()))
}

/// A purchase-like instant in [from, to), weighted by season, weekday and hour.
pub(super) fn seasonal_instant(
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let span = (to - from).num_seconds();
    if span <= 0 {
        return None;
    }
    for _ in 0..200 {
        let day = midnight(from + TimeDelta::seconds(rng.below(span as u64) as i64));
        let at = day + time_of_day(rng);
        if at < from || at >= to {
            continue;
        }
        if rng.chance(date_weight(at) / MAX_DATE_WEIGHT) {
            return Some(at);
        }
    }
    Some(from + TimeDelta::seconds(span / 2))
}

pub(super) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
