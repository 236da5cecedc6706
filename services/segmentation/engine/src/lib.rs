//! The fast segment engine: a per-tenant, in-memory, columnar index of everything a
//! rule can read, answering a rule tree over every customer in milliseconds.
//!
//! Layout (see `docs/architecture.md`, "The segment engine"):
//! - every customer has a dense row slot (`Uuid -> u32`); a removed customer's slot is
//!   dead (masked out of every result) and reused by the next new customer;
//! - text fields are dictionary-coded (lower-cased, so `equals`/`in` are integer
//!   compares; `contains` and friends scan the distinct values once per query);
//!   integers, decimals and instants (microseconds) are plain typed columns with a
//!   "set" bitset; booleans are two bitsets; custom traits are one dictionary-coded
//!   column per key (sparse while few customers have the key);
//! - events are grouped per type: each customer's instants sorted, in compressed
//!   sparse rows, with one code column per property key;
//! - a query compiles the tree once against the index, then computes a bitset of slots
//!   64 rows at a time, AND/OR/NOT on whole words.
//!
//! The semantics are exactly the reference evaluator's (`mkt_segment_rules::evaluate`),
//! which the property test `tests/fast_engine_agreement.rs` checks on random rules and
//! data. This crate does no I/O: it takes records and rule trees. The segmentation
//! service's `store::snapshot` loads an index from PostgreSQL and reads its change feed;
//! its `benches/engine.rs` measures the engine against SQL.
//!
//! Single-threaded by design: a replica keeps one index per tenant behind a lock; an
//! evaluation only reads it.

mod bits;
mod columns;
mod dict;
mod eval;
mod events;
mod record;
mod semantics;

use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use serde_json::Value;
use std::hash::BuildHasher;
use uuid::Uuid;

pub use record::{BehaviourEvent, CustomerRecord, Scores};

use columns::{AttrColumn, BoolColumn, CodedColumn, Column};
use events::EventLog;
use mkt_segment_rules::Group;

/// Text fields, in `TenantIndex::text` order.
const TEXT: [&str; 11] = [
    "name",
    "email",
    "phone",
    "city",
    "state",
    "country",
    "zip_code",
    "loyalty_tier",
    "segment",
    "clv_tier",
    "churn_risk",
];
/// 64-bit integer fields, in `TenantIndex::integers` order.
const INTEGERS: [&str; 6] = [
    "orders_count",
    "total_spent",
    "avg_order_value",
    "clv",
    "emails_opened",
    "emails_clicked",
];
/// RFM scores (32-bit in PostgreSQL), in `TenantIndex::scores` order.
const SCORES: [&str; 3] = ["recency_score", "frequency_score", "monetary_score"];
/// Instant fields, in `TenantIndex::instants` order.
const INSTANTS: [&str; 3] = ["created_at", "first_order_at", "last_order_at"];
/// Where `last_order_at` is in [`INSTANTS`].
const LAST_ORDER_AT: usize = 2;
/// Boolean fields, in `TenantIndex::booleans` order.
const BOOLEANS: [&str; 4] = [
    "consent_email",
    "consent_sms",
    "consent_push",
    "unsubscribed",
];

/// A change of one customer, as the change feed reports it.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "changes are built once and moved straight into the index; a box per customer would only add an allocation"
)]
pub enum Change {
    /// Everything now known about a customer (replaces what was known).
    Upsert(CustomerRecord),
    /// The customer is gone (erased): it matches nothing any more.
    Remove(Uuid),
}

/// One tenant's customers, indexed for evaluation. See the module documentation.
#[derive(Default)]
pub struct TenantIndex {
    /// Customer id per slot (dead slots keep their last id until reused).
    ids: Vec<Uuid>,
    /// Slots by customer id; the table holds only the slot, the id is in `ids`.
    slot_of: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Slots holding a customer.
    live: Vec<u64>,
    live_count: usize,
    /// Dead slots, reused before new ones are added.
    free: Vec<u32>,
    /// `ids[..sorted_upto]` ascend (true after a load in id order, and while new ids
    /// keep ascending), so [`Members::sample`] can stop early there.
    sorted_upto: usize,
    text: [CodedColumn; 11],
    integers: [Column<i64>; 6],
    scores: [Column<i32>; 3],
    churn_probability: Column<f64>,
    instants: [Column<i64>; 3],
    booleans: [BoolColumn; 4],
    attributes: HashMap<String, AttrColumn>,
    events: HashMap<String, EventLog>,
}

