//! The leaves a compiled tree is made of: one trait, and the leaves that are not about
//! numbers (constants, materialised results, dictionary codes, booleans).

use super::super::bits::{self, chunk, mask};
use super::super::columns::{BoolColumn, Code, Codes};
use super::super::dict::CodeSet;
use super::flip_of;

/// A compiled condition.
pub(super) trait Leaf {
    /// The condition's result for word `w`'s 64 rows. Only the bits of `care` are read
    /// by the caller; a leaf may skip computing the others.
    fn word(&self, w: usize, care: u64) -> u64;
    /// Relative cost of a word, to run cheap leaves first.
    fn cost(&self) -> u32;
}

/// The same result for every row.
pub(super) struct Const(pub(super) u64);

impl Leaf for Const {
    fn word(&self, _: usize, _: u64) -> u64 {
        self.0
    }
    fn cost(&self) -> u32 {
        0
    }
}

/// A result computed up front (sparse traits, rare operators).
pub(super) struct Materialised {
    pub(super) positive: Vec<u64>,
    pub(super) flip: u64,
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
pub(super) struct Coded<'a, C> {
    pub(super) codes: &'a [C],
    pub(super) set: CodeSet,
    pub(super) flip: u64,
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
pub(super) fn coded<'a>(codes: &'a Codes, set: CodeSet, negate: bool) -> Box<dyn Leaf + 'a> {
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

/// Booleans: the result for `true` and for `false` are each constant.
pub(super) struct Booleans<'a> {
    pub(super) column: &'a BoolColumn,
    pub(super) on_true: u64,
    pub(super) on_false: u64,
    pub(super) flip: u64,
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
