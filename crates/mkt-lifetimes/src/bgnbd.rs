//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way:
//! An Alternative to the Pareto/NBD Model", Marketing Science 24(2)).
//!
//! While active, a customer buys as a Poisson process with rate `λ ~ Gamma(r, alpha)`
//! (shape `r`, rate `alpha` in the caller's time unit); after each repeat purchase they
//! drop out for good with probability `p ~ Beta(a, b)`.
//!
//! The likelihood of `(x, t_x, T)` is computed as in the paper's section 7 (and lifetimes):
//! `LL = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4))` with
//! `A1 = lnΓ(r+x) - lnΓ(r) + r ln(alpha)`,
//! `A2 = lnΓ(a+b) + lnΓ(b+x) - lnΓ(b) - lnΓ(a+b+x)`,
//! `A3 = -(r+x) ln(alpha+T)` and `A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)`,
//! the last term summed in log-space. Its gradient and Hessian are analytic (digamma,
//! trigamma and the softmax weights of `A3`/`A4`).
//!
//! The fit aggregates identical `(x, t_x, T)` rows into weighted patterns (grouped by `x`,
//! whose gamma-function terms are computed once per group), rescales time so the largest
//! `T` is 1, and minimises the mean negative log-likelihood over the log-parameters with
//! BFGS (Nelder–Mead as a fallback). With more than [`SUBSAMPLE_ABOVE`] patterns, BFGS
//! runs on a stratified subsample and Newton's method with the analytic Hessian finishes
//! on the full data in a few passes; large inputs are evaluated on all cores with scoped
//! threads. Standard errors come from the analytic observed information.

use crate::optimize::{self, Settings};
use crate::special::{digamma, ln_gamma, ln_hyp2f1, trigamma};
use crate::{Error, FitOptions, Optimizer, PurchaseHistory, PurchasePredictor};

/// Patterns above which the fit runs BFGS on a subsample, then Newton on all data.
pub const SUBSAMPLE_ABOVE: usize = 100_000;
/// Target size of that subsample.
const SUBSAMPLE_SIZE: usize = 40_000;
/// Patterns per thread below which evaluation stays on one thread.
const ROWS_PER_THREAD: usize = 100_000;

/// BG/NBD parameters `(r, alpha, a, b)`; `alpha` is in the caller's time unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BgNbdParams {
    /// Shape of the Gamma distribution of purchase rates.
    pub r: f64,
    /// Rate (inverse scale) of the Gamma distribution of purchase rates, in time units.
    pub alpha: f64,
    /// First shape of the Beta distribution of drop-out probabilities.
    pub a: f64,
    /// Second shape of the Beta distribution of drop-out probabilities.
    pub b: f64,
}

/// Log-likelihood, gradient and (when asked for) Hessian, in `[r, alpha, a, b]` order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Totals {
    ll: f64,
    grad: [f64; 4],
    hess: [[f64; 4]; 4],
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.ll += other.ll;
        for i in 0..4 {
            self.grad[i] += other.grad[i];
            for j in 0..4 {
                self.hess[i][j] += other.hess[i][j];
            }
        }
    }
}

/// The terms that depend only on `x` (`A1 + A2` and their derivatives).
#[derive(Clone, Copy)]
struct GroupTerms {
    x: u32,
    ll: f64,
    grad: [f64; 4],
    /// Second derivatives `rr, r·alpha, alpha·alpha, aa (= ab), bb`; zero unless asked for.
    hess: [f64; 5],
    /// `r + x`.
    rx: f64,
    /// `ln a - ln(b + x - 1)`, the drop-out odds term of `A4` (unused when `x = 0`).
    ln_odds: f64,
    /// `1 / (b + x - 1)` (unused when `x = 0`).
    inv_bx1: f64,
}

/// Weighted sums over the patterns of one group of what `A3`/`A4` contribute. With
/// `w3`, `w4` the softmax weights of `A3`, `A4`, `u = w3 w4` and `Δ = ∇A3 - ∇A4`:
/// `∇ ln(e^A3 + e^A4) = w3 ∇A3 + w4 ∇A4` and
/// `∇² ln(e^A3 + e^A4) = w3 ∇²A3 + w4 ∇²A4 + u Δ Δᵀ`, where only the `r`, `alpha`
/// components of `∇A3`, `∇A4` vary by pattern (`Δ_a = -1/a`, `Δ_b = 1/(b+x-1)`).
#[derive(Clone, Copy, Default)]
struct RowSums {
    weight: f64,
    ll: f64,
    d_r: f64,
    d_alpha: f64,
    w4: f64,
    h_rr: f64,
    h_ralpha: f64,
    h_alphaalpha: f64,
    u: f64,
    u_dr: f64,
    u_dalpha: f64,
}

