//! Small dense optimisers: BFGS with a strong-Wolfe line search, Newton with backtracking,
//! a Nelder–Mead fallback, and the Cholesky-based inverses used for standard errors.
//!
//! Written here rather than taken from `argmin`: our problems have 3 or 4 unknowns, and
//! argmin + argmin-math bring rand 0.9, rand_xoshiro, num-complex, paste (a proc-macro)
//! and web-time for a few hundred lines of textbook code (Nocedal & Wright, 2nd ed.,
//! algorithms 3.5, 3.6 and 6.1; Hager & Zhang 2005 for the approximate Wolfe test; Gao &
//! Han 2012 for the adaptive Nelder–Mead).

/// An objective returning its value and gradient.
pub(crate) trait Objective<const N: usize> {
    /// Value and gradient at `x`; a non-finite value means "outside the usable region".
    fn evaluate(&mut self, x: &[f64; N]) -> (f64, [f64; N]);
}

impl<const N: usize, F: FnMut(&[f64; N]) -> (f64, [f64; N])> Objective<N> for F {
    fn evaluate(&mut self, x: &[f64; N]) -> (f64, [f64; N]) {
        self(x)
    }
}

/// Stopping rules.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Largest number of iterations.
    pub max_iterations: usize,
    /// Converged when the largest gradient component is at most this.
    pub gradient_tolerance: f64,
}

/// Where a minimisation ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome<const N: usize> {
    /// Best point found.
    pub x: [f64; N],
    /// Objective there.
    pub value: f64,
    /// Iterations run before the tolerance was met or the iteration cap stopped the search.
    pub iterations: usize,
    /// Whether the gradient tolerance was met.
    pub converged: bool,
}

/// Largest step of one line search in any coordinate (the coordinates are log-parameters,
/// so this is a factor of e^4 per iteration).
const MAX_STEP: f64 = 4.0;
/// Armijo and curvature constants.
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
/// Relative rounding noise of the objective (sums of up to millions of terms).
const NOISE: f64 = 1e-12;

fn dot<const N: usize>(u: &[f64; N], v: &[f64; N]) -> f64 {
    u.iter().zip(v).map(|(a, b)| a * b).sum()
}

fn max_abs<const N: usize>(v: &[f64; N]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn identity<const N: usize>(scale: f64) -> [[f64; N]; N] {
    let mut m = [[0.0; N]; N];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = scale;
    }
    m
}

fn axpy<const N: usize>(x: &[f64; N], alpha: f64, p: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|i| x[i] + alpha * p[i])
}

/// One evaluated trial point of a line search.
#[derive(Clone, Copy)]
struct Trial<const N: usize> {
    step: f64,
    value: f64,
    slope: f64,
    gradient: [f64; N],
}

