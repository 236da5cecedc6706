//! One processing run over a tenant's purchase facts: RFM scores and segments, CLV from
//! BG/NBD + Gamma-Gamma (or the documented heuristic), churn risk from P(alive). Pure:
//! facts in, scores and a summary out.
//!
//! Time unit of the models: **weeks** (days / 7). Purchases are counted per distinct UTC
//! calendar day: `x` = purchase days - 1, `t_x` = last purchase day - first purchase
//! day, `T` = the processing instant - the first purchase day (its midnight, UTC).
//!
//! CLV tiers: by rank of predicted value among the tenant's scored customers: the top
//! 20% are `high`, the next 30% `medium`, the rest `low` (ties share the better tier).
//!
//! Churn risk from `churn_probability = 1 - P(alive)`: below 0.3 `active`, below 0.6
//! `at_risk`, below 0.85 `churning`, otherwise `churned`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use mkt_lifetimes::bgnbd::BgNbdFit;
use mkt_lifetimes::gamma_gamma::{self, GammaGammaFit};
use mkt_lifetimes::model::{ModelOptions, PurchaseModel};
use mkt_lifetimes::{ClvOptions, PurchaseHistory, PurchasePredictor, SpendSummary};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::rfm::{self, Quintiles, RfmValues, SegmentRule};

/// What one customer bought, as of the processing instant (counted orders only).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerFacts {
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Counted orders.
    pub orders: i64,
    /// Net spend, minor units.
    pub spent: i64,
    /// Days since 1970-01-01 (UTC) of the first purchase.
    pub first_day: i64,
    /// Days since 1970-01-01 (UTC) of the last purchase.
    pub last_day: i64,
    /// Distinct purchase days.
    pub purchase_days: i64,
    /// Spend on the days after the first one, minor units (Gamma-Gamma's repeat value).
    pub repeat_spent: i64,
    /// The last counted order.
    pub last_order_at: DateTime<Utc>,
}

/// Which analyses a run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Analyses {
    /// Recency, frequency and monetary scores and the RFM segment name.
    pub rfm: bool,
    /// Predicted lifetime value (BG/NBD + Gamma-Gamma) and its high/medium/low tier.
    pub clv: bool,
    /// Churn probability (1 - P(alive)) and its risk level.
    pub churn: bool,
}

impl Analyses {
    /// Parses seed 004's list; unknown names are an error naming them.
    pub fn parse(names: &[String]) -> Result<Analyses, String> {
        let mut analyses = Analyses::default();
        for name in names {
            match name.as_str() {
                "rfm" => analyses.rfm = true,
                "clv" => analyses.clv = true,
                "churn" => analyses.churn = true,
                other => return Err(format!("unknown analysis {other:?} (rfm, clv, churn)")),
            }
        }
        if names.is_empty() {
            return Ok(Analyses {
                rfm: true,
                clv: true,
                churn: true,
            });
        }
        Ok(analyses)
    }

    /// The names, in seed order.
    pub fn names(&self) -> Vec<String> {
        [("rfm", self.rfm), ("clv", self.clv), ("churn", self.churn)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n.to_owned())
            .collect()
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// RFM segment mapping.
    pub rules: Vec<SegmentRule>,
    /// CLV horizon and discounting (periods of `period_length` weeks).
    pub clv: ClvOptions,
    /// When BG/NBD is fitted.
    pub model: ModelOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: rfm::default_rules(),
            // 12 months of 4.345 weeks, 1% a month: lifetimes' defaults.
            clv: ClvOptions::default(),
            model: ModelOptions::default(),
        }
    }
}

/// One customer's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Raw RFM values.
    pub values: RfmValues,
    /// RFM scores and segment (when RFM ran).
    pub rfm: Option<(rfm::RfmScores, String)>,
    /// Predicted value (minor units) and expected purchases over the horizon (CLV).
    pub clv: Option<(i64, f64)>,
    /// `high`, `medium` or `low` by predicted value within the tenant (when CLV ran).
    pub clv_tier: Option<&'static str>,
    /// Churn probability and risk.
    pub churn: Option<(f64, &'static str)>,
    /// The last counted order.
    pub last_order_at: DateTime<Utc>,
}

