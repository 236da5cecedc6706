//! One customer's plan, a pure function of the seed and their index: the profile, the
//! order history, and their JSON bodies for the API.

use super::HISTORY_DAYS;
use super::calendar::{midnight, rfc3339, seasonal_instant, time_of_day};
use super::catalogue::{CATALOGUE, CATEGORIES, season_factor};
use super::people::{
    CHANNELS, Country, DEVICES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, PLACES, Place,
    pick_weighted,
};
use super::rng::{Rng, STREAM_CUSTOMER};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde_json::{Value, json};

pub(super) struct OrderPlan {
    pub(super) external_id: String,
    pub(super) at: DateTime<Utc>,
    /// (catalogue index, quantity), distinct products.
    pub(super) lines: Vec<(usize, i32)>,
    pub(super) status: &'static str,
    pub(super) promo: Option<String>,
}

pub(super) struct CustomerPlan {
    pub(super) index: usize,
    pub(super) external_id: String,
    pub(super) first: &'static str,
    pub(super) last: &'static str,
    pub(super) email: String,
    pub(super) phone: Option<String>,
    pub(super) place: &'static Place,
    pub(super) street: String,
    pub(super) zip: String,
    pub(super) signup: DateTime<Utc>,
    pub(super) consent: (bool, bool, bool),
    pub(super) channel: &'static str,
    pub(super) category: &'static str,
    pub(super) device: &'static str,
    pub(super) birth_year: u64,
    pub(super) orders: Vec<OrderPlan>,
}

/// Whether a status counts as spend.
pub(super) fn counts_as_spend(status: &str) -> bool {
    !matches!(status, "cancelled" | "refunded")
}

/// Local price in minor units: converted, and re-rounded to .99 where the US price ends so.
pub(super) fn local_price(usd: i64, country: Country) -> i64 {
    let factor = country.price_factor();
    if usd % 100 == 99 {
        ((usd + 1) as f64 * factor / 100.0).round() as i64 * 100 - 1
    } else {
        (usd as f64 * factor / 100.0).round() as i64 * 100
    }
}

impl CustomerPlan {
    pub(super) fn new(seed: u64, as_of: DateTime<Utc>, index: usize) -> Self {
        let mut rng = Rng::derive(seed, STREAM_CUSTOMER, index as u64);
        let first = *rng.pick(&FIRST_NAMES);
        let last = *rng.pick(&LAST_NAMES);
        let f = first.to_ascii_lowercase();
        let l: String = last
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        let n = index + 1;
        // The index keeps every address unique within a seed.
        let local = match rng.below(6) {
            0 => format!("{f}.{l}{n}"),
            1 => format!("{f}{l}{n}"),
            2 => format!("{}{l}{n}", &f[..1]),
            3 => format!("{f}_{l}{n}"),
            4 => format!("{l}.{f}{n}"),
            _ => format!("{f}{n}"),
        };
        let email = format!("{local}@{}", pick_weighted(&mut rng, &EMAIL_DOMAINS));
        let place = &PLACES[rng.weighted(&PLACES.iter().map(|p| p.weight).collect::<Vec<_>>())];
        let zip = match place.country {
            Country::Us => {
                let base: u64 = place.zip.parse().unwrap_or(10_001);
                format!("{:05}", base + rng.below(40))
            }
            _ => place.zip.to_owned(),
        };
        let phone = rng
            .chance(0.85)
            .then(|| place.country.phone(&mut rng, place.area));
        let street = place.country.street(&mut rng);
        // A growing store: sign-ups per day rise linearly from none three years ago.
        let age_days = (HISTORY_DAYS as f64 * (1.0 - rng.unit().sqrt())) as i64;
        let signup = midnight(as_of) - TimeDelta::days(age_days + 1) + time_of_day(&mut rng);
        let consent = (rng.chance(0.68), rng.chance(0.27), rng.chance(0.41));
        let channel = pick_weighted(&mut rng, &CHANNELS);
        let category = *rng.pick(&CATEGORIES);
        let device = pick_weighted(&mut rng, &DEVICES);
        let birth_year = rng.between(1955, 2006);
        let mut plan = CustomerPlan {
            index,
            external_id: format!("CUST-{seed}-{n:06}"),
            first,
            last,
            email,
            phone,
            place,
            street,
            zip,
            signup,
            consent,
            channel,
            category,
            device,
            birth_year,
            orders: Vec::new(),
        };
        plan.orders = plan.order_history(seed, as_of, &mut rng);
        plan
    }

