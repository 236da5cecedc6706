//! Parameter recovery and calibration on data simulated from known parameters (seeded,
//! so deterministic). Estimates must lie within 4 of their own standard errors of the
//! truth; predictions must match simulated outcomes within 4 standard deviations.

mod common;

use common::{simulate_bgnbd, simulate_gamma_gamma};
use mkt_lifetimes::{BgNbdParams, FitOptions, GammaGammaParams, bgnbd, gamma_gamma};

/// The CDNOW estimates.
const CDNOW: BgNbdParams = BgNbdParams {
    r: 0.24,
    alpha: 4.41,
    a: 0.79,
    b: 2.43,
};

fn assert_recovered<const N: usize>(
    names: [&str; N],
    estimates: [f64; N],
    errors: [f64; N],
    truth: [f64; N],
) {
    for i in 0..N {
        let z = (estimates[i] - truth[i]) / errors[i];
        assert!(
            z.abs() < 4.0,
            "{}: estimate {} ± {} vs true {} (z = {z:.2})",
            names[i],
            estimates[i],
            errors[i],
            truth[i]
        );
        // And the standard error is small enough for that to mean something.
        assert!(
            errors[i] < 0.25 * truth[i],
            "{}: standard error {} too large",
            names[i],
            errors[i]
        );
    }
}

/// `(observed - expected) / sd` of a sum of independent outcomes.
fn z_score(observed: f64, expected: f64, variance: f64) -> f64 {
    (observed - expected) / variance.sqrt()
}

#[test]
fn bgnbd_recovers_simulated_parameters() {
    // 20,000 customers acquired over 12 weeks, observed until week 39 (T in [27, 39]).
    let customers = simulate_bgnbd(&CDNOW, 20_000, 27.0, 39.0, 0.0, 7);
    let data: Vec<_> = customers.iter().map(|c| c.history).collect();
    let fit = bgnbd::fit(&data, &FitOptions::default()).expect("fit");
    assert!(fit.converged);
    let errors = fit.standard_errors.expect("positive-definite information");
    assert_recovered(
        ["r", "alpha", "a", "b"],
        fit.params.as_array(),
        errors,
        CDNOW.as_array(),
    );
    // The fit is the maximum: the true parameters are no more likely.
    assert!(fit.log_likelihood >= CDNOW.log_likelihood(&data));
}

#[test]
fn bgnbd_recovers_other_regimes() {
    // Frequent buyers with low churn, and rare buyers with high churn.
    for (truth, seed) in [
        (
            BgNbdParams {
                r: 2.0,
                alpha: 3.0,
                a: 1.5,
                b: 12.0,
            },
            11,
        ),
        (
            BgNbdParams {
                r: 0.5,
                alpha: 10.0,
                a: 2.0,
                b: 1.5,
            },
            12,
        ),
    ] {
        let data: Vec<_> = simulate_bgnbd(&truth, 20_000, 0.0, 104.0, 0.0, seed)
            .iter()
            .map(|c| c.history)
            .collect();
        let fit = bgnbd::fit(&data, &FitOptions::default()).expect("fit");
        assert!(fit.converged, "{truth:?}");
        let errors = fit.standard_errors.expect("positive-definite information");
        assert_recovered(
            ["r", "alpha", "a", "b"],
            fit.params.as_array(),
            errors,
            truth.as_array(),
        );
    }
}

#[test]
fn bgnbd_predictions_are_calibrated_on_a_holdout() {
    // With the true parameters, E[X(t) | history] summed over customers must match the
    // purchases they actually make in the next t = 39 weeks, overall and by frequency;
    // P(alive) summed must match the number still active at T.
    let holdout = 39.0;
    let customers = simulate_bgnbd(&CDNOW, 20_000, 27.0, 39.0, holdout, 21);
    let buckets: [(u32, u32); 5] = [(0, 0), (1, 1), (2, 3), (4, 7), (8, u32::MAX)];
    for (low, high) in buckets {
        let (mut observed, mut expected, mut variance) = (0.0, 0.0, 0.0);
        for c in customers
            .iter()
            .filter(|c| (low..=high).contains(&c.history.frequency))
        {
            let predicted = CDNOW.expected_purchases(&c.history, holdout);
            let actual = f64::from(c.holdout_purchases);
            observed += actual;
            expected += predicted;
            variance += (actual - predicted).powi(2);
        }
        let z = z_score(observed, expected, variance);
        assert!(
            z.abs() < 4.0,
            "x in {low}..={high}: {observed} purchases vs {expected:.1} expected (z = {z:.2})"
        );
    }
    let (mut alive, mut expected_alive, mut variance) = (0.0, 0.0, 0.0);
    for c in customers.iter().filter(|c| c.history.frequency > 0) {
        let p = CDNOW.probability_alive(&c.history);
        alive += if c.alive { 1.0 } else { 0.0 };
        expected_alive += p;
        variance += p * (1.0 - p);
    }
    let z = z_score(alive, expected_alive, variance);
    assert!(
        z.abs() < 4.0,
        "{alive} alive vs {expected_alive:.1} expected (z = {z:.2})"
    );
}

