//! VTEX's payloads as we read them, and how they become the JSON bodies ingestion's
//! API takes (a sync parses and validates them exactly as a request's). No I/O:
//! the REST client is `service::integrations::vtex`.
//!
//! Sources (VTEX developer docs): OMS "List orders" (`GET /api/oms/pvt/orders`, at most
//! 30 pages of up to 100) and "Get order" (`GET /api/oms/pvt/orders/{orderId}`), whose
//! money fields are integers in cents; Master Data v1 "Scroll documents" on the `CL`
//! (client) entity.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Page size of the order list (VTEX's maximum).
pub const ORDERS_PER_PAGE: u32 = 100;
/// The order list serves no page beyond this one, whatever the total.
pub const MAX_ORDER_PAGES: u32 = 30;
/// Documents per Master Data scroll request (VTEX allows up to 1,000).
pub const CUSTOMERS_PER_SCROLL: u32 = 500;
/// The `CL` fields a sync reads.
pub const CUSTOMER_FIELDS: &str =
    "id,userId,email,firstName,lastName,phone,createdIn,isNewsletterOptIn";

/// `GET /api/oms/pvt/orders`: one page.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderList {
    /// The orders of this page.
    #[serde(default)]
    pub list: Vec<OrderSummary>,
    /// Where this page sits.
    pub paging: Paging,
}

/// The list's paging block.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Paging {
    /// Orders matching the filter.
    pub total: i64,
    /// Pages at this page size.
    pub pages: i64,
    /// This page (1-based).
    pub current_page: i64,
}

/// One order in the list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// VTEX order id (`v502556llux-01`).
    pub order_id: String,
    /// Creation time as VTEX writes it.
    pub creation_date: String,
    /// Workflow status (`invoiced`, `canceled`, ...).
    pub status: String,
}

/// `GET /api/oms/pvt/orders/{orderId}`: the fields a sync uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// VTEX order id.
    pub order_id: String,
    /// Workflow status.
    pub status: String,
    /// Creation time.
    pub creation_date: String,
    /// Order total in cents.
    pub value: i64,
    /// Lines.
    #[serde(default)]
    pub items: Vec<OrderItem>,
    /// The buyer.
    pub client_profile_data: Option<ClientProfile>,
    /// Store settings (the currency).
    pub store_preferences_data: Option<StorePreferences>,
    /// Coupon and UTM data.
    pub marketing_data: Option<MarketingData>,
}

/// An order line.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// SKU id.
    pub id: String,
    /// Product id.
    pub product_id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Units.
    pub quantity: i64,
    /// Unit price in cents before discounts.
    pub price: Option<i64>,
    /// Unit price in cents after item discounts (what was paid per unit).
    pub selling_price: Option<i64>,
}

/// The buyer as the order records it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientProfile {
    /// Email (may be VTEX's masked relay address).
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The buyer's profile id: the `userId` of their `CL` document.
    pub user_profile_id: Option<String>,
}

/// Store preferences.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorePreferences {
    /// ISO 4217 code.
    pub currency_code: Option<String>,
}

/// Marketing data.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarketingData {
    /// Coupon code used.
    pub coupon: Option<String>,
}

/// A Master Data `CL` (client) document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Document id.
    pub id: Option<String>,
    /// Profile id (what orders call `userProfileId`).
    pub user_id: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// When the document was created.
    pub created_in: Option<String>,
    /// Newsletter opt-in.
    pub is_newsletter_opt_in: Option<bool>,
}

/// Parses VTEX's timestamps: RFC 3339 (with up to seven fraction digits), or a naive
/// timestamp meaning UTC.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The `f_creationDate` filter value: `creationDate:[from TO to]`, both inclusive.
pub fn creation_date_filter(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let format = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!("creationDate:[{} TO {}]", format(from), format(to))
}

/// Our order status for a VTEX workflow status. VTEX has no delivered state in OMS:
/// `invoiced` (the invoice is issued when the goods leave) is as far as it goes.
pub fn order_status(vtex_status: &str) -> &'static str {
    match vtex_status {
        "canceled" | "cancel" => "cancelled",
        "invoiced" => "shipped",
        _ => "processing",
    }
}

