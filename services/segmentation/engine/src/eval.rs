//! Evaluation: a rule tree is compiled against the index (dictionary lookups, instant
//! thresholds, property code sets: once per query), then run 64 rows at a time.
//!
//! Every node computes its result only where the caller still cares: an AND passes
//! down the rows that are still in, an OR the rows that are not in yet, so a word no
//! row of which can change the outcome is skipped. Leaves run before sub-groups, cheap
//! leaves first.

use chrono::{DateTime, Utc};

use super::TenantIndex;
use super::bits::{self, chunk, mask};
use super::columns::{AttrCells, BoolColumn, Code, Codes, Column};
use super::dict::CodeSet;
use super::events::{CountTest, Filter};
use super::semantics::{
    Op, Scalar, Test, days_before, from_micros, instant_text, micros_ceil, micros_floor,
};
use mkt_segment_rules::{Condition, Group, Logic};

/// A compiled condition.
trait Leaf {
    /// The condition's result for word `w`'s 64 rows. Only the bits of `care` are read
    /// by the caller; a leaf may skip computing the others.
    fn word(&self, w: usize, care: u64) -> u64;
    /// Relative cost of a word, to run cheap leaves first.
    fn cost(&self) -> u32;
}

/// The same result for every row.
struct Const(u64);

impl Leaf for Const {
    fn word(&self, _: usize, _: u64) -> u64 {
        self.0
    }
    fn cost(&self) -> u32 {
        0
    }
}

/// A result computed up front (sparse traits, rare operators).
struct Materialised {
    positive: Vec<u64>,
    flip: u64,
}

impl Leaf for Materialised {
    fn word(&self, w: usize, _: u64) -> u64 {
        bits::word(&self.positive, w) ^ self.flip
    }
    fn cost(&self) -> u32 {
        1
    }
}

/// Dictionary codes (of one width) against a code set.
struct Coded<'a, C> {
    codes: &'a [C],
    set: CodeSet,
    flip: u64,
}

impl<C: Code> Leaf for Coded<'_, C> {
    fn word(&self, w: usize, _: u64) -> u64 {
        let cells = chunk(self.codes, w);
        // Codes of the set are below the dictionary's size, so they fit the width.
        let positive = match &self.set {
            CodeSet::Nothing => 0,
            CodeSet::All => mask(cells, |c| c != C::UNSET),
            CodeSet::One(k) => {
                let k = C::narrow(*k);
                mask(cells, |c| c == k)
            }
            CodeSet::Few(few) => {
                let [a, b, c, d, e, f, g, h] = few.map(C::narrow);
                mask(cells, |x| {
                    (x == a)
                        | (x == b)
                        | (x == c)
                        | (x == d)
                        | (x == e)
                        | (x == f)
                        | (x == g)
                        | (x == h)
                })
            }
            CodeSet::Bits(b) => mask(cells, |c| {
                let c = c.wide();
                b.get(c as usize / 64)
                    .is_some_and(|word| (word >> (c % 64)) & 1 == 1)
            }),
        };
        positive ^ self.flip
    }
    fn cost(&self) -> u32 {
        match self.set {
            CodeSet::Nothing => 0,
            CodeSet::Bits(_) => 6,
            _ => 2 + size_of::<C>() as u32 / 2,
        }
    }
}

/// A leaf over a code column, whatever its width.
fn coded<'a>(codes: &'a Codes, set: CodeSet, negate: bool) -> Box<dyn Leaf + 'a> {
    let flip = flip_of(negate);
    // The column is always wide enough for every code its dictionary has handed out;
    // a code that would not fit could not be stored, so it matches no row.
    let limit = match codes {
        Codes::U8(_) => u32::from(u8::MAX),
        Codes::U16(_) => u32::from(u16::MAX),
        Codes::U32(_) => u32::MAX,
    };
    let set = set.below(limit);
    match codes {
        Codes::U8(codes) => Box::new(Coded { codes, set, flip }),
        Codes::U16(codes) => Box::new(Coded { codes, set, flip }),
        Codes::U32(codes) => Box::new(Coded { codes, set, flip }),
    }
}