#[test]
fn unconditional_expectation_matches_simulated_counts() {
    // E[X(T)] for new customers (equation 9) against the calibration counts themselves.
    let customers = simulate_bgnbd(&CDNOW, 20_000, 1.0, 78.0, 0.0, 31);
    let (mut observed, mut expected, mut variance) = (0.0, 0.0, 0.0);
    for c in &customers {
        let predicted = CDNOW.expected_purchases_new_customer(c.history.age);
        observed += f64::from(c.history.frequency);
        expected += predicted;
        variance += (f64::from(c.history.frequency) - predicted).powi(2);
    }
    let z = z_score(observed, expected, variance);
    assert!(z.abs() < 4.0, "{observed} vs {expected:.1} (z = {z:.2})");
}

#[test]
fn gamma_gamma_recovers_simulated_parameters() {
    let truth = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
    let data = simulate_gamma_gamma(&truth, 10_000, 8, 41);
    let fit = gamma_gamma::fit(&data, &FitOptions::default()).expect("fit");
    assert!(fit.converged);
    assert_eq!(fit.customers, 10_000);
    let errors = fit.standard_errors.expect("positive-definite information");
    assert_recovered(
        ["p", "q", "gamma"],
        fit.params.as_array(),
        errors,
        truth.as_array(),
    );
    assert!(fit.log_likelihood >= truth.log_likelihood(&data));

    // Money units do not matter: values in cents give gamma in cents, the rest unchanged.
    let cents: Vec<_> = data
        .iter()
        .map(|s| mkt_lifetimes::SpendSummary::new(s.frequency, s.mean_value * 100.0))
        .collect();
    let in_cents = gamma_gamma::fit(&cents, &FitOptions::default()).expect("fit");
    common::assert_close(in_cents.params.p, fit.params.p, 1e-6, "p in cents");
    common::assert_close(in_cents.params.q, fit.params.q, 1e-6, "q in cents");
    common::assert_close(
        in_cents.params.gamma,
        100.0 * fit.params.gamma,
        1e-6,
        "gamma in cents",
    );
}

#[test]
fn conditional_spend_is_calibrated() {
    // E[M | x, m_x] against each simulated customer's true mean value p / ν.
    let truth = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        gamma: 15.44,
    };
    let mut sampler = common::Sampler::new(51);
    let (mut observed, mut expected, mut variance) = (0.0, 0.0, 0.0);
    for _ in 0..10_000 {
        let x = 1 + (sampler.uniform() * 6.0) as u32;
        let nu = sampler.gamma(truth.q, truth.gamma);
        let mean: f64 = (0..x).map(|_| sampler.gamma(truth.p, nu)).sum::<f64>() / f64::from(x);
        let predicted = truth.expected_average_spend(x, mean).expect("q > 1");
        let actual = truth.p / nu;
        observed += actual;
        expected += predicted;
        variance += (actual - predicted).powi(2);
    }
    let z = z_score(observed, expected, variance);
    assert!(z.abs() < 4.0, "{observed:.1} vs {expected:.1} (z = {z:.2})");
}

#[test]
fn time_units_only_rescale_alpha() {
    let data: Vec<_> = simulate_bgnbd(&CDNOW, 5_000, 27.0, 39.0, 0.0, 61)
        .iter()
        .map(|c| c.history)
        .collect();
    let weeks = bgnbd::fit(&data, &FitOptions::default()).expect("fit");
    let days: Vec<_> = data
        .iter()
        .map(|h| mkt_lifetimes::PurchaseHistory::new(h.frequency, h.recency * 7.0, h.age * 7.0))
        .collect();
    let in_days = bgnbd::fit(&days, &FitOptions::default()).expect("fit");
    common::assert_close(
        in_days.params.alpha,
        7.0 * weeks.params.alpha,
        1e-6,
        "alpha in days",
    );
    for (a, b) in [
        (in_days.params.r, weeks.params.r),
        (in_days.params.a, weeks.params.a),
        (in_days.params.b, weeks.params.b),
    ] {
        common::assert_close(a, b, 1e-6, "shape parameter");
    }
    // Predictions agree when the horizon is converted too.
    let c = data[0];
    let c_days = days[0];
    common::assert_close(
        in_days.params.expected_purchases(&c_days, 7.0 * 52.0),
        weeks.params.expected_purchases(&c, 52.0),
        1e-5,
        "E[X]",
    );
}

#[test]
fn large_inputs_take_the_subsample_and_newton_path() {
    // More patterns than bgnbd::SUBSAMPLE_ABOVE: BFGS on a subsample, Newton on all.
    let n = bgnbd::SUBSAMPLE_ABOVE + 20_000;
    let data: Vec<_> = simulate_bgnbd(&CDNOW, n, 27.0, 39.0, 0.0, 71)
        .iter()
        .map(|c| c.history)
        .collect();
    let fit = bgnbd::fit(&data, &FitOptions::default()).expect("fit");
    assert!(fit.patterns > bgnbd::SUBSAMPLE_ABOVE);
    assert!(fit.converged);
    let errors = fit.standard_errors.expect("positive-definite information");
    assert_recovered(
        ["r", "alpha", "a", "b"],
        fit.params.as_array(),
        errors,
        CDNOW.as_array(),
    );
    // The optimum is the same one plain BFGS finds: the gradient vanishes there.
    let gradient = fit.params.log_likelihood_gradient(&data);
    let scale = [fit.params.r, fit.params.alpha, fit.params.a, fit.params.b];
    for i in 0..4 {
        assert!(
            (gradient[i] * scale[i] / n as f64).abs() < 1e-8,
            "{gradient:?}"
        );
    }
}
