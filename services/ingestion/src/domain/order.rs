//! Orders: seed 000's payload, validated into [`ValidOrder`]; status transitions.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::customer::{Email, not_in_future};
use super::{CustomerRef, FieldErrors, push, text};

/// Most items one order may carry.
pub const MAX_ITEMS: usize = 500;

/// Seed 000's order payload; the customer may also be named by email or external id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderInput {
    /// Our customer id (a UUID), or the store's customer id.
    #[schema(example = "customer-uuid")]
    pub customer_id: Option<String>,
    /// The customer's email, instead of `customerId`.
    pub customer_email: Option<String>,
    /// The store's customer id, instead of `customerId`.
    pub customer_external_id: Option<String>,
    /// The store's own order id (unique per tenant).
    pub external_id: Option<String>,
    /// Order lines.
    pub items: Option<Vec<OrderItemInput>>,
    /// Sum of item totals, in minor units.
    #[schema(example = 5000)]
    pub total_amount: Option<i64>,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// processing | shipped | delivered | cancelled | refunded (default processing).
    #[schema(example = "delivered")]
    pub status: Option<String>,
    /// When the purchase happened (RFC 3339), for historical orders; default now.
    pub ordered_at: Option<DateTime<Utc>>,
    /// A promo code used on the order.
    #[serde(alias = "promo_code")]
    pub promo_code: Option<String>,
}

/// One order line (seed 000).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderItemInput {
    /// Product or variant id.
    pub product_id: Option<String>,
    /// Product name.
    pub name: Option<String>,
    /// Unit price in minor units.
    pub price: Option<i64>,
    /// Units bought, 1 to 1,000,000 (ingestion refuses anything else).
    pub quantity: Option<i32>,
    /// price x quantity.
    pub total: Option<i64>,
}

/// Order statuses: the event contract's enum, so ingestion, the events and every
/// consumer share one list of names and one rule for what counts towards revenue
/// (`OrderStatus::counts_towards_revenue`). `Unspecified` never leaves this service:
/// [`OrderStatus::from_name`] does not produce it.
pub use mkt_contracts::v1::OrderStatus;

/// Whether an order may move from `from` to `next`. Cancelled and refunded are final; a
/// delivered order can only be refunded.
pub fn may_become(from: OrderStatus, next: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, next),
        (Processing, Shipped | Delivered | Cancelled | Refunded)
            | (Shipped, Delivered | Cancelled | Refunded)
            | (Delivered, Refunded)
    )
}

/// A validated order line.
#[derive(Debug, Clone)]
pub struct ValidItem {
    /// The store's own product id (free text, at most 128 characters; no catalogue lookup).
    pub product_id: String,
    /// Product name as the store sent it with the order.
    pub name: String,
    /// Unit price (minor units).
    pub price: i64,
    /// Units bought, 1 to 1,000,000 (ingestion refuses anything else).
    pub quantity: i32,
    /// Line total (minor units).
    pub total: i64,
}

/// A validated order.
#[derive(Debug, Clone)]
pub struct ValidOrder {
    /// The customer, as named by the request.
    pub customer: CustomerRef,
    /// Store's order id.
    pub external_id: Option<String>,
    /// Lines.
    pub items: Vec<ValidItem>,
    /// Sum of line totals (minor units).
    pub total_amount: i64,
    /// ISO 4217 code, upper-case.
    pub currency: String,
    /// Where the order is in its life; cancelled and refunded orders do not count as spend.
    pub status: OrderStatus,
    /// Purchase time.
    pub ordered_at: Option<DateTime<Utc>>,
    /// Promo code, upper-cased.
    pub promo_code: Option<String>,
}

impl OrderInput {
    /// Validates every rule of the order, collecting all problems.
    pub fn validate(self) -> Result<ValidOrder, FieldErrors> {
        let mut errors = FieldErrors::new();
        let customer = match (
            self.customer_id,
            self.customer_email,
            self.customer_external_id,
        ) {
            (Some(id), None, None) if !id.trim().is_empty() => {
                Some(CustomerRef::from_id_or_external(id.trim()))
            }
            (None, Some(email), None) => Email::parse(&email)
                .map(|e| CustomerRef::Email(e.as_str().to_owned()))
                .map_err(|m| push(&mut errors, "customerEmail", m))
                .ok(),
            (None, None, Some(external)) if !external.trim().is_empty() => {
                Some(CustomerRef::External(external.trim().to_owned()))
            }
            (None, None, None) => {
                push(
                    &mut errors,
                    "customerId",
                    "is required (or customerEmail, or customerExternalId)",
                );
                None
            }
            _ => {
                push(
                    &mut errors,
                    "customerId",
                    "give exactly one of customerId, customerEmail, customerExternalId",
                );
                None
            }
        };
        let external_id = text(&mut errors, "externalId", self.external_id, false, 128);
        let mut items = Vec::new();
        match self.items {
            None => push(&mut errors, "items", "is required"),
            Some(list) if list.is_empty() => {
                push(&mut errors, "items", "must contain at least one item")
            }
            Some(list) if list.len() > MAX_ITEMS => push(
                &mut errors,
                "items",
                format!("must contain at most {MAX_ITEMS} items"),
            ),
            Some(list) => {
                for (index, item) in list.into_iter().enumerate() {
                    if let Some(item) = item.validate(index, &mut errors) {
                        items.push(item);
                    }
                }
            }
        }
        let sum = items
            .iter()
            .try_fold(0i64, |acc, item| acc.checked_add(item.total));
        let total_amount = match self.total_amount {
            None => {
                push(&mut errors, "totalAmount", "is required");
                0
            }
            Some(total) if total < 0 => {
                push(&mut errors, "totalAmount", "must not be negative");
                total
            }
            Some(total) => {
                if errors.keys().all(|k| !k.starts_with("items")) && sum != Some(total) {
                    push(
                        &mut errors,
                        "totalAmount",
                        format!("must equal the sum of item totals ({})", sum.unwrap_or(-1)),
                    );
                }
                total
            }
        };
        let currency = match self.currency.map(|c| c.trim().to_ascii_uppercase()) {
            None => {
                push(&mut errors, "currency", "is required");
                String::new()
            }
            Some(code) if iso_currency::Currency::from_code(&code).is_none() => {
                push(&mut errors, "currency", "must be an ISO 4217 currency code");
                code
            }
            Some(code) => code,
        };
        let status = match self.status.as_deref().map(str::trim) {
            None => OrderStatus::Processing,
            Some(raw) => OrderStatus::from_name(raw).unwrap_or_else(|| {
                push(
                    &mut errors,
                    "status",
                    "must be one of processing, shipped, delivered, cancelled, refunded",
                );
                OrderStatus::Processing
            }),
        };
        not_in_future(&mut errors, "orderedAt", self.ordered_at);
        let promo_code = text(&mut errors, "promoCode", self.promo_code, false, 64)
            .map(|c| c.to_ascii_uppercase());
        if let Some(code) = &promo_code
            && !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            push(
                &mut errors,
                "promoCode",
                "may contain only letters, digits, '-' and '_'",
            );
        }
        match customer {
            Some(customer) if errors.is_empty() => Ok(ValidOrder {
                customer,
                external_id,
                items,
                total_amount,
                currency,
                status,
                ordered_at: self.ordered_at,
                promo_code,
            }),
            _ => Err(errors),
        }
    }
}

