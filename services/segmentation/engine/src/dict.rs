//! Dictionaries: each distinct value of a column once, rows hold its `u32` code.
//!
//! A condition is answered against the dictionary first (a hash lookup for `equals` and
//! `in`, one pass over the distinct values otherwise), giving the set of matching
//! codes; the rows are then integer tests. Strings are stored lower-cased (every rule
//! reads text case-insensitively), numbers as serde_json prints them (which is what
//! `contains` sees), arrays and objects as one shared "opaque" entry (set, equal to
//! nothing).

use chrono::{DateTime, Utc};
use hashbrown::{DefaultHashBuilder, HashTable};
use serde_json::Value;
use std::borrow::Cow;
use std::hash::BuildHasher;

use super::semantics::{Expected, Op, Scalar, Test, parse_time_str};

/// The code of an unset cell.
pub(super) const NONE: u32 = u32::MAX;

/// What kind of value an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
enum Kind {
    Str,
    Num,
    Bool,
    Opaque,
}

/// The distinct values of one column.
#[derive(Default)]
pub(super) struct Dict {
    /// Every entry's text, back to back.
    text: String,
    /// Where each entry's text ends in `text`.
    ends: Vec<usize>,
    kinds: Vec<Kind>,
    /// Numeric entries and their value.
    numbers: Vec<(u32, f64)>,
    /// String entries that parse as RFC 3339 instants, and the instant.
    times: Vec<(u32, DateTime<Utc>)>,
    /// Codes, hashed by (kind, text): the text is kept once, in `text`.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

/// The codes a condition accepts.
#[derive(Debug, Clone)]
pub(super) enum CodeSet {
    Nothing,
    /// Every set cell.
    All,
    One(u32),
    /// Two to eight codes, padded by repeating the first: eight branch-free compares
    /// (which vectorise) beat a lookup per row.
    Few([u32; 8]),
    /// A bitset over codes.
    Bits(Vec<u64>),
}

impl CodeSet {
    fn from_codes(mut codes: Vec<u32>) -> Self {
        codes.sort_unstable();
        codes.dedup();
        match codes.len() {
            0 => CodeSet::Nothing,
            1 => CodeSet::One(codes[0]),
            2..=8 => {
                let mut few = [codes[0]; 8];
                few[..codes.len()].copy_from_slice(&codes);
                CodeSet::Few(few)
            }
            _ => {
                let max = codes.last().copied().unwrap_or(0) as usize;
                let mut bits = vec![0u64; max / 64 + 1];
                for c in codes {
                    bits[c as usize / 64] |= 1 << (c % 64);
                }
                CodeSet::Bits(bits)
            }
        }
    }

    /// The set without codes from `limit` up.
    pub(super) fn below(self, limit: u32) -> CodeSet {
        match self {
            CodeSet::One(c) if c >= limit => CodeSet::Nothing,
            CodeSet::Few(few) if few.iter().any(|&c| c >= limit) => {
                CodeSet::from_codes(few.into_iter().filter(|&c| c < limit).collect())
            }
            CodeSet::Bits(bits) if bits.len() * 64 > limit as usize => {
                let codes = bits
                    .iter()
                    .enumerate()
                    .flat_map(|(w, &word)| {
                        (0..64)
                            .filter(move |b| (word >> b) & 1 == 1)
                            .map(move |b| (w * 64 + b) as u32)
                    })
                    .filter(|&c| c < limit)
                    .collect();
                CodeSet::from_codes(codes)
            }
            other => other,
        }
    }

    /// Whether `code` (possibly [`NONE`]) is in the set.
    #[inline(always)]
    pub(super) fn contains(&self, code: u32) -> bool {
        match self {
            CodeSet::Nothing => false,
            CodeSet::All => code != NONE,
            CodeSet::One(c) => code == *c,
            CodeSet::Few(few) => few.contains(&code),
            CodeSet::Bits(bits) => bits
                .get(code as usize / 64)
                .is_some_and(|w| (w >> (code % 64)) & 1 == 1),
        }
    }
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

impl Dict {
    /// Entries (live or not: entries are only dropped by [`Dict::compact`]).
    pub(super) fn len(&self) -> usize {
        self.kinds.len()
    }

    fn entry_text(&self, code: u32) -> &str {
        let code = code as usize;
        let start = if code == 0 { 0 } else { self.ends[code - 1] };
        &self.text[start..self.ends[code]]
    }

    fn hash(hasher: &DefaultHashBuilder, kind: Kind, text: &str) -> u64 {
        hasher.hash_one((kind, text))
    }

    fn lookup(&self, kind: Kind, text: &str) -> Option<u32> {
        let hash = Self::hash(&self.hasher, kind, text);
        self.table
            .find(hash, |&c| {
                self.kinds[c as usize] == kind && self.entry_text(c) == text
            })
            .copied()
    }