impl BgNbdParams {
    /// Parameters from `(r, alpha, a, b)`; all must be finite and positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<Self, Error> {
        let params = Self { r, alpha, a, b };
        if params.as_array().iter().all(|v| v.is_finite() && *v > 0.0) {
            Ok(params)
        } else {
            Err(Error::InvalidOption(
                "BG/NBD parameters must be finite and positive",
            ))
        }
    }

    /// `[r, alpha, a, b]`.
    pub fn as_array(&self) -> [f64; 4] {
        [self.r, self.alpha, self.a, self.b]
    }

    fn from_array(p: [f64; 4]) -> Self {
        Self {
            r: p[0],
            alpha: p[1],
            a: p[2],
            b: p[3],
        }
    }

    fn group_terms<const HESSIAN: bool>(&self, x: u32) -> GroupTerms {
        let Self { r, alpha, a, b } = *self;
        let xf = f64::from(x);
        let psi_ab = digamma(a + b);
        let psi_abx = digamma(a + b + xf);
        let hess = if HESSIAN {
            let ab = trigamma(a + b) - trigamma(a + b + xf);
            [
                trigamma(r + xf) - trigamma(r),
                1.0 / alpha,
                -r / (alpha * alpha),
                ab,
                ab + trigamma(b + xf) - trigamma(b),
            ]
        } else {
            [0.0; 5]
        };
        GroupTerms {
            x,
            ll: ln_gamma(r + xf) - ln_gamma(r)
                + r * alpha.ln()
                + ln_gamma(a + b)
                + ln_gamma(b + xf)
                - ln_gamma(b)
                - ln_gamma(a + b + xf),
            grad: [
                digamma(r + xf) - digamma(r) + alpha.ln(),
                r / alpha,
                psi_ab - psi_abx,
                psi_ab + digamma(b + xf) - digamma(b) - psi_abx,
            ],
            hess,
            rx: r + xf,
            ln_odds: if x > 0 {
                a.ln() - (b + xf - 1.0).ln()
            } else {
                0.0
            },
            inv_bx1: if x > 0 { 1.0 / (b + xf - 1.0) } else { 0.0 },
        }
    }

    /// Adds one pattern (`w` customers) to the group's sums: the fit's innermost loop.
    #[inline]
    fn add_row<const HESSIAN: bool>(
        &self,
        g: &GroupTerms,
        recency: f64,
        age: f64,
        w: f64,
        s: &mut RowSums,
    ) {
        let alpha_t = self.alpha + age;
        let l3 = alpha_t.ln();
        let a3 = -g.rx * l3;
        s.weight += w;
        if g.x == 0 {
            let i3 = 1.0 / alpha_t;
            s.ll += w * a3;
            s.d_r -= w * l3;
            s.d_alpha -= w * g.rx * i3;
            if HESSIAN {
                s.h_ralpha -= w * i3;
                s.h_alphaalpha += w * g.rx * i3 * i3;
            }
            return;
        }
        let alpha_tx = self.alpha + recency;
        let l4 = alpha_tx.ln();
        let a4 = g.ln_odds - g.rx * l4;
        // ln(e^A3 + e^A4) and the softmax weight of A4, without overflow. `ln(1 + e)`
        // rather than `ln_1p(e)`: the absolute error (1e-16) is what matters here, and
        // `ln` is the cheaper call.
        let d = a4 - a3;
        let e = (-d.abs()).exp();
        let inv = 1.0 / (1.0 + e);
        let w4 = if d > 0.0 { inv } else { e * inv };
        let w3 = 1.0 - w4;
        let inv_product = 1.0 / (alpha_t * alpha_tx);
        let (i3, i4) = (alpha_tx * inv_product, alpha_t * inv_product);
        s.ll += w * (a3.max(a4) + (1.0 + e).ln());
        s.d_r -= w * (w3 * l3 + w4 * l4);
        s.d_alpha -= w * g.rx * (w3 * i3 + w4 * i4);
        s.w4 += w * w4;
        if HESSIAN {
            let u = w * w3 * w4;
            let (delta_r, delta_alpha) = (l4 - l3, -g.rx * (i3 - i4));
            s.h_rr += u * delta_r * delta_r;
            s.h_ralpha += u * delta_r * delta_alpha - w * (w3 * i3 + w4 * i4);
            s.h_alphaalpha +=
                u * delta_alpha * delta_alpha + w * g.rx * (w3 * i3 * i3 + w4 * i4 * i4);
            s.u += u;
            s.u_dr += u * delta_r;
            s.u_dalpha += u * delta_alpha;
        }
    }

    /// Adds a group (its `x`-only terms times its weight, plus its pattern sums) to `out`.
    fn add_group<const HESSIAN: bool>(&self, g: &GroupTerms, s: &RowSums, out: &mut Totals) {
        let w = s.weight;
        out.ll += w * g.ll + s.ll;
        out.grad[0] += w * g.grad[0] + s.d_r;
        out.grad[1] += w * g.grad[1] + s.d_alpha;
        out.grad[2] += w * g.grad[2] + s.w4 / self.a;
        out.grad[3] += w * g.grad[3] - s.w4 * g.inv_bx1;
        if HESSIAN {
            let inv_a = 1.0 / self.a;
            let c = g.inv_bx1;
            let h = &mut out.hess;
            let entries = [
                (0, 0, w * g.hess[0] + s.h_rr),
                (0, 1, w * g.hess[1] + s.h_ralpha),
                (1, 1, w * g.hess[2] + s.h_alphaalpha),
                (0, 2, -s.u_dr * inv_a),
                (0, 3, s.u_dr * c),
                (1, 2, -s.u_dalpha * inv_a),
                (1, 3, s.u_dalpha * c),
                (2, 2, w * g.hess[3] + (s.u - s.w4) * inv_a * inv_a),
                (2, 3, w * g.hess[3] - s.u * inv_a * c),
                (3, 3, w * g.hess[4] + (s.w4 + s.u) * c * c),
            ];
            for (i, j, v) in entries {
                h[i][j] += v;
                if i != j {
                    h[j][i] += v;
                }
            }
        }
    }

    fn totals_one<const HESSIAN: bool>(&self, customer: &PurchaseHistory) -> Totals {
        let g = self.group_terms::<HESSIAN>(customer.frequency);
        let mut sums = RowSums::default();
        self.add_row::<HESSIAN>(&g, customer.recency, customer.age, 1.0, &mut sums);
        let mut out = Totals::default();
        self.add_group::<HESSIAN>(&g, &sums, &mut out);
        out
    }

    /// Log-likelihood of one customer's `(x, t_x, T)`.
    pub fn log_likelihood_one(&self, customer: &PurchaseHistory) -> f64 {
        self.totals_one::<false>(customer).ll
    }

    /// Gradient of [`Self::log_likelihood_one`] with respect to `[r, alpha, a, b]`.
    pub fn log_likelihood_gradient_one(&self, customer: &PurchaseHistory) -> [f64; 4] {
        self.totals_one::<false>(customer).grad
    }

    /// Hessian of [`Self::log_likelihood_one`] with respect to `[r, alpha, a, b]`.
    pub fn log_likelihood_hessian_one(&self, customer: &PurchaseHistory) -> [[f64; 4]; 4] {
        self.totals_one::<true>(customer).hess
    }

    /// Total log-likelihood of `customers`.
    pub fn log_likelihood(&self, customers: &[PurchaseHistory]) -> f64 {
        customers.iter().map(|c| self.log_likelihood_one(c)).sum()
    }

    /// Gradient of [`Self::log_likelihood`] with respect to `[r, alpha, a, b]`.
    pub fn log_likelihood_gradient(&self, customers: &[PurchaseHistory]) -> [f64; 4] {
        self.sum_totals::<false>(customers).grad
    }

    /// Hessian of [`Self::log_likelihood`] with respect to `[r, alpha, a, b]` (minus the
    /// observed information).
    pub fn log_likelihood_hessian(&self, customers: &[PurchaseHistory]) -> [[f64; 4]; 4] {
        self.sum_totals::<true>(customers).hess
    }

    fn sum_totals<const HESSIAN: bool>(&self, customers: &[PurchaseHistory]) -> Totals {
        customers.iter().fold(Totals::default(), |mut acc, c| {
            acc.add(&self.totals_one::<HESSIAN>(c));
            acc
        })
    }

    /// `P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))`
    /// (Fader, Hardie & Lee, "Computing P(alive) using the BG/NBD model", note 021).
    pub fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        if customer.frequency == 0 {
            return 1.0;
        }
        let x = f64::from(customer.frequency);
        let log_odds = (self.a / (self.b + x - 1.0)).ln()
            + (self.r + x) * ((self.alpha + customer.age) / (self.alpha + customer.recency)).ln();
        // Logistic of -log_odds, stable for large |log_odds|.
        if log_odds >= 0.0 {
            let e = (-log_odds).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + log_odds.exp())
        }
    }

    /// `E[X(t) | x, t_x, T]`: expected repeat purchases in the next `t` time units
    /// (equation 10 of the paper):
    /// `(a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
    /// × P(alive)`. At `a = 1`, a removable singularity, it is interpolated from
    /// `a = 1 ± 1e-6`.
    pub fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        if t == 0.0 {
            return 0.0;
        }
        if t.is_nan() || t < 0.0 {
            return f64::NAN;
        }
        const A_BAND: f64 = 1e-6;
        if (self.a - 1.0).abs() < A_BAND {
            let low = Self {
                a: 1.0 - A_BAND,
                ..*self
            }
            .expected_purchases_unchecked(customer, t);
            let high = Self {
                a: 1.0 + A_BAND,
                ..*self
            }
            .expected_purchases_unchecked(customer, t);
            let weight = (self.a - (1.0 - A_BAND)) / (2.0 * A_BAND);
            return (1.0 - weight) * low + weight * high;
        }
        self.expected_purchases_unchecked(customer, t)
    }

    fn expected_purchases_unchecked(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        self.expected_purchases_if_alive_unchecked(customer.frequency, customer.age, t)
            * self.probability_alive(customer)
    }

    /// The part of [`Self::expected_purchases`] that does not depend on the recency
    /// `t_x`: `E[X(t) | x, t_x, T] = expected_purchases_if_alive(x, T, t) × P(alive |
    /// x, t_x, T)`, bit for bit. Callers predicting for many customers compute it once
    /// per distinct `(x, T)` (a million customers have some 30,000) instead of once per
    /// distinct history (some 430,000), since it holds the costly hypergeometric
    /// series. `None` where `expected_purchases` does not factor this way: `t` zero,
    /// negative or NaN, and `a` within 1e-6 of 1 (interpolated there).
    pub fn expected_purchases_if_alive(&self, frequency: u32, age: f64, t: f64) -> Option<f64> {
        if t.is_nan() || t <= 0.0 || (self.a - 1.0).abs() < 1e-6 {
            return None;
        }
        Some(self.expected_purchases_if_alive_unchecked(frequency, age, t))
    }

    fn expected_purchases_if_alive_unchecked(&self, frequency: u32, age: f64, t: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(frequency);
        let big_t = age;
        let z = t / (alpha + big_t + t);
        let (ln_hyp, sign) = ln_hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        // ln(1 - z) computed directly, not from z, to keep its precision for small t.
        let ln_ratio = ((alpha + big_t) / (alpha + big_t + t)).ln();
        let ln_g = ln_hyp + (r + x) * ln_ratio;
        // 1 - G without cancellation when G is close to 1.
        let one_minus_g = if sign > 0.0 {
            -ln_g.exp_m1()
        } else {
            1.0 + ln_g.exp()
        };
        (a + b + x - 1.0) / (a - 1.0) * one_minus_g
    }

    /// `E[X(t)]` for a customer just acquired (equation 9 of the paper): the expected
    /// number of repeat purchases in their first `t` time units.
    pub fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        self.expected_purchases(&PurchaseHistory::new(0, 0.0, 0.0), t)
    }
}