/// A number as the reference reads it.
trait Number: Copy {
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
enum NumPred {
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
    fn compile(test: &Test) -> Option<Self> {
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
    fn mask<T: Number>(&self, cells: &[T]) -> u64 {
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
struct Coarse<'a> {
    buckets: &'a [u16],
    /// Candidates: `low..=low + span`.
    low: u16,
    span: u16,
    /// Sure: (low, span), if any bucket is.
    sure: Option<(u16, u16)>,
}

impl Coarse<'_> {
    /// Bucket range `from..=to` (signed: either end may fall off), as (low, span).
    fn range(from: isize, to: isize) -> Option<(u16, u16)> {
        (from <= to && to >= 0).then(|| {
            let from = from.max(0);
            (from as u16, (to - from) as u16)
        })
    }

    fn new(
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
    fn split(&self, w: usize) -> (u64, u64) {
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
fn int_plan<T: Copy + Into<i64>>(column: &Column<T>, low: i64, high: i64) -> Option<Coarse<'_>> {
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
fn decimal_plan<'a>(column: &'a Column<f64>, pred: &NumPred) -> Option<Coarse<'a>> {
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
struct Decimals<'a> {
    vals: &'a [f64],
    set: &'a [u64],
    pred: NumPred,
    coarse: Option<Coarse<'a>>,
    flip: u64,
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
enum IntPred {
    All,
    Nothing,
    Range(i64, i64),
    /// Disjoint, ascending.
    Ranges(Vec<(i64, i64)>),
}

impl IntPred {
    fn of_ranges(mut ranges: Vec<(i64, i64)>) -> Self {
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
fn first_true(p: impl Fn(i64) -> bool) -> Option<i64> {
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
fn last_true(p: impl Fn(i64) -> bool) -> Option<i64> {
    match first_true(|x| !p(x)) {
        None => Some(i64::MAX),
        Some(i64::MIN) => None,
        Some(first_false) => Some(first_false - 1),
    }
}

/// One bound of an interval of reals: (value, strict).
type Bound = Option<(f64, bool)>;

impl NumPred {
    /// The interval(s) of reals the test accepts, as (lower, upper) bounds.
    fn intervals(&self) -> Vec<(Bound, Bound)> {
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
    fn on_integers(&self, read: impl Fn(i64) -> f64, increasing: bool) -> IntPred {
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
struct Ints<'a, T> {
    vals: &'a [T],
    set: &'a [u64],
    pred: IntPred,
    coarse: Option<Coarse<'a>>,
    flip: u64,
}

impl<'a, T: Copy + Into<i64> + Default + PartialOrd> Ints<'a, T> {
    fn new(column: &'a Column<T>, pred: IntPred, negate: bool) -> Self {
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
    fn exact(&self, w: usize) -> u64 {
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
fn instant_pred(test: &Test) -> Option<IntPred> {
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

const DAY_MICROS: i64 = 86_400_000_000;

/// The reference's `(now - last).num_days()`: whole days, rounded toward zero, where
/// `now` is `now_micros` plus a fraction of a microsecond when `now_inexact`.
#[inline(always)]
fn days_since(now_micros: i64, now_inexact: bool, last: i64) -> i64 {
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

/// Booleans: the result for `true` and for `false` are each constant.
struct Booleans<'a> {
    column: &'a BoolColumn,
    on_true: u64,
    on_false: u64,
    flip: u64,
}

impl Leaf for Booleans<'_> {
    fn word(&self, w: usize, _: u64) -> u64 {
        let v = bits::word(&self.column.vals, w);
        let positive =
            ((v & self.on_true) | (!v & self.on_false)) & bits::word(&self.column.set, w);
        positive ^ self.flip
    }
    fn cost(&self) -> u32 {
        1
    }
}

/// A compiled group.
pub(super) struct Node<'a> {
    logic: Logic,
    negate: bool,
    leaves: Vec<Box<dyn Leaf + 'a>>,
    groups: Vec<Node<'a>>,
}

fn flip_of(negate: bool) -> u64 {
    if negate { !0 } else { 0 }
}

/// Every value of a field unset: only the negative operators hold.
fn unset(test: &Test) -> Box<dyn Leaf + 'static> {
    Box::new(Const(flip_of(test.negate)))
}

/// Runs `holds` on each set row; for operators no fast path covers.
fn row_by_row(
    rows: usize,
    set: impl Fn(usize) -> bool,
    holds: impl Fn(usize) -> bool,
    negate: bool,
) -> Box<dyn Leaf + 'static> {
    let mut positive = vec![0u64; bits::words(rows)];
    for slot in 0..rows {
        if set(slot) && holds(slot) {
            positive[slot / 64] |= 1 << (slot % 64);
        }
    }
    Box::new(Materialised {
        positive,
        flip: flip_of(negate),
    })
}

fn numeric<'a, T: Number + Default + Into<i64> + PartialOrd>(
    column: &'a Column<T>,
    test: &Test,
    rows: usize,
) -> Box<dyn Leaf + 'a> {
    match NumPred::compile(test) {
        Some(pred) => Box::new(Ints::new(
            column,
            pred.on_integers(|x| x as f64, true),
            test.negate,
        )),
        None => by_text(column, test, rows),
    }
}

fn decimal<'a>(column: &'a Column<f64>, test: &Test, rows: usize) -> Box<dyn Leaf + 'a> {
    match NumPred::compile(test) {
        Some(pred) => Box::new(Decimals {
            vals: &column.vals,
            set: &column.set,
            coarse: decimal_plan(column, &pred),
            pred,
            flip: flip_of(test.negate),
        }),
        None => by_text(column, test, rows),
    }
}

/// Numbers under `contains` and friends: their text, row by row.
fn by_text<'a, T: Number + Default>(
    column: &'a Column<T>,
    test: &Test,
    rows: usize,
) -> Box<dyn Leaf + 'a> {
    row_by_row(
        rows,
        |s| bits::get(&column.set, s),
        |s| {
            let x = column.vals[s];
            let text = x.text();
            test.holds(&Scalar::Num {
                value: x.f64(),
                text: &text,
            })
        },
        test.negate,
    )
}

fn instants<'a>(column: &'a Column<i64>, test: &Test, rows: usize) -> Box<dyn Leaf + 'a> {
    match instant_pred(test) {
        Some(pred) => Box::new(Ints::new(column, pred, test.negate)),
        None => row_by_row(
            rows,
            |s| bits::get(&column.set, s),
            |s| {
                let micros = column.vals[s];
                let text = instant_text(micros).to_lowercase();
                test.holds(&Scalar::Str {
                    text: &text,
                    time: Some(from_micros(micros)),
                })
            },
            test.negate,
        ),
    }
}

fn days_ago<'a>(
    last: &'a Column<i64>,
    test: &Test,
    now: DateTime<Utc>,
    rows: usize,
) -> Box<dyn Leaf + 'a> {
    let (now_micros, exact) = micros_floor(now);
    match NumPred::compile(test) {
        // Whole days since `last` only shrink as `last` grows: the test becomes ranges
        // of `last_order_at` itself.
        Some(pred) => Box::new(Ints::new(
            last,
            pred.on_integers(|last| days_since(now_micros, !exact, last) as f64, false),
            test.negate,
        )),
        None => row_by_row(
            rows,
            |s| bits::get(&last.set, s),
            |s| {
                let days = days_since(now_micros, !exact, last.vals[s]);
                let text = days.to_string();
                test.holds(&Scalar::Num {
                    value: days as f64,
                    text: &text,
                })
            },
            test.negate,
        ),
    }
}

