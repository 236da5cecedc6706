//! The Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value
//! Curves for Customer Base Analysis", Journal of Marketing Research 42(4); likelihood as
//! in Hardie's note 025 and lifetimes).
//!
//! Each transaction value of a customer is `Gamma(p, ν)`; across customers
//! `ν ~ Gamma(q, gamma)`. It is fitted on customers with at least one repeat purchase,
//! from `x` (repeat purchases) and `m_x` (their mean value), assuming spend is independent
//! of purchase frequency. Per customer:
//! `LL = lnΓ(px+q) - lnΓ(px) - lnΓ(q) + q ln(gamma) + (px-1) ln(m_x) + px ln(x)
//! - (px+q) ln(x m_x + gamma)`.
//!
//! The fit aggregates identical `(x, m_x)` rows, rescales money so the mean `m_x` is 1,
//! and minimises the mean negative log-likelihood over the log-parameters with BFGS and
//! the analytic gradient (Nelder–Mead as a fallback).

use crate::optimize::{self, Settings};
use crate::special::{digamma, ln_gamma};
use crate::{Error, FitOptions, Optimizer};

/// Gamma-Gamma parameters `(p, q, gamma)`; `gamma` is in money units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GammaGammaParams {
    /// Shape of each transaction's value distribution.
    pub p: f64,
    /// Shape of the across-customer distribution of the value rate `ν`.
    pub q: f64,
    /// Rate of the across-customer distribution of `ν`, in money units (lifetimes' `v`).
    pub gamma: f64,
}

/// One customer's repeat spend: `x` repeat purchases with mean value `m_x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpendSummary {
    /// `x`: repeat purchases (customers with 0 are skipped by the fit).
    pub frequency: u32,
    /// `m_x`: mean value of those repeat purchases (positive, finite).
    pub mean_value: f64,
}

impl SpendSummary {
    /// A summary from `(x, m_x)`.
    pub fn new(frequency: u32, mean_value: f64) -> Self {
        Self {
            frequency,
            mean_value,
        }
    }
}

impl GammaGammaParams {
    /// Parameters from `(p, q, gamma)`; all must be finite and positive.
    pub fn new(p: f64, q: f64, gamma: f64) -> Result<Self, Error> {
        let params = Self { p, q, gamma };
        if params.as_array().iter().all(|v| v.is_finite() && *v > 0.0) {
            Ok(params)
        } else {
            Err(Error::InvalidOption(
                "Gamma-Gamma parameters must be finite and positive",
            ))
        }
    }

    /// `[p, q, gamma]`.
    pub fn as_array(&self) -> [f64; 3] {
        [self.p, self.q, self.gamma]
    }

    /// Log-likelihood of one customer's `(x, m_x)` (`x >= 1`).
    pub fn log_likelihood_one(&self, customer: &SpendSummary) -> f64 {
        let Self { p, q, gamma } = *self;
        let x = f64::from(customer.frequency);
        let m = customer.mean_value;
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * gamma.ln()
            + (px - 1.0) * m.ln()
            + px * x.ln()
            - (px + q) * (x * m + gamma).ln()
    }

    /// Gradient of [`Self::log_likelihood_one`] with respect to `[p, q, gamma]`.
    pub fn log_likelihood_gradient_one(&self, customer: &SpendSummary) -> [f64; 3] {
        let Self { p, q, gamma } = *self;
        let x = f64::from(customer.frequency);
        let m = customer.mean_value;
        let px = p * x;
        let psi = digamma(px + q);
        let ln_denominator = (x * m + gamma).ln();
        [
            x * (psi - digamma(px) + m.ln() + x.ln() - ln_denominator),
            psi - digamma(q) + gamma.ln() - ln_denominator,
            q / gamma - (px + q) / (x * m + gamma),
        ]
    }

    /// Total log-likelihood of `customers` (all must have `x >= 1`).
    pub fn log_likelihood(&self, customers: &[SpendSummary]) -> f64 {
        customers.iter().map(|c| self.log_likelihood_one(c)).sum()
    }

