//! Choosing between BG/NBD and the heuristic, the heuristic's behaviour, and CLV.

mod common;

use common::{assert_close, cdnow};
use mkt_lifetimes::model::DEFAULT_MIN_REPEAT_CUSTOMERS;
use mkt_lifetimes::{
    BgNbdParams, ClvOptions, Error, FallbackReason, FitOptions, Heuristic, Method, ModelOptions,
    PurchaseHistory, PurchaseModel, PurchasePredictor, customer_lifetime_value,
};

fn small_shop() -> Vec<PurchaseHistory> {
    // 10 repeat customers and 5 one-time buyers, in weeks.
    let mut data: Vec<PurchaseHistory> = (0..10)
        .map(|i| PurchaseHistory::new(1 + i % 3, 2.0 + f64::from(i), 20.0 + f64::from(i)))
        .collect();
    data.extend((0..5).map(|i| PurchaseHistory::new(0, 0.0, 5.0 + f64::from(i))));
    data
}

#[test]
fn too_few_repeat_customers_falls_back_to_the_heuristic() {
    let model = PurchaseModel::fit(&small_shop(), &ModelOptions::default()).expect("model");
    assert_eq!(
        model.method(),
        Method::Heuristic {
            reason: FallbackReason::TooFewRepeatCustomers {
                found: 10,
                required: DEFAULT_MIN_REPEAT_CUSTOMERS
            }
        }
    );
    let Method::Heuristic { reason } = model.method() else {
        unreachable!("checked above")
    };
    assert_eq!(
        reason.to_string(),
        "10 customers with a repeat purchase, 20 needed to fit BG/NBD"
    );
    // It still predicts.
    let c = PurchaseHistory::new(2, 10.0, 20.0);
    assert!(model.expected_purchases(&c, 52.0) > 0.0);
    assert!((0.0..=1.0).contains(&model.probability_alive(&c)));
}

#[test]
fn enough_repeat_customers_fit_bgnbd() {
    let data: Vec<_> = cdnow().iter().map(|r| r.history).collect();
    let model = PurchaseModel::fit(&data, &ModelOptions::default()).expect("model");
    let PurchaseModel::BgNbd(fit) = &model else {
        panic!("expected BG/NBD, got {:?}", model.method())
    };
    let c = PurchaseHistory::new(2, 30.43, 38.86);
    assert_close(
        model.expected_purchases(&c, 52.0),
        fit.params.expected_purchases(&c, 52.0),
        1e-15,
        "delegates",
    );
}

#[test]
fn a_fit_that_does_not_converge_falls_back() {
    let data: Vec<_> = cdnow().iter().map(|r| r.history).collect();
    let options = ModelOptions {
        fit: FitOptions {
            max_iterations: 1,
            ..FitOptions::default()
        },
        ..ModelOptions::default()
    };
    let model = PurchaseModel::fit(&data, &options).expect("model");
    assert_eq!(
        model.method(),
        Method::Heuristic {
            reason: FallbackReason::NotConverged
        }
    );
}

