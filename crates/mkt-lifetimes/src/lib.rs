//! Probabilistic customer-lifetime models for cdp-analytics: how many purchases a customer
//! will make, whether they are still active, what they will spend, and what that is worth.
//!
//! Owns:
//! - [`bgnbd`]: the BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the
//!   Easy Way"): log-likelihood with analytic gradient and Hessian, maximum-likelihood
//!   fit with standard errors, `E[X(t) | x, t_x, T]` and `P(alive | x, t_x, T)`;
//! - [`gamma_gamma`]: the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV:
//!   Using Iso-Value Curves"): fit and conditional expected average spend;
//! - [`clv`]: discounted customer lifetime value over a horizon, as lifetimes computes it;
//! - [`model`]: the choice between a fitted BG/NBD and a documented heuristic when there
//!   are too few repeat customers to fit, reported as a [`Method`].
//!
//! The numbers are those of Python `lifetimes` 0.11.3 (the tests check its CDNOW fits,
//! predictions and CLV to several decimals), computed in pure Rust with no I/O. Fits
//! aggregate identical customers and take a fraction of a second for a million of them.
//! The optimisers (BFGS, Newton, Nelder–Mead) and the special functions (digamma,
//! trigamma, 2F1) are in this crate; ln-gamma is libm's.
//!
//! # Inputs and units
//!
//! A customer is summarised by [`PurchaseHistory`] `(x, t_x, T)`: `x` repeat purchases
//! (distinct purchase days after the first one; the caller counts them), `t_x` the time
//! from the first to the last purchase and `T` the time from the first purchase to the
//! processing instant. Times are in one unit of the caller's choosing; cdp-analytics uses
//! **weeks** (days / 7). Every time-valued input and output (horizons `t`, `alpha`, CLV
//! period lengths) is in that same unit; changing the unit rescales `alpha` and nothing
//! else. Money is in the unit of the spend values given to the Gamma-Gamma model.
//!
//! Must never: read clocks, databases or files, or know about tenants: callers pass
//! summaries in and get numbers out.

mod optimize;
mod special;

pub mod bgnbd;
pub mod clv;
pub mod gamma_gamma;
pub mod model;

pub use bgnbd::{BgNbdFit, BgNbdParams};
pub use clv::{ClvOptions, customer_lifetime_value};
pub use gamma_gamma::{GammaGammaFit, GammaGammaParams, SpendSummary};
pub use model::{FallbackReason, Heuristic, Method, ModelOptions, PurchaseModel};

use std::fmt;

/// One customer's purchase summary `(x, t_x, T)` in the caller's time unit (weeks for us).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PurchaseHistory {
    /// `x`: repeat purchases, i.e. distinct purchase days after the first purchase.
    pub frequency: u32,
    /// `t_x`: time from the first purchase to the last one (0 when `frequency` is 0).
    pub recency: f64,
    /// `T`: time from the first purchase to the processing instant (`>= recency`).
    pub age: f64,
}

impl PurchaseHistory {
    /// A summary from `(x, t_x, T)`.
    pub fn new(frequency: u32, recency: f64, age: f64) -> Self {
        Self {
            frequency,
            recency,
            age,
        }
    }

    /// Checks the summary is usable: finite, `0 <= t_x <= T`, and `t_x = 0` when `x = 0`
    /// (the same checks as lifetimes' `_check_inputs`).
    pub fn validate(&self) -> Result<(), &'static str> {
        if !self.recency.is_finite() || !self.age.is_finite() {
            return Err("recency and age must be finite");
        }
        if self.recency < 0.0 {
            return Err("recency must not be negative");
        }
        if self.recency > self.age {
            return Err("recency must not exceed age");
        }
        if self.frequency == 0 && self.recency != 0.0 {
            return Err("recency must be 0 when frequency is 0");
        }
        Ok(())
    }
}