impl PurchasePredictor for BgNbdParams {
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        BgNbdParams::expected_purchases(self, customer, t)
    }

    fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        BgNbdParams::probability_alive(self, customer)
    }
}

/// A maximum-likelihood BG/NBD fit.
#[derive(Clone, Debug, PartialEq)]
pub struct BgNbdFit {
    /// The estimates, with `alpha` in the caller's time unit.
    pub params: BgNbdParams,
    /// Total log-likelihood at `params` (without the penalty), in the caller's time unit.
    pub log_likelihood: f64,
    /// Customers fitted on (the sum of the weights).
    pub customers: u64,
    /// Distinct `(x, t_x, T)` patterns the customers collapsed into.
    pub patterns: usize,
    /// Optimiser iterations (over all stages).
    pub iterations: usize,
    /// Whether the optimiser met its gradient tolerance.
    pub converged: bool,
    /// Which optimiser finished the fit.
    pub optimizer: Optimizer,
    /// Asymptotic standard errors of `[r, alpha, a, b]` from the observed information;
    /// `None` when it is not positive definite (an optimum on a boundary) or when
    /// [`FitOptions::standard_errors`] is off.
    pub standard_errors: Option<[f64; 4]>,
}

impl PurchasePredictor for BgNbdFit {
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        self.params.expected_purchases(customer, t)
    }

    fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        self.params.probability_alive(customer)
    }
}