impl OrderItemInput {
    fn validate(self, index: usize, errors: &mut FieldErrors) -> Option<ValidItem> {
        let path = |field: &str| format!("items[{index}].{field}");
        let product_id = text(errors, &path("productId"), self.product_id, true, 128);
        let name = text(errors, &path("name"), self.name, true, 300);
        let price = match self.price {
            None => {
                push(errors, path("price"), "is required (minor units)");
                None
            }
            Some(p) if p < 0 => {
                push(errors, path("price"), "must not be negative");
                None
            }
            Some(p) => Some(p),
        };
        let quantity = match self.quantity {
            None => {
                push(errors, path("quantity"), "is required");
                None
            }
            Some(q) if !(1..=1_000_000).contains(&q) => {
                push(errors, path("quantity"), "must be between 1 and 1000000");
                None
            }
            Some(q) => Some(q),
        };
        let total = match (price, quantity, self.total) {
            (_, _, None) => {
                push(errors, path("total"), "is required");
                None
            }
            (Some(price), Some(quantity), Some(total)) => {
                match price.checked_mul(i64::from(quantity)) {
                    Some(expected) if expected == total => Some(total),
                    Some(expected) => {
                        push(
                            errors,
                            path("total"),
                            format!("must equal price x quantity ({expected})"),
                        );
                        None
                    }
                    None => {
                        push(errors, path("total"), "price x quantity overflows");
                        None
                    }
                }
            }
            _ => None,
        };
        Some(ValidItem {
            product_id: product_id?,
            name: name?,
            price: price?,
            quantity: quantity?,
            total: total?,
        })
    }
}

/// The body of `PATCH /orders/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderStatusPatch {
    /// The new status.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(json: serde_json::Value) -> Result<ValidOrder, FieldErrors> {
        serde_json::from_value::<OrderInput>(json)
            .expect("shape")
            .validate()
    }

    #[test]
    fn seed_order_is_valid() {
        let valid = order(serde_json::json!({
            "customerId": "5f0c6a7e-8d8b-4b7e-9a53-3f1d1f1f1f1f",
            "items": [{"productId": "prod-123", "name": "Awesome T-Shirt", "price": 2500, "quantity": 2, "total": 5000}],
            "totalAmount": 5000, "currency": "usd", "status": "delivered"
        }))
        .expect("valid");
        assert_eq!(
            (valid.currency.as_str(), valid.status, valid.total_amount),
            ("USD", OrderStatus::Delivered, 5000)
        );
    }

    #[test]
    fn money_rules_are_enforced_with_paths() {
        let errors = order(serde_json::json!({
            "customerEmail": "a@b.co",
            "items": [{"productId": "p", "name": "n", "price": 2500, "quantity": 2, "total": 4000}],
            "totalAmount": 4000, "currency": "XYZ", "status": "lost"
        }))
        .expect_err("invalid");
        assert!(errors.contains_key("items[0].total"));
        assert!(errors.contains_key("currency"));
        assert!(errors.contains_key("status"));
        let errors = order(serde_json::json!({
            "customerExternalId": "c-1",
            "items": [{"productId": "p", "name": "n", "price": 100, "quantity": 3, "total": 300}],
            "totalAmount": 299, "currency": "EUR"
        }))
        .expect_err("invalid");
        assert_eq!(errors.keys().collect::<Vec<_>>(), vec!["totalAmount"]);
    }

    #[test]
    fn refunds_and_cancellations_are_final() {
        assert!(may_become(OrderStatus::Delivered, OrderStatus::Refunded));
        assert!(!may_become(OrderStatus::Refunded, OrderStatus::Delivered));
        assert!(!may_become(OrderStatus::Cancelled, OrderStatus::Processing));
        assert!(!may_become(OrderStatus::Delivered, OrderStatus::Cancelled));
    }
}