    fn intern_entry(&mut self, kind: Kind, text: &str) -> u32 {
        if let Some(code) = self.lookup(kind, text) {
            return code;
        }
        let Ok(code) = u32::try_from(self.kinds.len()) else {
            return NONE;
        };
        if code == NONE {
            // Four billion distinct values in one column: the last reads as unset
            // rather than wrapping around.
            return NONE;
        }
        self.text.push_str(text);
        self.ends.push(self.text.len());
        self.kinds.push(kind);
        match kind {
            Kind::Num => {
                // serde_json prints numbers so that they parse back to the same f64.
                if let Ok(value) = text.parse::<f64>() {
                    self.numbers.push((code, value));
                }
            }
            Kind::Str => {
                if let Some(at) = parse_time_str(text) {
                    self.times.push((code, at));
                }
            }
            Kind::Bool | Kind::Opaque => {}
        }
        let Dict {
            table,
            hasher,
            kinds,
            text: all,
            ends,
            ..
        } = self;
        let hash = Self::hash(hasher, kind, text);
        table.insert_unique(hash, code, |&c| {
            let c = c as usize;
            let start = if c == 0 { 0 } else { ends[c - 1] };
            Self::hash(hasher, kinds[c], &all[start..ends[c]])
        });
        code
    }

    /// The code of a string (any case).
    pub(super) fn intern_str(&mut self, s: &str) -> u32 {
        self.intern_entry(Kind::Str, &lower(s))
    }

    /// The code of a JSON value ([`NONE`] for null, which reads as unset).
    pub(super) fn intern(&mut self, value: &Value) -> u32 {
        match value {
            Value::Null => NONE,
            Value::String(s) => self.intern_str(s),
            Value::Number(n) => self.intern_entry(Kind::Num, &n.to_string()),
            Value::Bool(b) => self.intern_entry(Kind::Bool, if *b { "true" } else { "false" }),
            Value::Array(_) | Value::Object(_) => self.intern_entry(Kind::Opaque, ""),
        }
    }

    fn equal_codes<'e>(&self, items: impl Iterator<Item = &'e Expected>, out: &mut Vec<u32>) {
        for e in items {
            // The reference's `compare` is Equal exactly for: the same number, the same
            // instant (both sides parse), the same lower-cased text, the same boolean.
            if let Some(lower) = &e.lower
                && let Some(code) = self.lookup(Kind::Str, lower)
            {
                out.push(code);
            }
            if let Some(at) = e.time {
                out.extend(self.times.iter().filter(|(_, t)| *t == at).map(|(c, _)| *c));
            }
            if let Some(x) = e.num {
                out.extend(
                    self.numbers
                        .iter()
                        .filter(|(_, v)| *v == x)
                        .map(|(c, _)| *c),
                );
            }
            if let Some(b) = e.boolean
                && let Some(code) = self.lookup(Kind::Bool, if b { "true" } else { "false" })
            {
                out.push(code);
            }
        }
    }

    /// The codes whose value passes `test`'s positive form.
    pub(super) fn matching(&self, test: &Test) -> CodeSet {
        let mut codes = Vec::new();
        match test.op {
            Op::IsSet => return CodeSet::All,
            Op::Never => return CodeSet::Nothing,
            Op::Equals => self.equal_codes(std::iter::once(&test.value), &mut codes),
            Op::In => self.equal_codes(test.list.iter(), &mut codes),
            // Only numbers and instants order, so only they can pass these.
            Op::Greater
            | Op::GreaterOrEqual
            | Op::Less
            | Op::LessOrEqual
            | Op::Between
            | Op::NewerThanDays
            | Op::OlderThanDays => {
                for &(code, value) in &self.numbers {
                    if test.holds(&Scalar::Num { value, text: "" }) {
                        codes.push(code);
                    }
                }
                for &(code, at) in &self.times {
                    if test.holds(&Scalar::Str {
                        text: "",
                        time: Some(at),
                    }) {
                        codes.push(code);
                    }
                }
            }
            Op::Contains | Op::StartsWith | Op::EndsWith => {
                let Some(needle) = test.needle.as_deref() else {
                    return CodeSet::Nothing;
                };
                let f: fn(&str, &str) -> bool = match test.op {
                    Op::Contains => |a, n| a.contains(n),
                    Op::StartsWith => |a, n| a.starts_with(n),
                    _ => |a, n| a.ends_with(n),
                };
                let mut start = 0;
                for (code, (&end, &kind)) in self.ends.iter().zip(&self.kinds).enumerate() {
                    if kind != Kind::Opaque && f(&self.text[start..end], needle) {
                        codes.push(code as u32);
                    }
                    start = end;
                }
            }
        }
        CodeSet::from_codes(codes)
    }

