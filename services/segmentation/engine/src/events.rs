//! Behaviour events of one event type, for every customer, in time order.
//!
//! Event conditions always ask about a window ending now ("at least twice in the last
//! 7 days"), so the events are kept sorted by instant: a condition binary-searches its
//! window and touches only the events inside it, whatever the number of customers.
//! Each event carries its slot, and each property key is a column of dictionary codes
//! aligned with the instants.
//!
//! - The main run is sorted. Events of customers that had none of this type so far
//!   (every customer during the initial load) are appended to a tail in any order,
//!   which is sorted and merged into the main run once it reaches an eighth of it.
//! - A customer whose events of this type change after that goes to the overlay
//!   (slot -> its events), which overrides whatever the main run and the tail hold
//!   for it. Once the overlay holds a quarter of the events, everything is rebuilt
//!   without the overridden and dead customers' events.

use hashbrown::HashMap;
use serde_json::Value;

use super::bits;
use super::dict::{CodeSet, Dict, NONE};

/// One property key's dictionary and codes.
#[derive(Default)]
struct PropColumn {
    dict: Dict,
    /// Aligned with `EventLog::at` (shorter: unset).
    main: Vec<u32>,
    /// Aligned with `EventLog::tail_at` (shorter: unset).
    tail: Vec<u32>,
}

/// An event of the overlay.
struct OverlayEvent {
    at: i64,
    /// (key, code) of each property that is set.
    props: Vec<(u32, u32)>,
}

/// Which events a condition counts.
pub(super) enum Filter {
    /// Every event.
    All,
    /// None: the property never occurs with this event type.
    Nothing,
    /// Events whose property `key` has a code in the set.
    Codes(u32, CodeSet),
}

/// How an event count is tested.
#[derive(Clone, Copy)]
pub(super) enum CountTest {
    AtLeast(i64),
    AtMost(i64),
    Exactly(i64),
    Never,
}

impl CountTest {
    #[inline(always)]
    pub(super) fn holds(self, count: u64) -> bool {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        match self {
            CountTest::AtLeast(n) => count >= n,
            CountTest::AtMost(n) => count <= n,
            CountTest::Exactly(n) => count == n,
            CountTest::Never => false,
        }
    }

    /// The largest count the test tells apart from every larger one.
    fn horizon(self) -> u64 {
        match self {
            CountTest::AtLeast(n) => u64::try_from(n).unwrap_or(0),
            CountTest::AtMost(n) | CountTest::Exactly(n) => {
                u64::try_from(n).map_or(0, |n| n.saturating_add(1))
            }
            CountTest::Never => 0,
        }
    }
}

/// The events of one type.
#[derive(Default)]
pub(super) struct EventLog {
    /// Microseconds since the epoch, ascending.
    at: Vec<i64>,
    slot: Vec<u32>,
    tail_at: Vec<i64>,
    tail_slot: Vec<u32>,
    props: Vec<PropColumn>,
    keys: HashMap<String, u32>,
    /// Slots with events in the main run or the tail.
    present: Vec<u64>,
    overlay: HashMap<u32, Vec<OverlayEvent>>,
    overlaid: Vec<u64>,
    overlay_events: usize,
}

impl EventLog {
    fn key(&mut self, name: &str) -> u32 {
        if let Some(&key) = self.keys.get(name) {
            return key;
        }
        let key = self.props.len() as u32;
        self.props.push(PropColumn::default());
        self.keys.insert(name.to_owned(), key);
        key
    }

    /// (key, code) of every set property of `properties` (not an object: none).
    fn intern_props(&mut self, properties: &Value) -> Vec<(u32, u32)> {
        let Value::Object(map) = properties else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(map.len());
        for (name, value) in map {
            // A null property equals nothing, exactly like an absent one.
            if value.is_null() {
                continue;
            }
            let key = self.key(name);
            let code = self.props[key as usize].dict.intern(value);
            if code != NONE {
                out.push((key, code));
            }
        }
        out
    }

