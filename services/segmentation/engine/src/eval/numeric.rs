//! Numeric leaves: integers, decimals and instants compared as numbers, with the
//! 16-bit bucket plans that let a range test skip exact values, and the whole-day
//! arithmetic of `last_order_days_ago`.

use chrono::{DateTime, Utc};

use super::super::bits::{self, chunk, mask};
use super::super::columns::Column;
use super::super::semantics::{Op, Test, micros_ceil, micros_floor};
use super::flip_of;
use super::leaves::Leaf;

/// A number as the reference reads it.
pub(super) trait Number: Copy {
    fn f64(self) -> f64;
    fn text(self) -> String;
}

impl Number for i64 {
    fn f64(self) -> f64 {
        self as f64
    }
    fn text(self) -> String {
        self.to_string()
    }
}

impl Number for i32 {
    fn f64(self) -> f64 {
        f64::from(self)
    }
    fn text(self) -> String {
        self.to_string()
    }
}

impl Number for f64 {
    fn f64(self) -> f64 {
        self
    }
    fn text(self) -> String {
        serde_json::Number::from_f64(self).map_or_else(String::new, |n| n.to_string())
    }
}

/// A test of a number, for the operators that only compare numbers.
#[derive(Debug, Clone)]
pub(super) enum NumPred {
    All,
    Nothing,
    Eq(f64),
    In(Vec<f64>),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Range(f64, f64),
}

impl NumPred {
    /// `None`: the operator reads the number as text (run row by row).
    pub(super) fn compile(test: &Test) -> Option<Self> {
        let v = test.value.num;
        let or_nothing = |p: Option<NumPred>| p.unwrap_or(NumPred::Nothing);
        Some(match test.op {
            Op::IsSet => NumPred::All,
            Op::Equals => or_nothing(v.map(NumPred::Eq)),
            Op::In => {
                let items: Vec<f64> = test.list.iter().filter_map(|e| e.num).collect();
                if items.is_empty() {
                    NumPred::Nothing
                } else {
                    NumPred::In(items)
                }
            }
            Op::Greater => or_nothing(v.map(NumPred::Gt)),
            Op::GreaterOrEqual => or_nothing(v.map(NumPred::Ge)),
            Op::Less => or_nothing(v.map(NumPred::Lt)),
            Op::LessOrEqual => or_nothing(v.map(NumPred::Le)),
            Op::Between => match (v, test.value2.num) {
                (Some(low), Some(high)) => NumPred::Range(low, high),
                _ => NumPred::Nothing,
            },
            // A number is no instant.
            Op::NewerThanDays | Op::OlderThanDays | Op::Never => NumPred::Nothing,
            Op::Contains | Op::StartsWith | Op::EndsWith => return None,
        })
    }

    /// One bit per cell, with the match hoisted out of the row loop.
    #[inline(always)]
    pub(super) fn mask<T: Number>(&self, cells: &[T]) -> u64 {
        match self {
            NumPred::All => !0,
            NumPred::Nothing => 0,
            NumPred::Eq(v) => mask(cells, |x| x.f64() == *v),
            NumPred::In(vs) => mask(cells, |x| vs.contains(&x.f64())),
            NumPred::Gt(v) => mask(cells, |x| x.f64() > *v),
            NumPred::Ge(v) => mask(cells, |x| x.f64() >= *v),
            NumPred::Lt(v) => mask(cells, |x| x.f64() < *v),
            NumPred::Le(v) => mask(cells, |x| x.f64() <= *v),
            NumPred::Range(low, high) => mask(cells, |x| {
                let f = x.f64();
                f >= *low && f <= *high
            }),
        }
    }
}

/// A range test on a column's 16-bit buckets: rows whose bucket is a candidate may
/// pass, rows whose bucket is sure do pass; only candidates that are not sure need
/// their exact value.
pub(super) struct Coarse<'a> {
    pub(super) buckets: &'a [u16],
    /// Candidates: `low..=low + span`.
    pub(super) low: u16,
    pub(super) span: u16,
    /// Sure: (low, span), if any bucket is.
    pub(super) sure: Option<(u16, u16)>,
}

