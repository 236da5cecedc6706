//! Handlers for consumed events. Each runs inside the consumer's transaction, together
//! with the inbox row, so a redelivery has no second effect.

use std::sync::Arc;

use mkt_bus::consumer::{HandlerError, Incoming, Subscription};
use mkt_contracts::Message;
use mkt_contracts::v1::{self, routing};
use serde_json::json;
use uuid::Uuid;

use crate::store::customers::{self, CustomerRow, OrderRow};
use crate::store::facts;
use crate::store::timeline::{self, TimelineRow};

type Conn = diesel_async::AsyncPgConnection;

macro_rules! subscription {
    ($routing_key:expr, $handler:ident) => {
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: $routing_key.into(),
            handler: Arc::new(|conn, incoming| Box::pin($handler(conn, incoming))),
        }
    };
}

/// Every queue cdp-analytics consumes.
pub fn subscriptions() -> Vec<Subscription> {
    vec![
        subscription!(routing::CUSTOMER_UPSERTED, customer_upserted),
        subscription!(routing::CUSTOMER_ERASED, customer_erased),
        subscription!(routing::ORDER_PLACED, order_placed),
        subscription!(routing::ORDER_UPDATED, order_updated),
        subscription!(routing::BEHAVIOUR_TRACKED, behaviour_tracked),
        subscription!(routing::DELIVERY_RECORDED, delivery_recorded),
    ]
}

fn tenant_checked(incoming: &Incoming, payload: &str) -> Result<(), HandlerError> {
    if incoming.tenant_id == payload {
        Ok(())
    } else {
        Err(HandlerError::Permanent(format!(
            "tenant header {:?} does not match payload {payload:?}",
            incoming.tenant_id
        )))
    }
}

fn uuid(raw: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw).map_err(|e| HandlerError::Permanent(format!("bad {what}: {e}")))
}

fn instant(
    ts: Option<&mkt_contracts::Timestamp>,
    what: &str,
) -> Result<chrono::DateTime<chrono::Utc>, HandlerError> {
    ts.and_then(mkt_contracts::from_timestamp)
        .ok_or_else(|| HandlerError::Permanent(format!("event without {what}")))
}

async fn customer_upserted(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::CustomerUpserted::decode(incoming.payload.as_slice())?;
    tenant_checked(incoming, &event.tenant_id)?;
    let row = CustomerRow {
        customer_id: uuid(&event.customer_id, "customer_id")?,
        external_id: event.external_id,
        email: Some(event.email),
        name: Some(event.name),
        signed_up_at: event
            .created_at
            .as_ref()
            .and_then(mkt_contracts::from_timestamp),
        version: event.version,
        erased_at: None,
        tenant_id: event.tenant_id,
    };
    customers::upsert(conn, &row).await?;
    Ok(())
}

async fn customer_erased(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::CustomerErased::decode(incoming.payload.as_slice())?;
    tenant_checked(incoming, &event.tenant_id)?;
    let customer = uuid(&event.customer_id, "customer_id")?;
    let at = event
        .erased_at
        .as_ref()
        .and_then(mkt_contracts::from_timestamp)
        .unwrap_or_else(chrono::Utc::now);
    customers::erase(conn, &event.tenant_id, customer, at).await?;
    facts::forget(conn, &event.tenant_id, customer).await?;
    timeline::delete_for(conn, &event.tenant_id, customer).await?;
    Ok(())
}

async fn apply_order(
    conn: &mut Conn,
    incoming: &Incoming,
    order: Option<v1::Order>,
) -> Result<(), HandlerError> {
    let order = order.ok_or_else(|| HandlerError::Permanent("event without order".into()))?;
    tenant_checked(incoming, &order.tenant_id)?;
    let row = OrderRow {
        order_id: uuid(&order.order_id, "order_id")?,
        customer_id: uuid(&order.customer_id, "customer_id")?,
        external_id: order.external_id,
        status: order.status,
        total_amount: order.total_amount,
        currency: order.currency,
        items_count: i32::try_from(order.items.len()).unwrap_or(i32::MAX),
        ordered_at: instant(order.ordered_at.as_ref(), "ordered_at")?,
        version: order.version,
        tenant_id: order.tenant_id,
    };
    customers::upsert_order(conn, &row).await?;
    facts::refresh(conn, &row.tenant_id, row.customer_id).await?;
    Ok(())
}

async fn order_placed(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::OrderPlaced::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn order_updated(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::OrderUpdated::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn behaviour_tracked(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::BehaviourTracked::decode(incoming.payload.as_slice())?;
    tenant_checked(incoming, &event.tenant_id)?;
    let properties: serde_json::Value =
        serde_json::from_str(&event.properties_json).unwrap_or_else(|_| json!({}));
    let row = TimelineRow {
        event_id: event.event_id,
        customer_id: uuid(&event.customer_id, "customer_id")?,
        kind: event.event_type,
        occurred_at: instant(event.occurred_at.as_ref(), "occurred_at")?,
        details: json!({ "properties": properties }),
        tenant_id: event.tenant_id,
    };
    timeline::insert(conn, &row).await?;
    Ok(())
}

async fn delivery_recorded(conn: &mut Conn, incoming: &Incoming) -> Result<(), HandlerError> {
    let event = v1::DeliveryRecorded::decode(incoming.payload.as_slice())?;
    tenant_checked(incoming, &event.tenant_id)?;
    let channel = match event.channel() {
        v1::Channel::Email => "email",
        v1::Channel::Sms => "sms",
        v1::Channel::Push => "push",
        v1::Channel::Unspecified => "message",
    };
    let kind = match event.kind() {
        v1::DeliveryKind::Sent => "sent",
        v1::DeliveryKind::Delivered => "delivered",
        v1::DeliveryKind::Opened => "opened",
        v1::DeliveryKind::Clicked => "clicked",
        v1::DeliveryKind::Bounced => "bounced",
        v1::DeliveryKind::Complained => "complained",
        v1::DeliveryKind::Unsubscribed => "unsubscribed",
        v1::DeliveryKind::Failed => "failed",
        v1::DeliveryKind::Unspecified => "event",
    };
    if event.event_id.is_empty() {
        return Err(HandlerError::Permanent(
            "delivery event without event_id".into(),
        ));
    }
    let row = TimelineRow {
        event_id: format!("delivery:{}", event.event_id),
        customer_id: uuid(&event.customer_id, "customer_id")?,
        kind: format!("{channel}_{kind}"),
        occurred_at: instant(event.occurred_at.as_ref(), "occurred_at")?,
        details: json!({
            "message_id": event.message_id, "campaign": event.campaign_id,
            "provider": event.provider, "url": event.url,
        }),
        tenant_id: event.tenant_id,
    };
    timeline::insert(conn, &row).await?;
    Ok(())
}