    /// Replaces everything known about `slot`'s events of this type with `events`
    /// (instant in microseconds, properties). `live` holds the index's live slots,
    /// for a rebuild.
    pub(super) fn replace(&mut self, slot: u32, events: &[(i64, &Value)], live: &[u64]) {
        let s = slot as usize;
        let overlaid = bits::get(&self.overlaid, s);
        if !overlaid && !bits::get(&self.present, s) {
            // Nothing of this slot is stored yet: append.
            if events.is_empty() {
                return;
            }
            for (at, properties) in events {
                let props = self.intern_props(properties);
                let index = self.tail_at.len();
                self.tail_at.push(*at);
                self.tail_slot.push(slot);
                for (key, code) in props {
                    let column = &mut self.props[key as usize].tail;
                    if column.len() <= index {
                        column.resize(index + 1, NONE);
                    }
                    column[index] = code;
                }
            }
            bits::put(&mut self.present, s, true);
            if self.tail_at.len() > self.at.len() / 8 + 1024 {
                self.merge_tail();
            }
            return;
        }
        let fresh: Vec<OverlayEvent> = events
            .iter()
            .map(|(at, properties)| OverlayEvent {
                at: *at,
                props: self.intern_props(properties),
            })
            .collect();
        self.overlay_events += fresh.len();
        if let Some(old) = self.overlay.insert(slot, fresh) {
            self.overlay_events -= old.len();
        }
        bits::put(&mut self.overlaid, s, true);
        if self.overlay_events + self.overlay.len() > (self.at.len() + self.tail_at.len()) / 4 + 256
        {
            self.rebuild_with(|s| bits::get(live, s), true);
        }
    }

    /// Sorts the tail into the main run.
    fn merge_tail(&mut self) {
        self.rebuild_with(|_| true, false);
    }

    /// Rebuilds the main run from: main and tail events of slots `keep` accepts (and,
    /// with `fold`, not overlaid), plus, with `fold`, the overlay of kept slots (which
    /// is then emptied). Events of dropped slots are gone.
    fn rebuild_with(&mut self, keep: impl Fn(usize) -> bool, fold: bool) {
        let dropped = |s: usize| !keep(s) || (fold && bits::get(&self.overlaid, s));
        // The incoming events (tail, then overlay), as (instant, slot, source) sorted
        // by instant; a source below the tail's length is a tail index, above it an
        // index into `folded`.
        let tail_len = self.tail_at.len();
        let mut incoming: Vec<(i64, u32, usize)> = Vec::new();
        for (i, (&at, &slot)) in self.tail_at.iter().zip(&self.tail_slot).enumerate() {
            if !dropped(slot as usize) {
                incoming.push((at, slot, i));
            }
        }
        let mut folded: Vec<(u32, &OverlayEvent)> = Vec::new();
        if fold {
            for (&slot, events) in &self.overlay {
                if keep(slot as usize) {
                    for event in events {
                        incoming.push((event.at, slot, tail_len + folded.len()));
                        folded.push((slot, event));
                    }
                }
            }
        }
        incoming.sort_by_key(|e| e.0);
        let code = |key: usize, source: usize| -> u32 {
            if source < tail_len {
                self.props[key].tail.get(source).copied().unwrap_or(NONE)
            } else {
                folded[source - tail_len]
                    .1
                    .props
                    .iter()
                    .find(|(k, _)| *k as usize == key)
                    .map_or(NONE, |&(_, c)| c)
            }
        };
        // Merge with the kept part of the main run (already sorted) into one order of
        // (from main?, index), then build each column from it.
        let mut order: Vec<(bool, usize)> = Vec::with_capacity(self.at.len() + incoming.len());
        let mut incoming = incoming.into_iter().peekable();
        for i in 0..self.at.len() {
            while let Some(e) = incoming.next_if(|e| e.0 < self.at[i]) {
                order.push((false, e.2));
            }
            if !dropped(self.slot[i] as usize) {
                order.push((true, i));
            }
        }
        order.extend(incoming.map(|e| (false, e.2)));
        let incoming_at = |source: usize| {
            if source < tail_len {
                (self.tail_at[source], self.tail_slot[source])
            } else {
                let (slot, event) = folded[source - tail_len];
                (event.at, slot)
            }
        };
        let at: Vec<i64> = order
            .iter()
            .map(|&(main, i)| if main { self.at[i] } else { incoming_at(i).0 })
            .collect();
        let slot: Vec<u32> = order
            .iter()
            .map(|&(main, i)| if main { self.slot[i] } else { incoming_at(i).1 })
            .collect();
        let codes: Vec<Vec<u32>> = (0..self.props.len())
            .map(|key| {
                order
                    .iter()
                    .map(|&(main, i)| {
                        if main {
                            self.props[key].main.get(i).copied().unwrap_or(NONE)
                        } else {
                            code(key, i)
                        }
                    })
                    .collect()
            })
            .collect();
        let mut present = Vec::new();
        for &s in &slot {
            bits::put(&mut present, s as usize, true);
        }
        self.at = at;
        self.slot = slot;
        self.present = present;
        self.tail_at = Vec::new();
        self.tail_slot = Vec::new();
        for (column, main) in self.props.iter_mut().zip(codes) {
            column.main = main;
            column.tail = Vec::new();
            let used = column.main.iter().filter(|&&c| c != NONE).count();
            if column.dict.len() > 2 * used + 1024 {
                column.dict = column.dict.compact(&mut column.main);
            }
        }
        if fold {
            self.overlay = HashMap::new();
            self.overlaid = Vec::new();
            self.overlay_events = 0;
        }
    }