/// A run's results.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Per customer.
    pub customers: Vec<Scored>,
    /// Seed 004's `results` (without processing times, which the caller adds).
    pub results: serde_json::Map<String, Value>,
    /// The fitted models (the CLV response's `model`).
    pub model: Value,
}

/// The risk level of a churn probability (see the module doc).
pub fn risk_level(probability: f64) -> &'static str {
    if probability < 0.3 {
        "active"
    } else if probability < 0.6 {
        "at_risk"
    } else if probability < 0.85 {
        "churning"
    } else {
        "churned"
    }
}

/// The models' `(x, t_x, T)` of one customer, in weeks (see the module doc); `as_of_day`
/// is the processing instant in days since 1970-01-01 (UTC), fractional.
pub fn history(facts: &CustomerFacts, as_of_day: f64) -> PurchaseHistory {
    let x = (facts.purchase_days - 1).max(0) as u32;
    let t_x = (facts.last_day - facts.first_day) as f64 / 7.0;
    let age = (as_of_day - facts.first_day as f64).max(t_x * 7.0) / 7.0;
    PurchaseHistory::new(x, t_x, age)
}

fn percentage(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 10_000.0 / whole as f64).round() / 100.0
    }
}

fn distribution(labels: impl Iterator<Item = String>, total: usize, order: &[&str]) -> Vec<Value> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    order
        .iter()
        .filter_map(|name| {
            counts.get(*name).map(|count| {
                json!({"segment": name, "count": count, "percentage": percentage(*count, total)})
            })
        })
        .collect()
}