/// Strong-Wolfe line search along `direction` from `x` (N&W algorithms 3.5 and 3.6).
/// Returns the accepted trial, or the best Armijo point if the curvature condition could
/// not be met, or `None` when no decrease was found.
///
/// Near the optimum the decrease Armijo asks for is below the objective's rounding
/// noise, so a trial that meets the curvature condition with a value within
/// [`NOISE`] of the start is accepted too (Hager & Zhang's approximate Wolfe conditions).
fn line_search<const N: usize>(
    objective: &mut impl Objective<N>,
    x: &[f64; N],
    value: f64,
    slope: f64,
    direction: &[f64; N],
    first_step: f64,
    max_step: f64,
) -> Option<Trial<N>> {
    let mut evaluate = |step: f64| {
        let (v, g) = objective.evaluate(&axpy(x, step, direction));
        let v = if v.is_finite() { v } else { f64::INFINITY };
        Trial {
            step,
            value: v,
            slope: dot(&g, direction),
            gradient: g,
        }
    };
    let armijo = |t: &Trial<N>| t.value <= value + C1 * t.step * slope;
    let curvature = |t: &Trial<N>| t.slope.abs() <= -C2 * slope;
    let approximate_wolfe = |t: &Trial<N>| curvature(t) && t.value <= value + NOISE * value.abs();

    let mut best: Option<Trial<N>> = None;
    let keep_best = |t: &Trial<N>, best: &mut Option<Trial<N>>| {
        if armijo(t) && best.is_none_or(|b| t.value < b.value) {
            *best = Some(*t);
        }
    };

    let mut previous = Trial {
        step: 0.0,
        value,
        slope,
        gradient: [0.0; N],
    };
    let mut step = first_step.min(max_step);
    let mut bracket = None;
    for i in 0..40 {
        let trial = evaluate(step);
        keep_best(&trial, &mut best);
        if approximate_wolfe(&trial) {
            return Some(trial);
        }
        if !armijo(&trial) || (i > 0 && trial.value >= previous.value) {
            bracket = Some((previous, trial));
            break;
        }
        if curvature(&trial) {
            return Some(trial);
        }
        if trial.slope >= 0.0 {
            bracket = Some((trial, previous));
            break;
        }
        if step >= max_step {
            return Some(trial);
        }
        previous = trial;
        step = (2.0 * step).min(max_step);
    }
    let Some((mut lo, mut hi)) = bracket else {
        return best;
    };
    // Zoom: shrink the bracket keeping `lo` the best Armijo point and a minimiser inside.
    for _ in 0..30 {
        let width = hi.step - lo.step;
        if width.abs() < 1e-16 * (1.0 + lo.step.abs()) {
            break;
        }
        // Minimiser of the quadratic through lo (value, slope) and hi (value), safeguarded
        // to the middle 80% of the bracket; bisection when hi is not finite.
        let mut next = lo.step + 0.5 * width;
        if hi.value.is_finite() {
            let denom = 2.0 * (hi.value - lo.value - lo.slope * width);
            if denom > 0.0 {
                let q = lo.step - lo.slope * width * width / denom;
                let (left, right) = if width > 0.0 {
                    (lo.step, hi.step)
                } else {
                    (hi.step, lo.step)
                };
                let margin = 0.1 * width.abs();
                if q > left + margin && q < right - margin {
                    next = q;
                }
            }
        }
        let trial = evaluate(next);
        keep_best(&trial, &mut best);
        if approximate_wolfe(&trial) {
            return Some(trial);
        }
        if !armijo(&trial) || trial.value >= lo.value {
            hi = trial;
        } else {
            if curvature(&trial) {
                return Some(trial);
            }
            if trial.slope * (hi.step - lo.step) >= 0.0 {
                hi = lo;
            }
            lo = trial;
        }
    }
    best
}

/// BFGS on `objective` from `x0`; the first step scales the initial inverse Hessian
/// (N&W 6.20).
pub(crate) fn bfgs<const N: usize>(
    objective: &mut impl Objective<N>,
    x0: [f64; N],
    settings: Settings,
) -> Outcome<N> {
    let mut x = x0;
    let (mut value, mut gradient) = objective.evaluate(&x);
    let mut h = identity(1.0);
    let mut scaled = false;
    let outcome = |x, value, iterations, converged| Outcome {
        x,
        value,
        iterations,
        converged,
    };
    if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
        return outcome(x, value, 0, false);
    }
    let mut restarted = false;
    for iteration in 0..settings.max_iterations {
        if max_abs(&gradient) <= settings.gradient_tolerance {
            return outcome(x, value, iteration, true);
        }
        let mut direction: [f64; N] = std::array::from_fn(|i| -dot(&h[i], &gradient));
        let mut slope = dot(&direction, &gradient);
        if slope >= 0.0 || !slope.is_finite() {
            // Not a descent direction (H lost positive definiteness): steepest descent.
            h = identity(1.0);
            scaled = false;
            direction = gradient.map(|g| -g);
            slope = dot(&direction, &gradient);
        }
        let largest = max_abs(&direction);
        let max_step = MAX_STEP / largest;
        let first_step = if scaled {
            1.0
        } else {
            1.0_f64.min(1.0 / largest)
        };
        let Some(trial) = line_search(
            objective, &x, value, slope, &direction, first_step, max_step,
        ) else {
            if restarted || !scaled {
                return outcome(x, value, iteration, false);
            }
            // One restart from steepest descent before giving up.
            restarted = true;
            h = identity(1.0);
            scaled = false;
            continue;
        };
        restarted = false;
        let s: [f64; N] = direction.map(|d| trial.step * d);
        let y: [f64; N] = std::array::from_fn(|i| trial.gradient[i] - gradient[i]);
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        let previous_value = value;
        x = axpy(&x, trial.step, &direction);
        value = trial.value;
        gradient = trial.gradient;
        if sy > 1e-12 * dot(&s, &s).sqrt() * yy.sqrt() {
            if !scaled {
                h = identity(sy / yy);
                scaled = true;
            }
            h = bfgs_update(&h, &s, &y, sy);
        }
        // Stalled at the limit of floating-point resolution.
        if (previous_value - value).abs() <= 1e-16 * value.abs()
            && max_abs(&gradient) <= 1e3 * settings.gradient_tolerance
        {
            return outcome(x, value, iteration + 1, true);
        }
    }
    let converged = max_abs(&gradient) <= settings.gradient_tolerance;
    outcome(x, value, settings.max_iterations, converged)
}

