//! Per-slot columns: typed cells with a "set" bitset, booleans as two bitsets, text
//! and custom traits as dictionary codes.

use hashbrown::HashMap;

use serde_json::Value;

use super::bits::{self, WORD};
use super::dict::{Dict, NONE};

/// Rows a column grows by: whole words, so evaluation reads whole 64-row chunks.
fn grown(slot: usize) -> usize {
    (slot / WORD + 1) * WORD
}

/// Typed cells (integers, decimals, instants in microseconds) and which are set.
///
/// After [`Column::quantize`] each cell also has a 16-bit bucket: `bounds` are up to
/// 65,535 sorted values drawn from the column (every distinct value when there are
/// that few), and a cell's bucket is how many bounds are `<=` it. A range test then
/// reads two bytes per row and looks at the exact value only in the (at most two)
/// buckets its ends fall in: a quarter of the memory traffic of 8-byte cells, which
/// is what bounds a scan of ten million rows.
#[derive(Default)]
pub(super) struct Column<T> {
    pub vals: Vec<T>,
    pub set: Vec<u64>,
    /// Sorted, distinct (empty: not quantized).
    pub bounds: Vec<T>,
    /// Bucket per cell, while `bounds` is not empty.
    pub buckets: Vec<u16>,
}

/// Most bounds: buckets are numbered 0..=65,535.
const MAX_BOUNDS: usize = u16::MAX as usize;

impl<T: Copy + Default + PartialOrd> Column<T> {
    pub(super) fn put(&mut self, slot: usize, value: Option<T>) {
        if slot >= self.vals.len() {
            self.vals.resize(grown(slot), T::default());
        }
        self.vals[slot] = value.unwrap_or_default();
        bits::put(&mut self.set, slot, value.is_some());
        if !self.bounds.is_empty() {
            if slot >= self.buckets.len() {
                self.buckets.resize(grown(slot), 0);
            }
            self.buckets[slot] = self.bucket(value.unwrap_or_default());
        }
    }

    /// How many bounds are `<=` `value`.
    pub(super) fn bucket(&self, value: T) -> u16 {
        self.bounds.partition_point(|b| *b <= value) as u16
    }

    /// Chooses the bounds from the set cells and buckets every cell (O(n log n); after
    /// a bulk load). Values added later fall into the existing buckets: still exact,
    /// only less selective if the distribution drifts far.
    pub(super) fn quantize(&mut self) {
        let set: usize = bits::count(&self.set);
        if set == 0 {
            return;
        }
        // A sample of at most about a million cells is plenty for 65,535 quantiles.
        let step = set.div_ceil(1 << 20).max(1);
        let mut sample: Vec<T> = bits::ones(&self.set)
            .step_by(step)
            .filter_map(|s| self.vals.get(s).copied())
            .collect();
        sample.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        sample.dedup_by(|a, b| a == b);
        self.bounds = if sample.len() <= MAX_BOUNDS {
            sample
        } else {
            let mut bounds: Vec<T> = (1..=MAX_BOUNDS)
                .map(|i| sample[i * sample.len() / (MAX_BOUNDS + 1)])
                .collect();
            bounds.dedup_by(|a, b| a == b);
            bounds
        };
        let buckets: Vec<u16> = self.vals.iter().map(|v| self.bucket(*v)).collect();
        self.buckets = buckets;
    }

    pub(super) fn memory_bytes(&self) -> usize {
        (self.vals.capacity() + self.bounds.capacity()) * size_of::<T>()
            + self.set.capacity() * 8
            + self.buckets.capacity() * 2
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.vals.shrink_to_fit();
        self.set.shrink_to_fit();
        self.bounds.shrink_to_fit();
        self.buckets.shrink_to_fit();
    }
}

/// Booleans: the value bits and the set bits.
#[derive(Default)]
pub(super) struct BoolColumn {
    pub vals: Vec<u64>,
    pub set: Vec<u64>,
}

impl BoolColumn {
    pub(super) fn put(&mut self, slot: usize, value: Option<bool>) {
        bits::put(&mut self.vals, slot, value == Some(true));
        bits::put(&mut self.set, slot, value.is_some());
    }

    pub(super) fn memory_bytes(&self) -> usize {
        (self.vals.capacity() + self.set.capacity()) * 8
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.vals.shrink_to_fit();
        self.set.shrink_to_fit();
    }
}