/// Scores `facts` as of `as_of`.
pub fn run(
    facts: &[CustomerFacts],
    as_of: DateTime<Utc>,
    analyses: Analyses,
    settings: &Settings,
) -> Result<RunResult, String> {
    let as_of_day = as_of.timestamp() as f64 / 86_400.0;
    let values: Vec<RfmValues> = facts
        .iter()
        .map(|f| RfmValues {
            recency_days: (as_of - f.last_order_at).num_days().max(0),
            frequency: f.orders,
            monetary: f.spent,
        })
        .collect();
    let mut customers: Vec<Scored> = facts
        .iter()
        .zip(&values)
        .map(|(f, v)| Scored {
            customer_id: f.customer_id,
            values: *v,
            rfm: None,
            clv: None,
            clv_tier: None,
            churn: None,
            last_order_at: f.last_order_at,
        })
        .collect();
    let mut results = serde_json::Map::new();
    let total = customers.len();

    if analyses.rfm {
        let quintiles = Quintiles::of(&values);
        for c in &mut customers {
            let scores = quintiles.score(&c.values);
            let segment = rfm::segment_of(&settings.rules, scores)
                .unwrap_or("Hibernating")
                .to_owned();
            c.rfm = Some((scores, segment));
        }
        let segments = distribution(
            customers
                .iter()
                .filter_map(|c| c.rfm.as_ref().map(|r| r.1.clone())),
            total,
            &rfm::SEGMENTS,
        );
        results.insert(
            "rfm".into(),
            json!({"total_processed": total, "segments": segments}),
        );
    }

    let mut model = json!({});
    if analyses.clv || analyses.churn {
        let histories: Vec<PurchaseHistory> = facts.iter().map(|f| history(f, as_of_day)).collect();
        let purchase = PurchaseModel::fit(&histories, &settings.model)
            .map_err(|e| format!("purchase model: {e}"))?;
        let spend_rows: Vec<SpendSummary> = facts
            .iter()
            .filter(|f| f.purchase_days > 1)
            .map(|f| {
                SpendSummary::new(
                    (f.purchase_days - 1) as u32,
                    f.repeat_spent as f64 / (f.purchase_days - 1) as f64,
                )
            })
            .collect();
        let spend = fit_spend(&spend_rows, &settings.model);
        model = model_json(&purchase, &spend, spend_rows.len());

        let predictions = Predictions::new(&purchase, &histories, &settings.clv, analyses.clv);
        if analyses.churn {
            for (i, (c, h)) in customers.iter_mut().zip(&histories).enumerate() {
                let p = (1.0 - predictions.of(i).probability_alive(h)).clamp(0.0, 1.0);
                c.churn = Some((p, risk_level(p)));
            }
            let levels = ["active", "at_risk", "churning", "churned"];
            let segments = distribution(
                customers
                    .iter()
                    .filter_map(|c| c.churn.map(|x| x.1.to_owned())),
                total,
                &levels,
            );
            results.insert(
                "churn".into(),
                json!({"total_processed": total, "segments": segments}),
            );
        }
        if analyses.clv {
            for (i, ((c, h), f)) in customers.iter_mut().zip(&histories).zip(facts).enumerate() {
                let model = predictions.of(i);
                // Expected spend per purchase: Gamma-Gamma's conditional mean for repeat
                // buyers, its population mean for one-time buyers; without a fit, the
                // customer's own average order value.
                let own = f.spent as f64 / f.orders.max(1) as f64;
                let expected_spend = match &spend {
                    Ok(fit) if f.purchase_days > 1 => fit
                        .params
                        .expected_average_spend(
                            (f.purchase_days - 1) as u32,
                            f.repeat_spent as f64 / (f.purchase_days - 1) as f64,
                        )
                        .unwrap_or(own),
                    Ok(fit) => fit.params.population_mean_spend().unwrap_or(own),
                    Err(_) => own,
                };
                let value = mkt_lifetimes::customer_lifetime_value(
                    &model,
                    h,
                    expected_spend,
                    &settings.clv,
                )
                .map_err(|e| format!("clv: {e}"))?;
                let horizon = f64::from(settings.clv.periods) * settings.clv.period_length;
                c.clv = Some((value.round() as i64, model.expected_purchases(h, horizon)));
            }
            assign_tiers(&mut customers);
            let tiers = ["high", "medium", "low"];
            let segments = distribution(
                customers
                    .iter()
                    .filter_map(|c| c.clv_tier.map(str::to_owned)),
                total,
                &tiers,
            );
            results.insert(
                "clv".into(),
                json!({"total_processed": total, "segments": segments}),
            );
        }
    }
    Ok(RunResult {
        customers,
        results,
        model,
    })
}

/// Distinct `(x, T)` above which [`Predictions`] computes `E[X(t)]` on all cores.
const PARALLEL_ABOVE: usize = 20_000;

/// The purchase model's predictions per distinct `(x, t_x, T)`: P(alive) and, for CLV,
/// `E[X(t)]` at the instants the CLV sum asks for (`i × period_length`, `i = 1..=periods`;
/// the last is also the horizon of `expected_purchases`). Customers with the same
/// history get the same numbers, so each distinct history is computed once, and the
/// costly part of `E[X(t)]` (a hypergeometric series, which depends on `(x, T)` alone)
/// once per distinct `(x, T)`, on all cores when there are many: the model's exact
/// values, bit for bit, for a fraction of the cost (a million customers hold about
/// 430,000 distinct histories but 32,000 distinct `(x, T)`).
struct Predictions<'a> {
    model: &'a PurchaseModel,
    period_length: f64,
    /// Each customer's history's index.
    pattern_of: Vec<u32>,
    /// Per distinct history.
    patterns: Vec<PurchaseHistory>,
    /// P(alive) per distinct history.
    alive: Vec<f64>,
    /// `periods` cumulative expected purchases per distinct history (none without CLV).
    cumulative: Vec<f64>,
    periods: usize,
}

