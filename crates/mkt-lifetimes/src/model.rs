//! Choosing between a fitted BG/NBD model and a heuristic, and the heuristic itself.
//!
//! BG/NBD's drop-out parameters `a` and `b` are identified only through customers who
//! bought again: with few of them the likelihood is flat and the estimates run to the
//! boundary. [`PurchaseModel::fit`] therefore uses the [`Heuristic`] when fewer than
//! [`ModelOptions::min_repeat_customers`] customers (default
//! [`DEFAULT_MIN_REPEAT_CUSTOMERS`] = 20) have a repeat purchase, or when the fit does
//! not converge or yields non-finite parameters, and says so in its [`Method`].
//!
//! # The heuristic
//!
//! With `x̄` the mean number of repeat purchases and `T̄` the mean age over all customers:
//!
//! - **purchase rate** `λ = (x + x̄) / (T + T̄)`: the customer's historical repeat-purchase
//!   rate `x / T`, shrunk toward the pooled rate `x̄ / T̄` as if one average customer's
//!   history were added to theirs (so new customers get the pooled rate rather than 0 or
//!   infinity);
//! - **P(alive)** `= (1 + (T - t_x) λ / (x + 1))^-(x + 1)`: how likely a silence as long
//!   as the customer's current one (`T - t_x`) is for an active customer whose mean time
//!   between purchases is `1/λ`, with the rate uncertain (gamma with `x + 1` purchases'
//!   worth of evidence, so frequent buyers are judged more strictly). It is 1 right after
//!   a purchase and falls as the silence grows relative to the interpurchase time; it is
//!   a score, not a calibrated probability;
//! - **expected purchases** in the next `t`: `P(alive) × λ × t`.

use crate::bgnbd::{self, BgNbdFit};
use crate::{Error, FitOptions, PurchaseHistory, PurchasePredictor};
use std::fmt;

/// Repeat customers needed before BG/NBD is fitted (see the module documentation).
pub const DEFAULT_MIN_REPEAT_CUSTOMERS: u64 = 20;

/// Options for [`PurchaseModel::fit`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelOptions {
    /// Fewest customers with `x >= 1` for which BG/NBD is fitted (at least 1 whatever the
    /// setting); below it the heuristic is used. Default [`DEFAULT_MIN_REPEAT_CUSTOMERS`].
    pub min_repeat_customers: u64,
    /// Options for the BG/NBD fit.
    pub fit: FitOptions,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            min_repeat_customers: DEFAULT_MIN_REPEAT_CUSTOMERS,
            fit: FitOptions::default(),
        }
    }
}

/// Why the heuristic was used instead of BG/NBD.
#[derive(Clone, Debug, PartialEq)]
pub enum FallbackReason {
    /// Too few customers with a repeat purchase to identify the model.
    TooFewRepeatCustomers {
        /// Customers with `x >= 1` in the data.
        found: u64,
        /// The configured minimum.
        required: u64,
    },
    /// The optimiser did not converge.
    NotConverged,
    /// The fit produced non-finite parameters or log-likelihood.
    DegenerateFit,
}

impl fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackReason::TooFewRepeatCustomers { found, required } => {
                write!(
                    f,
                    "{found} customers with a repeat purchase, {required} needed to fit BG/NBD"
                )
            }
            FallbackReason::NotConverged => f.write_str("the BG/NBD fit did not converge"),
            FallbackReason::DegenerateFit => {
                f.write_str("the BG/NBD fit produced non-finite values")
            }
        }
    }
}

/// How a [`PurchaseModel`] predicts.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// A fitted BG/NBD model.
    BgNbd,
    /// The documented heuristic, and why.
    Heuristic {
        /// Why BG/NBD was not used.
        reason: FallbackReason,
    },
}

/// The fallback heuristic (see the module documentation): pooled means of the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heuristic {
    /// `x̄`: mean repeat purchases per customer.
    pub mean_frequency: f64,
    /// `T̄`: mean customer age, in the caller's time unit.
    pub mean_age: f64,
}

impl Heuristic {
    /// The heuristic's pooled means over one summary per customer.
    pub fn from_customers(customers: &[PurchaseHistory]) -> Result<Self, Error> {
        Self::from_rows(customers.iter().enumerate().map(|(i, c)| (i, *c, 1)))
    }

    /// The heuristic's pooled means over `(summary, number of customers)` rows.
    pub fn from_weighted(rows: &[(PurchaseHistory, u64)]) -> Result<Self, Error> {
        Self::from_rows(rows.iter().enumerate().map(|(i, (c, w))| (i, *c, *w)))
    }

    fn from_rows(rows: impl Iterator<Item = (usize, PurchaseHistory, u64)>) -> Result<Self, Error> {
        let (mut n, mut sum_x, mut sum_age) = (0.0, 0.0, 0.0);
        for (index, c, w) in rows {
            c.validate()
                .map_err(|reason| Error::InvalidInput { index, reason })?;
            let w = w as f64;
            n += w;
            sum_x += w * f64::from(c.frequency);
            sum_age += w * c.age;
        }
        if n == 0.0 {
            return Err(Error::NoData);
        }
        Ok(Self {
            mean_frequency: sum_x / n,
            mean_age: sum_age / n,
        })
    }