/// Dictionary codes per slot, in the narrowest width the dictionary allows (a byte
/// while it has fewer than 255 entries, which most text fields never outgrow): scans
/// read a quarter of the memory. The width's largest value means unset; a code that
/// does not fit widens the whole column.
pub(super) enum Codes {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for Codes {
    fn default() -> Self {
        Codes::U8(Vec::new())
    }
}

/// One code width.
pub(super) trait Code: Copy + PartialEq {
    /// The unset code of this width.
    const UNSET: Self;
    /// `code` in this width (it fits; [`NONE`] becomes [`Code::UNSET`]).
    fn narrow(code: u32) -> Self;
    /// Back to a `u32` code ([`Code::UNSET`] becomes [`NONE`]).
    fn wide(self) -> u32;
}

macro_rules! code_width {
    ($t:ty) => {
        impl Code for $t {
            const UNSET: Self = <$t>::MAX;
            #[inline(always)]
            fn narrow(code: u32) -> Self {
                if code == NONE {
                    Self::UNSET
                } else {
                    code as $t
                }
            }
            #[inline(always)]
            fn wide(self) -> u32 {
                if self == Self::UNSET {
                    NONE
                } else {
                    u32::from(self)
                }
            }
        }
    };
}

code_width!(u8);
code_width!(u16);

impl Code for u32 {
    const UNSET: Self = NONE;
    fn narrow(code: u32) -> Self {
        code
    }
    fn wide(self) -> u32 {
        self
    }
}

impl Codes {
    pub(super) fn len(&self) -> usize {
        match self {
            Codes::U8(v) => v.len(),
            Codes::U16(v) => v.len(),
            Codes::U32(v) => v.len(),
        }
    }

    /// The code at `slot` ([`NONE`] past the end).
    pub(super) fn get(&self, slot: usize) -> u32 {
        match self {
            Codes::U8(v) => v.get(slot).map_or(NONE, |c| c.wide()),
            Codes::U16(v) => v.get(slot).map_or(NONE, |c| c.wide()),
            Codes::U32(v) => v.get(slot).copied().unwrap_or(NONE),
        }
    }

    /// Grows to whole words covering `slot`.
    fn reach(&mut self, slot: usize) {
        if slot < self.len() {
            return;
        }
        let n = grown(slot);
        match self {
            Codes::U8(v) => v.resize(n, u8::UNSET),
            Codes::U16(v) => v.resize(n, u16::UNSET),
            Codes::U32(v) => v.resize(n, NONE),
        }
    }

    /// Widens so that `code` fits.
    fn fit(&mut self, code: u32) {
        if code == NONE {
            return;
        }
        match self {
            Codes::U8(v) if code >= u32::from(u8::UNSET) => {
                let wider = v.iter().map(|c| u16::narrow(c.wide())).collect();
                *self = Codes::U16(wider);
                self.fit(code);
            }
            Codes::U16(v) if code >= u32::from(u16::UNSET) => {
                *self = Codes::U32(v.iter().map(|c| c.wide()).collect());
            }
            _ => {}
        }
    }

    /// Sets `slot`'s code (growing and widening as needed); returns the old one.
    pub(super) fn set(&mut self, slot: usize, code: u32) -> u32 {
        self.reach(slot);
        self.fit(code);
        match self {
            Codes::U8(v) => std::mem::replace(&mut v[slot], u8::narrow(code)).wide(),
            Codes::U16(v) => std::mem::replace(&mut v[slot], u16::narrow(code)).wide(),
            Codes::U32(v) => std::mem::replace(&mut v[slot], code),
        }
    }

    /// Rewrites every code through `f`, then takes the narrowest width for codes
    /// below `entries`.
    pub(super) fn remap(&mut self, entries: usize, mut f: impl FnMut(u32) -> u32) {
        let all: Vec<u32> = (0..self.len()).map(|i| f(self.get(i))).collect();
        *self = if entries < usize::from(u8::UNSET) {
            Codes::U8(all.into_iter().map(u8::narrow).collect())
        } else if entries < usize::from(u16::UNSET) {
            Codes::U16(all.into_iter().map(u16::narrow).collect())
        } else {
            Codes::U32(all)
        };
    }

    pub(super) fn memory_bytes(&self) -> usize {
        match self {
            Codes::U8(v) => v.capacity(),
            Codes::U16(v) => v.capacity() * 2,
            Codes::U32(v) => v.capacity() * 4,
        }
    }