/// Customers with one `x`, as a range of the pattern arrays.
#[derive(Clone, Copy, Debug)]
struct Group {
    x: u32,
    start: usize,
    end: usize,
    weight: f64,
}

/// Distinct `(x, t_x, T)` patterns with weights, grouped by `x`, time-rescaled.
#[derive(Debug)]
struct Patterns {
    groups: Vec<Group>,
    recency: Vec<f64>,
    age: Vec<f64>,
    weight: Vec<f64>,
    total_weight: f64,
}

impl Patterns {
    /// Validates and aggregates `(index, customer, weight)` rows; times are multiplied by
    /// `1 / max(T)`, which is returned too.
    fn build(
        rows: impl Iterator<Item = (usize, PurchaseHistory, u64)>,
    ) -> Result<(Self, f64), Error> {
        let mut keys: Vec<(u32, u64, u64, u64)> = Vec::with_capacity(rows.size_hint().0);
        let mut max_age = 0.0_f64;
        for (index, c, w) in rows {
            c.validate()
                .map_err(|reason| Error::InvalidInput { index, reason })?;
            if w == 0 {
                continue;
            }
            max_age = max_age.max(c.age);
            // `+ 0.0` folds -0.0 into 0.0 so equal values share one bit pattern; for
            // non-negative floats the bit order is the numeric order.
            keys.push((
                c.frequency,
                (c.age + 0.0).to_bits(),
                (c.recency + 0.0).to_bits(),
                w,
            ));
        }
        if keys.is_empty() {
            return Err(Error::NoData);
        }
        if max_age <= 0.0 {
            return Err(Error::NoExposure);
        }
        crate::sort_keys(&mut keys);
        let scale = 1.0 / max_age;
        let mut p = Patterns {
            groups: Vec::new(),
            recency: Vec::new(),
            age: Vec::new(),
            weight: Vec::new(),
            total_weight: 0.0,
        };
        let mut previous: Option<(u32, u64, u64)> = None;
        for (x, age, recency, w) in keys {
            let w = w as f64;
            p.total_weight += w;
            if previous == Some((x, age, recency)) {
                if let Some(last) = p.weight.last_mut() {
                    *last += w;
                }
            } else {
                p.recency.push(f64::from_bits(recency) * scale);
                p.age.push(f64::from_bits(age) * scale);
                p.weight.push(w);
                previous = Some((x, age, recency));
            }
            match p.groups.last_mut() {
                Some(g) if g.x == x => {
                    g.end = p.weight.len();
                    g.weight += w;
                }
                _ => p.groups.push(Group {
                    x,
                    start: p.weight.len() - 1,
                    end: p.weight.len(),
                    weight: w,
                }),
            }
        }
        Ok((p, scale))
    }