fn booleans<'a>(column: &'a BoolColumn, test: &Test) -> Box<dyn Leaf + 'a> {
    Box::new(Booleans {
        column,
        on_true: flip_of(test.holds(&Scalar::Bool(true))),
        on_false: flip_of(test.holds(&Scalar::Bool(false))),
        flip: flip_of(test.negate),
    })
}

fn event<'a>(index: &'a TenantIndex, c: &Condition, now: DateTime<Utc>) -> Box<dyn Leaf + 'a> {
    let (Some(event_type), Some(days)) = (c.event_type.as_deref(), c.within_days) else {
        return Box::new(Const(0));
    };
    let times = c
        .value
        .as_ref()
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    let test = match c.operator.as_str() {
        "performed_at_least" => CountTest::AtLeast(times),
        "performed_at_most" => CountTest::AtMost(times),
        "performed_exactly" => CountTest::Exactly(times),
        "not_performed" => CountTest::Exactly(0),
        _ => CountTest::Never,
    };
    let zero = flip_of(test.holds(0));
    let Some(log) = index.events.get(event_type) else {
        return Box::new(Const(zero));
    };
    let filter = match &c.property {
        None => Filter::All,
        Some(p) => log.filter(&p.name, &Test::equals(&p.value)),
    };
    // `occurred_at >= now - days && occurred_at <= now`, in whole microseconds.
    let low = days_before(now, days).map_or(i64::MIN, micros_ceil);
    let high = micros_floor(now).0;
    Box::new(Materialised {
        positive: log.differing(low, high, &filter, test, bits::words(index.ids.len())),
        flip: zero,
    })
}

