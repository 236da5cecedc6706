//! Discounted customer lifetime value over a horizon, computed as lifetimes'
//! `customer_lifetime_value` does.
//!
//! The horizon is split into `periods` steps of `period_length` time units (the model's
//! unit: weeks for us, so a month is 4.345). Step `i` contributes the purchases expected in
//! it, `E[X(i L)] - E[X((i-1) L)]`, times the expected value per purchase, discounted by
//! `(1 + discount_rate)^i`:
//!
//! `CLV = Σ_{i=1..periods} spend × (E[X(i L)] - E[X((i-1) L)]) / (1 + d)^i`.
//!
//! The result is in the money unit of `expected_spend` (e.g. the Gamma-Gamma
//! [`crate::GammaGammaParams::expected_average_spend`]); `discount_rate` is per period.

use crate::{Error, PurchaseHistory, PurchasePredictor};

/// Horizon and discounting for [`customer_lifetime_value`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClvOptions {
    /// Number of periods in the horizon. Default 12.
    pub periods: u32,
    /// Length of one period in the model's time unit. Default 4.345 (a month in weeks,
    /// lifetimes' factor for `freq="W"`).
    pub period_length: f64,
    /// Discount rate per period (0.01 = 1% a period). Default 0.01, as lifetimes.
    pub discount_rate: f64,
}

impl Default for ClvOptions {
    fn default() -> Self {
        Self {
            periods: 12,
            period_length: 4.345,
            discount_rate: 0.01,
        }
    }
}

impl ClvOptions {
    /// Checks the options: a positive finite period length and a discount rate above -1.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.period_length > 0.0 && self.period_length.is_finite()) {
            return Err(Error::InvalidOption(
                "period_length must be positive and finite",
            ));
        }
        if !(self.discount_rate > -1.0 && self.discount_rate.is_finite()) {
            return Err(Error::InvalidOption(
                "discount_rate must be finite and above -1",
            ));
        }
        Ok(())
    }
}

/// Discounted value of `customer`'s purchases over the horizon in `options`, each worth
/// `expected_spend`. Errors only on invalid options.
pub fn customer_lifetime_value(
    model: &impl PurchasePredictor,
    customer: &PurchaseHistory,
    expected_spend: f64,
    options: &ClvOptions,
) -> Result<f64, Error> {
    options.validate()?;
    let mut value = 0.0;
    let mut previous = 0.0;
    let mut discount = 1.0;
    for i in 1..=options.periods {
        let cumulative = model.expected_purchases(customer, f64::from(i) * options.period_length);
        discount /= 1.0 + options.discount_rate;
        value += expected_spend * (cumulative - previous) * discount;
        previous = cumulative;
    }
    Ok(value)
}
