//! Special functions the models need: ln-gamma, digamma, trigamma and the Gauss
//! hypergeometric function 2F1 on `0 <= z < 1`.
//!
//! ln-gamma is libm's (a port of musl's, accurate to about one ulp). Digamma, trigamma and
//! 2F1 are ours: none is in libm, and statrs, which has digamma, brings nalgebra and
//! about forty crates with its default features for a few dozen lines of code.

use std::f64::consts::PI;

/// Relative size at which a series term no longer changes the sum.
const SERIES_EPS: f64 = 1e-16;
/// Terms tried on the z-series when z is close to 1 before switching to the 1 - z form.
const NEAR_ONE_BUDGET: usize = 400;
/// Terms allowed on the z-series when no faster form is available.
const SERIES_MAX_TERMS: usize = 20_000_000;
/// Half-width of the band around integer `c - a - b` where the 1 - z form is
/// interpolated (its two halves have cancelling poles there).
const INTEGER_BAND: f64 = 1e-4;

/// `ln Γ(x)` for `x > 0`.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// `(ln |Γ(x)|, sign Γ(x))`; at the poles (0, -1, -2, ...) `ln |Γ|` is `+inf`, so `1/Γ = 0`.
fn ln_gamma_signed(x: f64) -> (f64, f64) {
    let (value, sign) = libm::lgamma_r(x);
    (value, if sign < 0 { -1.0 } else { 1.0 })
}

/// Digamma `ψ(x) = d/dx ln Γ(x)`: recurrence up to `x >= 10`, then the asymptotic series
/// (truncation error below 1e-16 there); reflection for negative non-integers.
pub(crate) fn digamma(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::NAN;
        }
        return digamma(1.0 - x) - PI / (PI * x).tan();
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // Bernoulli terms B_2k / (2k x^2k), k = 1..6.
    let tail = inv2
        * (1.0 / 12.0
            - inv2
                * (1.0 / 120.0
                    - inv2
                        * (1.0 / 252.0
                            - inv2
                                * (1.0 / 240.0 - inv2 * (1.0 / 132.0 - inv2 * 691.0 / 32760.0)))));
    acc + x.ln() - 0.5 * inv - tail
}

/// Trigamma `ψ'(x) = d²/dx² ln Γ(x)` for `x > 0`: recurrence up to `x >= 10`, then the
/// asymptotic series (truncation error below 1e-15 relative there).
pub(crate) fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // 1/x + 1/(2x²) + Σ B_2k / x^(2k+1), k = 1..7.
    let tail = inv2
        * inv
        * (1.0 / 6.0
            - inv2
                * (1.0 / 30.0
                    - inv2
                        * (1.0 / 42.0
                            - inv2
                                * (1.0 / 30.0
                                    - inv2
                                        * (5.0 / 66.0
                                            - inv2 * (691.0 / 2730.0 - inv2 * 7.0 / 6.0))))));
    acc + inv + 0.5 * inv2 + tail
}

/// `ln |2F1(a, b; c; z)|` and the sign of `2F1`, for `0 <= z < 1`.
///
/// Returned in log form because `2F1` overflows near `z = 1` when `c - a - b` is very
/// negative, while the quantities built from it stay moderate. Method:
///
/// - the power series in `z`, on whichever of `2F1(a, b; c; z)` and its Euler transform
///   `(1-z)^(c-a-b) 2F1(c-a, c-b; c; z)` has the faster-decaying terms (the first when
///   `c - a - b >= 0`; this is the switch lifetimes makes when scipy's value overflows);
/// - when `z` is close to 1 and that series is slow, the linear transformation to `1 - z`
///   (Abramowitz & Stegun 15.3.6), whose two series converge fast; near integer
///   `c - a - b`, where its halves have cancelling poles, it is interpolated in `c` from
///   four points just outside the band.
///
/// `c` must not be 0, -1, -2, ... (the function is undefined there; NaN is returned).
pub(crate) fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    if !(0.0..1.0).contains(&z) || (c <= 0.0 && c == c.floor()) {
        return (f64::NAN, f64::NAN);
    }
    if z == 0.0 {
        return (0.0, 1.0);
    }
    let m = c - a - b;
    let (pa, pb, shift) = if m < 0.0 {
        (c - a, c - b, m * (-z).ln_1p())
    } else {
        (a, b, 0.0)
    };
    let budget = if z > 0.75 {
        NEAR_ONE_BUDGET
    } else {
        SERIES_MAX_TERMS
    };
    if let Some(sum) = series(pa, pb, c, z, budget) {
        return (sum.abs().ln() + shift, sum.signum());
    }
    let near_one = near_one(a, b, c, z);
    if near_one.0.is_finite() {
        return near_one;
    }
    match series(pa, pb, c, z, SERIES_MAX_TERMS) {
        Some(sum) => (sum.abs().ln() + shift, sum.signum()),
        None => (f64::NAN, f64::NAN),
    }
}