#[test]
fn the_heuristic_follows_its_documented_formulas() {
    let data = small_shop();
    let h = Heuristic::from_customers(&data).expect("heuristic");
    let n = data.len() as f64;
    let mean_x = data.iter().map(|c| f64::from(c.frequency)).sum::<f64>() / n;
    let mean_age = data.iter().map(|c| c.age).sum::<f64>() / n;
    assert_close(h.mean_frequency, mean_x, 1e-15, "x̄");
    assert_close(h.mean_age, mean_age, 1e-15, "T̄");

    // A brand-new customer gets the pooled rate and is alive.
    let new = PurchaseHistory::new(0, 0.0, 0.0);
    assert_eq!(h.probability_alive(&new), 1.0);
    assert_close(
        h.expected_purchases(&new, 10.0),
        10.0 * mean_x / mean_age,
        1e-12,
        "pooled rate × t",
    );

    // λ = (x + x̄)/(T + T̄); P(alive) = (1 + (T - t_x) λ / (x + 1))^-(x+1); E = P λ t.
    let c = PurchaseHistory::new(3, 12.0, 30.0);
    let rate = (3.0 + mean_x) / (30.0 + mean_age);
    let alive = (1.0 + 18.0 * rate / 4.0).powf(-4.0);
    assert_close(h.purchase_rate(&c), rate, 1e-12, "rate");
    assert_close(h.probability_alive(&c), alive, 1e-12, "P(alive)");
    assert_close(
        h.expected_purchases(&c, 26.0),
        alive * rate * 26.0,
        1e-12,
        "E[X(26)]",
    );

    // Right after a purchase the customer is alive; a longer silence lowers the score.
    assert_eq!(
        h.probability_alive(&PurchaseHistory::new(3, 30.0, 30.0)),
        1.0
    );
    let silences: Vec<f64> = [30.0, 25.0, 15.0, 5.0]
        .iter()
        .map(|t_x| h.probability_alive(&PurchaseHistory::new(3, *t_x, 30.0)))
        .collect();
    assert!(silences.windows(2).all(|w| w[0] > w[1]), "{silences:?}");
    // More purchases at the same recency and age mean more expected purchases.
    let by_frequency: Vec<f64> = (1..5)
        .map(|x| h.expected_purchases(&PurchaseHistory::new(x, 28.0, 30.0), 52.0))
        .collect();
    assert!(
        by_frequency.windows(2).all(|w| w[0] < w[1]),
        "{by_frequency:?}"
    );
}

#[test]
fn the_heuristic_is_the_same_weighted_or_not() {
    let data = small_shop();
    let weighted: Vec<(PurchaseHistory, u64)> = data.iter().map(|c| (*c, 3)).collect();
    assert_eq!(
        Heuristic::from_customers(&data),
        Heuristic::from_weighted(&weighted)
    );
}

#[test]
fn bad_input_is_an_error_not_a_fallback() {
    assert_eq!(
        PurchaseModel::fit(&[], &ModelOptions::default()),
        Err(Error::NoData)
    );
    let mut data = small_shop();
    data[2] = PurchaseHistory::new(0, 3.0, 10.0);
    assert_eq!(
        PurchaseModel::fit(&data, &ModelOptions::default()),
        Err(Error::InvalidInput {
            index: 2,
            reason: "recency must be 0 when frequency is 0"
        })
    );
    data[2] = PurchaseHistory::new(1, f64::NAN, 10.0);
    assert!(matches!(
        PurchaseModel::fit(&data, &ModelOptions::default()),
        Err(Error::InvalidInput { index: 2, .. })
    ));
}

#[test]
fn clv_without_discount_is_spend_times_expected_purchases() {
    let params = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    let c = PurchaseHistory::new(4, 30.0, 38.0);
    let flat = ClvOptions {
        periods: 12,
        period_length: 4.345,
        discount_rate: 0.0,
    };
    let clv = customer_lifetime_value(&params, &c, 25.0, &flat).expect("valid");
    assert_close(
        clv,
        25.0 * params.expected_purchases(&c, 12.0 * 4.345),
        1e-12,
        "undiscounted CLV",
    );
    let discounted =
        customer_lifetime_value(&params, &c, 25.0, &ClvOptions::default()).expect("valid");
    assert!(
        discounted < clv && discounted > 0.8 * clv,
        "{discounted} vs {clv}"
    );
    // Works with any predictor, e.g. the heuristic.
    let h = Heuristic::from_customers(&small_shop()).expect("heuristic");
    assert!(customer_lifetime_value(&h, &c, 25.0, &ClvOptions::default()).expect("valid") > 0.0);
    // Options are checked.
    let bad = ClvOptions {
        period_length: 0.0,
        ..ClvOptions::default()
    };
    assert!(matches!(
        customer_lifetime_value(&params, &c, 25.0, &bad),
        Err(Error::InvalidOption(_))
    ));
}