/// Why a fit or a model could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// No customer (with a positive weight) to fit on.
    NoData,
    /// Every customer has age 0, so there is no observed time to fit a rate on.
    NoExposure,
    /// One input row is invalid; `index` is its position in the input slice.
    InvalidInput {
        /// Position of the row in the input.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option is out of range.
    InvalidOption(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoData => f.write_str("no customers to fit on"),
            Error::NoExposure => f.write_str("every customer has age 0"),
            Error::InvalidInput { index, reason } => write!(f, "input row {index}: {reason}"),
            Error::InvalidOption(reason) => write!(f, "invalid option: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// Settings shared by the maximum-likelihood fits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitOptions {
    /// L2 penalty as in lifetimes' `penalizer_coef`: the fit minimises
    /// `-LL / customers + penalizer_coef * sum(param²)`. For BG/NBD the parameters are
    /// taken with time rescaled so that the largest `T` is 1 (lifetimes does the same, so
    /// equal coefficients give equal fits). Default 0.
    pub penalizer_coef: f64,
    /// Largest number of optimiser iterations. Default 500.
    pub max_iterations: usize,
    /// Convergence: the largest component of the gradient of the per-customer objective
    /// with respect to the log-parameters. Default 1e-9.
    pub gradient_tolerance: f64,
    /// Whether to compute standard errors. BG/NBD uses the analytic Hessian (at most one
    /// more pass over the data); Gamma-Gamma differences its analytic gradient (3 passes).
    /// Default true.
    pub standard_errors: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            penalizer_coef: 0.0,
            max_iterations: 500,
            gradient_tolerance: 1e-9,
            standard_errors: true,
        }
    }
}

impl FitOptions {
    fn validate(&self) -> Result<(), Error> {
        if !self.penalizer_coef.is_finite() || self.penalizer_coef < 0.0 {
            return Err(Error::InvalidOption(
                "penalizer_coef must be a finite non-negative number",
            ));
        }
        if self.max_iterations == 0 {
            return Err(Error::InvalidOption("max_iterations must be positive"));
        }
        if self.gradient_tolerance.is_nan() || self.gradient_tolerance <= 0.0 {
            return Err(Error::InvalidOption("gradient_tolerance must be positive"));
        }
        Ok(())
    }
}

/// Which optimiser produced a fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// BFGS with the analytic gradient (the normal case).
    Bfgs,
    /// BFGS failed; Nelder–Mead found the basin and BFGS polished from there.
    NelderMeadThenBfgs,
}

/// Anything that predicts future purchases of a customer: the BG/NBD parameters, the
/// heuristic, or a [`PurchaseModel`] choosing between them.
pub trait PurchasePredictor {
    /// Expected number of repeat purchases in the next `t` time units.
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64;
    /// Probability (or, for the heuristic, a score in `[0, 1]`) that the customer is
    /// still active at the processing instant.
    fn probability_alive(&self, customer: &PurchaseHistory) -> f64;
}

/// Sorts `keys`, on two threads when there are many (fit inputs run to millions of rows).
fn sort_keys<T: Ord + Copy + Send>(keys: &mut Vec<T>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if keys.len() < 200_000 || cores < 2 {
        keys.sort_unstable();
        return;
    }
    let mid = keys.len() / 2;
    let (left, right) = keys.split_at_mut(mid);
    std::thread::scope(|scope| {
        scope.spawn(|| left.sort_unstable());
        right.sort_unstable();
    });
    let mut merged = Vec::with_capacity(keys.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < keys.len() {
        if keys[i] <= keys[j] {
            merged.push(keys[i]);
            i += 1;
        } else {
            merged.push(keys[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&keys[i..mid]);
    merged.extend_from_slice(&keys[j..]);
    *keys = merged;
}

#[cfg(test)]
mod tests {
    #[test]
    fn sort_keys_sorts_large_inputs() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut keys: Vec<(u32, u64)> = (0..300_001)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                ((rng % 7) as u32, rng)
            })
            .collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        super::sort_keys(&mut keys);
        assert_eq!(keys, expected);
    }
}