    /// Gradient of [`Self::log_likelihood`] with respect to `[p, q, gamma]`.
    pub fn log_likelihood_gradient(&self, customers: &[SpendSummary]) -> [f64; 3] {
        customers.iter().fold([0.0; 3], |acc, c| {
            let g = self.log_likelihood_gradient_one(c);
            std::array::from_fn(|i| acc[i] + g[i])
        })
    }

    /// Conditional expected average transaction value
    /// `E[M | x, m_x] = p (gamma + x m_x) / (p x + q - 1)`, a credibility-weighted mix of
    /// `m_x` and the population mean. For `x = 0` this is [`Self::population_mean_spend`].
    /// `None` when `p x + q <= 1`: the posterior mean of `1/ν` is then infinite (for
    /// `x = 0` that is `q <= 1`); callers fall back to the customer's own `m_x` or a
    /// business default.
    pub fn expected_average_spend(&self, frequency: u32, mean_value: f64) -> Option<f64> {
        let x = f64::from(frequency);
        let denominator = self.p * x + self.q - 1.0;
        (denominator > 0.0).then(|| self.p * (self.gamma + x * mean_value) / denominator)
    }

    /// Population mean transaction value `p gamma / (q - 1)`; `None` when `q <= 1`.
    pub fn population_mean_spend(&self) -> Option<f64> {
        self.expected_average_spend(0, 0.0)
    }
}

/// A maximum-likelihood Gamma-Gamma fit.
#[derive(Clone, Debug, PartialEq)]
pub struct GammaGammaFit {
    /// The estimates, `gamma` in money units.
    pub params: GammaGammaParams,
    /// Total log-likelihood at `params` (without the penalty), in money units.
    pub log_likelihood: f64,
    /// Customers fitted on (with `x >= 1`; the sum of the weights).
    pub customers: u64,
    /// Optimiser iterations (over all stages).
    pub iterations: usize,
    /// Whether the optimiser met its gradient tolerance.
    pub converged: bool,
    /// Which optimiser finished the fit.
    pub optimizer: Optimizer,
    /// Asymptotic standard errors of `[p, q, gamma]`; `None` when the observed information
    /// is not positive definite or [`FitOptions::standard_errors`] is off.
    pub standard_errors: Option<[f64; 3]>,
}

/// Distinct `(x, m_x)` patterns with weights, grouped by `x`, money-rescaled.
struct Patterns {
    /// `(x, start, end, weight)` per distinct `x`.
    groups: Vec<(u32, usize, usize, f64)>,
    mean_value: Vec<f64>,
    ln_mean_value: Vec<f64>,
    weight: Vec<f64>,
    total_weight: f64,
}

impl Patterns {
    fn build(rows: impl Iterator<Item = (usize, SpendSummary, u64)>) -> Result<(Self, f64), Error> {
        let mut keys: Vec<(u32, u64, u64)> = Vec::with_capacity(rows.size_hint().0);
        let (mut sum, mut count) = (0.0, 0.0);
        for (index, c, w) in rows {
            if c.frequency == 0 || w == 0 {
                continue;
            }
            if !(c.mean_value > 0.0 && c.mean_value.is_finite()) {
                return Err(Error::InvalidInput {
                    index,
                    reason: "mean_value must be positive and finite",
                });
            }
            sum += c.mean_value * w as f64;
            count += w as f64;
            keys.push((c.frequency, c.mean_value.to_bits(), w));
        }
        if keys.is_empty() {
            return Err(Error::NoData);
        }
        crate::sort_keys(&mut keys);
        let scale = count / sum;
        let mut p = Patterns {
            groups: Vec::new(),
            mean_value: Vec::new(),
            ln_mean_value: Vec::new(),
            weight: Vec::new(),
            total_weight: 0.0,
        };
        let mut previous = None;
        for (x, m, w) in keys {
            let w = w as f64;
            p.total_weight += w;
            if previous == Some((x, m)) {
                if let Some(last) = p.weight.last_mut() {
                    *last += w;
                }
            } else {
                let value = f64::from_bits(m) * scale;
                p.mean_value.push(value);
                p.ln_mean_value.push(value.ln());
                p.weight.push(w);
                previous = Some((x, m));
            }
            match p.groups.last_mut() {
                Some(g) if g.0 == x => {
                    g.2 = p.weight.len();
                    g.3 += w;
                }
                _ => p.groups.push((x, p.weight.len() - 1, p.weight.len(), w)),
            }
        }
        Ok((p, scale))
    }