impl<'a> Predictions<'a> {
    fn new(
        model: &'a PurchaseModel,
        histories: &[PurchaseHistory],
        clv: &ClvOptions,
        with_clv: bool,
    ) -> Self {
        Self::build(model, histories, clv, with_clv, PARALLEL_ABOVE)
    }

    fn build(
        model: &'a PurchaseModel,
        histories: &[PurchaseHistory],
        clv: &ClvOptions,
        with_clv: bool,
        parallel_above: usize,
    ) -> Self {
        let mut index: HashMap<(u32, u64, u64), u32> = HashMap::new();
        let mut patterns = Vec::new();
        let pattern_of = histories
            .iter()
            .map(|h| {
                let key = (h.frequency, h.recency.to_bits(), h.age.to_bits());
                *index.entry(key).or_insert_with(|| {
                    patterns.push(*h);
                    (patterns.len() - 1) as u32
                })
            })
            .collect();
        let periods = if with_clv { clv.periods as usize } else { 0 };
        // The very expression of `customer_lifetime_value`'s instants.
        let instant = |i: usize| f64::from(i as u32 + 1) * clv.period_length;
        // E[X(t)] = (a part that depends on (x, T) alone) x P(alive): the costly part,
        // a hypergeometric series, once per distinct (x, T), on all cores.
        let mut xt_index: HashMap<(u32, u64), u32> = HashMap::new();
        let mut xts: Vec<(u32, f64)> = Vec::new();
        let xt_of: Vec<u32> = patterns
            .iter()
            .map(|h| {
                *xt_index
                    .entry((h.frequency, h.age.to_bits()))
                    .or_insert_with(|| {
                        xts.push((h.frequency, h.age));
                        (xts.len() - 1) as u32
                    })
            })
            .collect();
        let mut factors: Vec<Option<f64>> = vec![None; xts.len() * periods];
        fill_parallel(
            &xts,
            &mut factors,
            periods,
            parallel_above,
            |&(frequency, age), out| {
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = model.expected_purchases_if_alive(frequency, age, instant(i));
                }
            },
        );
        let mut alive = vec![0.0; patterns.len()];
        let mut cumulative = vec![0.0; patterns.len() * periods];
        for (k, h) in patterns.iter().enumerate() {
            alive[k] = model.probability_alive(h);
            let xt = xt_of[k] as usize;
            for i in 0..periods {
                // The same bits as `model.expected_purchases(h, instant(i))`, which
                // answers where the model does not factor (the heuristic, a ~ 1).
                cumulative[k * periods + i] = match factors[xt * periods + i] {
                    Some(factor) => factor * alive[k],
                    None => model.expected_purchases(h, instant(i)),
                };
            }
        }
        Predictions {
            model,
            period_length: clv.period_length,
            pattern_of,
            patterns,
            alive,
            cumulative,
            periods,
        }
    }

    /// The model as customer `i` sees it.
    fn of(&self, i: usize) -> Cached<'_> {
        let k = self.pattern_of[i] as usize;
        Cached {
            model: self.model,
            history: self.patterns[k],
            alive: self.alive[k],
            cumulative: &self.cumulative[k * self.periods..(k + 1) * self.periods],
            period_length: self.period_length,
        }
    }
}

/// Runs `work(item, slots)` for every item with its `width` output slots, split over all
/// cores when there are more than `parallel_above` items.
fn fill_parallel<T: Sync, O: Send>(
    items: &[T],
    out: &mut [O],
    width: usize,
    parallel_above: usize,
    work: impl Fn(&T, &mut [O]) + Sync,
) {
    if width == 0 || items.is_empty() {
        return;
    }
    let run = |items: &[T], out: &mut [O]| {
        for (item, slots) in items.iter().zip(out.chunks_mut(width)) {
            work(item, slots);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || items.len() < parallel_above {
        run(items, out);
        return;
    }
    let per = items.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let mut parts = items.chunks(per).zip(out.chunks_mut(per * width));
        let last = parts.next_back();
        for (i, o) in parts {
            scope.spawn(|| run(i, o));
        }
        if let Some((i, o)) = last {
            run(i, o);
        }
    });
}