    fn len(&self) -> usize {
        self.weight.len()
    }

    /// Every `step`-th pattern of each group (weights kept): a stratified subsample.
    fn subsample(&self, step: usize) -> Patterns {
        let mut p = Patterns {
            groups: Vec::new(),
            recency: Vec::new(),
            age: Vec::new(),
            weight: Vec::new(),
            total_weight: 0.0,
        };
        for g in &self.groups {
            let start = p.weight.len();
            let mut weight = 0.0;
            for i in (g.start..g.end).step_by(step) {
                p.recency.push(self.recency[i]);
                p.age.push(self.age[i]);
                p.weight.push(self.weight[i]);
                weight += self.weight[i];
            }
            p.total_weight += weight;
            p.groups.push(Group {
                x: g.x,
                start,
                end: p.weight.len(),
                weight,
            });
        }
        p
    }

    /// Totals over patterns `[from, to)`.
    fn evaluate_range<const HESSIAN: bool>(
        &self,
        params: &BgNbdParams,
        from: usize,
        to: usize,
    ) -> Totals {
        let mut out = Totals::default();
        for group in &self.groups {
            let (start, end) = (group.start.max(from), group.end.min(to));
            if start >= end {
                continue;
            }
            let terms = params.group_terms::<HESSIAN>(group.x);
            let mut sums = RowSums::default();
            for i in start..end {
                params.add_row::<HESSIAN>(
                    &terms,
                    self.recency[i],
                    self.age[i],
                    self.weight[i],
                    &mut sums,
                );
            }
            params.add_group::<HESSIAN>(&terms, &sums, &mut out);
        }
        out
    }