    fn evaluate(&self, params: &GammaGammaParams) -> (f64, [f64; 3]) {
        let GammaGammaParams { p, q, gamma } = *params;
        let (ln_gamma_param, psi_q, ln_gamma_q) = (gamma.ln(), digamma(q), ln_gamma(q));
        let mut ll = 0.0;
        let mut grad = [0.0; 3];
        for &(x, start, end, weight) in &self.groups {
            let x = f64::from(x);
            let px = p * x;
            let psi = digamma(px + q);
            let (ln_x, psi_px) = (x.ln(), digamma(px));
            // Sums over the group's rows of w ln m, w ln(xm + gamma), w/(xm + gamma).
            let (mut s_ln_m, mut s_ln_d, mut s_inv_d) = (0.0, 0.0, 0.0);
            for i in start..end {
                let w = self.weight[i];
                let d = x * self.mean_value[i] + gamma;
                s_ln_m += w * self.ln_mean_value[i];
                s_ln_d += w * d.ln();
                s_inv_d += w / d;
            }
            ll += weight
                * (ln_gamma(px + q) - ln_gamma(px) - ln_gamma_q + q * ln_gamma_param + px * ln_x)
                + (px - 1.0) * s_ln_m
                - (px + q) * s_ln_d;
            grad[0] += x * (weight * (psi - psi_px + ln_x) + s_ln_m - s_ln_d);
            grad[1] += weight * (psi - psi_q + ln_gamma_param) - s_ln_d;
            grad[2] += weight * q / gamma - (px + q) * s_inv_d;
        }
        (ll, grad)
    }
}

/// Fits Gamma-Gamma by maximum likelihood; customers with `x = 0` are skipped.
pub fn fit(customers: &[SpendSummary], options: &FitOptions) -> Result<GammaGammaFit, Error> {
    fit_rows(
        customers.iter().enumerate().map(|(i, c)| (i, *c, 1)),
        options,
    )
}

/// Fits Gamma-Gamma to `(summary, number of customers with it)` rows.
pub fn fit_weighted(
    rows: &[(SpendSummary, u64)],
    options: &FitOptions,
) -> Result<GammaGammaFit, Error> {
    fit_rows(
        rows.iter().enumerate().map(|(i, (c, w))| (i, *c, *w)),
        options,
    )
}