    pub(super) fn shrink_to_fit(&mut self) {
        match self {
            Codes::U8(v) => v.shrink_to_fit(),
            Codes::U16(v) => v.shrink_to_fit(),
            Codes::U32(v) => v.shrink_to_fit(),
        }
    }
}

/// Text: one dictionary code per slot ([`NONE`]: unset).
#[derive(Default)]
pub(super) struct CodedColumn {
    pub dict: Dict,
    pub codes: Codes,
}

impl CodedColumn {
    pub(super) fn put(&mut self, slot: usize, value: Option<&str>) {
        let code = value.map_or(NONE, |v| self.dict.intern_str(v));
        self.codes.set(slot, code);
        // Old values are not reference-counted: once at least half the dictionary is
        // garbage (more entries than twice the rows), it is rebuilt. Amortised O(1).
        if self.dict.len() > 2 * self.codes.len() + 1024 {
            self.dict = self.dict.compact_codes(&mut self.codes);
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.dict.memory_bytes() + self.codes.memory_bytes()
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.dict.shrink_to_fit();
        self.codes.shrink_to_fit();
    }
}

/// Where a trait's codes live.
pub(super) enum AttrCells {
    /// slot -> code, for a trait few customers have.
    Sparse(HashMap<u32, u32>),
    /// A code per slot.
    Dense(Codes),
}

/// One custom trait (`attributes.<key>`) over every customer.
pub(super) struct AttrColumn {
    pub dict: Dict,
    pub cells: AttrCells,
    /// Slots holding a value.
    present: usize,
}

impl Default for AttrColumn {
    fn default() -> Self {
        Self {
            dict: Dict::default(),
            cells: AttrCells::Sparse(HashMap::new()),
            present: 0,
        }
    }
}

impl AttrColumn {
    /// Sets the slot's value (null or absent: unset). `rows` is the index's slot count.
    pub(super) fn put(&mut self, slot: usize, value: Option<&Value>, rows: usize) {
        let code = value.map_or(NONE, |v| self.dict.intern(v));
        let Ok(key) = u32::try_from(slot) else {
            return;
        };
        let before = match &mut self.cells {
            AttrCells::Sparse(map) => {
                if code == NONE {
                    map.remove(&key)
                } else {
                    map.insert(key, code)
                }
            }
            AttrCells::Dense(codes) => {
                if slot >= codes.len() && code == NONE {
                    return;
                }
                let before = codes.set(slot, code);
                (before != NONE).then_some(before)
            }
        };
        match (before.is_some(), code != NONE) {
            (false, true) => self.present += 1,
            (true, false) => self.present -= 1,
            _ => {}
        }
        // A hash-map entry costs about four times a dense cell: switch once an eighth
        // of the customers have the trait, so rare traits cost nothing per customer.
        if let AttrCells::Sparse(map) = &self.cells
            && map.len() * 8 > rows + 1024
        {
            let mut codes = Codes::default();
            codes.set(rows.saturating_sub(1), NONE);
            for (&s, &c) in map {
                codes.set(s as usize, c);
            }
            self.cells = AttrCells::Dense(codes);
        }
        if self.dict.len() > 2 * self.present + 1024 {
            self.dict = match &mut self.cells {
                AttrCells::Sparse(map) => self.dict.compact_many(map.values_mut()),
                AttrCells::Dense(codes) => self.dict.compact_codes(codes),
            };
        }
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.dict.shrink_to_fit();
        match &mut self.cells {
            AttrCells::Sparse(map) => map.shrink_to_fit(),
            AttrCells::Dense(codes) => codes.shrink_to_fit(),
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.dict.memory_bytes()
            + match &self.cells {
                // hashbrown-style table: key, value and a control byte per bucket.
                AttrCells::Sparse(map) => map.capacity() * 9,
                AttrCells::Dense(codes) => codes.memory_bytes(),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_widen_as_the_dictionary_grows_and_narrow_when_compacted() {
        let mut codes = Codes::default();
        assert_eq!(codes.set(3, 7), NONE);
        assert!(matches!(codes, Codes::U8(_)));
        codes.set(5, 254);
        assert!(matches!(codes, Codes::U8(_)));
        codes.set(6, 255);
        assert!(matches!(codes, Codes::U16(_)));
        codes.set(7, 70_000);
        assert!(matches!(codes, Codes::U32(_)));
        assert_eq!(
            [
                codes.get(3),
                codes.get(5),
                codes.get(6),
                codes.get(7),
                codes.get(0),
                codes.get(999)
            ],
            [7, 254, 255, 70_000, NONE, NONE]
        );
        assert_eq!(codes.set(3, NONE), 7);
        codes.remap(3, |c| if c == NONE { NONE } else { c % 3 });
        assert!(matches!(codes, Codes::U8(_)));
        assert_eq!([codes.get(3), codes.get(5), codes.get(7)], [NONE, 2, 1]);
    }
}
