//! Handlers for consumed events. Each runs inside the consumer's transaction, together
//! with the inbox row, so a redelivery has no second effect.

use mkt_bus::consumer::{HandlerError, Subscription};
use mkt_contracts::v1;
use mkt_contracts::{required_instant, uuid_field};
use serde_json::json;

use crate::store::customers::{self, CustomerRow, OrderRow};
use crate::store::facts;
use crate::store::timeline::{self, TimelineRow};

type Conn = diesel_async::AsyncPgConnection;

/// Every queue cdp-analytics consumes.
pub fn subscriptions() -> Vec<Subscription> {
    let service = crate::SPEC.name;
    vec![
        Subscription::on(service, |conn, e| Box::pin(customer_upserted(conn, e))),
        Subscription::on(service, |conn, e| Box::pin(customer_erased(conn, e))),
        Subscription::on(service, |conn, e: v1::OrderPlaced| {
            Box::pin(apply_order(conn, e.order))
        }),
        Subscription::on(service, |conn, e: v1::OrderUpdated| {
            Box::pin(apply_order(conn, e.order))
        }),
        Subscription::on(service, |conn, e| Box::pin(behaviour_tracked(conn, e))),
        Subscription::on(service, |conn, e| Box::pin(delivery_recorded(conn, e))),
    ]
}

async fn customer_upserted(
    conn: &mut Conn,
    event: v1::CustomerUpserted,
) -> Result<(), HandlerError> {
    let row = CustomerRow {
        customer_id: uuid_field(&event.customer_id, "customer_id")?,
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

async fn customer_erased(conn: &mut Conn, event: v1::CustomerErased) -> Result<(), HandlerError> {
    let customer = uuid_field(&event.customer_id, "customer_id")?;
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

async fn apply_order(conn: &mut Conn, order: Option<v1::Order>) -> Result<(), HandlerError> {
    let order = order.ok_or_else(|| HandlerError::Permanent("event without order".into()))?;
    let status = order
        .current_status()
        .ok_or_else(|| HandlerError::Permanent(format!("unknown status {:?}", order.status)))?;
    let row = OrderRow {
        order_id: uuid_field(&order.order_id, "order_id")?,
        customer_id: uuid_field(&order.customer_id, "customer_id")?,
        external_id: order.external_id,
        status: status.name().to_owned(),
        total_amount: order.total_amount,
        currency: order.currency,
        items_count: i32::try_from(order.items.len()).unwrap_or(i32::MAX),
        ordered_at: required_instant(order.ordered_at.as_ref(), "ordered_at")?,
        version: order.version,
        tenant_id: order.tenant_id,
    };
    customers::upsert_order(conn, &row).await?;
    facts::refresh(conn, &row.tenant_id, row.customer_id).await?;
    Ok(())
}

async fn behaviour_tracked(
    conn: &mut Conn,
    event: v1::BehaviourTracked,
) -> Result<(), HandlerError> {
    let properties: serde_json::Value =
        serde_json::from_str(&event.properties_json).unwrap_or_else(|_| json!({}));
    let row = TimelineRow {
        event_id: event.event_id,
        customer_id: uuid_field(&event.customer_id, "customer_id")?,
        kind: event.event_type,
        occurred_at: required_instant(event.occurred_at.as_ref(), "occurred_at")?,
        details: json!({ "properties": properties }),
        tenant_id: event.tenant_id,
    };
    timeline::insert(conn, &row).await?;
    Ok(())
}

async fn delivery_recorded(
    conn: &mut Conn,
    event: v1::DeliveryRecorded,
) -> Result<(), HandlerError> {
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
        customer_id: uuid_field(&event.customer_id, "customer_id")?,
        kind: format!("{channel}_{kind}"),
        occurred_at: required_instant(event.occurred_at.as_ref(), "occurred_at")?,
        details: json!({
            "message_id": event.message_id, "campaign": event.campaign_id,
            "provider": event.provider, "url": event.url,
        }),
        tenant_id: event.tenant_id,
    };
    timeline::insert(conn, &row).await?;
    Ok(())
}
