//! One customer's behaviour events, derived from their plan.

use super::calendar::{rfc3339, seasonal_instant};
use super::catalogue::CATALOGUE;
use super::customers::CustomerPlan;
use super::people::SEARCHES;
use super::rng::{Rng, STREAM_EVENTS};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

impl CustomerPlan {
    /// Behaviour events: the session behind each order, browsing without buying
    /// (abandoned carts included) in the last year, newsletter and campaign engagement.
    pub(super) fn events_json(&self, seed: u64, as_of: DateTime<Utc>) -> Vec<Value> {
        let mut rng = Rng::derive(seed, STREAM_EVENTS, self.index as u64);
        let mut events: Vec<(DateTime<Utc>, &'static str, Value)> = Vec::new();
        let mut sessions = 0;
        let mut session_id = || {
            sessions += 1;
            format!("s-{seed}-{}-{sessions}", self.index + 1)
        };
        let referrer = |rng: &mut Rng| match self.channel {
            "organic_search" | "paid_search" => "search",
            "social" if rng.chance(0.6) => "social",
            "email" => "email",
            _ => "direct",
        };
        let product_view = |p: usize, session: &str, rng: &mut Rng| {
            json!({
                "page": format!("/products/{}", CATALOGUE[p].sku.to_ascii_lowercase()),
                "product_id": CATALOGUE[p].sku,
                "category": CATALOGUE[p].category,
                "referrer": referrer(rng),
                "device": self.device,
                "session_id": session,
            })
        };
        let cart = |p: usize, quantity: i32, session: &str| {
            json!({
                "product_id": CATALOGUE[p].sku,
                "name": CATALOGUE[p].name,
                "price": self.price(p),
                "quantity": quantity,
                "currency": self.currency(),
                "session_id": session,
            })
        };

        for order in &self.orders {
            let session = session_id();
            let mut steps: Vec<(&'static str, Value)> = vec![(
                "page_view",
                json!({"page": format!("/collections/{}", self.category), "referrer": referrer(&mut rng),
                       "device": self.device, "session_id": session}),
            )];
            for (p, q) in &order.lines {
                steps.push(("page_view", product_view(*p, &session, &mut rng)));
                steps.push(("add_to_cart", cart(*p, *q, &session)));
            }
            if rng.chance(0.15) {
                let extra = rng.below(CATALOGUE.len() as u64) as usize;
                steps.push(("add_to_cart", cart(extra, 1, &session)));
                steps.push(("remove_from_cart", cart(extra, 1, &session)));
            }
            let mut purchase = json!({
                "order_id": order.external_id,
                "value": self.order_total(order),
                "currency": self.currency(),
                "item_count": order.lines.len(),
                "session_id": session,
            });
            if let Some(code) = &order.promo {
                purchase["promo_code"] = json!(code);
            }
            // Spread the steps over the minutes before the purchase.
            let lead = rng.between(120, 2400) as i64;
            let n = steps.len() as i64;
            for (k, (kind, props)) in steps.into_iter().enumerate() {
                let at = order.at - TimeDelta::seconds(lead * (n - k as i64) / n);
                events.push((at, kind, props));
            }
            events.push((order.at, "purchase", purchase));
        }

        let recent = std::cmp::max(self.signup, as_of - TimeDelta::days(365));
        let browsing = rng.below(3)
            + (self.orders.len() as u64).min(8) / 2
            + u64::from(self.orders.is_empty());
        for _ in 0..browsing {
            let Some(mut at) = seasonal_instant(&mut rng, recent, as_of) else {
                break;
            };
            let session = session_id();
            let mut step = |rng: &mut Rng, kind: &'static str, props: Value| {
                events.push((at, kind, props));
                at = std::cmp::min(at + TimeDelta::seconds(rng.between(15, 240) as i64), as_of);
            };
            if rng.chance(0.12) {
                let query = *rng.pick(&SEARCHES);
                let results = rng.between(0, 40);
                step(
                    &mut rng,
                    "product_search",
                    json!({"query": query, "results": results, "session_id": session}),
                );
            }
            let mut viewed = rng.below(CATALOGUE.len() as u64) as usize;
            for _ in 0..rng.between(1, 5) {
                viewed = rng.below(CATALOGUE.len() as u64) as usize;
                let props = product_view(viewed, &session, &mut rng);
                step(&mut rng, "page_view", props);
            }
            if rng.chance(0.05) {
                step(
                    &mut rng,
                    "wishlist_add",
                    json!({"product_id": CATALOGUE[viewed].sku, "session_id": session}),
                );
            }
            // Never bought: an abandoned cart, sometimes emptied again.
            if rng.chance(0.35) {
                step(&mut rng, "add_to_cart", cart(viewed, 1, &session));
                if rng.chance(0.25) {
                    step(&mut rng, "remove_from_cart", cart(viewed, 1, &session));
                }
            }
        }

        if self.consent.0 {
            // A monthly newsletter, sent on the 5th at 15:00 UTC, over the last year.
            let mut month = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 5);
            for _ in 0..12 {
                let Some(date) = month else { break };
                month = date.checked_sub_months(chrono::Months::new(1));
                let Some(sent) = date.and_hms_opt(15, 0, 0).map(|t| t.and_utc()) else {
                    continue;
                };
                if sent < self.signup || sent >= as_of || !rng.chance(0.28) {
                    continue;
                }
                let campaign = format!("newsletter-{}-{:02}", date.year(), date.month());
                let opened = sent + TimeDelta::seconds(rng.between(600, 36 * 3600) as i64);
                if opened >= as_of {
                    continue;
                }
                events.push((
                    opened,
                    "email_opened",
                    json!({"campaign_id": campaign, "device": self.device}),
                ));
                if rng.chance(0.2) {
                    let clicked = std::cmp::min(
                        opened + TimeDelta::seconds(rng.between(5, 600) as i64),
                        as_of,
                    );
                    let url = format!("/collections/{}", self.category);
                    events.push((
                        clicked,
                        "email_clicked",
                        json!({"campaign_id": campaign, "url": url}),
                    ));
                }
            }
            // Seasonal campaigns that converted: open, click, order.
            for order in &self.orders {
                let Some(code) = &order.promo else { continue };
                let campaign = if code.starts_with("BLACKFRIDAY") {
                    format!("black-friday-{}", order.at.year())
                } else if code.starts_with("HOLIDAY") {
                    format!("holiday-{}", order.at.year())
                } else {
                    continue;
                };
                let clicked = order.at - TimeDelta::seconds(rng.between(300, 3 * 86_400) as i64);
                let opened = clicked - TimeDelta::seconds(rng.between(5, 900) as i64);
                events.push((
                    opened,
                    "email_opened",
                    json!({"campaign_id": campaign, "device": self.device}),
                ));
                events.push((
                    clicked,
                    "email_clicked",
                    json!({"campaign_id": campaign, "url": "/collections/gifts"}),
                ));
                events.push((
                    order.at,
                    "campaign_converted",
                    json!({"campaign_id": campaign, "order_id": order.external_id,
                           "revenue": self.order_total(order), "currency": self.currency()}),
                ));
            }
        }

        events.sort_by_key(|(at, _, _)| *at);
        events
            .into_iter()
            .map(|(at, kind, properties)| {
                json!({
                    "customer_external_id": self.external_id,
                    "event_type": kind,
                    "properties": properties,
                    "timestamp": rfc3339(at),
                })
            })
            .collect()
    }
}