    /// Totals over all patterns, split across threads when large. Chunks are summed in a
    /// fixed order, so results do not depend on thread timing (only, at rounding level,
    /// on the number of cores).
    fn evaluate<const HESSIAN: bool>(&self, params: &BgNbdParams) -> Totals {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(self.len() / ROWS_PER_THREAD).max(1);
        if threads == 1 {
            return self.evaluate_range::<HESSIAN>(params, 0, self.len());
        }
        let chunk = self.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads)
                .map(|k| {
                    let (from, to) = (k * chunk, ((k + 1) * chunk).min(self.len()));
                    scope.spawn(move || self.evaluate_range::<HESSIAN>(params, from, to))
                })
                .collect();
            let mut total = self.evaluate_range::<HESSIAN>(params, 0, chunk);
            for handle in handles {
                // A panicking worker is a bug here; NaN makes the fit fail visibly.
                let part = handle.join().unwrap_or(Totals {
                    ll: f64::NAN,
                    ..Totals::default()
                });
                total.add(&part);
            }
            total
        })
    }
}

/// The minimised objective: mean negative log-likelihood plus penalty, over the
/// log-parameters `θ` (time-rescaled). Remembers its last evaluation, which the fit
/// reuses at the optimum.
struct Problem<'a> {
    patterns: &'a Patterns,
    penalizer: f64,
    last: Option<([f64; 4], Totals, bool)>,
}

impl<'a> Problem<'a> {
    fn new(patterns: &'a Patterns, penalizer: f64) -> Self {
        Self {
            patterns,
            penalizer,
            last: None,
        }
    }

    /// Log-likelihood totals in (time-rescaled) natural parameters at `theta`.
    fn totals(&mut self, theta: &[f64; 4], hessian: bool) -> Totals {
        if let Some((at, totals, has_hessian)) = self.last
            && at == *theta
            && (has_hessian || !hessian)
        {
            return totals;
        }
        let params = BgNbdParams::from_array(theta.map(f64::exp));
        let totals = if hessian {
            self.patterns.evaluate::<true>(&params)
        } else {
            self.patterns.evaluate::<false>(&params)
        };
        self.last = Some((*theta, totals, hessian));
        totals
    }

    /// Value, gradient and Hessian of the objective in `θ`: with `p = e^θ`, `n` customers,
    /// `F_i = -g_i/n + 2c p_i` the gradient in `p`,
    /// `∂f/∂θ_i = p_i F_i` and `∂²f/∂θ_i∂θ_j = p_i p_j (-H_ij/n + 2c δ_ij) + δ_ij p_i F_i`.
    fn with_hessian(&mut self, theta: &[f64; 4]) -> (f64, [f64; 4], [[f64; 4]; 4]) {
        let t = self.totals(theta, true);
        let (value, gradient) = self.objective(theta, &t);
        let p = theta.map(f64::exp);
        let n = self.patterns.total_weight;
        let c = self.penalizer;
        let hessian = std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let penalty = if i == j { 2.0 * c } else { 0.0 };
                p[i] * p[j] * (-t.hess[i][j] / n + penalty) + if i == j { gradient[i] } else { 0.0 }
            })
        });
        (value, gradient, hessian)
    }

    fn objective(&self, theta: &[f64; 4], t: &Totals) -> (f64, [f64; 4]) {
        let p = theta.map(f64::exp);
        let n = self.patterns.total_weight;
        let value = -t.ll / n + self.penalizer * p.iter().map(|v| v * v).sum::<f64>();
        let gradient =
            std::array::from_fn(|i| p[i] * (-t.grad[i] / n + 2.0 * self.penalizer * p[i]));
        (value, gradient)
    }
}

impl optimize::Objective<4> for Problem<'_> {
    fn evaluate(&mut self, theta: &[f64; 4]) -> (f64, [f64; 4]) {
        let t = self.totals(theta, false);
        self.objective(theta, &t)
    }
}

/// Fits BG/NBD by maximum likelihood to one summary per customer.
pub fn fit(customers: &[PurchaseHistory], options: &FitOptions) -> Result<BgNbdFit, Error> {
    fit_rows(
        customers.iter().enumerate().map(|(i, c)| (i, *c, 1)),
        options,
    )
}

/// Fits BG/NBD to `(summary, number of customers with it)` rows, e.g. the result of a
/// `GROUP BY x, t_x, T` (rows need not be distinct; weight 0 rows are ignored).
pub fn fit_weighted(
    rows: &[(PurchaseHistory, u64)],
    options: &FitOptions,
) -> Result<BgNbdFit, Error> {
    fit_rows(
        rows.iter().enumerate().map(|(i, (c, w))| (i, *c, *w)),
        options,
    )
}