fn fit_rows(
    rows: impl Iterator<Item = (usize, SpendSummary, u64)>,
    options: &FitOptions,
) -> Result<GammaGammaFit, Error> {
    options.validate()?;
    let (patterns, scale) = Patterns::build(rows)?;
    let settings = Settings {
        max_iterations: options.max_iterations,
        gradient_tolerance: options.gradient_tolerance,
    };
    let penalizer = options.penalizer_coef;
    // lifetimes penalises the parameters in money units: gamma = e^θ / scale there.
    let mut f = |theta: &[f64; 3]| {
        let v = theta.map(f64::exp);
        let (ll, grad) = patterns.evaluate(&GammaGammaParams {
            p: v[0],
            q: v[1],
            gamma: v[2],
        });
        let n = patterns.total_weight;
        let natural = [v[0], v[1], v[2] / scale];
        let value = -ll / n + penalizer * natural.iter().map(|u| u * u).sum::<f64>();
        let gradient = std::array::from_fn(|i| {
            v[i] * (-grad[i] / n) + 2.0 * penalizer * natural[i] * natural[i]
        });
        (value, gradient)
    };
    let start = [0.1; 3];
    let mut outcome = optimize::bfgs(&mut f, start, settings);
    let mut iterations = outcome.iterations;
    let mut optimizer = Optimizer::Bfgs;
    if !outcome.converged {
        let from = if outcome.value.is_finite() {
            outcome.x
        } else {
            start
        };
        let simplex = optimize::nelder_mead(&mut f, from, 0.5, 20 * options.max_iterations);
        let polished = optimize::bfgs(&mut f, simplex.x, settings);
        iterations += simplex.iterations + polished.iterations;
        if polished.converged || !outcome.value.is_finite() || polished.value < outcome.value {
            outcome = polished;
            optimizer = Optimizer::NelderMeadThenBfgs;
        }
    }
    let v = outcome.x.map(f64::exp);
    let scaled = GammaGammaParams {
        p: v[0],
        q: v[1],
        gamma: v[2],
    };
    let params = GammaGammaParams {
        gamma: scaled.gamma / scale,
        ..scaled
    };
    // Rescaling money by s changes each customer's log-likelihood by ln(s).
    let (ll_scaled, grad_scaled) = patterns.evaluate(&scaled);
    let log_likelihood = ll_scaled + patterns.total_weight * scale.ln();
    // Back to money units: d/d(gamma) = scale × d/d(gamma rescaled).
    let unscale = |g: [f64; 3]| [g[0], g[1], g[2] * scale];
    let standard_errors = options
        .standard_errors
        .then(|| {
            optimize::standard_errors(params.as_array(), unscale(grad_scaled), |u| {
                unscale(
                    patterns
                        .evaluate(&GammaGammaParams {
                            p: u[0],
                            q: u[1],
                            gamma: u[2] * scale,
                        })
                        .1,
                )
            })
        })
        .flatten();
    Ok(GammaGammaFit {
        params,
        log_likelihood,
        customers: patterns.total_weight as u64,
        iterations,
        converged: outcome.converged,
        optimizer,
        standard_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_evaluation_matches_the_plain_sum() {
        let params = GammaGammaParams::new(6.25, 3.74, 15.44).expect("valid");
        let data = [
            SpendSummary::new(1, 11.77),
            SpendSummary::new(2, 22.35),
            SpendSummary::new(2, 22.35),
            SpendSummary::new(6, 50.0),
            SpendSummary::new(0, 0.0),
        ];
        let (patterns, scale) =
            Patterns::build(data.iter().enumerate().map(|(i, c)| (i, *c, 1))).expect("valid");
        assert_eq!(patterns.total_weight, 4.0);
        let (ll, grad) = patterns.evaluate(&GammaGammaParams {
            gamma: params.gamma * scale,
            ..params
        });
        let kept = &data[..4];
        let expected = params.log_likelihood(kept);
        assert!(
            (ll + 4.0 * scale.ln() - expected).abs() < 1e-10,
            "{ll} vs {expected}"
        );
        let expected_grad = params.log_likelihood_gradient(kept);
        let grad = [grad[0], grad[1], grad[2] * scale];
        for i in 0..3 {
            assert!(
                (grad[i] - expected_grad[i]).abs() < 1e-9 * (1.0 + expected_grad[i].abs()),
                "{grad:?} vs {expected_grad:?}"
            );
        }
    }

    #[test]
    fn expected_spend_needs_a_finite_posterior_mean() {
        let params = GammaGammaParams::new(0.1, 0.5, 10.0).expect("valid");
        assert_eq!(params.population_mean_spend(), None);
        assert_eq!(params.expected_average_spend(1, 20.0), None);
        assert!(params.expected_average_spend(10, 20.0).is_some());
    }
}