impl std::fmt::Debug for TenantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantIndex")
            .field("customers", &self.live_count)
            .field("slots", &self.ids.len())
            .field("attribute_keys", &self.attributes.len())
            .field("event_types", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl TenantIndex {
    /// Customers indexed.
    pub fn len(&self) -> usize {
        self.live_count
    }

    /// Whether no customer is indexed.
    pub fn is_empty(&self) -> bool {
        self.live_count == 0
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: Uuid) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: Uuid) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.slot_of
            .find(hash, |&s| self.ids[s as usize] == id)
            .copied()
    }

    /// A slot for a new customer, and whether it held someone before.
    fn allocate(&mut self, id: Uuid) -> (u32, bool) {
        let (slot, reused) = match self.free.pop() {
            Some(slot) => {
                self.ids[slot as usize] = id;
                self.sorted_upto = self.sorted_upto.min(slot as usize);
                (slot, true)
            }
            None => {
                let slot = self.ids.len();
                if self.sorted_upto == slot && self.ids.last().is_none_or(|last| *last < id) {
                    self.sorted_upto += 1;
                }
                self.ids.push(id);
                // 2^32 - 1 customers in one tenant is the documented limit of u32 slots.
                (u32::try_from(slot).unwrap_or(u32::MAX), false)
            }
        };
        let TenantIndex {
            slot_of,
            hasher,
            ids,
            ..
        } = self;
        slot_of.insert_unique(hasher.hash_one(id), slot, |&s| {
            hasher.hash_one(ids[s as usize])
        });
        bits::put(&mut self.live, slot as usize, true);
        self.live_count += 1;
        (slot, reused)
    }

    /// Replaces everything known about one customer (adding it if new).
    pub fn upsert(&mut self, record: CustomerRecord) {
        let (slot, dirty) = match self.find(record.id) {
            Some(slot) => (slot, true),
            None => self.allocate(record.id),
        };
        let s = slot as usize;
        let scores = record.scores.as_ref();
        let texts = [
            record.name.as_deref(),
            record.email.as_deref(),
            record.phone.as_deref(),
            record.city.as_deref(),
            record.state.as_deref(),
            record.country.as_deref(),
            record.zip_code.as_deref(),
            record.loyalty_tier.as_deref(),
            scores.and_then(|x| x.rfm_segment.as_deref()),
            scores.and_then(|x| x.clv_tier.as_deref()),
            scores.and_then(|x| x.churn_risk.as_deref()),
        ];
        for (column, value) in self.text.iter_mut().zip(texts) {
            column.put(s, value);
        }
        let average = (record.orders_count > 0).then(|| record.total_spent / record.orders_count);
        let integers = [
            Some(record.orders_count),
            Some(record.total_spent),
            average,
            scores.and_then(|x| x.clv),
            // No scores row yet means nothing opened, clicked or unsubscribed.
            Some(scores.map_or(0, |x| x.emails_opened)),
            Some(scores.map_or(0, |x| x.emails_clicked)),
        ];
        for (column, value) in self.integers.iter_mut().zip(integers) {
            column.put(s, value);
        }
        let rfm = [
            scores.and_then(|x| x.recency_score),
            scores.and_then(|x| x.frequency_score),
            scores.and_then(|x| x.monetary_score),
        ];
        for (column, value) in self.scores.iter_mut().zip(rfm) {
            column.put(s, value);
        }
        // JSON has no NaN or infinities: the reference reads them as unset.
        self.churn_probability.put(
            s,
            scores
                .and_then(|x| x.churn_probability)
                .filter(|p| p.is_finite()),
        );
        let instants = [
            record.signed_up_at,
            record.first_order_at,
            record.last_order_at,
        ];
        for (column, value) in self.instants.iter_mut().zip(instants) {
            column.put(s, value.map(semantics::record_micros));
        }
        let booleans = [
            record.consent_email,
            record.consent_sms,
            record.consent_push,
            scores.is_some_and(|x| x.unsubscribed),
        ];
        for (column, value) in self.booleans.iter_mut().zip(booleans) {
            column.put(s, Some(value));
        }

        let rows = self.ids.len();
        if dirty {
            for (key, column) in self.attributes.iter_mut() {
                column.put(s, record.attributes.get(key.as_str()), rows);
            }
        }
        for (key, value) in &record.attributes {
            if let Some(column) = self.attributes.get_mut(key.as_str()) {
                if !dirty {
                    column.put(s, Some(value), rows);
                }
            } else if !value.is_null() {
                let mut column = AttrColumn::default();
                column.put(s, Some(value), rows);
                self.attributes.insert(key.clone(), column);
            }
        }

        let mut events: Vec<(&str, i64, &Value)> = record
            .events
            .iter()
            .map(|e| {
                (
                    e.event_type.as_str(),
                    semantics::record_micros(e.occurred_at),
                    &e.properties,
                )
            })
            .collect();
        events.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let of_type = |event_type: &str| -> Vec<(i64, &Value)> {
            events
                .iter()
                .filter(|e| e.0 == event_type)
                .map(|e| (e.1, e.2))
                .collect()
        };
        if dirty {
            for (event_type, log) in self.events.iter_mut() {
                log.replace(slot, &of_type(event_type), &self.live);
            }
        }
        let mut start = 0;
        while start < events.len() {
            let event_type = events[start].0;
            let end = start + events[start..].partition_point(|e| e.0 == event_type);
            let batch: Vec<(i64, &Value)> = events[start..end].iter().map(|e| (e.1, e.2)).collect();
            match self.events.get_mut(event_type) {
                Some(log) => {
                    if !dirty {
                        log.replace(slot, &batch, &self.live);
                    }
                }
                None => {
                    let mut log = EventLog::default();
                    log.replace(slot, &batch, &self.live);
                    self.events.insert(event_type.to_owned(), log);
                }
            }
            start = end;
        }
    }

    /// Removes a customer (erasure): it matches nothing from now on.
    pub fn remove(&mut self, id: Uuid) {
        let hash = self.hasher.hash_one(id);
        let ids = &self.ids;
        let Ok(entry) = self.slot_of.find_entry(hash, |&s| ids[s as usize] == id) else {
            return;
        };
        let (slot, _) = entry.remove();
        bits::put(&mut self.live, slot as usize, false);
        self.live_count -= 1;
        self.free.push(slot);
    }

    /// Applies one change of the feed.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Upsert(record) => self.upsert(record),
            Change::Remove(id) => self.remove(id),
        }
    }

    /// The customers in the segment `group` describes, as of `now`. The tree should be
    /// canonical (as `rules::validate` accepts it); the result is the reference
    /// evaluator's for any tree.
    pub fn evaluate(&self, group: &Group, now: DateTime<Utc>) -> Members<'_> {
        let node = eval::compile(self, group, now);
        let mut care = self.live.clone();
        care.resize(bits::words(self.ids.len()), 0);
        let mut members = vec![0u64; care.len()];
        eval::run(&node, &care, &mut members, &mut Vec::new());
        Members {
            index: self,
            bits: members,
        }
    }

    /// Readies the index for queries after a bulk load: gives back the spare capacity
    /// the columns grew with, sorts pending events into their time order, and builds
    /// the 16-bit bucket sketch of every numeric and instant column (what keeps range
    /// scans of ten million rows memory-light). O(n log n), seconds for millions of
    /// customers; `store::snapshot::load_tenant` calls it, and after heavy churn a
    /// replica may call it again. Results never depend on it.
    pub fn optimize(&mut self) {
        self.ids.shrink_to_fit();
        let TenantIndex {
            slot_of,
            hasher,
            ids,
            ..
        } = self;
        slot_of.shrink_to_fit(|&s| hasher.hash_one(ids[s as usize]));
        self.live.shrink_to_fit();
        self.free.shrink_to_fit();
        self.text.iter_mut().for_each(CodedColumn::shrink_to_fit);
        for column in &mut self.integers {
            column.quantize();
            column.shrink_to_fit();
        }
        for column in &mut self.scores {
            column.quantize();
            column.shrink_to_fit();
        }
        self.churn_probability.quantize();
        self.churn_probability.shrink_to_fit();
        for column in &mut self.instants {
            column.quantize();
            column.shrink_to_fit();
        }
        self.booleans.iter_mut().for_each(BoolColumn::shrink_to_fit);
        self.attributes
            .values_mut()
            .for_each(AttrColumn::shrink_to_fit);
        self.attributes.shrink_to_fit();
        self.events.values_mut().for_each(EventLog::shrink_to_fit);
        self.events.shrink_to_fit();
    }

    /// Heap bytes the index holds (capacities, so a little more than it uses).
    pub fn memory_bytes(&self) -> usize {
        let string_key = size_of::<String>() + 1;
        self.ids.capacity() * size_of::<Uuid>()
            + self.slot_of.capacity() * (size_of::<u32>() + 1)
            + (self.live.capacity() + self.free.capacity()) * 8
            + self
                .text
                .iter()
                .map(CodedColumn::memory_bytes)
                .sum::<usize>()
            + self
                .integers
                .iter()
                .map(Column::memory_bytes)
                .sum::<usize>()
            + self.scores.iter().map(Column::memory_bytes).sum::<usize>()
            + self.churn_probability.memory_bytes()
            + self
                .instants
                .iter()
                .map(Column::memory_bytes)
                .sum::<usize>()
            + self
                .booleans
                .iter()
                .map(BoolColumn::memory_bytes)
                .sum::<usize>()
            + self
                .attributes
                .iter()
                .map(|(k, c)| k.capacity() + c.memory_bytes())
                .sum::<usize>()
            + self.attributes.capacity() * (string_key + size_of::<AttrColumn>())
            + self
                .events
                .iter()
                .map(|(k, l)| k.capacity() + l.memory_bytes())
                .sum::<usize>()
            + self.events.capacity() * (string_key + size_of::<EventLog>())
    }
}