impl Coarse<'_> {
    /// Bucket range `from..=to` (signed: either end may fall off), as (low, span).
    pub(super) fn range(from: isize, to: isize) -> Option<(u16, u16)> {
        (from <= to && to >= 0).then(|| {
            let from = from.max(0);
            (from as u16, (to - from) as u16)
        })
    }

    pub(super) fn new(
        buckets: &[u16],
        candidates: (usize, usize),
        sure: (isize, isize),
    ) -> Option<Coarse<'_>> {
        let (low, span) = Coarse::range(candidates.0 as isize, candidates.1 as isize)?;
        Some(Coarse {
            buckets,
            low,
            span,
            sure: Coarse::range(sure.0, sure.1),
        })
    }

    /// (sure, to check) bits of word `w`.
    #[inline(always)]
    pub(super) fn split(&self, w: usize) -> (u64, u64) {
        let cells = chunk(self.buckets, w);
        let (low, span) = (self.low, self.span);
        let candidates = mask(cells, |b| b.wrapping_sub(low) <= span);
        let sure = match self.sure {
            Some((low, span)) => mask(cells, |b| b.wrapping_sub(low) <= span),
            None => 0,
        };
        (sure, candidates & !sure)
    }
}

/// The bucket plan of `low..=high` on an integer column (`None`: not quantized).
pub(super) fn int_plan<T: Copy + Into<i64>>(
    column: &Column<T>,
    low: i64,
    high: i64,
) -> Option<Coarse<'_>> {
    let bounds = &column.bounds;
    if bounds.is_empty() || low > high {
        return None;
    }
    let bucket = |x: i64| bounds.partition_point(|b| (*b).into() <= x);
    let (first, last) = (bucket(low), bucket(high));
    // Bucket j holds first_value(j)..=last_value(j); it is sure when that lies inside.
    let first_value = |j: usize| {
        if j == 0 {
            i64::MIN
        } else {
            bounds[j - 1].into()
        }
    };
    let last_value = |j: usize| {
        if j == bounds.len() {
            i64::MAX
        } else {
            bounds[j].into().saturating_sub(1)
        }
    };
    let inside = |j: usize| first_value(j) >= low && last_value(j) <= high;
    let sure_from = if inside(first) { first } else { first + 1 };
    let sure_to = if inside(last) {
        last as isize
    } else {
        last as isize - 1
    };
    Coarse::new(
        &column.buckets,
        (first, last),
        (sure_from as isize, sure_to),
    )
}

/// The bucket plan of a one-interval test on a decimal column (`None`: not quantized,
/// or not one interval). Decimals between bounds are not enumerable, so only buckets
/// strictly inside are sure.
pub(super) fn decimal_plan<'a>(column: &'a Column<f64>, pred: &NumPred) -> Option<Coarse<'a>> {
    let bounds = &column.bounds;
    let [(lower, upper)] = pred.intervals()[..] else {
        return None;
    };
    if bounds.is_empty() {
        return None;
    }
    let bucket = |x: f64| bounds.partition_point(|b| *b <= x);
    let first = lower.map_or(0, |(v, _)| bucket(v));
    let last = upper.map_or(bounds.len(), |(v, _)| bucket(v));
    if first > last {
        return None;
    }
    let sure_from = if lower.is_none() {
        0
    } else {
        first as isize + 1
    };
    let sure_to = if upper.is_none() {
        bounds.len() as isize
    } else {
        last as isize - 1
    };
    Coarse::new(&column.buckets, (first, last), (sure_from, sure_to))
}

/// Decimals against a [`NumPred`].
pub(super) struct Decimals<'a> {
    pub(super) vals: &'a [f64],
    pub(super) set: &'a [u64],
    pub(super) pred: NumPred,
    pub(super) coarse: Option<Coarse<'a>>,
    pub(super) flip: u64,
}

impl Leaf for Decimals<'_> {
    fn word(&self, w: usize, _: u64) -> u64 {
        let set = bits::word(self.set, w);
        let positive = match &self.coarse {
            Some(coarse) => {
                let (sure, check) = coarse.split(w);
                let check = check & set;
                let exact = if check == 0 {
                    0
                } else {
                    self.pred.mask(chunk(self.vals, w)) & check
                };
                (sure & set) | exact
            }
            None => self.pred.mask(chunk(self.vals, w)) & set,
        };
        positive ^ self.flip
    }
    fn cost(&self) -> u32 {
        3
    }
}

/// A test of an integer cell (an integer, an instant in microseconds): closed ranges.
pub(super) enum IntPred {
    All,
    Nothing,
    Range(i64, i64),
    /// Disjoint, ascending.
    Ranges(Vec<(i64, i64)>),
}

impl IntPred {
    pub(super) fn of_ranges(mut ranges: Vec<(i64, i64)>) -> Self {
        ranges.retain(|(a, b)| a <= b);
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        match merged.len() {
            0 => IntPred::Nothing,
            1 => IntPred::Range(merged[0].0, merged[0].1),
            _ => IntPred::Ranges(merged),
        }
    }
}

