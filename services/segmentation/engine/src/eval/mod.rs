//! Evaluation: a rule tree is compiled against the index (dictionary lookups, instant
//! thresholds, property code sets: once per query), then run 64 rows at a time.
//!
//! Every node computes its result only where the caller still cares: an AND passes
//! down the rows that are still in, an OR the rows that are not in yet, so a word no
//! row of which can change the outcome is skipped. Leaves run before sub-groups, cheap
//! leaves first.
//!
//! The leaves live in [`leaves`] (constants, dictionary codes, booleans) and [`numeric`]
//! (integers, decimals, instants, day counts); this module compiles a tree into them and
//! runs it.

use chrono::{DateTime, Utc};

use super::TenantIndex;
use super::bits;
use super::columns::{AttrCells, BoolColumn, Column};
use super::events::{CountTest, Filter};
use super::semantics::{
    Scalar, Test, days_before, from_micros, instant_text, micros_ceil, micros_floor,
};
use mkt_segment_rules::{Condition, Group, Logic};

mod leaves;
mod numeric;

use leaves::{Booleans, Const, Leaf, Materialised, coded};
use numeric::{Decimals, Ints, NumPred, Number, days_since, decimal_plan, instant_pred};

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