fn condition<'a>(index: &'a TenantIndex, c: &Condition, now: DateTime<Utc>) -> Box<dyn Leaf + 'a> {
    if c.field == "event" {
        return event(index, c, now);
    }
    let test = Test::compile(c, now);
    let rows = index.ids.len();
    if let Some(key) = c.field.strip_prefix("attributes.") {
        let Some(column) = index.attributes.get(key) else {
            return unset(&test);
        };
        let set = column.dict.matching(&test);
        return match &column.cells {
            AttrCells::Dense(codes) => coded(codes, set, test.negate),
            AttrCells::Sparse(map) => {
                let mut positive = vec![0u64; bits::words(rows)];
                for (&slot, &code) in map {
                    if set.contains(code) {
                        bits::put(&mut positive, slot as usize, true);
                    }
                }
                Box::new(Materialised {
                    positive,
                    flip: flip_of(test.negate),
                })
            }
        };
    }
    let field = c.field.as_str();
    if let Some(i) = super::TEXT.iter().position(|f| *f == field) {
        let column = &index.text[i];
        return coded(&column.codes, column.dict.matching(&test), test.negate);
    }
    if let Some(i) = super::INTEGERS.iter().position(|f| *f == field) {
        return numeric(&index.integers[i], &test, rows);
    }
    if let Some(i) = super::SCORES.iter().position(|f| *f == field) {
        return numeric(&index.scores[i], &test, rows);
    }
    if let Some(i) = super::INSTANTS.iter().position(|f| *f == field) {
        return instants(&index.instants[i], &test, rows);
    }
    if let Some(i) = super::BOOLEANS.iter().position(|f| *f == field) {
        return booleans(&index.booleans[i], &test);
    }
    match field {
        "churn_probability" => decimal(&index.churn_probability, &test, rows),
        "last_order_days_ago" => days_ago(&index.instants[super::LAST_ORDER_AT], &test, now, rows),
        // Any other name is a field no customer has (the reference reads it as unset).
        _ => unset(&test),
    }
}

/// Compiles a tree against `index` as of `now`.
pub(super) fn compile<'a>(index: &'a TenantIndex, group: &Group, now: DateTime<Utc>) -> Node<'a> {
    let mut leaves: Vec<Box<dyn Leaf + 'a>> = group
        .conditions
        .iter()
        .map(|c| condition(index, c, now))
        .collect();
    leaves.sort_by_key(|l| l.cost());
    Node {
        logic: group.logic,
        negate: group.negate,
        leaves,
        groups: group
            .groups
            .iter()
            .map(|g| compile(index, g, now))
            .collect(),
    }
}

fn take(pool: &mut Vec<Vec<u64>>, words: usize) -> Vec<u64> {
    match pool.pop() {
        Some(mut buffer) => {
            buffer.clear();
            buffer.resize(words, 0);
            buffer
        }
        None => vec![0; words],
    }
}

/// `out` = the node's result on the rows of `care` (zero elsewhere). `pool` recycles
/// scratch bitsets between nodes.
pub(super) fn run(node: &Node, care: &[u64], out: &mut [u64], pool: &mut Vec<Vec<u64>>) {
    let words = care.len();
    match node.logic {
        Logic::And => {
            out.copy_from_slice(care);
            for leaf in &node.leaves {
                for (w, acc) in out.iter_mut().enumerate() {
                    if *acc != 0 {
                        *acc &= leaf.word(w, *acc);
                    }
                }
            }
            for group in &node.groups {
                let mut inner = take(pool, words);
                run(group, out, &mut inner, pool);
                for (acc, i) in out.iter_mut().zip(&inner) {
                    *acc &= i;
                }
                pool.push(inner);
            }
        }
        Logic::Or => {
            out.fill(0);
            for leaf in &node.leaves {
                for (w, acc) in out.iter_mut().enumerate() {
                    let rest = care[w] & !*acc;
                    if rest != 0 {
                        *acc |= leaf.word(w, rest) & rest;
                    }
                }
            }
            for group in &node.groups {
                let mut rest = take(pool, words);
                for ((r, c), acc) in rest.iter_mut().zip(care).zip(out.iter()) {
                    *r = c & !acc;
                }
                let mut inner = take(pool, words);
                run(group, &rest, &mut inner, pool);
                for (acc, i) in out.iter_mut().zip(&inner) {
                    *acc |= i;
                }
                pool.push(inner);
                pool.push(rest);
            }
        }
    }
    if node.negate {
        for (acc, c) in out.iter_mut().zip(care) {
            *acc = c & !*acc;
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