/// The smallest `x` with `p(x)`, where `p` is false and then true along the integers.
pub(super) fn first_true(p: impl Fn(i64) -> bool) -> Option<i64> {
    if !p(i64::MAX) {
        return None;
    }
    let (mut low, mut high) = (i128::from(i64::MIN), i128::from(i64::MAX));
    while low < high {
        let mid = low + (high - low) / 2;
        if p(mid as i64) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    Some(high as i64)
}

/// The largest `x` with `p(x)`, where `p` is true and then false along the integers.
pub(super) fn last_true(p: impl Fn(i64) -> bool) -> Option<i64> {
    match first_true(|x| !p(x)) {
        None => Some(i64::MAX),
        Some(i64::MIN) => None,
        Some(first_false) => Some(first_false - 1),
    }
}

/// One bound of an interval of reals: (value, strict).
pub(super) type Bound = Option<(f64, bool)>;

impl NumPred {
    /// The interval(s) of reals the test accepts, as (lower, upper) bounds.
    pub(super) fn intervals(&self) -> Vec<(Bound, Bound)> {
        let point = |v: f64| (Some((v, false)), Some((v, false)));
        match self {
            NumPred::All | NumPred::Nothing => Vec::new(),
            NumPred::Eq(v) => vec![point(*v)],
            NumPred::In(vs) => vs.iter().map(|v| point(*v)).collect(),
            NumPred::Gt(v) => vec![(Some((*v, true)), None)],
            NumPred::Ge(v) => vec![(Some((*v, false)), None)],
            NumPred::Lt(v) => vec![(None, Some((*v, true)))],
            NumPred::Le(v) => vec![(None, Some((*v, false)))],
            NumPred::Range(a, b) => vec![(Some((*a, false)), Some((*b, false)))],
        }
    }

    /// The same test on an integer `x` read as the real `read(x)`, where `read` only
    /// ever grows (`increasing`) or only ever shrinks along the integers: each interval
    /// of reals is then an interval of integers, found by binary search with the exact
    /// test. The row loop compares integers and stays exact (`i64 as f64` rounds above
    /// 2^53; a day count is rounded).
    pub(super) fn on_integers(&self, read: impl Fn(i64) -> f64, increasing: bool) -> IntPred {
        match self {
            NumPred::All => return IntPred::All,
            NumPred::Nothing => return IntPred::Nothing,
            _ => {}
        }
        let above = |bound: Bound, x: i64| {
            bound.is_none_or(|(v, strict)| if strict { read(x) > v } else { read(x) >= v })
        };
        let below = |bound: Bound, x: i64| {
            bound.is_none_or(|(v, strict)| if strict { read(x) < v } else { read(x) <= v })
        };
        let mut ranges = Vec::new();
        for (lower, upper) in self.intervals() {
            let (from, to) = if increasing {
                (
                    first_true(|x| above(lower, x)),
                    last_true(|x| below(upper, x)),
                )
            } else {
                (
                    first_true(|x| below(upper, x)),
                    last_true(|x| above(lower, x)),
                )
            };
            if let (Some(from), Some(to)) = (from, to) {
                ranges.push((from, to));
            }
        }
        IntPred::of_ranges(ranges)
    }
}

/// Integer cells (integers, instants in microseconds) against an [`IntPred`].
pub(super) struct Ints<'a, T> {
    pub(super) vals: &'a [T],
    pub(super) set: &'a [u64],
    pub(super) pred: IntPred,
    pub(super) coarse: Option<Coarse<'a>>,
    pub(super) flip: u64,
}

impl<'a, T: Copy + Into<i64> + Default + PartialOrd> Ints<'a, T> {
    pub(super) fn new(column: &'a Column<T>, pred: IntPred, negate: bool) -> Self {
        let coarse = match pred {
            IntPred::Range(low, high) => int_plan(column, low, high),
            _ => None,
        };
        Ints {
            vals: &column.vals,
            set: &column.set,
            pred,
            coarse,
            flip: flip_of(negate),
        }
    }

    #[inline(always)]
    pub(super) fn exact(&self, w: usize) -> u64 {
        let cells = chunk(self.vals, w);
        match &self.pred {
            IntPred::All => !0,
            IntPred::Nothing => 0,
            IntPred::Range(low, high) => {
                // low <= x <= high as one unsigned compare (low <= high holds).
                let (low, span) = (*low, high.wrapping_sub(*low) as u64);
                mask(cells, |x| {
                    let x: i64 = x.into();
                    x.wrapping_sub(low) as u64 <= span
                })
            }
            IntPred::Ranges(ranges) => mask(cells, |x| {
                let x: i64 = x.into();
                ranges.iter().any(|(a, b)| x >= *a && x <= *b)
            }),
        }
    }
}