/// One history's precomputed predictions; anything else goes to the model.
struct Cached<'a> {
    model: &'a PurchaseModel,
    history: PurchaseHistory,
    alive: f64,
    cumulative: &'a [f64],
    period_length: f64,
}

impl PurchasePredictor for Cached<'_> {
    fn expected_purchases(&self, customer: &PurchaseHistory, t: f64) -> f64 {
        let i = (t / self.period_length).round();
        if *customer == self.history
            && i >= 1.0
            && i <= self.cumulative.len() as f64
            && i * self.period_length == t
        {
            return self.cumulative[i as usize - 1];
        }
        self.model.expected_purchases(customer, t)
    }

    fn probability_alive(&self, customer: &PurchaseHistory) -> f64 {
        if *customer == self.history {
            self.alive
        } else {
            self.model.probability_alive(customer)
        }
    }
}

fn fit_spend(rows: &[SpendSummary], options: &ModelOptions) -> Result<GammaGammaFit, String> {
    if (rows.len() as u64) < options.min_repeat_customers.max(1) {
        return Err(format!(
            "too few repeat customers ({} < {})",
            rows.len(),
            options.min_repeat_customers
        ));
    }
    let fit = gamma_gamma::fit(rows, &options.fit).map_err(|e| e.to_string())?;
    if fit.converged && fit.params.as_array().iter().all(|v| v.is_finite()) {
        Ok(fit)
    } else {
        Err("the spend model did not converge".into())
    }
}

/// Top 20% high, next 30% medium, rest low, by predicted value (ties share a tier).
fn assign_tiers(customers: &mut [Scored]) {
    let mut values: Vec<i64> = customers
        .iter()
        .filter_map(|c| c.clv.map(|v| v.0))
        .collect();
    if values.is_empty() {
        return;
    }
    values.sort_unstable_by(|a, b| b.cmp(a));
    let n = values.len();
    let high_cut = values[(n * 20 / 100).saturating_sub(1).min(n - 1)];
    let medium_cut = values[(n * 50 / 100).saturating_sub(1).min(n - 1)];
    for c in customers {
        if let Some((value, _)) = c.clv {
            c.clv_tier = Some(if n >= 5 && value >= high_cut {
                "high"
            } else if n >= 2 && value >= medium_cut {
                "medium"
            } else {
                "low"
            });
        }
    }
}

/// A run's fitted models, as the CLV route, the process answer and the status route's run
/// show them (stored with the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FittedModel {
    /// Unit of the purchase model's time parameters (`week`).
    pub time_unit: String,
    /// `bg_nbd`, or `heuristic: <why BG/NBD was not fitted>`.
    pub method: String,
    /// How often customers buy and how long they stay.
    pub purchase: PurchaseFit,
    /// How much a repeat purchase is worth.
    pub spend: SpendFit,
}

/// The purchase model: BG/NBD's `r, alpha, a, b`, or the heuristic's means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseFit {
    /// `bg_nbd` or `heuristic`.
    pub name: String,
    /// `r`, `alpha` (weeks), `a`, `b`; or `mean_frequency`, `mean_age`.
    pub params: BTreeMap<String, f64>,
    /// BG/NBD only: total log-likelihood at `params` (0 or less).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_likelihood: Option<f64>,
    /// BG/NBD only: whether the optimiser met its gradient tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
    /// Customers fitted on (null for the heuristic).
    pub customers: Option<u64>,
    /// Heuristic only: why BG/NBD was not fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The spend model: Gamma-Gamma's `p, q, gamma`, or the average order value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpendFit {
    /// `gamma_gamma` or `average_order_value`.
    pub name: String,
    /// Gamma-Gamma only: `p`, `q`, `gamma` (money units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, f64>>,
    /// Gamma-Gamma only: total log-likelihood at `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_likelihood: Option<f64>,
    /// Gamma-Gamma only: whether the optimiser met its gradient tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converged: Option<bool>,
    /// Repeat customers fitted on.
    pub customers: u64,
    /// Average order value only: why Gamma-Gamma was not fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn params<const N: usize>(names: [&str; N], values: [f64; N]) -> BTreeMap<String, f64> {
    names.iter().map(|n| (*n).to_owned()).zip(values).collect()
}

