//! Shared test helpers: the vendored CDNOW data and seeded simulators of both models.
#![allow(dead_code)]

use mkt_lifetimes::{BgNbdParams, GammaGammaParams, PurchaseHistory, SpendSummary};

/// One CDNOW customer: `(x, t_x, T)` in weeks and the mean repeat purchase value.
pub struct CdnowRow {
    pub history: PurchaseHistory,
    pub mean_value: f64,
}

/// The 2357 CDNOW customers as shipped with lifetimes 0.11.3 (see tests/data/README.md).
pub fn cdnow() -> Vec<CdnowRow> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cdnow_customers_summary_with_transactions.csv"
    );
    let text = std::fs::read_to_string(path).expect("read the CDNOW csv");
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 5, "ID,x,t_x,T,zbar: {line}");
            let num = |s: &str| s.trim().parse::<f64>().expect("a number");
            CdnowRow {
                history: PurchaseHistory::new(
                    f[1].trim().parse().expect("integer x"),
                    num(f[2]),
                    num(f[3]),
                ),
                mean_value: num(f[4]),
            }
        })
        .collect()
}

/// Seeded samplers built on fastrand's uniform.
pub struct Sampler {
    rng: fastrand::Rng,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Uniform on (0, 1).
    pub fn uniform(&mut self) -> f64 {
        loop {
            let u = self.rng.f64();
            if u > 0.0 {
                return u;
            }
        }
    }

    pub fn uniform_in(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.rng.f64()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang (2000), boosted for shape < 1.
    pub fn gamma(&mut self, shape: f64, rate: f64) -> f64 {
        if shape < 1.0 {
            let boost = self.uniform().powf(1.0 / shape);
            return self.gamma(shape + 1.0, rate) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
    }

    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a, 1.0);
        let y = self.gamma(b, 1.0);
        x / (x + y)
    }
}

/// A simulated BG/NBD customer: the calibration summary at age `T`, whether they were
/// still active then, and their repeat purchases in the holdout `(T, T + holdout]`.
pub struct SimulatedCustomer {
    pub history: PurchaseHistory,
    pub alive: bool,
    pub holdout_purchases: u32,
}

/// Simulates the BG/NBD generative process: `λ ~ Gamma(r, alpha)`, `p ~ Beta(a, b)`,
/// Poisson purchases at rate `λ`, drop-out with probability `p` after each repeat
/// purchase. Ages are uniform on `[age_min, age_max]`.
pub fn simulate_bgnbd(
    params: &BgNbdParams,
    n: usize,
    age_min: f64,
    age_max: f64,
    holdout: f64,
    seed: u64,
) -> Vec<SimulatedCustomer> {
    let mut s = Sampler::new(seed);
    (0..n)
        .map(|_| {
            let age = s.uniform_in(age_min, age_max);
            let lambda = s.gamma(params.r, params.alpha);
            let p = s.beta(params.a, params.b);
            let (mut t, mut x, mut t_x, mut holdout_purchases) = (0.0, 0, 0.0, 0);
            let mut alive_at_age = true;
            loop {
                t += s.exponential(lambda);
                if t > age + holdout {
                    break;
                }
                if t <= age {
                    x += 1;
                    t_x = t;
                } else {
                    holdout_purchases += 1;
                }
                if s.uniform() < p {
                    if t <= age {
                        alive_at_age = false;
                    }
                    break;
                }
            }
            SimulatedCustomer {
                history: PurchaseHistory::new(x, t_x, age),
                alive: alive_at_age,
                holdout_purchases,
            }
        })
        .collect()
}

/// Simulates Gamma-Gamma spend: `ν ~ Gamma(q, gamma)` per customer, each of `x`
/// transactions `~ Gamma(p, ν)`, with `x` uniform on `1..=max_frequency`.
pub fn simulate_gamma_gamma(
    params: &GammaGammaParams,
    n: usize,
    max_frequency: u32,
    seed: u64,
) -> Vec<SpendSummary> {
    let mut s = Sampler::new(seed);
    (0..n)
        .map(|_| {
            let x = 1 + (s.rng.u32(..max_frequency));
            let nu = s.gamma(params.q, params.gamma);
            let total: f64 = (0..x).map(|_| s.gamma(params.p, nu)).sum();
            SpendSummary::new(x, total / f64::from(x))
        })
        .collect()
}

/// `|actual - expected| <= tolerance × |expected|`.
pub fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs(),
        "{what}: got {actual}, expected {expected} (relative tolerance {tolerance})"
    );
}
