//! Handlers for consumed events. Each runs inside the consumer's transaction, together
//! with the inbox row, so a redelivery has no second effect.

use std::sync::Arc;

use mkt_bus::consumer::{HandlerError, Incoming, Subscription};
use mkt_contracts::Message;
use mkt_contracts::v1::{self, routing};
use uuid::Uuid;

use crate::store::customer_profiles::{self, ProfileUpsert};
use crate::store::events::{self, TrackedEvent};
use crate::store::orders::{self, OrderState};

/// Every queue segmentation consumes.
pub fn subscriptions() -> Vec<Subscription> {
    vec![
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: routing::CUSTOMER_UPSERTED.into(),
            handler: Arc::new(|conn, incoming| Box::pin(customer_upserted(conn, incoming))),
        },
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: routing::CUSTOMER_ERASED.into(),
            handler: Arc::new(|conn, incoming| Box::pin(customer_erased(conn, incoming))),
        },
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: routing::ORDER_PLACED.into(),
            handler: Arc::new(|conn, incoming| Box::pin(order_placed(conn, incoming))),
        },
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: routing::ORDER_UPDATED.into(),
            handler: Arc::new(|conn, incoming| Box::pin(order_updated(conn, incoming))),
        },
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: routing::BEHAVIOUR_TRACKED.into(),
            handler: Arc::new(|conn, incoming| Box::pin(behaviour_tracked(conn, incoming))),
        },
    ]
}

fn tenant_checked(header: &str, payload: &str) -> Result<(), HandlerError> {
    if header == payload {
        Ok(())
    } else {
        Err(HandlerError::Permanent(format!(
            "tenant header {header:?} does not match payload {payload:?}"
        )))
    }
}

fn customer_id(raw: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(raw).map_err(|e| HandlerError::Permanent(format!("bad customer_id: {e}")))
}

async fn customer_upserted(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<(), HandlerError> {
    let event = v1::CustomerUpserted::decode(incoming.payload.as_slice())?;
    tenant_checked(&incoming.tenant_id, &event.tenant_id)?;
    let address = event.address.unwrap_or_default();
    let consent = event.consent.unwrap_or_default();
    let profile = ProfileUpsert {
        tenant_id: event.tenant_id,
        customer_id: customer_id(&event.customer_id)?,
        external_id: event.external_id,
        email: Some(event.email),
        name: Some(event.name),
        phone: event.phone,
        city: Some(address.city).filter(|s| !s.is_empty()),
        state: Some(address.state).filter(|s| !s.is_empty()),
        zip_code: Some(address.zip_code).filter(|s| !s.is_empty()),
        country: Some(address.country).filter(|s| !s.is_empty()),
        loyalty_tier: event.loyalty_tier,
        attributes: serde_json::from_str(&event.attributes_json)
            .unwrap_or_else(|_| serde_json::json!({})),
        consent_email: consent.email,
        consent_sms: consent.sms,
        consent_push: consent.push,
        signed_up_at: event
            .created_at
            .as_ref()
            .and_then(mkt_contracts::from_timestamp),
        version: event.version,
    };
    customer_profiles::apply_upsert(conn, &profile).await?;
    Ok(())
}

async fn customer_erased(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<(), HandlerError> {
    let event = v1::CustomerErased::decode(incoming.payload.as_slice())?;
    tenant_checked(&incoming.tenant_id, &event.tenant_id)?;
    let at = event
        .erased_at
        .as_ref()
        .and_then(mkt_contracts::from_timestamp)
        .unwrap_or_else(chrono::Utc::now);
    let customer = customer_id(&event.customer_id)?;
    customer_profiles::erase(conn, &event.tenant_id, customer, at).await?;
    events::delete_for(conn, &event.tenant_id, customer).await?;
    Ok(())
}

async fn apply_order(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
    order: Option<v1::Order>,
) -> Result<(), HandlerError> {
    let order = order.ok_or_else(|| HandlerError::Permanent("event without order".into()))?;
    tenant_checked(&incoming.tenant_id, &order.tenant_id)?;
    let state = OrderState {
        order_id: Uuid::parse_str(&order.order_id)
            .map_err(|e| HandlerError::Permanent(format!("bad order_id: {e}")))?,
        customer_id: customer_id(&order.customer_id)?,
        status: order.status,
        total_amount: order.total_amount,
        currency: order.currency,
        promo_code: order.promo_code,
        ordered_at: order
            .ordered_at
            .as_ref()
            .and_then(mkt_contracts::from_timestamp)
            .ok_or_else(|| HandlerError::Permanent("order without ordered_at".into()))?,
        version: order.version,
        tenant_id: order.tenant_id,
    };
    if orders::apply(conn, &state).await? {
        orders::refresh_aggregates(conn, &state.tenant_id, state.customer_id).await?;
    }
    Ok(())
}

async fn order_placed(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<(), HandlerError> {
    let event = v1::OrderPlaced::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn order_updated(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<(), HandlerError> {
    let event = v1::OrderUpdated::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn behaviour_tracked(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<(), HandlerError> {
    let event = v1::BehaviourTracked::decode(incoming.payload.as_slice())?;
    tenant_checked(&incoming.tenant_id, &event.tenant_id)?;
    let tracked = TrackedEvent {
        event_id: Uuid::parse_str(&event.event_id)
            .map_err(|e| HandlerError::Permanent(format!("bad event_id: {e}")))?,
        customer_id: customer_id(&event.customer_id)?,
        event_type: event.event_type,
        properties: serde_json::from_str(&event.properties_json)
            .unwrap_or_else(|_| serde_json::json!({})),
        occurred_at: event
            .occurred_at
            .as_ref()
            .and_then(mkt_contracts::from_timestamp)
            .ok_or_else(|| HandlerError::Permanent("event without occurred_at".into()))?,
        tenant_id: event.tenant_id,
    };
    events::insert(conn, &tracked).await?;
    Ok(())
}