    /// The filter for "property `name` equals `value`".
    pub(super) fn filter(&self, name: &str, test: &super::semantics::Test) -> Filter {
        match self.keys.get(name) {
            Some(&key) => match self.props[key as usize].dict.matching(test) {
                CodeSet::Nothing => Filter::Nothing,
                set => Filter::Codes(key, set),
            },
            None => Filter::Nothing,
        }
    }

    /// The slots whose count of events at `low..=high` (microseconds) passing `filter`
    /// gets a different answer from `test` than a count of zero would, as a bitset of
    /// `words` words. (Every other slot answers `test.holds(0)`.)
    pub(super) fn differing(
        &self,
        low: i64,
        high: i64,
        filter: &Filter,
        test: CountTest,
        words: usize,
    ) -> Vec<u64> {
        let zero = test.holds(0);
        let mut differ = vec![0u64; words];
        let horizon = test.horizon();
        if low > high
            || matches!(filter, Filter::Nothing)
            || (horizon <= 1 && test.holds(1) == zero)
        {
            return self.overlay_differing(low, high, filter, test, differ);
        }
        // The events passing the filter, as slots; each kind of filter gets a loop of
        // its own (this runs once per event in the window).
        let skip_overlaid = !self.overlay.is_empty();
        let overlaid = |s: u32| skip_overlaid && bits::get(&self.overlaid, s as usize);
        let start = self.at.partition_point(|&t| t < low);
        let end = self.at.partition_point(|&t| t <= high);
        let main_slots = &self.slot[start..end];
        let tail = || {
            self.tail_at
                .iter()
                .zip(&self.tail_slot)
                .enumerate()
                .filter(move |(_, (at, _))| **at >= low && **at <= high)
                .map(|(i, (_, &s))| (i, s))
        };
        let mut hits: Vec<u32> = Vec::new();
        match filter {
            Filter::Nothing => {}
            Filter::All => {
                hits.extend(main_slots.iter().copied().filter(|&s| !overlaid(s)));
                hits.extend(tail().map(|(_, s)| s).filter(|&s| !overlaid(s)));
            }
            Filter::Codes(key, set) => {
                let column = &self.props[*key as usize];
                let codes = column
                    .main
                    .get(start..end.min(column.main.len()))
                    .unwrap_or(&[]);
                // Past the end of `codes` the property is unset: no match. A single
                // code (the usual `category = shoes`) gets a plain compare.
                let pairs = main_slots.iter().zip(codes);
                match set {
                    CodeSet::One(one) => hits.extend(
                        pairs
                            .filter(|&(&s, &code)| code == *one && !overlaid(s))
                            .map(|(&s, _)| s),
                    ),
                    _ => hits.extend(
                        pairs
                            .filter(|&(&s, &code)| set.contains(code) && !overlaid(s))
                            .map(|(&s, _)| s),
                    ),
                }
                hits.extend(
                    tail()
                        .filter(|&(i, s)| {
                            set.contains(column.tail.get(i).copied().unwrap_or(NONE))
                                && !overlaid(s)
                        })
                        .map(|(_, s)| s),
                );
            }
        }
        if horizon <= 1 {
            // Only "none" against "some" matters (and they differ): no counting.
            for s in hits {
                differ[s as usize / 64] |= 1 << (s % 64);
            }
        } else if horizon < 255 {
            counted::<u8>(hits, test, zero, &mut differ);
        } else {
            counted::<u32>(hits, test, zero, &mut differ);
        }
        self.overlay_differing(low, high, filter, test, differ)
    }