/// The hypergeometric power series `sum_k (a)_k (b)_k / ((c)_k k!) z^k` (Neumaier-compensated),
/// or `None` when it has not converged within `max_terms` terms or overflowed.
fn series(a: f64, b: f64, c: f64, z: f64, max_terms: usize) -> Option<f64> {
    let mut term = 1.0_f64;
    let mut sum = 1.0_f64;
    let mut compensation = 0.0_f64;
    for k in 0..max_terms {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        let next = sum + term;
        compensation += if sum.abs() >= term.abs() {
            (sum - next) + term
        } else {
            (term - next) + sum
        };
        sum = next;
        if term == 0.0 {
            return Some(sum + compensation);
        }
        if !sum.is_finite() {
            return None;
        }
        // Stop once the remaining terms, bounded by a geometric tail with the next ratio,
        // cannot move the sum.
        let next_ratio = ((a + k + 1.0) * (b + k + 1.0) / ((c + k + 1.0) * (k + 2.0)) * z).abs();
        if next_ratio < 1.0
            && term.abs() * next_ratio / (1.0 - next_ratio) <= SERIES_EPS * sum.abs()
        {
            return Some(sum + compensation);
        }
    }
    None
}

/// A&S 15.3.6, interpolated across integer `c - a - b`: within [`INTEGER_BAND`] of the
/// integer it is evaluated at `c - a - b = n ± band, n ± 2 band` and the cubic through those
/// four points is read off (`2F1` is analytic in `c`; the error is O(band⁴)).
fn near_one(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    let m = c - a - b;
    let nearest = m.round();
    let offset = m - nearest;
    if offset.abs() >= INTEGER_BAND {
        return near_one_direct(a, b, c, z);
    }
    let nodes = [-2.0, -1.0, 1.0, 2.0].map(|k| k * INTEGER_BAND);
    let values = nodes.map(|node| near_one_direct(a, b, c - offset + node, z));
    let top = values.iter().fold(f64::NEG_INFINITY, |t, (l, _)| t.max(*l));
    let mut value = 0.0;
    for (k, (l, sign)) in values.iter().enumerate() {
        let weight: f64 = (0..4)
            .filter(|&j| j != k)
            .map(|j| (offset - nodes[j]) / (nodes[k] - nodes[j]))
            .product();
        value += weight * sign * (l - top).exp();
    }
    (value.abs().ln() + top, value.signum())
}

