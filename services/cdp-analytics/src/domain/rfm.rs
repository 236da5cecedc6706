//! RFM: recency, frequency and monetary scores 1-5 by quintiles, and seed 004's eleven
//! segments from those scores.
//!
//! Scoring: the four cut points are the values at the 20th, 40th, 60th and 80th
//! percentiles (nearest rank) of the tenant's scored customers. Frequency and monetary
//! score `1 + the number of cut points the value exceeds`; recency is inverted (fewer
//! days since the last order is better): `5 - the number of cut points it exceeds`.
//! Equal values always get equal scores, so on a store where most customers bought once
//! they all share one frequency score instead of being split arbitrarily.
//!
//! Segments: the first rule of [`SegmentRule`]s whose ranges hold the scores wins;
//! [`default_rules`] is the documented mapping (on R and F, the common RFM grid, with M
//! separating Lost from Hibernating), and a tenant may configure its own list.

use serde::{Deserialize, Serialize};

/// Seed 004's segments, best first.
pub const SEGMENTS: [&str; 11] = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "Recent Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Cannot Lose Them",
    "Hibernating",
    "Lost",
];

/// One customer's raw RFM values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RfmValues {
    /// Whole days since the last counted order, as of the processing instant.
    pub recency_days: i64,
    /// Counted orders (refunds and cancellations excluded).
    pub frequency: i64,
    /// Net spend in minor units.
    pub monetary: i64,
}

/// One customer's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmScores {
    /// 1-5, 5 = most recent.
    pub recency: u8,
    /// 1-5, 5 = most orders.
    pub frequency: u8,
    /// 1-5, 5 = most spend.
    pub monetary: u8,
}

impl RfmScores {
    /// `"555"`-style score, without allocating: a run writes one per customer.
    pub fn code(&self) -> RfmCode {
        let digit = |score: u8| b'0' + score.min(9);
        RfmCode([
            digit(self.recency),
            digit(self.frequency),
            digit(self.monetary),
        ])
    }
}

/// An [`RfmScores::code`]: three ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmCode([u8; 3]);

impl RfmCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // ASCII digits only, so always valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Quintile cut points of one measure.
#[derive(Debug, Clone, PartialEq)]
pub struct CutPoints([i64; 4]);

impl CutPoints {
    /// The 20/40/60/80th percentile values (nearest rank) of `values`.
    pub fn of(values: &mut [i64]) -> CutPoints {
        if values.is_empty() {
            return CutPoints([0; 4]);
        }
        values.sort_unstable();
        let n = values.len();
        let at = |k: usize| values[((k * n).div_ceil(5)).saturating_sub(1).min(n - 1)];
        CutPoints([at(1), at(2), at(3), at(4)])
    }

    fn exceeded(&self, value: i64) -> u8 {
        self.0.iter().filter(|&&cut| value > cut).count() as u8
    }

    /// 1 + cut points exceeded.
    pub fn score(&self, value: i64) -> u8 {
        1 + self.exceeded(value)
    }

    /// 5 - cut points exceeded (smaller is better).
    pub fn inverted_score(&self, value: i64) -> u8 {
        5 - self.exceeded(value)
    }
}

/// The cut points of a population, computed once per run.
#[derive(Debug, Clone, PartialEq)]
pub struct Quintiles {
    /// Days since the last order.
    pub recency: CutPoints,
    /// Orders.
    pub frequency: CutPoints,
    /// Spend.
    pub monetary: CutPoints,
}

impl Quintiles {
    /// Cut points of `population`.
    pub fn of(population: &[RfmValues]) -> Quintiles {
        let column = |f: fn(&RfmValues) -> i64| -> Vec<i64> { population.iter().map(f).collect() };
        Quintiles {
            recency: CutPoints::of(&mut column(|v| v.recency_days)),
            frequency: CutPoints::of(&mut column(|v| v.frequency)),
            monetary: CutPoints::of(&mut column(|v| v.monetary)),
        }
    }

    /// One customer's scores.
    pub fn score(&self, values: &RfmValues) -> RfmScores {
        RfmScores {
            recency: self.recency.inverted_score(values.recency_days),
            frequency: self.frequency.score(values.frequency),
            monetary: self.monetary.score(values.monetary),
        }
    }
}

/// "Scores within these inclusive ranges belong to `segment`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRule {
    /// One of [`SEGMENTS`].
    pub segment: String,
    /// Recency score range.
    pub r: [u8; 2],
    /// Frequency score range.
    pub f: [u8; 2],
    /// Monetary score range.
    #[serde(default = "any")]
    pub m: [u8; 2],
}

fn any() -> [u8; 2] {
    [1, 5]
}

fn rule(segment: &str, r: [u8; 2], f: [u8; 2], m: [u8; 2]) -> SegmentRule {
    SegmentRule {
        segment: segment.to_owned(),
        r,
        f,
        m,
    }
}