impl<T: Copy + Into<i64> + Default + PartialOrd> Leaf for Ints<'_, T> {
    fn word(&self, w: usize, _: u64) -> u64 {
        let set = bits::word(self.set, w);
        let positive = match &self.coarse {
            Some(coarse) => {
                let (sure, check) = coarse.split(w);
                let check = check & set;
                let exact = if check == 0 { 0 } else { self.exact(w) & check };
                (sure & set) | exact
            }
            None => self.exact(w) & set,
        };
        positive ^ self.flip
    }
    fn cost(&self) -> u32 {
        3
    }
}

/// The test of an instant as microsecond ranges; `None`: the operator reads the
/// instant as text (run row by row).
pub(super) fn instant_pred(test: &Test) -> Option<IntPred> {
    // Instants are stored in whole microseconds while rule values may be finer: each
    // bound is rounded so that comparing microseconds decides exactly what comparing
    // the instants would.
    let exact = |t: DateTime<Utc>| match micros_floor(t) {
        (m, true) => Some(m),
        _ => None,
    };
    let range = |p: Option<(i64, i64)>| IntPred::of_ranges(p.into_iter().collect());
    let v = test.value.time;
    Some(match test.op {
        Op::IsSet => IntPred::All,
        Op::Equals => range(v.and_then(exact).map(|m| (m, m))),
        Op::In => IntPred::of_ranges(
            test.list
                .iter()
                .filter_map(|e| e.time)
                .filter_map(exact)
                .map(|m| (m, m))
                .collect(),
        ),
        Op::Greater => range(v.map(|t| (micros_floor(t).0.saturating_add(1), i64::MAX))),
        Op::GreaterOrEqual => range(v.map(|t| (micros_ceil(t), i64::MAX))),
        Op::Less => range(v.map(|t| (i64::MIN, micros_ceil(t).saturating_sub(1)))),
        Op::LessOrEqual => range(v.map(|t| (i64::MIN, micros_floor(t).0))),
        Op::Between => range(match (v, test.value2.time) {
            (Some(low), Some(high)) => Some((micros_ceil(low), micros_floor(high).0)),
            _ => None,
        }),
        Op::NewerThanDays => range(test.cutoff.map(|c| (micros_ceil(c), i64::MAX))),
        Op::OlderThanDays => range(
            test.cutoff
                .map(|c| (i64::MIN, micros_ceil(c).saturating_sub(1))),
        ),
        Op::Never => IntPred::Nothing,
        Op::Contains | Op::StartsWith | Op::EndsWith => return None,
    })
}

pub(super) const DAY_MICROS: i64 = 86_400_000_000;

/// The reference's `(now - last).num_days()`: whole days, rounded toward zero, where
/// `now` is `now_micros` plus a fraction of a microsecond when `now_inexact`.
#[inline(always)]
pub(super) fn days_since(now_micros: i64, now_inexact: bool, last: i64) -> i64 {
    match now_micros.checked_sub(last) {
        Some(d) if d >= 0 => d / DAY_MICROS,
        // `now` is earlier: -(whole days in `last - now`), where a fraction of a
        // microsecond in `now` makes `last - now` fall just short of `-d`.
        Some(d) if d > i64::MIN => -((-d - i64::from(now_inexact)) / DAY_MICROS),
        _ => {
            let d = i128::from(now_micros) - i128::from(last);
            let days = if d >= 0 {
                d / i128::from(DAY_MICROS)
            } else {
                -((-d - i128::from(now_inexact)) / i128::from(DAY_MICROS))
            };
            days as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn whole_days_round_toward_zero_like_chrono() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00.000000500Z".parse().expect("time");
        let (now_micros, exact) = micros_floor(now);
        for offset in [
            Duration::zero(),
            Duration::days(1),
            Duration::days(1) - Duration::microseconds(1),
            Duration::days(-1),
            Duration::days(-1) + Duration::microseconds(1),
            Duration::days(-2),
            Duration::days(400) + Duration::seconds(7),
        ] {
            let last = now - offset;
            let last_micros = last.timestamp_micros();
            let stored = DateTime::from_timestamp_micros(last_micros).expect("time");
            assert_eq!(
                days_since(now_micros, !exact, last_micros),
                (now - stored).num_days(),
                "{offset:?}"
            );
        }
    }
}