    /// `λ = (x + x̄) / (T + T̄)` repeat purchases per time unit (0 with no exposure at all).
    pub fn purchase_rate(&self, customer: &PurchaseHistory) -> f64 {
        let exposure = customer.age + self.mean_age;
        if exposure > 0.0 {
            (f64::from(customer.frequency) + self.mean_frequency) / exposure
        } else {
            0.0
        }
    }
}

impl PurchasePredictor for Heuristic {
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        self.probability_alive(customer) * self.purchase_rate(customer) * t
    }

    fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        let k = f64::from(customer.frequency) + 1.0;
        let silence = (customer.age - customer.recency).max(0.0);
        (1.0 + silence * self.purchase_rate(customer) / k).powf(-k)
    }
}

/// A purchase model for one population: BG/NBD when it can be fitted, else the heuristic.
#[derive(Clone, Debug, PartialEq)]
pub enum PurchaseModel {
    /// A converged BG/NBD fit.
    BgNbd(BgNbdFit),
    /// The heuristic, with why BG/NBD was not used.
    Heuristic {
        /// The heuristic's pooled means.
        model: Heuristic,
        /// Why BG/NBD was not used.
        reason: FallbackReason,
    },
}

impl PurchaseModel {
    /// Fits BG/NBD to one summary per customer, or falls back to the heuristic.
    pub fn fit(customers: &[PurchaseHistory], options: &ModelOptions) -> Result<Self, Error> {
        Self::fit_rows(
            || customers.iter().enumerate().map(|(i, c)| (i, *c, 1)),
            options,
        )
    }

    /// Like [`Self::fit`] for `(summary, number of customers)` rows.
    pub fn fit_weighted(
        rows: &[(PurchaseHistory, u64)],
        options: &ModelOptions,
    ) -> Result<Self, Error> {
        Self::fit_rows(
            || rows.iter().enumerate().map(|(i, (c, w))| (i, *c, *w)),
            options,
        )
    }

    fn fit_rows<I: Iterator<Item = (usize, PurchaseHistory, u64)>>(
        rows: impl Fn() -> I,
        options: &ModelOptions,
    ) -> Result<Self, Error> {
        let heuristic = Heuristic::from_rows(rows())?;
        let repeaters: u64 = rows()
            .filter(|(_, c, _)| c.frequency > 0)
            .map(|(_, _, w)| w)
            .sum();
        if repeaters < options.min_repeat_customers.max(1) {
            let reason = FallbackReason::TooFewRepeatCustomers {
                found: repeaters,
                required: options.min_repeat_customers,
            };
            return Ok(Self::Heuristic {
                model: heuristic,
                reason,
            });
        }
        let fit = match bgnbd::fit_rows(rows(), &options.fit) {
            Ok(fit) => fit,
            Err(Error::NoExposure) => {
                return Ok(Self::Heuristic {
                    model: heuristic,
                    reason: FallbackReason::DegenerateFit,
                });
            }
            Err(e) => return Err(e),
        };
        let finite = fit
            .params
            .as_array()
            .iter()
            .all(|v| v.is_finite() && *v > 0.0)
            && fit.log_likelihood.is_finite();
        Ok(if !finite {
            Self::Heuristic {
                model: heuristic,
                reason: FallbackReason::DegenerateFit,
            }
        } else if !fit.converged {
            Self::Heuristic {
                model: heuristic,
                reason: FallbackReason::NotConverged,
            }
        } else {
            Self::BgNbd(fit)
        })
    }

    /// [`BgNbdParams::expected_purchases_if_alive`] for a BG/NBD fit; `None` for the
    /// heuristic and wherever that returns `None`.
    pub fn expected_purchases_if_alive(&self, frequency: u32, age: f64, t: f64) -> Option<f64> {
        match self {
            Self::BgNbd(fit) => fit.params.expected_purchases_if_alive(frequency, age, t),
            Self::Heuristic { .. } => None,
        }
    }

    /// Which method predicts.
    pub fn method(&self) -> Method {
        match self {
            Self::BgNbd(_) => Method::BgNbd,
            Self::Heuristic { reason, .. } => Method::Heuristic {
                reason: reason.clone(),
            },
        }
    }
}

impl PurchasePredictor for PurchaseModel {
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        match self {
            Self::BgNbd(fit) => fit.params.expected_purchases(customer, t),
            Self::Heuristic { model, .. } => model.expected_purchases(customer, t),
        }
    }

    fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        match self {
            Self::BgNbd(fit) => fit.params.probability_alive(customer),
            Self::Heuristic { model, .. } => model.probability_alive(customer),
        }
    }
}