    fn overlay_differing(
        &self,
        low: i64,
        high: i64,
        filter: &Filter,
        test: CountTest,
        mut differ: Vec<u64>,
    ) -> Vec<u64> {
        let zero = test.holds(0);
        for (&slot, events) in &self.overlay {
            let count = events
                .iter()
                .filter(|e| e.at >= low && e.at <= high)
                .filter(|e| match filter {
                    Filter::All => true,
                    Filter::Nothing => false,
                    Filter::Codes(key, set) => set.contains(
                        e.props
                            .iter()
                            .find(|(k, _)| k == key)
                            .map_or(NONE, |&(_, code)| code),
                    ),
                })
                .count();
            if test.holds(count as u64) != zero
                && let Some(word) = differ.get_mut(slot as usize / 64)
            {
                *word |= 1 << (slot % 64);
            }
        }
        differ
    }

    /// Gives back spare capacity (and sorts the tail in: call after a bulk load).
    pub(super) fn shrink_to_fit(&mut self) {
        if !self.tail_at.is_empty() {
            self.merge_tail();
        }
        self.at.shrink_to_fit();
        self.slot.shrink_to_fit();
        for column in &mut self.props {
            column.dict.shrink_to_fit();
            column.main.shrink_to_fit();
        }
        self.present.shrink_to_fit();
        self.overlay.shrink_to_fit();
        self.overlaid.shrink_to_fit();
    }

    /// Heap bytes, approximately.
    pub(super) fn memory_bytes(&self) -> usize {
        let props: usize = self
            .props
            .iter()
            .map(|p| p.dict.memory_bytes() + (p.main.capacity() + p.tail.capacity()) * 4)
            .sum();
        let overlay: usize = self
            .overlay
            .values()
            .map(|events| {
                events.capacity() * size_of::<OverlayEvent>()
                    + events.iter().map(|e| e.props.capacity() * 8).sum::<usize>()
            })
            .sum::<usize>()
            + self.overlay.capacity() * (size_of::<(u32, Vec<OverlayEvent>)>() + 1);
        (self.at.capacity() + self.tail_at.capacity()) * 8
            + (self.slot.capacity() + self.tail_slot.capacity()) * 4
            + props
            + overlay
            + (self.present.capacity() + self.overlaid.capacity()) * 8
            + self.keys.capacity() * (size_of::<(String, u32)>() + 1)
    }
}

/// A per-slot counter: `u8` while the test only tells counts up to 254 apart.
trait Counter: Copy + Default + PartialEq {
    fn bump(self) -> Self;
    fn get(self) -> u64;
}

impl Counter for u8 {
    fn bump(self) -> Self {
        self.saturating_add(1)
    }
    fn get(self) -> u64 {
        u64::from(self)
    }
}

impl Counter for u32 {
    fn bump(self) -> Self {
        self.saturating_add(1)
    }
    fn get(self) -> u64 {
        u64::from(self)
    }
}

/// Counts events per slot, then marks the slots whose count answers differently from
/// zero.
fn counted<C: Counter>(slots: Vec<u32>, test: CountTest, zero: bool, differ: &mut [u64]) {
    let mut counts = vec![C::default(); differ.len() * 64];
    let mut touched = Vec::new();
    for s in slots {
        let c = &mut counts[s as usize];
        if *c == C::default() {
            touched.push(s);
        }
        *c = c.bump();
    }
    for s in touched {
        if test.holds(counts[s as usize].get()) != zero {
            differ[s as usize / 64] |= 1 << (s % 64);
        }
    }
}