pub(crate) fn fit_rows(
    rows: impl Iterator<Item = (usize, PurchaseHistory, u64)>,
    options: &FitOptions,
) -> Result<BgNbdFit, Error> {
    options.validate()?;
    let (patterns, scale) = Patterns::build(rows)?;
    let settings = Settings {
        max_iterations: options.max_iterations,
        gradient_tolerance: options.gradient_tolerance,
    };
    // Start where lifetimes does: log-parameters 0.1 (every time-rescaled parameter 1.1).
    let start = [0.1; 4];
    let mut problem = Problem::new(&patterns, options.penalizer_coef);
    let mut iterations = 0;
    let mut outcome = None;
    if patterns.len() > SUBSAMPLE_ABOVE {
        let sample = patterns.subsample(patterns.len() / SUBSAMPLE_SIZE);
        let loose = Settings {
            gradient_tolerance: options.gradient_tolerance.max(1e-7),
            ..settings
        };
        let warm = optimize::bfgs(
            &mut Problem::new(&sample, options.penalizer_coef),
            start,
            loose,
        );
        iterations += warm.iterations;
        if warm.value.is_finite() {
            let newton = optimize::newton(
                &mut |theta: &[f64; 4]| problem.with_hessian(theta),
                warm.x,
                settings,
            );
            iterations += newton.iterations;
            outcome = Some(newton);
        }
    }
    let mut outcome = match outcome {
        Some(newton) if newton.converged => newton,
        other => {
            let from = other.filter(|o| o.value.is_finite()).map_or(start, |o| o.x);
            let bfgs = optimize::bfgs(&mut problem, from, settings);
            iterations += bfgs.iterations;
            bfgs
        }
    };
    let mut optimizer = Optimizer::Bfgs;
    if !outcome.converged {
        let from = if outcome.value.is_finite() {
            outcome.x
        } else {
            start
        };
        let simplex = optimize::nelder_mead(&mut problem, from, 0.5, 20 * options.max_iterations);
        let polished = optimize::bfgs(&mut problem, simplex.x, settings);
        iterations += simplex.iterations + polished.iterations;
        if polished.converged || !outcome.value.is_finite() || polished.value < outcome.value {
            outcome = polished;
            optimizer = Optimizer::NelderMeadThenBfgs;
        }
    }
    let totals = problem.totals(&outcome.x, options.standard_errors);
    let p = outcome.x.map(f64::exp);
    let params = BgNbdParams {
        r: p[0],
        alpha: p[1] / scale,
        a: p[2],
        b: p[3],
    };
    // Rescaling time by s changes each customer's log-likelihood by -x ln(s).
    let sum_wx: f64 = patterns
        .groups
        .iter()
        .map(|g| g.weight * f64::from(g.x))
        .sum();
    let log_likelihood = totals.ll + scale.ln() * sum_wx;
    let standard_errors = if options.standard_errors {
        // Observed information in the caller's time unit: alpha = alpha' / scale.
        let factor = [1.0, scale, 1.0, 1.0];
        let information: [[f64; 4]; 4] = std::array::from_fn(|i| {
            std::array::from_fn(|j| -totals.hess[i][j] * factor[i] * factor[j])
        });
        optimize::invert_positive_definite(&information)
            .map(|cov| std::array::from_fn(|i| cov[i][i].sqrt()))
    } else {
        None
    };
    Ok(BgNbdFit {
        params,
        log_likelihood,
        customers: patterns.total_weight as u64,
        patterns: patterns.len(),
        iterations,
        converged: outcome.converged,
        optimizer,
        standard_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<PurchaseHistory> {
        vec![
            PurchaseHistory::new(0, 0.0, 38.86),
            PurchaseHistory::new(0, 0.0, 38.86),
            PurchaseHistory::new(0, 0.0, 20.0),
            PurchaseHistory::new(1, 1.71, 38.86),
            PurchaseHistory::new(2, 30.43, 38.86),
            PurchaseHistory::new(2, 30.43, 38.86),
            PurchaseHistory::new(7, 35.14, 38.86),
            PurchaseHistory::new(26, 35.0, 37.0),
        ]
    }

    #[test]
    fn expected_purchases_factor_into_the_alive_part_and_p_alive_exactly() {
        let params = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).expect("valid");
        for customer in sample() {
            for t in [0.5, 4.345, 13.0, 52.14] {
                let factor = params
                    .expected_purchases_if_alive(customer.frequency, customer.age, t)
                    .expect("factors");
                let whole = params.expected_purchases(&customer, t);
                assert_eq!(
                    (factor * params.probability_alive(&customer)).to_bits(),
                    whole.to_bits(),
                    "{customer:?} t={t}"
                );
                assert!(whole > 0.0 && factor >= whole, "{customer:?} t={t}");
            }
        }
        let customer = PurchaseHistory::new(2, 30.43, 38.86);
        assert_eq!(params.expected_purchases_if_alive(2, 38.86, 0.0), None);
        assert_eq!(params.expected_purchases_if_alive(2, 38.86, f64::NAN), None);
        let near_one = BgNbdParams {
            a: 1.0 + 1e-7,
            ..params
        };
        assert_eq!(near_one.expected_purchases_if_alive(2, 38.86, 1.0), None);
        assert!(near_one.expected_purchases(&customer, 1.0).is_finite());
    }

    #[test]
    fn aggregated_evaluation_matches_the_plain_sum() {
        let params = BgNbdParams::new(0.243, 4.414, 0.793, 2.426).expect("valid");
        let data = sample();
        let (patterns, scale) =
            Patterns::build(data.iter().enumerate().map(|(i, c)| (i, *c, 1))).expect("valid data");
        assert_eq!(patterns.len(), 6);
        assert_eq!(patterns.total_weight, 8.0);
        let scaled = BgNbdParams {
            alpha: params.alpha * scale,
            ..params
        };
        let Totals { ll, grad, hess } = patterns.evaluate::<true>(&scaled);
        let sum_x: f64 = data.iter().map(|c| f64::from(c.frequency)).sum();
        let expected = params.log_likelihood(&data);
        assert!(
            (ll + scale.ln() * sum_x - expected).abs() < 1e-10,
            "{ll} vs {expected}"
        );
        let expected_grad = params.log_likelihood_gradient(&data);
        let grad = [grad[0], grad[1] * scale, grad[2], grad[3]];
        for i in 0..4 {
            assert!(
                (grad[i] - expected_grad[i]).abs() < 1e-9 * (1.0 + expected_grad[i].abs()),
                "{grad:?} vs {expected_grad:?}"
            );
        }
        // The Hessian too (alpha rescaled: d²/dalpha² = scale² d²/dalpha'²).
        let expected_hess = params.log_likelihood_hessian(&data);
        let factor = [1.0, scale, 1.0, 1.0];
        for i in 0..4 {
            for j in 0..4 {
                let ours = hess[i][j] * factor[i] * factor[j];
                assert!(
                    (ours - expected_hess[i][j]).abs() < 1e-9 * (1.0 + expected_hess[i][j].abs()),
                    "{i},{j}: {ours} vs {}",
                    expected_hess[i][j]
                );
            }
        }
    }

    #[test]
    fn subsample_keeps_groups_and_weights() {
        let data = sample();
        let (patterns, _) =
            Patterns::build(data.iter().enumerate().map(|(i, c)| (i, *c, 3))).expect("valid data");
        let sub = patterns.subsample(2);
        assert_eq!(sub.groups.len(), patterns.groups.len());
        assert!(sub.total_weight <= patterns.total_weight);
    }

    #[test]
    fn invalid_rows_are_reported_with_their_index() {
        let mut data = sample();
        data[3].recency = 50.0;
        let err = fit(&data, &FitOptions::default()).expect_err("recency > age");
        assert_eq!(
            err,
            Error::InvalidInput {
                index: 3,
                reason: "recency must not exceed age"
            }
        );
        assert_eq!(
            fit(&[], &FitOptions::default()).expect_err("empty"),
            Error::NoData
        );
        let zero_age = [PurchaseHistory::new(0, 0.0, 0.0)];
        assert_eq!(
            fit(&zero_age, &FitOptions::default()).expect_err("no exposure"),
            Error::NoExposure
        );
    }

    #[test]
    fn a_equal_to_one_is_interpolated() {
        let c = PurchaseHistory::new(3, 20.0, 30.0);
        let at = |a: f64| {
            BgNbdParams {
                r: 0.5,
                alpha: 3.0,
                a,
                b: 2.0,
            }
            .expected_purchases(&c, 26.0)
        };
        let (below, exact, above) = (at(1.0 - 1e-4), at(1.0), at(1.0 + 1e-4));
        assert!(exact.is_finite());
        assert!(
            (exact - 0.5 * (below + above)).abs() < 1e-6 * exact,
            "{below} {exact} {above}"
        );
    }
}
