//! The analytic gradients against central finite differences of the log-likelihood, at
//! several parameter points (including small shapes and large `x`), per customer and summed.

// Matrix entries are compared by (i, j): index loops read clearer than iterators here.
#![allow(clippy::needless_range_loop)]

mod common;

use common::cdnow;
use mkt_lifetimes::{BgNbdParams, GammaGammaParams, PurchaseHistory, SpendSummary};

/// Central difference of `f` along parameter `i` with a relative step.
fn central<const N: usize>(params: [f64; N], i: usize, f: impl Fn([f64; N]) -> f64) -> f64 {
    let h = 1e-5 * params[i];
    let (mut up, mut down) = (params, params);
    up[i] += h;
    down[i] -= h;
    (f(up) - f(down)) / (2.0 * h)
}

/// Agreement to 1e-6 relative, plus the finite difference's own round-off, which grows with
/// the size of the log-likelihood `value` over the step.
fn assert_gradient<const N: usize>(
    analytic: [f64; N],
    numeric: [f64; N],
    value: f64,
    params: [f64; N],
    what: &str,
) {
    for i in 0..N {
        let tolerance = 1e-6 * analytic[i].abs().max(1.0) + 1e-9 * value.abs() / params[i];
        assert!(
            (analytic[i] - numeric[i]).abs() <= tolerance,
            "{what}, component {i}: analytic {} vs numeric {}",
            analytic[i],
            numeric[i]
        );
    }
}

fn bg(p: [f64; 4]) -> BgNbdParams {
    BgNbdParams {
        r: p[0],
        alpha: p[1],
        a: p[2],
        b: p[3],
    }
}

#[test]
fn bgnbd_gradient_matches_finite_differences() {
    let points = [
        [0.243, 4.414, 0.793, 2.426],
        [1.0, 1.0, 1.0, 1.0],
        [0.05, 30.0, 0.2, 12.0],
        [3.7, 0.4, 5.0, 0.3],
        [12.0, 80.0, 0.9, 40.0],
    ];
    let customers = [
        PurchaseHistory::new(0, 0.0, 38.86),
        PurchaseHistory::new(0, 0.0, 0.0),
        PurchaseHistory::new(1, 1.71, 38.86),
        PurchaseHistory::new(1, 38.0, 38.86),
        PurchaseHistory::new(4, 12.0, 30.0),
        PurchaseHistory::new(26, 35.0, 37.0),
        PurchaseHistory::new(250, 51.0, 52.0),
    ];
    for point in points {
        for c in &customers {
            let numeric =
                std::array::from_fn(|i| central(point, i, |p| bg(p).log_likelihood_one(c)));
            let value = bg(point).log_likelihood_one(c);
            assert_gradient(
                bg(point).log_likelihood_gradient_one(c),
                numeric,
                value,
                point,
                &format!("BG/NBD at {point:?} for {c:?}"),
            );
        }
    }
    // The total over the CDNOW customers.
    let data: Vec<PurchaseHistory> = cdnow().iter().map(|row| row.history).collect();
    for point in points {
        let numeric = std::array::from_fn(|i| central(point, i, |p| bg(p).log_likelihood(&data)));
        let value = bg(point).log_likelihood(&data);
        assert_gradient(
            bg(point).log_likelihood_gradient(&data),
            numeric,
            value,
            point,
            &format!("BG/NBD total at {point:?}"),
        );
    }
}

#[test]
fn gamma_gamma_gradient_matches_finite_differences() {
    let gg = |p: [f64; 3]| GammaGammaParams {
        p: p[0],
        q: p[1],
        gamma: p[2],
    };
    let points = [
        [6.25, 3.74, 15.44],
        [1.0, 1.0, 1.0],
        [0.3, 0.8, 250.0],
        [40.0, 12.0, 2.0],
    ];
    let customers = [
        SpendSummary::new(1, 11.77),
        SpendSummary::new(2, 22.35),
        SpendSummary::new(6, 50.0),
        SpendSummary::new(10, 0.5),
        SpendSummary::new(120, 3_000.0),
    ];
    for point in points {
        for c in &customers {
            let numeric =
                std::array::from_fn(|i| central(point, i, |p| gg(p).log_likelihood_one(c)));
            let value = gg(point).log_likelihood_one(c);
            assert_gradient(
                gg(point).log_likelihood_gradient_one(c),
                numeric,
                value,
                point,
                &format!("Gamma-Gamma at {point:?} for {c:?}"),
            );
        }
    }
    let data: Vec<SpendSummary> = cdnow()
        .iter()
        .filter(|row| row.history.frequency > 0)
        .map(|row| SpendSummary::new(row.history.frequency, row.mean_value))
        .collect();
    for point in points {
        let numeric = std::array::from_fn(|i| central(point, i, |p| gg(p).log_likelihood(&data)));
        let value = gg(point).log_likelihood(&data);
        assert_gradient(
            gg(point).log_likelihood_gradient(&data),
            numeric,
            value,
            point,
            &format!("Gamma-Gamma total at {point:?}"),
        );
    }
}

#[test]
fn bgnbd_hessian_matches_finite_differences_of_the_gradient() {
    let points = [
        [0.243, 4.414, 0.793, 2.426],
        [0.05, 30.0, 0.2, 12.0],
        [3.7, 0.4, 5.0, 0.3],
    ];
    let customers = [
        PurchaseHistory::new(0, 0.0, 38.86),
        PurchaseHistory::new(1, 1.71, 38.86),
        PurchaseHistory::new(4, 12.0, 30.0),
        PurchaseHistory::new(26, 35.0, 37.0),
    ];
    for point in points {
        for c in &customers {
            let hessian = bg(point).log_likelihood_hessian_one(c);
            for i in 0..4 {
                let numeric: [f64; 4] = std::array::from_fn(|j| {
                    central(point, j, |p| bg(p).log_likelihood_gradient_one(c)[i])
                });
                let gradient_size = bg(point).log_likelihood_gradient_one(c)[i];
                for j in 0..4 {
                    assert!(hessian[i][j] == hessian[j][i], "symmetric");
                    let tolerance =
                        1e-6 * hessian[i][j].abs().max(1.0) + 1e-9 * gradient_size.abs() / point[j];
                    assert!(
                        (hessian[i][j] - numeric[j]).abs() <= tolerance,
                        "BG/NBD Hessian at {point:?} for {c:?}, ({i}, {j}): analytic {} vs numeric {}",
                        hessian[i][j],
                        numeric[j]
                    );
                }
            }
        }
    }
    // Summed over CDNOW, and negative definite at the maximum-likelihood estimates.
    let data: Vec<PurchaseHistory> = cdnow().iter().map(|row| row.history).collect();
    let at = [
        0.2425929282798217,
        4.413532265271817,
        0.7928859664406721,
        2.4257523826257996,
    ];
    let hessian = bg(at).log_likelihood_hessian(&data);
    for i in 0..4 {
        let numeric: [f64; 4] =
            std::array::from_fn(|j| central(at, j, |p| bg(p).log_likelihood_gradient(&data)[i]));
        for j in 0..4 {
            assert!(
                (hessian[i][j] - numeric[j]).abs() <= 1e-5 * hessian[i][j].abs().max(1.0),
                "total ({i}, {j}): {} vs {}",
                hessian[i][j],
                numeric[j]
            );
        }
        assert!(hessian[i][i] < 0.0);
    }
}