fn model_json(
    purchase: &PurchaseModel,
    spend: &Result<GammaGammaFit, String>,
    spend_customers: usize,
) -> Value {
    let purchase = match purchase {
        PurchaseModel::BgNbd(BgNbdFit {
            params: fitted,
            log_likelihood,
            customers,
            converged,
            ..
        }) => PurchaseFit {
            name: "bg_nbd".into(),
            params: params(["r", "alpha", "a", "b"], fitted.as_array()),
            log_likelihood: Some(*log_likelihood),
            converged: Some(*converged),
            customers: Some(*customers),
            reason: None,
        },
        PurchaseModel::Heuristic { model, reason } => PurchaseFit {
            name: "heuristic".into(),
            params: params(
                ["mean_frequency", "mean_age"],
                [model.mean_frequency, model.mean_age],
            ),
            log_likelihood: None,
            converged: None,
            customers: None,
            reason: Some(reason.to_string()),
        },
    };
    let method = match &purchase.reason {
        None => "bg_nbd".to_owned(),
        Some(reason) => format!("heuristic: {reason}"),
    };
    let spend = match spend {
        Ok(fit) => SpendFit {
            name: "gamma_gamma".into(),
            params: Some(params(["p", "q", "gamma"], fit.params.as_array())),
            log_likelihood: Some(fit.log_likelihood),
            converged: Some(fit.converged),
            customers: fit.customers,
            reason: None,
        },
        Err(reason) => SpendFit {
            name: "average_order_value".into(),
            params: None,
            log_likelihood: None,
            converged: None,
            customers: spend_customers as u64,
            reason: Some(reason.clone()),
        },
    };
    let model = FittedModel {
        time_unit: "week".into(),
        method,
        purchase,
        spend,
    };
    serde_json::to_value(model).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: u128, days: &[(i64, i64)], as_of: DateTime<Utc>) -> CustomerFacts {
        let _ = as_of;
        let first = days.first().map_or(0, |d| d.0);
        let last = days.last().map_or(0, |d| d.0);
        CustomerFacts {
            customer_id: Uuid::from_u128(id),
            orders: days.len() as i64,
            spent: days.iter().map(|d| d.1).sum(),
            first_day: first,
            last_day: last,
            purchase_days: days.len() as i64,
            repeat_spent: days.iter().skip(1).map(|d| d.1).sum(),
            last_order_at: DateTime::from_timestamp(last * 86_400 + 3_600, 0).expect("time"),
        }
    }

    #[test]
    fn a_small_store_falls_back_to_the_heuristic_and_says_so() {
        let as_of = DateTime::from_timestamp(20_100 * 86_400, 0).expect("time");
        let population = vec![
            facts(
                1,
                &[(20_000, 5_000), (20_050, 7_000), (20_090, 6_000)],
                as_of,
            ),
            facts(2, &[(19_800, 1_000)], as_of),
        ];
        let all = Analyses::parse(&[]).expect("all");
        let result = run(&population, as_of, all, &Settings::default()).expect("runs");
        assert_eq!(result.model["purchase"]["name"], "heuristic");
        assert_eq!(result.model["time_unit"], "week");
        let recent = &result.customers[0];
        let lapsed = &result.customers[1];
        assert!(recent.churn.expect("churn").0 < lapsed.churn.expect("churn").0);
        assert!(recent.clv.expect("clv").0 > lapsed.clv.expect("clv").0);
        assert_eq!(recent.values.recency_days, 9);
        assert_eq!(recent.values.frequency, 3);
        assert_eq!(recent.values.monetary, 18_000);
    }

    #[test]
    fn shared_predictions_are_the_models_own_values() {
        // Customers sharing histories, with purchases from one to a few dozen.
        let as_of = DateTime::from_timestamp(20_500 * 86_400 + 7_200, 0).expect("time");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as i64
        };
        let population: Vec<CustomerFacts> = (0..3_000u128)
            .map(|id| {
                let first = 20_500 - 1 - next(300);
                let mut days = vec![(first, 1_000 + next(9_000))];
                let span = next((20_500 - first) as u64) + 1;
                for _ in 0..next(3) * next(12) {
                    days.push((first + next(span as u64), 1_000 + next(9_000)));
                }
                days.sort_unstable();
                days.dedup_by_key(|d| d.0);
                facts(id, &days, as_of)
            })
            .collect();
        // The heuristic (no fit to wait for in a debug build): it is shared the same way.
        let mut settings = Settings::default();
        settings.model.min_repeat_customers = u64::MAX;
        let as_of_day = as_of.timestamp() as f64 / 86_400.0;
        let histories: Vec<PurchaseHistory> =
            population.iter().map(|f| history(f, as_of_day)).collect();

        // Through `run`: churn and expected purchases are the model's, bit for bit.
        let all = Analyses::parse(&[]).expect("all");
        let result = run(&population, as_of, all, &settings).expect("runs");
        let purchase = PurchaseModel::fit(&histories, &settings.model).expect("fit");
        let horizon = f64::from(settings.clv.periods) * settings.clv.period_length;
        for (c, h) in result.customers.iter().zip(&histories) {
            let p = (1.0 - purchase.probability_alive(h)).clamp(0.0, 1.0);
            assert_eq!(c.churn.expect("churn").0.to_bits(), p.to_bits());
            let expected = c.clv.expect("clv").1;
            let direct = purchase.expected_purchases(h, horizon);
            assert_eq!(expected.to_bits(), direct.to_bits());
        }

        // BG/NBD (CDNOW's parameters), on several threads: CLV through the shared values
        // equals CLV from the model.
        let purchase = PurchaseModel::BgNbd(BgNbdFit {
            params: mkt_lifetimes::BgNbdParams::new(0.243, 4.414, 0.793, 2.426).expect("params"),
            log_likelihood: 0.0,
            customers: histories.len() as u64,
            patterns: 0,
            iterations: 0,
            converged: true,
            optimizer: mkt_lifetimes::Optimizer::Bfgs,
            standard_errors: None,
        });
        let shared = Predictions::build(&purchase, &histories, &settings.clv, true, 10);
        assert!(shared.patterns.len() > 100 && shared.patterns.len() < histories.len());
        for (i, h) in histories.iter().enumerate() {
            let spend = 1_234.5 + i as f64;
            let through = customer_lifetime(&shared.of(i), h, spend, &settings);
            let direct = customer_lifetime(&purchase, h, spend, &settings);
            assert_eq!(through.to_bits(), direct.to_bits());
            assert_eq!(
                shared.of(i).probability_alive(h).to_bits(),
                purchase.probability_alive(h).to_bits()
            );
        }
    }

    fn customer_lifetime(
        model: &impl PurchasePredictor,
        h: &PurchaseHistory,
        spend: f64,
        settings: &Settings,
    ) -> f64 {
        mkt_lifetimes::customer_lifetime_value(model, h, spend, &settings.clv).expect("clv")
    }

    #[test]
    fn analyses_parse_seed_names_and_refuse_others() {
        assert_eq!(
            Analyses::parse(&["rfm".into()]).expect("rfm").names(),
            vec!["rfm"]
        );
        assert!(Analyses::parse(&["ltv".into()]).is_err());
    }
}