/// The default mapping, first match wins; every score combination is covered (the
/// last rule is a catch-all).
pub fn default_rules() -> Vec<SegmentRule> {
    vec![
        rule("Champions", [5, 5], [4, 5], [1, 5]),
        rule("Champions", [4, 4], [5, 5], [4, 5]),
        rule("Loyal Customers", [3, 4], [4, 5], [1, 5]),
        rule("Potential Loyalists", [4, 5], [2, 3], [1, 5]),
        rule("Recent Customers", [5, 5], [1, 1], [1, 5]),
        rule("Promising", [4, 4], [1, 1], [1, 5]),
        rule("Need Attention", [3, 3], [3, 3], [1, 5]),
        rule("About to Sleep", [3, 3], [1, 2], [1, 5]),
        rule("Cannot Lose Them", [1, 2], [5, 5], [1, 5]),
        rule("At Risk", [1, 2], [3, 4], [1, 5]),
        rule("Lost", [1, 1], [1, 1], [1, 2]),
        rule("Hibernating", [1, 5], [1, 5], [1, 5]),
    ]
}

/// Checks a tenant's mapping: known segment names, ranges within 1-5, and a catch-all
/// somewhere so no customer is left without a segment.
pub fn validate_rules(rules: &[SegmentRule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        if !SEGMENTS.contains(&r.segment.as_str()) {
            return Err(format!(
                "rules[{i}].segment: unknown segment {:?}",
                r.segment
            ));
        }
        for range in [r.r, r.f, r.m] {
            if range[0] < 1 || range[1] > 5 || range[0] > range[1] {
                return Err(format!("rules[{i}]: ranges must be within 1..5, low first"));
            }
        }
    }
    let covers_all = (1..=5u8).all(|r| {
        (1..=5u8).all(|f| {
            (1..=5u8).all(|m| {
                segment_of(
                    rules,
                    RfmScores {
                        recency: r,
                        frequency: f,
                        monetary: m,
                    },
                )
                .is_some()
            })
        })
    });
    if covers_all {
        Ok(())
    } else {
        Err("rules must give every score combination a segment".into())
    }
}

/// The segment of `scores` under `rules`.
pub fn segment_of(rules: &[SegmentRule], scores: RfmScores) -> Option<&str> {
    let within = |range: [u8; 2], v: u8| range[0] <= v && v <= range[1];
    rules
        .iter()
        .find(|rule| {
            within(rule.r, scores.recency)
                && within(rule.f, scores.frequency)
                && within(rule.m, scores.monetary)
        })
        .map(|rule| rule.segment.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(recency_days: i64, frequency: i64, monetary: i64) -> RfmValues {
        RfmValues {
            recency_days,
            frequency,
            monetary,
        }
    }

    #[test]
    fn the_code_reads_recency_frequency_monetary() {
        for recency in 1..=5 {
            for frequency in 1..=5 {
                for monetary in 1..=5 {
                    let scores = RfmScores {
                        recency,
                        frequency,
                        monetary,
                    };
                    assert_eq!(
                        scores.code().as_str(),
                        format!("{recency}{frequency}{monetary}")
                    );
                }
            }
        }
    }

    #[test]
    fn quintiles_split_ten_distinct_values_in_pairs_and_invert_recency() {
        let population: Vec<RfmValues> = (1..=10).map(|i| values(i * 10, i, i * 1000)).collect();
        let q = Quintiles::of(&population);
        let scores: Vec<(u8, u8, u8)> = population
            .iter()
            .map(|v| {
                let s = q.score(v);
                (s.recency, s.frequency, s.monetary)
            })
            .collect();
        assert_eq!(
            scores,
            vec![
                (5, 1, 1),
                (5, 1, 1),
                (4, 2, 2),
                (4, 2, 2),
                (3, 3, 3),
                (3, 3, 3),
                (2, 4, 4),
                (2, 4, 4),
                (1, 5, 5),
                (1, 5, 5)
            ]
        );
    }

    #[test]
    fn ties_share_a_score() {
        // 8 of 10 customers bought once: they all get frequency 1; the others exceed
        // every cut point.
        let mut population: Vec<RfmValues> = (0..8).map(|_| values(5, 1, 100)).collect();
        population.push(values(5, 3, 100));
        population.push(values(5, 7, 100));
        let q = Quintiles::of(&population);
        assert_eq!(q.score(&population[0]).frequency, 1);
        assert_eq!(q.score(&population[8]).frequency, 5);
        assert_eq!(q.score(&population[9]).frequency, 5);
    }

    #[test]
    fn the_default_mapping_covers_every_combination_and_reads_as_documented() {
        let rules = default_rules();
        assert_eq!(validate_rules(&rules), Ok(()));
        let seg = |r, f, m| {
            segment_of(
                &rules,
                RfmScores {
                    recency: r,
                    frequency: f,
                    monetary: m,
                },
            )
        };
        assert_eq!(seg(5, 5, 5), Some("Champions"));
        assert_eq!(seg(5, 1, 3), Some("Recent Customers"));
        assert_eq!(seg(1, 5, 5), Some("Cannot Lose Them"));
        assert_eq!(seg(1, 1, 1), Some("Lost"));
        assert_eq!(seg(1, 1, 4), Some("Hibernating"));
        assert_eq!(seg(2, 3, 2), Some("At Risk"));
        let used: std::collections::BTreeSet<&str> =
            rules.iter().map(|r| r.segment.as_str()).collect();
        assert_eq!(
            used.len(),
            SEGMENTS.len(),
            "all eleven segments are reachable"
        );
        assert!(validate_rules(&rules[..3]).is_err(), "no catch-all");
    }
}
