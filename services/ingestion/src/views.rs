//! Response shapes: each seed's success envelope and the resources inside it. Shared by
//! handlers and use cases (a stored idempotent response is the full body).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::customers::CustomerRow;
use crate::store::events::EventRow;
use crate::store::orders::{ItemRow, OrderRow};

/// Seed 000's success envelope around a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerEnvelope {
    /// Always true.
    pub success: bool,
    /// Human message.
    pub message: String,
    /// The customer.
    pub data: CustomerData,
}

/// A customer as the API returns it: seed 000's camelCase fields plus the CDP's
/// snake_case extensions.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerData {
    /// Our id.
    pub id: Uuid,
    /// Full name.
    pub name: String,
    /// Email (lower-cased).
    pub email: String,
    /// Phone number as given: digits, spaces and `+ - ( ) .` only, at most 32 characters (not
    /// normalised to E.164).
    pub phone: Option<String>,
    /// Sign-up time.
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
    /// Address, when known.
    pub address: Option<AddressData>,
    /// The store's id.
    pub external_id: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
    pub loyalty_tier: Option<String>,
    /// Custom traits.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Per-channel marketing consent as stored (`false` where never given).
    pub consent: crate::domain::customer::ConsentOutput,
}

/// Seed 000's address shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressData {
    /// The customer's id.
    #[serde(rename = "userId")]
    pub user_id: Uuid,
    /// Street line as given (required whenever an address is).
    pub street: String,
    /// City as given, not normalised.
    pub city: String,
    /// State or region as given (free text, not a code list).
    pub state: String,
    /// Postal code.
    #[serde(rename = "zipCode")]
    pub zip_code: String,
    /// Country as given: free text up to 100 characters, not checked against ISO 3166.
    pub country: String,
}

impl From<CustomerRow> for CustomerData {
    fn from(row: CustomerRow) -> Self {
        let address = match (row.street, row.city, row.state, row.zip_code, row.country) {
            (Some(street), Some(city), Some(state), Some(zip_code), Some(country)) => {
                Some(AddressData {
                    user_id: row.id,
                    street,
                    city,
                    state,
                    zip_code,
                    country,
                })
            }
            _ => None,
        };
        CustomerData {
            id: row.id,
            name: row.name,
            email: row.email,
            phone: row.phone,
            created_at: row.created_at,
            updated_at: row.updated_at,
            address,
            external_id: row.external_id,
            first_name: row.first_name,
            last_name: row.last_name,
            loyalty_tier: row.loyalty_tier,
            attributes: row.attributes,
            consent: crate::domain::customer::ConsentOutput {
                email: row.consent_email,
                sms: row.consent_sms,
                push: row.consent_push,
            },
        }
    }
}

/// Seed 000's order envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEnvelope {
    /// Always true.
    pub success: bool,
    /// Human message.
    pub message: String,
    /// The order.
    pub data: OrderData,
}

/// An order as seed 000 returns it (camelCase).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderData {
    /// Our id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// The store's order id.
    pub external_id: Option<String>,
    /// Total in minor units.
    pub total_amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// One of `processing`, `shipped`, `delivered`, `cancelled`, `refunded`; the last two do not
    /// count as spend.
    pub status: String,
    /// Promo code, upper-cased by ingestion (letters, digits, `-`, `_`; at most 64).
    pub promo_code: Option<String>,
    /// Purchase time.
    pub ordered_at: DateTime<Utc>,
    /// When we recorded it.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Lines.
    pub items: Vec<OrderItemData>,
}

/// An order line (seed 000).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemData {
    /// Line id.
    pub id: Uuid,
    /// Ingestion's id for the order this line belongs to.
    pub order_id: Uuid,
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

impl OrderData {
    /// Builds the view from rows.
    pub fn from_rows(order: OrderRow, items: Vec<ItemRow>) -> Self {
        OrderData {
            id: order.id,
            customer_id: order.customer_id,
            external_id: order.external_id,
            total_amount: order.total_amount,
            currency: order.currency,
            status: order.status,
            promo_code: order.promo_code,
            ordered_at: order.ordered_at,
            created_at: order.created_at,
            updated_at: order.updated_at,
            items: items
                .into_iter()
                .map(|i| OrderItemData {
                    id: i.id,
                    order_id: i.order_id,
                    product_id: i.product_id,
                    name: i.name,
                    price: i.price,
                    quantity: i.quantity,
                    total: i.total,
                })
                .collect(),
        }
    }
}

/// A tracked event as returned (seed 004 casing).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventData {
    /// Our id.
    pub id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Type.
    pub event_type: String,
    /// The event's properties: always a JSON object (`{}` when none were sent).
    #[schema(value_type = Object)]
    pub properties: serde_json::Value,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
}

impl From<EventRow> for EventData {
    fn from(row: EventRow) -> Self {
        EventData {
            id: row.id,
            customer_id: row.customer_id,
            event_type: row.event_type,
            properties: row.properties,
            timestamp: row.occurred_at,
        }
    }
}

/// Page information of list responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pagination {
    /// 1-based page.
    pub page: i64,
    /// Page size.
    pub limit: i64,
    /// Matching items.
    pub total: i64,
    /// Pages.
    pub total_pages: i64,
}

/// Wraps `data` in the seeds' success envelope.
pub fn envelope(message: &str, data: impl Serialize) -> serde_json::Value {
    serde_json::json!({"success": true, "message": message, "data": data})
}