    /// A heavy-tailed number of orders (22% never buy, most buyers buy once, a few
    /// dozen times), dated by season within the customer's tenure.
    pub(super) fn order_history(
        &self,
        seed: u64,
        as_of: DateTime<Utc>,
        rng: &mut Rng,
    ) -> Vec<OrderPlan> {
        let count = if rng.chance(0.22) {
            0
        } else {
            // Discrete Pareto, alpha 1.25: P(k >= n) = n^-1.25.
            let k = rng.unit().max(1e-9).powf(-1.0 / 1.25).floor() as u64;
            let tenure_weeks = ((as_of - self.signup).num_days() / 7) as u64;
            k.clamp(1, 120).min(1 + tenure_weeks / 2)
        };
        let mut dates: Vec<DateTime<Utc>> = Vec::with_capacity(count as usize);
        for n in 0..count {
            let at = if n == 0 && rng.chance(0.55) {
                // Many first orders come right after signing up.
                let after =
                    TimeDelta::seconds((-(1.0 - rng.unit()).ln() * 3.0 * 86_400.0) as i64 + 300);
                Some(self.signup + after).filter(|at| *at < as_of)
            } else {
                None
            };
            if let Some(at) = at.or_else(|| seasonal_instant(rng, self.signup, as_of)) {
                dates.push(at);
            }
        }
        dates.sort();
        dates
            .into_iter()
            .enumerate()
            .map(|(n, at)| {
                let mut lines: Vec<(usize, i32)> = Vec::new();
                let wanted = [1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4][rng.below(12) as usize];
                let catalogue: Vec<f64> = CATALOGUE
                    .iter()
                    .map(|p| {
                        p.popularity
                            * season_factor(p.season, at.month(), at.day())
                            * if p.category == self.category {
                                3.0
                            } else {
                                1.0
                            }
                    })
                    .collect();
                for _ in 0..wanted * 3 {
                    if lines.len() == wanted {
                        break;
                    }
                    let product = rng.weighted(&catalogue);
                    if lines.iter().all(|(p, _)| *p != product) {
                        let quantity = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3]
                            [rng.below(20) as usize];
                        lines.push((product, quantity));
                    }
                }
                let age = as_of - at;
                let roll = rng.unit();
                let status = if age < TimeDelta::days(2) {
                    if roll < 0.7 {
                        "processing"
                    } else if roll < 0.96 {
                        "shipped"
                    } else {
                        "cancelled"
                    }
                } else if age < TimeDelta::days(6) {
                    if roll < 0.55 {
                        "shipped"
                    } else if roll < 0.97 {
                        "delivered"
                    } else {
                        "cancelled"
                    }
                } else if roll < 0.90 {
                    "delivered"
                } else if roll < 0.96 {
                    "refunded"
                } else {
                    "cancelled"
                };
                let yy = at.year() % 100;
                let promo = match (at.month(), at.day()) {
                    (11, d) if d >= 20 && rng.chance(0.45) => Some(format!("BLACKFRIDAY{yy}")),
                    (12, d) if d <= 24 && rng.chance(0.3) => Some(format!("HOLIDAY{yy}")),
                    _ if n == 0 && rng.chance(0.3) => Some("WELCOME10".to_owned()),
                    (3..=5, _) if rng.chance(0.07) => Some(format!("SPRING{yy}")),
                    (6..=8, _) if rng.chance(0.07) => Some(format!("SUMMER{yy}")),
                    _ if rng.chance(0.04) => {
                        Some((*rng.pick(&["FREESHIP", "FRIENDS15", "VIP20"])).to_owned())
                    }
                    _ => None,
                };
                OrderPlan {
                    external_id: format!("ORD-{seed}-{:06}-{:03}", self.index + 1, n + 1),
                    at,
                    lines,
                    status,
                    promo,
                }
            })
            .collect()
    }

    pub(super) fn currency(&self) -> &'static str {
        self.place.country.currency()
    }

    pub(super) fn price(&self, product: usize) -> i64 {
        local_price(CATALOGUE[product].price, self.place.country)
    }

    pub(super) fn order_total(&self, order: &OrderPlan) -> i64 {
        order
            .lines
            .iter()
            .map(|(p, q)| self.price(*p) * i64::from(*q))
            .sum()
    }

    /// Lifetime spend in US cents (refunds and cancellations excluded) sets the tier.
    pub(super) fn loyalty_tier(&self) -> Option<&'static str> {
        if self.orders.is_empty() {
            return None;
        }
        let spend: i64 = self
            .orders
            .iter()
            .filter(|o| counts_as_spend(o.status))
            .flat_map(|o| o.lines.iter())
            .map(|(p, q)| CATALOGUE[*p].price * i64::from(*q))
            .sum();
        Some(match spend {
            ..20_000 => "bronze",
            20_000..60_000 => "silver",
            60_000..150_000 => "gold",
            _ => "platinum",
        })
    }

    pub(super) fn customer_json(&self) -> Value {
        let mut body = json!({
            "name": format!("{} {}", self.first, self.last),
            "first_name": self.first,
            "last_name": self.last,
            "email": self.email,
            "external_id": self.external_id,
            "created_at": rfc3339(self.signup),
            "address": {
                "street": self.street,
                "city": self.place.city,
                "state": self.place.state,
                "zipCode": self.zip,
                "country": self.place.country.name(),
            },
            "attributes": {
                "acquisition_channel": self.channel,
                "preferred_category": self.category,
                "preferred_device": self.device,
                "birth_year": self.birth_year,
            },
            "consent": {"email": self.consent.0, "sms": self.consent.1, "push": self.consent.2},
        });
        if let Some(phone) = &self.phone {
            body["phone"] = json!(phone);
        }
        if let Some(tier) = self.loyalty_tier() {
            body["loyalty_tier"] = json!(tier);
        }
        body
    }

    pub(super) fn order_json(&self, order: &OrderPlan) -> Value {
        let items: Vec<Value> = order
            .lines
            .iter()
            .map(|(p, q)| {
                let price = self.price(*p);
                json!({
                    "productId": CATALOGUE[*p].sku,
                    "name": CATALOGUE[*p].name,
                    "price": price,
                    "quantity": q,
                    "total": price * i64::from(*q),
                })
            })
            .collect();
        let mut body = json!({
            "customerExternalId": self.external_id,
            "externalId": order.external_id,
            "items": items,
            "totalAmount": self.order_total(order),
            "currency": self.currency(),
            "status": order.status,
            "orderedAt": rfc3339(order.at),
        });
        if let Some(code) = &order.promo {
            body["promoCode"] = json!(code);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, Result};
    use chrono::NaiveDate;

    fn as_of() -> Result<DateTime<Utc>> {
        Ok(NaiveDate::from_ymd_opt(2025, 6, 1)
            .context("date")?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc())
    }

    #[test]
    fn the_same_seed_gives_the_same_store() -> Result<()> {
        let (a, b) = (
            CustomerPlan::new(7, as_of()?, 12),
            CustomerPlan::new(7, as_of()?, 12),
        );
        assert_eq!(a.customer_json(), b.customer_json());
        assert_eq!(a.events_json(7, as_of()?), b.events_json(7, as_of()?));
        assert_ne!(
            a.customer_json(),
            CustomerPlan::new(8, as_of()?, 12).customer_json()
        );
        Ok(())
    }

    #[test]
    fn orders_satisfy_the_api_money_and_time_rules() -> Result<()> {
        let as_of = as_of()?;
        for index in 0..300 {
            let plan = CustomerPlan::new(1, as_of, index);
            for order in &plan.orders {
                let body = plan.order_json(order);
                let items = body["items"].as_array().context("items")?;
                assert!(!items.is_empty());
                let sum: i64 = items
                    .iter()
                    .map(|i| i["total"].as_i64().unwrap_or(-1))
                    .sum();
                assert_eq!(body["totalAmount"].as_i64(), Some(sum));
                for item in items {
                    assert_eq!(
                        item["price"]
                            .as_i64()
                            .map(|p| p * item["quantity"].as_i64().unwrap_or(0)),
                        item["total"].as_i64()
                    );
                }
                assert!(order.at < as_of && order.at >= plan.signup);
            }
            for event in plan.events_json(1, as_of) {
                let at: DateTime<Utc> =
                    event["timestamp"].as_str().context("timestamp")?.parse()?;
                assert!(at <= as_of, "{event}");
            }
        }
        Ok(())
    }

    #[test]
    fn prices_convert_and_keep_their_ending() {
        assert_eq!(local_price(2499, Country::Us), 2499);
        assert_eq!(local_price(2499, Country::Ca), 3399);
        assert_eq!(local_price(5000, Country::Uk), 4000);
    }

    #[test]
    fn the_rng_is_stable() {
        let mut rng = Rng::derive(42, 1, 0);
        let first = rng.next_u64();
        assert_eq!(Rng::derive(42, 1, 0).next_u64(), first);
        assert_ne!(Rng::derive(42, 1, 1).next_u64(), first);
    }
}