/// Converts VTEX cents into ISO 4217 minor units of `currency` (VTEX always keeps two
/// decimals, whatever the currency's exponent). `None` for an unknown currency or an
/// amount that does not convert exactly.
pub fn minor_units(cents: i64, currency: &str) -> Option<i64> {
    let exponent = iso_currency::Currency::from_code(currency)?.exponent()?;
    match exponent {
        2 => Some(cents),
        0 | 1 => {
            let divisor = 10i64.pow(2 - u32::from(exponent));
            (cents % divisor == 0).then_some(cents / divisor)
        }
        e => cents.checked_mul(10i64.checked_pow(u32::from(e) - 2)?),
    }
}

fn clean(value: Option<&str>, max_chars: usize) -> Option<String> {
    let value = value?.trim();
    (!value.is_empty() && value.chars().count() <= max_chars).then(|| value.to_owned())
}

fn phone(value: Option<&str>) -> Option<String> {
    clean(value, 32).filter(|p| {
        p.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    })
}

fn plausible_email(value: Option<&str>) -> Option<String> {
    let email = clean(value, 254)?;
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && domain.contains('.')).then_some(email)
}

/// A short content fingerprint: part of an idempotency key, so an unchanged record
/// replays ingestion's stored answer while a changed one is sent again.
pub fn fingerprint(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What to send ingestion for a VTEX customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerUpsert {
    /// Who this is at VTEX: the `external_id` sent (the profile's `userId`, else the
    /// document id), or the email when the buyer of an order has no profile id.
    pub reference: String,
    /// `POST /api/v2/cdp/customers` body.
    pub body: Value,
}

/// Ingestion's customer body for a `CL` document; `None` when it has no usable email
/// (ingestion keys customers by email) or no id.
pub fn customer_upsert(customer: &Customer) -> Option<CustomerUpsert> {
    let external_id =
        clean(customer.user_id.as_deref(), 128).or_else(|| clean(customer.id.as_deref(), 128))?;
    let email = plausible_email(customer.email.as_deref())?;
    let body = customer_body(
        Some(&external_id),
        &email,
        customer.first_name.as_deref(),
        customer.last_name.as_deref(),
        customer.phone.as_deref(),
        customer.created_in.as_deref().and_then(parse_time),
        customer.is_newsletter_opt_in,
    );
    Some(CustomerUpsert {
        reference: external_id,
        body,
    })
}

/// Ingestion's customer body from an order's buyer, for buyers that have no `CL`
/// document yet.
pub fn buyer_upsert(profile: &ClientProfile) -> Option<CustomerUpsert> {
    let email = plausible_email(profile.email.as_deref())?;
    let external_id = clean(profile.user_profile_id.as_deref(), 128);
    let body = customer_body(
        external_id.as_deref(),
        &email,
        profile.first_name.as_deref(),
        profile.last_name.as_deref(),
        profile.phone.as_deref(),
        None,
        None,
    );
    Some(CustomerUpsert {
        reference: external_id.unwrap_or(email),
        body,
    })
}

fn customer_body(
    external_id: Option<&str>,
    email: &str,
    first_name: Option<&str>,
    last_name: Option<&str>,
    phone_number: Option<&str>,
    created: Option<DateTime<Utc>>,
    newsletter: Option<bool>,
) -> Value {
    let first_name = clean(first_name, 100);
    let last_name = clean(last_name, 100);
    let full = [first_name.as_deref(), last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let name = clean(Some(&full), 200).unwrap_or_else(|| email.to_owned());
    let mut body = json!({"email": email, "name": name});
    if let Some(object) = body.as_object_mut() {
        if let Some(v) = external_id {
            object.insert("external_id".into(), json!(v));
        }
        if let Some(v) = first_name {
            object.insert("first_name".into(), json!(v));
        }
        if let Some(v) = last_name {
            object.insert("last_name".into(), json!(v));
        }
        if let Some(v) = phone(phone_number) {
            object.insert("phone".into(), json!(v));
        }
        if let Some(at) = created.filter(|at| *at <= Utc::now()) {
            object.insert(
                "created_at".into(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
        }
        if let Some(optin) = newsletter {
            object.insert("consent".into(), json!({"email": optin}));
        }
    }
    body
}

/// How the order names its customer in ingestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Buyer {
    /// The VTEX profile id (the customer's `external_id`).
    External(String),
    /// Only an email is known.
    Email(String),
}

impl Buyer {
    /// The buyer of `order`, if the order names one.
    pub fn of(order: &Order) -> Option<Self> {
        let profile = order.client_profile_data.as_ref()?;
        clean(profile.user_profile_id.as_deref(), 128)
            .map(Buyer::External)
            .or_else(|| plausible_email(profile.email.as_deref()).map(Buyer::Email))
    }
}

/// Ingestion's order body for a VTEX order, or why it cannot be imported.
///
/// Lines are the items at their selling price (cents converted to minor units);
/// shipping, taxes and order-level adjustments become one extra line, because
/// ingestion requires the total to be the sum of the lines. When the order total is
/// below the lines' sum (a discount not spread over items), one summary line carries the
/// total instead, so the money is always exact.
pub fn order_body(order: &Order, buyer: &Buyer) -> Result<Value, String> {
    let currency = order
        .store_preferences_data
        .as_ref()
        .and_then(|s| s.currency_code.as_deref())
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .ok_or("the order has no currency")?;
    let total = minor_units(order.value, &currency)
        .filter(|t| *t >= 0)
        .ok_or_else(|| format!("the total does not convert to {currency} minor units"))?;
    let ordered_at = parse_time(&order.creation_date).ok_or("the creation date is unreadable")?;

    let mut lines = Vec::new();
    let mut sum: i64 = 0;
    for item in order.items.iter().filter(|i| i.quantity > 0) {
        let Some(price) = item
            .selling_price
            .or(item.price)
            .filter(|p| *p >= 0)
            .and_then(|p| minor_units(p, &currency))
        else {
            lines.clear();
            break;
        };
        let Ok(quantity) = i32::try_from(item.quantity) else {
            lines.clear();
            break;
        };
        let Some(line_total) = price.checked_mul(item.quantity) else {
            lines.clear();
            break;
        };
        sum = sum.saturating_add(line_total);
        let product_id = clean(item.product_id.as_deref(), 128)
            .or_else(|| clean(Some(&item.id), 128))
            .unwrap_or_else(|| "unknown".into());
        let name = clean(item.name.as_deref(), 300).unwrap_or_else(|| product_id.clone());
        lines.push(json!({
            "productId": product_id, "name": name, "price": price,
            "quantity": quantity, "total": line_total,
        }));
    }
    if lines.is_empty() || sum > total || lines.len() >= 500 {
        lines = vec![json!({
            "productId": format!("vtex-order-{}", order.order_id),
            "name": format!("VTEX order {}", order.order_id),
            "price": total, "quantity": 1, "total": total,
        })];
    } else if sum < total {
        let rest = total - sum;
        lines.push(json!({
            "productId": "vtex-shipping-taxes-fees",
            "name": "Shipping, taxes and fees",
            "price": rest, "quantity": 1, "total": rest,
        }));
    }

    let mut body = json!({
        "externalId": order.order_id,
        "items": lines,
        "totalAmount": total,
        "currency": currency,
        "status": order_status(&order.status),
        "orderedAt": ordered_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if let Some(object) = body.as_object_mut() {
        match buyer {
            Buyer::External(id) => object.insert("customerExternalId".into(), json!(id)),
            Buyer::Email(email) => object.insert("customerEmail".into(), json!(email)),
        };
        let coupon = order
            .marketing_data
            .as_ref()
            .and_then(|m| clean(m.coupon.as_deref(), 64))
            .filter(|c| {
                c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            });
        if let Some(coupon) = coupon {
            object.insert("promoCode".into(), json!(coupon));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(value: i64, items: Value, currency: &str) -> Order {
        serde_json::from_value(json!({
            "orderId": "v100-01", "status": "invoiced", "creationDate": "2024-09-15T14:30:00.0000000+00:00",
            "value": value, "items": items,
            "clientProfileData": {"email": "a@b.co", "userProfileId": "u-1", "firstName": "Ana"},
            "storePreferencesData": {"currencyCode": currency},
            "marketingData": {"coupon": "SAVE10"}
        }))
        .expect("order")
    }

    #[test]
    fn lines_are_selling_prices_and_the_rest_is_one_fee_line() {
        let o = order(
            2500,
            json!([
                {"id": "1", "productId": "p1", "name": "Shoe", "quantity": 2, "price": 1000, "sellingPrice": 900},
                {"id": "2", "quantity": 1, "price": 500, "sellingPrice": 500}
            ]),
            "BRL",
        );
        let body = order_body(&o, &Buyer::of(&o).expect("buyer")).expect("body");
        assert_eq!(body["totalAmount"], 2500);
        assert_eq!(body["currency"], "BRL");
        assert_eq!(body["status"], "shipped");
        assert_eq!(body["customerExternalId"], "u-1");
        assert_eq!(body["promoCode"], "SAVE10");
        assert_eq!(body["orderedAt"], "2024-09-15T14:30:00.000Z");
        let items = body["items"].as_array().expect("items");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["total"], 1800);
        assert_eq!(items[1]["productId"], "2");
        assert_eq!(items[2]["total"], 200);
        let sum: i64 = items.iter().map(|i| i["total"].as_i64().unwrap_or(0)).sum();
        assert_eq!(sum, 2500);
    }

    #[test]
    fn an_unspread_discount_becomes_one_summary_line_and_currencies_convert() {
        let o = order(
            800,
            json!([{"id": "1", "quantity": 1, "sellingPrice": 1000}]),
            "USD",
        );
        let body = order_body(&o, &Buyer::Email("a@b.co".into())).expect("body");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["items"][0]["total"], 800);
        assert_eq!(body["customerEmail"], "a@b.co");
        // CLP has no minor unit: VTEX's 150000 cents are 1500 pesos.
        assert_eq!(minor_units(150_000, "CLP"), Some(1500));
        assert_eq!(minor_units(150_050, "CLP"), None);
        assert_eq!(minor_units(1234, "KWD"), Some(12340));
        assert_eq!(minor_units(1234, "XXX?"), None);
        let no_currency = order(100, json!([]), "");
        assert!(order_body(&no_currency, &Buyer::Email("a@b.co".into())).is_err());
    }

    #[test]
    fn statuses_customers_and_filters() {
        assert_eq!(order_status("canceled"), "cancelled");
        assert_eq!(order_status("ready-for-handling"), "processing");
        let customer: Customer = serde_json::from_value(json!({
            "id": "doc-1", "userId": "9f1c", "email": " Ana@Example.com ", "firstName": "Ana",
            "lastName": "Lima", "phone": "+55 11 99999-0000", "createdIn": "2019-02-04T10:29:11.7281349Z",
            "isNewsletterOptIn": true
        }))
        .expect("customer");
        let upsert = customer_upsert(&customer).expect("upsert");
        assert_eq!(upsert.reference, "9f1c");
        assert_eq!(upsert.body["external_id"], "9f1c");
        assert_eq!(upsert.body["name"], "Ana Lima");
        assert_eq!(upsert.body["consent"]["email"], true);
        assert_eq!(upsert.body["created_at"], "2019-02-04T10:29:11.728Z");
        let no_email: Customer = serde_json::from_value(json!({"id": "x"})).expect("doc");
        assert!(customer_upsert(&no_email).is_none());
        assert_eq!(
            creation_date_filter(
                parse_time("2022-01-01T02:00:00Z").expect("t"),
                parse_time("2022-01-02T01:59:59.999Z").expect("t")
            ),
            "creationDate:[2022-01-01T02:00:00.000Z TO 2022-01-02T01:59:59.999Z]"
        );
        assert_eq!(fingerprint(&json!({"a": 1})), fingerprint(&json!({"a": 1})));
        assert_ne!(fingerprint(&json!({"a": 1})), fingerprint(&json!({"a": 2})));
    }
}