/// `H+ = (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ`, `ρ = 1 / yᵀs`.
fn bfgs_update<const N: usize>(
    h: &[[f64; N]; N],
    s: &[f64; N],
    y: &[f64; N],
    sy: f64,
) -> [[f64; N]; N] {
    let rho = 1.0 / sy;
    let hy: [f64; N] = std::array::from_fn(|i| dot(&h[i], y));
    let yhy = dot(y, &hy);
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            h[i][j] - rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j]
        })
    })
}

/// Adaptive Nelder–Mead (Gao & Han 2012) from `x0` with an initial simplex of side `step`.
/// Used only when BFGS fails, so it favours robustness over speed.
pub(crate) fn nelder_mead<const N: usize>(
    objective: &mut impl Objective<N>,
    x0: [f64; N],
    step: f64,
    max_iterations: usize,
) -> Outcome<N> {
    let n = N as f64;
    let (reflect, expand, contract, shrink) = (1.0, 1.0 + 2.0 / n, 0.75 - 0.5 / n, 1.0 - 1.0 / n);
    let mut f = |x: &[f64; N]| {
        let v = objective.evaluate(x).0;
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut simplex: Vec<([f64; N], f64)> = Vec::with_capacity(N + 1);
    simplex.push((x0, f(&x0)));
    for i in 0..N {
        let mut x = x0;
        x[i] += step;
        let v = f(&x);
        simplex.push((x, v));
    }
    let mut iterations = 0;
    while iterations < max_iterations {
        iterations += 1;
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[N].1);
        let size = simplex[1..]
            .iter()
            .map(|(x, _)| {
                max_abs(&std::array::from_fn::<f64, N, _>(|i| {
                    x[i] - simplex[0].0[i]
                }))
            })
            .fold(0.0, f64::max);
        if (worst - best).abs() <= 1e-13 * (1.0 + best.abs()) && size <= 1e-9 {
            break;
        }
        let centroid: [f64; N] =
            std::array::from_fn(|i| simplex[..N].iter().map(|(x, _)| x[i]).sum::<f64>() / n);
        let along = |t: f64| -> [f64; N] {
            std::array::from_fn(|i| centroid[i] + t * (simplex[N].0[i] - centroid[i]))
        };
        let xr = along(-reflect);
        let vr = f(&xr);
        if vr < simplex[0].1 {
            let xe = along(-reflect * expand);
            let ve = f(&xe);
            simplex[N] = if ve < vr { (xe, ve) } else { (xr, vr) };
        } else if vr < simplex[N - 1].1 {
            simplex[N] = (xr, vr);
        } else {
            let (xc, vc) = if vr < simplex[N].1 {
                let xc = along(-reflect * contract);
                (xc, f(&xc))
            } else {
                let xc = along(contract);
                (xc, f(&xc))
            };
            if vc < simplex[N].1.min(vr) {
                simplex[N] = (xc, vc);
            } else {
                let x_best = simplex[0].0;
                for vertex in simplex.iter_mut().skip(1) {
                    let x: [f64; N] =
                        std::array::from_fn(|i| x_best[i] + shrink * (vertex.0[i] - x_best[i]));
                    *vertex = (x, f(&x));
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    Outcome {
        x: simplex[0].0,
        value: simplex[0].1,
        iterations,
        converged: false,
    }
}

/// Inverse of the Hessian of a function at `x`, from forward differences of its gradient
/// `grad` (`at` = the gradient at `x`; N more evaluations, steps `1e-6 max(|x_j|, 1e-2)`,
/// relative error about 1e-6). `None` unless the Hessian is positive definite.
pub(crate) fn inverse_hessian<const N: usize>(
    x: [f64; N],
    at: [f64; N],
    mut grad: impl FnMut(&[f64; N]) -> [f64; N],
) -> Option<[[f64; N]; N]> {
    let mut hessian = [[0.0; N]; N];
    for j in 0..N {
        let h = 1e-6 * x[j].abs().max(1e-2);
        let mut up = x;
        up[j] += h;
        let moved = grad(&up);
        for i in 0..N {
            hessian[i][j] = (moved[i] - at[i]) / h;
        }
    }
    let symmetric =
        std::array::from_fn(|i| std::array::from_fn(|j| 0.5 * (hessian[i][j] + hessian[j][i])));
    invert_positive_definite(&symmetric)
}

/// Cholesky factor `L` (`A = L Lᵀ`), or `None` unless `a` is positive definite.
fn cholesky<const N: usize>(a: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let mut l = [[0.0; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - sum;
                if !(d > 0.0 && d.is_finite()) {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - sum) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b`.
fn cholesky_solve<const N: usize>(l: &[[f64; N]; N], b: &[f64; N]) -> [f64; N] {
    let mut y = [0.0; N];
    for i in 0..N {
        let sum: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - sum) / l[i][i];
    }
    let mut x = [0.0; N];
    for i in (0..N).rev() {
        let sum: f64 = (i + 1..N).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i][i];
    }
    x
}

/// `A⁻¹` for a symmetric positive-definite `A`, or `None` when it is not.
pub(crate) fn invert_positive_definite<const N: usize>(a: &[[f64; N]; N]) -> Option<[[f64; N]; N]> {
    let l = cholesky(a)?;
    let columns: [[f64; N]; N] = std::array::from_fn(|j| {
        cholesky_solve(&l, &std::array::from_fn(|i| if i == j { 1.0 } else { 0.0 }))
    });
    // Symmetric, so the columns are also the rows.
    Some(columns)
}

/// Newton's method with backtracking, for a convex neighbourhood of the optimum (it stops,
/// unconverged, where the Hessian is not positive definite or no step decreases the
/// objective; the caller then falls back to BFGS). `objective` returns value, gradient
/// and Hessian.
pub(crate) fn newton<const N: usize>(
    objective: &mut impl FnMut(&[f64; N]) -> (f64, [f64; N], [[f64; N]; N]),
    x0: [f64; N],
    settings: Settings,
) -> Outcome<N> {
    let mut x = x0;
    let (mut value, mut gradient, mut hessian) = objective(&x);
    let stop = |x, value, iterations, converged| Outcome {
        x,
        value,
        iterations,
        converged,
    };
    for iteration in 0..settings.max_iterations {
        if !value.is_finite() {
            return stop(x, value, iteration, false);
        }
        if max_abs(&gradient) <= settings.gradient_tolerance {
            return stop(x, value, iteration, true);
        }
        let Some(l) = cholesky(&hessian) else {
            return stop(x, value, iteration, false);
        };
        let mut direction = cholesky_solve(&l, &gradient.map(|g| -g));
        let largest = max_abs(&direction);
        if largest > MAX_STEP {
            direction = direction.map(|d| d * MAX_STEP / largest);
        }
        let slope = dot(&gradient, &direction);
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let trial_x = axpy(&x, step, &direction);
            let trial = objective(&trial_x);
            let decreased = trial.0 <= value + C1 * step * slope;
            // Within rounding noise of the start but with a smaller gradient: still progress.
            let flat =
                trial.0 <= value + NOISE * value.abs() && max_abs(&trial.1) < max_abs(&gradient);
            if trial.0.is_finite() && (decreased || flat) {
                accepted = Some((trial_x, trial));
                break;
            }
            step *= 0.5;
        }
        let Some((next, (v, g, h))) = accepted else {
            return stop(x, value, iteration, false);
        };
        x = next;
        (value, gradient, hessian) = (v, g, h);
    }
    let converged = max_abs(&gradient) <= settings.gradient_tolerance;
    stop(x, value, settings.max_iterations, converged)
}

/// Standard errors from the observed information, `sqrt(diag((-∇²LL)⁻¹))`, given the
/// gradient `grad` of the total log-likelihood in natural parameters and its value `at`
/// the estimates. `None` when the information is not positive definite (an optimum on a
/// boundary, or a flat likelihood).
pub(crate) fn standard_errors<const N: usize>(
    params: [f64; N],
    at: [f64; N],
    mut grad: impl FnMut(&[f64; N]) -> [f64; N],
) -> Option<[f64; N]> {
    let covariance = inverse_hessian(params, at.map(|g| -g), |p| grad(p).map(|g| -g))?;
    Some(std::array::from_fn(|i| covariance[i][i].sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64; 2]) -> (f64, [f64; 2]) {
        let (a, b) = (1.0 - x[0], x[1] - x[0] * x[0]);
        (
            a * a + 100.0 * b * b,
            [-2.0 * a - 400.0 * x[0] * b, 200.0 * b],
        )
    }

    #[test]
    fn bfgs_minimises_rosenbrock() {
        let settings = Settings {
            max_iterations: 500,
            gradient_tolerance: 1e-10,
        };
        let out = bfgs(&mut rosenbrock, [-1.2, 1.0], settings);
        assert!(out.converged, "{out:?}");
        assert!(
            (out.x[0] - 1.0).abs() < 1e-8 && (out.x[1] - 1.0).abs() < 1e-8,
            "{out:?}"
        );
    }

    #[test]
    fn nelder_mead_minimises_rosenbrock() {
        let out = nelder_mead(&mut rosenbrock, [-1.2, 1.0], 0.5, 5000);
        assert!(
            (out.x[0] - 1.0).abs() < 1e-6 && (out.x[1] - 1.0).abs() < 1e-6,
            "{out:?}"
        );
    }

    #[test]
    fn standard_errors_of_a_gaussian_log_likelihood() {
        // LL = -x²/(2·4) - y²/(2·9): variances 4 and 9.
        let grad = |p: &[f64; 2]| [-p[0] / 4.0, -p[1] / 9.0];
        let se = standard_errors([0.3, -0.2], grad(&[0.3, -0.2]), grad).expect("positive definite");
        assert!(
            (se[0] - 2.0).abs() < 1e-6 && (se[1] - 3.0).abs() < 1e-6,
            "{se:?}"
        );
        let saddle = |p: &[f64; 2]| [p[0], -p[1]];
        assert!(standard_errors([0.3, -0.2], saddle(&[0.3, -0.2]), saddle).is_none());
    }

    #[test]
    fn inverse_hessian_of_a_correlated_function() {
        // f = x² + xy + y² + 3y³/1000: the Hessian at 0 is [[2, 1], [1, 2]].
        let grad = |p: &[f64; 2]| [2.0 * p[0] + p[1], p[0] + 2.0 * p[1] + 9e-3 * p[1] * p[1]];
        let inv = inverse_hessian([0.0, 0.0], [0.0, 0.0], grad).expect("positive definite");
        let expected = [[2.0 / 3.0, -1.0 / 3.0], [-1.0 / 3.0, 2.0 / 3.0]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - expected[i][j]).abs() < 1e-6, "{inv:?}");
            }
        }
    }

    #[test]
    fn newton_minimises_a_convex_function() {
        // f = Σ exp(x_i) - 2 x_i + (x_0 - x_1)²: minimum where the gradient vanishes.
        let mut f = |x: &[f64; 2]| {
            let d = x[0] - x[1];
            let value = x[0].exp() + x[1].exp() - 2.0 * x[0] - 2.0 * x[1] + d * d;
            let gradient = [x[0].exp() - 2.0 + 2.0 * d, x[1].exp() - 2.0 - 2.0 * d];
            let hessian = [[x[0].exp() + 2.0, -2.0], [-2.0, x[1].exp() + 2.0]];
            (value, gradient, hessian)
        };
        let settings = Settings {
            max_iterations: 50,
            gradient_tolerance: 1e-12,
        };
        let out = newton(&mut f, [1.5, -1.0], settings);
        assert!(out.converged, "{out:?}");
        let ln2 = 2.0_f64.ln();
        assert!(
            (out.x[0] - ln2).abs() < 1e-10 && (out.x[1] - ln2).abs() < 1e-10,
            "{out:?}"
        );
        assert!(out.iterations < 10);
    }
}