/// The result of an evaluation: a bitset over the index's slots.
#[derive(Debug)]
pub struct Members<'a> {
    index: &'a TenantIndex,
    bits: Vec<u64>,
}

impl Members<'_> {
    /// How many customers matched.
    pub fn count(&self) -> usize {
        bits::count(&self.bits)
    }

    /// Whether `id` matched.
    pub fn contains(&self, id: Uuid) -> bool {
        self.index
            .find(id)
            .is_some_and(|s| bits::get(&self.bits, s as usize))
    }

    /// Every matching customer, in slot order (no particular order of ids).
    pub fn ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        bits::ones(&self.bits).map(|s| self.index.ids[s])
    }

    /// The `n` smallest matching customer ids, ascending: the same customers, in the
    /// same order, as the first page of the SQL path's members (`ORDER BY
    /// customer_id`), whatever the slot layout.
    pub fn sample(&self, n: usize) -> Vec<Uuid> {
        if n == 0 {
            return Vec::new();
        }
        let ids = &self.index.ids;
        let sorted = self.index.sorted_upto;
        // Slots below `sorted_upto` hold ascending ids: the first n members there are
        // the n smallest among them.
        let mut head: Vec<Uuid> = bits::ones(&self.bits)
            .take_while(|&s| s < sorted)
            .take(n)
            .map(|s| ids[s])
            .collect();
        // The rest (customers added out of order since the load) through a bounded
        // max-heap.
        let mut tail: BinaryHeap<Uuid> = BinaryHeap::new();
        let first_unsorted_word = sorted / 64;
        for (w, &word) in self.bits.iter().enumerate().skip(first_unsorted_word) {
            let mut rest = word;
            while rest != 0 {
                let slot = w * 64 + rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if slot < sorted {
                    continue;
                }
                let id = ids[slot];
                if tail.len() < n {
                    tail.push(id);
                } else if tail.peek().is_some_and(|max| id < *max) {
                    tail.pop();
                    tail.push(id);
                }
            }
        }
        head.extend(tail);
        head.sort_unstable();
        head.truncate(n);
        head
    }
}
