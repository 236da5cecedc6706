//! Deterministic randomness: the same store from the same seed on every platform.

/// SplitMix64 (Steele, Lea & Flood, 2014): a few lines, fast, statistically fine for
/// synthetic data, and the same sequence on every platform and every version of this
/// code, which a crate's generator does not promise.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for one independent stream: (`seed`, `stream`, `index`) always gives
    /// the same sequence, and neighbouring indices give unrelated ones.
    pub(crate) fn derive(seed: u64, stream: u64, index: u64) -> Self {
        Self(mix(
            mix(seed ^ mix(stream.wrapping_mul(GOLDEN))).wrapping_add(index.wrapping_mul(GOLDEN))
        ))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n) (multiply-shift; the bias is below 2^-40 for our n). `n` > 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element, uniformly. `items` is never empty here (static tables).
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given (non-negative, not all zero) weights.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                return i;
            }
            target -= w;
        }
        weights.len() - 1
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a batch body for its idempotency key.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

pub(crate) const STREAM_CUSTOMER: u64 = 1;
pub(crate) const STREAM_EVENTS: u64 = 2;
