//! The shape of the data set, and the summary printed at the end of a run.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Options;
use super::batches::Kind;
use super::client::{Client, Totals};
use super::customers::{CustomerPlan, counts_as_spend};
use chrono::{DateTime, Datelike, Utc, Weekday};

#[derive(Default)]
pub(super) struct Profile {
    /// Customers by order count: 0, 1, 2-4, 5-9, 10-24, 25+.
    pub(super) buckets: [u64; 6],
    pub(super) most_orders: usize,
    pub(super) orders: u64,
    pub(super) holiday_orders: u64,
    pub(super) weekend_orders: u64,
    pub(super) promo_orders: u64,
    pub(super) statuses: BTreeMap<&'static str, u64>,
    pub(super) tiers: BTreeMap<&'static str, u64>,
    /// Spend (counted statuses), minor units, per currency.
    pub(super) revenue: BTreeMap<&'static str, i64>,
    pub(super) first_signup: Option<DateTime<Utc>>,
    pub(super) first_order: Option<DateTime<Utc>>,
}

impl Profile {
    pub(super) fn add(&mut self, plan: &CustomerPlan) {
        let n = plan.orders.len();
        let bucket = match n {
            0 => 0,
            1 => 1,
            2..=4 => 2,
            5..=9 => 3,
            10..=24 => 4,
            _ => 5,
        };
        self.buckets[bucket] += 1;
        self.most_orders = self.most_orders.max(n);
        *self
            .tiers
            .entry(plan.loyalty_tier().unwrap_or("none"))
            .or_default() += 1;
        self.first_signup = Some(
            self.first_signup
                .map_or(plan.signup, |s| s.min(plan.signup)),
        );
        for order in &plan.orders {
            self.orders += 1;
            self.holiday_orders += u64::from(matches!(order.at.month(), 11 | 12));
            self.weekend_orders +=
                u64::from(matches!(order.at.weekday(), Weekday::Sat | Weekday::Sun));
            self.promo_orders += u64::from(order.promo.is_some());
            *self.statuses.entry(order.status).or_default() += 1;
            if counts_as_spend(order.status) {
                *self.revenue.entry(plan.currency()).or_default() += plan.order_total(order);
            }
            self.first_order = Some(self.first_order.map_or(order.at, |s| s.min(order.at)));
        }
    }

    pub(super) fn print(&self, customers: usize) {
        let pct = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                100.0 * n as f64 / of as f64
            }
        };
        let c = customers as u64;
        println!("data set:");
        println!(
            "  orders per customer   0: {:.0}%  1: {:.0}%  2-4: {:.0}%  5-9: {:.0}%  10-24: {:.0}%  25+: {:.0}%  (max {})",
            pct(self.buckets[0], c),
            pct(self.buckets[1], c),
            pct(self.buckets[2], c),
            pct(self.buckets[3], c),
            pct(self.buckets[4], c),
            pct(self.buckets[5], c),
            self.most_orders
        );
        println!(
            "  orders in Nov-Dec     {:.0}% (2 of 12 months = 17%); on weekends {:.0}% (2 of 7 days = 29%); with a promo code {:.0}%",
            pct(self.holiday_orders, self.orders),
            pct(self.weekend_orders, self.orders),
            pct(self.promo_orders, self.orders)
        );
        let join = |map: &BTreeMap<&str, u64>| {
            map.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  order statuses        {}", join(&self.statuses));
        println!("  loyalty tiers         {}", join(&self.tiers));
        let revenue: Vec<String> = self
            .revenue
            .iter()
            .map(|(currency, minor)| format!("{currency} {:.2}", *minor as f64 / 100.0))
            .collect();
        println!("  revenue (net)         {}", revenue.join(", "));
        if let (Some(signup), Some(order)) = (self.first_signup, self.first_order) {
            println!(
                "  history from          sign-ups {}, orders {}",
                signup.date_naive(),
                order.date_naive()
            );
        }
    }
}

pub(super) fn print_summary(
    options: &Options,
    client: Option<&Client>,
    totals: &Totals,
    elapsed: Duration,
) {
    let rows: u64 = totals.per_kind.values().map(|t| t.rows).sum();
    let secs = elapsed.as_secs_f64();
    match client {
        Some(client) => println!(
            "demo store loaded into tenant {} through {} (seed {}, as of {})",
            options.tenant,
            client.gateway,
            options.seed,
            options.as_of.date_naive()
        ),
        None => println!(
            "dry run: nothing was sent (seed {}, as of {})",
            options.seed,
            options.as_of.date_naive()
        ),
    }
    for kind in [Kind::Customers, Kind::Orders, Kind::Events] {
        let Some(t) = totals.per_kind.get(kind.name()) else {
            continue;
        };
        let mut parts = vec![format!("{} created", t.created)];
        if t.updated > 0 {
            parts.push(format!("{} updated", t.updated));
        }
        if kind == Kind::Orders {
            parts.push(format!("{} already present", t.already_present));
        }
        parts.push(format!("{} failed", t.failed));
        if client.is_none() {
            parts = vec!["not sent".to_owned()];
        }
        println!(
            "  {:<10} {:>8}  ({})  in {} batches{}{}",
            kind.name(),
            t.rows,
            parts.join(", "),
            t.batches,
            if t.replayed > 0 {
                format!(", {} replayed by Idempotency-Key", t.replayed)
            } else {
                String::new()
            },
            if t.retries > 0 {
                format!(", {} retried", t.retries)
            } else {
                String::new()
            },
        );
    }
    println!(
        "  {:<10} {:>8}  in {:.1} s = {:.0} rows/s",
        "total",
        rows,
        secs,
        rows as f64 / secs.max(1e-3)
    );
    if totals.per_kind.values().any(|t| t.replayed > 0) {
        println!(
            "  (a replayed batch's counts are its first response, stored with the Idempotency-Key: \
             nothing was written twice)"
        );
    }
    if !totals.failures.is_empty() {
        println!("  FAILURES: {} (first 20 below)", totals.failures.len());
        for failure in totals.failures.iter().take(20) {
            println!(
                "    {} {}: {} {} {} {}",
                failure.kind.name(),
                failure.what,
                failure.status,
                failure.code,
                failure.error,
                if failure.details.is_null() {
                    String::new()
                } else {
                    failure.details.to_string()
                }
            );
        }
    }
}