    /// A fresh dictionary holding only the entries `codes` use, with `codes` rewritten
    /// to it: values no row holds any more are dropped.
    pub(super) fn compact(&self, codes: &mut [u32]) -> Dict {
        let mut fresh = Dict::default();
        let mut remap = vec![NONE; self.len()];
        for code in codes.iter_mut() {
            if *code == NONE {
                continue;
            }
            let old = *code as usize;
            if remap[old] == NONE {
                remap[old] = fresh.intern_entry(self.kinds[old], self.entry_text(*code));
            }
            *code = remap[old];
        }
        fresh
    }

    /// Like [`Dict::compact`] for a column of [`Codes`](super::columns::Codes), which
    /// also takes the narrowest width afterwards.
    pub(super) fn compact_codes(&self, codes: &mut super::columns::Codes) -> Dict {
        let mut fresh = Dict::default();
        let mut remap = vec![NONE; self.len()];
        let mut all: Vec<u32> = (0..codes.len()).map(|i| codes.get(i)).collect();
        for code in &mut all {
            if *code == NONE {
                continue;
            }
            let old = *code as usize;
            if remap[old] == NONE {
                remap[old] = fresh.intern_entry(self.kinds[old], self.entry_text(*code));
            }
            *code = remap[old];
        }
        let mut i = 0;
        codes.remap(fresh.len(), |_| {
            let code = all[i];
            i += 1;
            code
        });
        fresh
    }

    /// Like [`Dict::compact`] for codes spread over several places.
    pub(super) fn compact_many<'a>(&self, parts: impl Iterator<Item = &'a mut u32>) -> Dict {
        let mut fresh = Dict::default();
        let mut remap = vec![NONE; self.len()];
        for code in parts {
            if *code == NONE {
                continue;
            }
            let old = *code as usize;
            if remap[old] == NONE {
                remap[old] = fresh.intern_entry(self.kinds[old], self.entry_text(*code));
            }
            *code = remap[old];
        }
        fresh
    }

    /// Gives back spare capacity.
    pub(super) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.kinds.shrink_to_fit();
        self.numbers.shrink_to_fit();
        self.times.shrink_to_fit();
        let Dict {
            table,
            hasher,
            kinds,
            text,
            ends,
            ..
        } = self;
        table.shrink_to_fit(|&c| {
            let c = c as usize;
            let start = if c == 0 { 0 } else { ends[c - 1] };
            Self::hash(hasher, kinds[c], &text[start..ends[c]])
        });
    }

    /// Heap bytes, approximately.
    pub(super) fn memory_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * size_of::<usize>()
            + self.kinds.capacity()
            + self.numbers.capacity() * size_of::<(u32, f64)>()
            + self.times.capacity() * size_of::<(u32, DateTime<Utc>)>()
            + self.table.capacity() * (size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkt_segment_rules::Condition;
    use serde_json::json;

    fn test(op: &str, value: Value) -> Test {
        let condition = Condition {
            id: String::new(),
            field: "attributes.x".into(),
            operator: op.into(),
            value: Some(value),
            value2: None,
            event_type: None,
            within_days: None,
            property: None,
        };
        Test::compile(&condition, Utc::now())
    }

    #[test]
    fn equality_reads_case_numbers_and_instants_like_the_reference() {
        let mut d = Dict::default();
        let ca = d.intern(&json!("CA"));
        assert_eq!(d.intern(&json!("ca")), ca);
        let one = d.intern(&json!(1));
        let one_f = d.intern(&json!(1.0));
        assert_ne!(one, one_f);
        let at = d.intern(&json!("2026-01-01T00:00:00Z"));
        let at2 = d.intern(&json!("2026-01-01T01:00:00+01:00"));
        assert!(d.matching(&test("equals", json!("Ca"))).contains(ca));
        let ones = d.matching(&test("equals", json!(1)));
        assert!(ones.contains(one) && ones.contains(one_f) && !ones.contains(ca));
        let same = d.matching(&test("equals", json!("2026-01-01T00:00:00z")));
        assert!(same.contains(at) && same.contains(at2));
        assert!(!d.matching(&test("equals", json!(true))).contains(NONE));
        let tail = d.matching(&test("ends_with", json!("0")));
        assert!(tail.contains(one_f) && !tail.contains(one));
    }

    #[test]
    fn compaction_keeps_only_used_values() {
        let mut d = Dict::default();
        let mut codes: Vec<u32> = ["a", "b", "c", "b"]
            .iter()
            .map(|s| d.intern_str(s))
            .collect();
        codes[0] = NONE;
        let fresh = d.compact(&mut codes);
        assert_eq!(fresh.len(), 2);
        assert_eq!(codes[1], codes[3]);
        assert_eq!(fresh.entry_text(codes[2]), "c");
    }
}