/// A&S 15.3.6: `2F1(a,b;c;z) = Γ(c)Γ(m)/(Γ(c-a)Γ(c-b)) 2F1(a,b;1-m;1-z)
/// + (1-z)^m Γ(c)Γ(-m)/(Γ(a)Γ(b)) 2F1(c-a,c-b;1+m;1-z)` with `m = c - a - b` not an integer.
fn near_one_direct(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    let m = c - a - b;
    let w = 1.0 - z;
    let (Some(s1), Some(s2)) = (
        series(a, b, 1.0 - m, w, SERIES_MAX_TERMS),
        series(c - a, c - b, 1.0 + m, w, SERIES_MAX_TERMS),
    ) else {
        return (f64::NAN, f64::NAN);
    };
    let (g_c, sg_c) = ln_gamma_signed(c);
    let (g_m, sg_m) = ln_gamma_signed(m);
    let (g_ca, sg_ca) = ln_gamma_signed(c - a);
    let (g_cb, sg_cb) = ln_gamma_signed(c - b);
    let (g_neg_m, sg_neg_m) = ln_gamma_signed(-m);
    let (g_a, sg_a) = ln_gamma_signed(a);
    let (g_b, sg_b) = ln_gamma_signed(b);
    // A Γ in a denominator at a pole makes its half vanish.
    let (l1, sign1) = if g_ca.is_infinite() || g_cb.is_infinite() || s1 == 0.0 {
        (f64::NEG_INFINITY, 0.0)
    } else {
        (
            g_c + g_m - g_ca - g_cb + s1.abs().ln(),
            sg_c * sg_m * sg_ca * sg_cb * s1.signum(),
        )
    };
    let (l2, sign2) = if g_a.is_infinite() || g_b.is_infinite() || s2 == 0.0 {
        (f64::NEG_INFINITY, 0.0)
    } else {
        (
            g_c + g_neg_m - g_a - g_b + m * w.ln() + s2.abs().ln(),
            sg_c * sg_neg_m * sg_a * sg_b * s2.signum(),
        )
    };
    let top = l1.max(l2);
    if !top.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let value = sign1 * (l1 - top).exp() + sign2 * (l2 - top).exp();
    (value.abs().ln() + top, value.signum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
        let (l, s) = ln_hyp2f1(a, b, c, z);
        s * l.exp()
    }

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs()
    }

    #[test]
    fn digamma_matches_known_values() {
        // ψ(1) = -γ, ψ(1/2) = -γ - 2 ln 2, ψ(10) from mpmath.
        let euler = 0.577_215_664_901_532_9;
        assert!(close(digamma(1.0), -euler, 1e-14));
        assert!(close(digamma(0.5), -euler - 2.0 * 2.0_f64.ln(), 1e-14));
        assert!(close(digamma(10.0), 2.251_752_589_066_721, 1e-14));
        assert!(close(digamma(1e-6), -1_000_000.577_214_0, 1e-12));
        assert!(close(digamma(-0.5), 0.036_489_973_978_576_52, 1e-12));
        // Derivative check against ln Γ.
        for x in [0.05, 0.3, 1.7, 4.2, 25.0, 300.0] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(close(digamma(x), numeric, 1e-7), "x = {x}");
        }
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1,1;2;z) = -ln(1-z)/z; 2F1(a,b;b;z) = (1-z)^-a.
        for z in [0.1_f64, 0.5, 0.8, 0.95, 0.999, 0.999_999] {
            let expected = -(1.0 - z).ln() / z;
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z), expected, 1e-10), "z = {z}");
            let expected = (1.0 - z).powf(-0.7);
            assert!(close(hyp2f1(0.7, 2.5, 2.5, z), expected, 1e-10), "z = {z}");
        }
    }

    #[test]
    fn ln_hyp2f1_matches_mpmath() {
        // (a, b, c, z, ln|2F1|, sign) from mpmath 1.4.1 at 40 digits: BG/NBD-shaped
        // parameters, z near 1, integer and near-integer c - a - b, large x, negative c.
        let cases = [
            (0.243, 2.426, 2.219, 0.5, 0.18821830926204305, 1.0),
            (1.243, 3.426, 3.219, 0.99, 6.444404292642271, 1.0),
            (7.243, 9.426, 9.219, 0.9999, 68.56462324841094, 1.0),
            (300.243, 302.426, 302.219, 0.9, 691.8104680596259, 1.0),
            (6.0, 17.0, 21.0, 0.99, 15.675229617585641, 1.0),
            (1.05, 3.426, 4.476, 0.9999999, 3.9931308906154275, 1.0),
            (0.3, 0.3, -0.4, 0.9999999, 15.241023126324352, -1.0),
            (30.05, 42.0, 46.5, 0.76, 37.94029218657047, 1.0),
            (0.5, 2.0, 2.50005, 0.999, 1.700190825618074, 1.0),
        ];
        for (a, b, c, z, expected, sign) in cases {
            let (value, s) = ln_hyp2f1(a, b, c, z);
            assert!(
                (value - expected).abs() <= 1e-10 * expected.abs().max(1.0) && s == sign,
                "{a} {b} {c} {z}: {value} {s}"
            );
        }
    }

    #[test]
    fn trigamma_matches_known_values() {
        // ψ'(1) = π²/6, ψ'(1/2) = π²/2; elsewhere the derivative of digamma.
        assert!(close(trigamma(1.0), PI * PI / 6.0, 1e-14));
        assert!(close(trigamma(0.5), PI * PI / 2.0, 1e-14));
        for x in [1e-3, 0.3, 2.5, 9.99, 10.0, 47.0, 1e4] {
            let h = 1e-5 * x;
            let numeric = (digamma(x + h) - digamma(x - h)) / (2.0 * h);
            assert!(
                close(trigamma(x), numeric, 1e-7),
                "x = {x}: {} vs {numeric}",
                trigamma(x)
            );
        }
    }
}
