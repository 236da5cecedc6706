//! Handlers for consumed events. Each runs inside the consumer's transaction, together
//! with the inbox row, so a redelivery has no second effect.

use std::sync::Arc;

use mkt_bus::consumer::{HandlerError, Incoming, Subscription};
use mkt_contracts::Message;
use mkt_contracts::v1::{self, routing};
use uuid::Uuid;

use chrono::Utc;

use crate::service::membership;
use crate::store::customer_profiles::{self, ProfileUpsert};
use crate::store::engagement::{self, Engagement};
use crate::store::events::{self, TrackedEvent};
use crate::store::orders::{self, OrderState};
use crate::store::scores::{self, ScoresUpdate};

/// What a handler reports: the tenant and the customers whose data it changed, whose
/// segment membership is then re-evaluated in the same transaction.
type Touched = (String, Vec<Uuid>);

/// Subscribes `handler` to `routing_key`; after it, every customer it touched is
/// re-evaluated against the tenant's dynamic segments (see `service::membership`).
macro_rules! subscription {
    ($routing_key:expr, $handler:ident) => {
        Subscription {
            service: crate::SPEC.name.into(),
            routing_key: $routing_key.into(),
            handler: Arc::new(|conn, incoming| {
                Box::pin(async move {
                    let (tenant, customers) = $handler(conn, incoming).await?;
                    if !customers.is_empty() {
                        membership::customers_changed(conn, &tenant, &customers, Utc::now())
                            .await?;
                    }
                    Ok(())
                })
            }),
        }
    };
}

/// Every queue segmentation consumes.
pub fn subscriptions() -> Vec<Subscription> {
    vec![
        subscription!(routing::CUSTOMER_UPSERTED, customer_upserted),
        subscription!(routing::CUSTOMER_ERASED, customer_erased),
        subscription!(routing::ORDER_PLACED, order_placed),
        subscription!(routing::ORDER_UPDATED, order_updated),
        subscription!(routing::BEHAVIOUR_TRACKED, behaviour_tracked),
        subscription!(routing::ANALYTICS_SCORES_UPDATED, scores_updated),
        subscription!(routing::DELIVERY_RECORDED, delivery_recorded),
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
) -> Result<Touched, HandlerError> {
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
    let changed = customer_profiles::apply_upsert(conn, &profile).await?;
    Ok((
        profile.tenant_id,
        if changed {
            vec![profile.customer_id]
        } else {
            Vec::new()
        },
    ))
}

async fn customer_erased(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
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
    membership::customer_erased(conn, &event.tenant_id, customer, Utc::now()).await?;
    Ok((event.tenant_id, Vec::new()))
}

async fn apply_order(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
    order: Option<v1::Order>,
) -> Result<Touched, HandlerError> {
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
        return Ok((state.tenant_id, vec![state.customer_id]));
    }
    Ok((state.tenant_id, Vec::new()))
}

async fn order_placed(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
    let event = v1::OrderPlaced::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn order_updated(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
    let event = v1::OrderUpdated::decode(incoming.payload.as_slice())?;
    apply_order(conn, incoming, event.order).await
}

async fn behaviour_tracked(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
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
    Ok((tracked.tenant_id, vec![tracked.customer_id]))
}

async fn scores_updated(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
    let event = v1::ScoresUpdated::decode(incoming.payload.as_slice())?;
    tenant_checked(&incoming.tenant_id, &event.tenant_id)?;
    let computed_at = event
        .computed_at
        .as_ref()
        .and_then(mkt_contracts::from_timestamp)
        .ok_or_else(|| HandlerError::Permanent("scores without computed_at".into()))?;
    let updates = event
        .scores
        .into_iter()
        .map(|s| {
            Ok(ScoresUpdate {
                tenant_id: event.tenant_id.clone(),
                customer_id: customer_id(&s.customer_id)?,
                rfm_segment: s.rfm_segment,
                recency_score: s.recency_score,
                frequency_score: s.frequency_score,
                monetary_score: s.monetary_score,
                clv: s.clv,
                clv_tier: s.clv_tier,
                churn_risk: s.churn_risk,
                churn_probability: s.churn_probability,
                scores_computed_at: Some(computed_at),
            })
        })
        .collect::<Result<Vec<_>, HandlerError>>()?;
    let written = scores::apply(conn, computed_at, &updates).await?;
    Ok((event.tenant_id, written))
}

async fn delivery_recorded(
    conn: &mut diesel_async::AsyncPgConnection,
    incoming: &Incoming,
) -> Result<Touched, HandlerError> {
    let event = v1::DeliveryRecorded::decode(incoming.payload.as_slice())?;
    tenant_checked(&incoming.tenant_id, &event.tenant_id)?;
    let customer = customer_id(&event.customer_id)?;
    let email = event.channel() == v1::Channel::Email;
    let engagement = match event.kind() {
        v1::DeliveryKind::Opened if email => Engagement::EmailOpened,
        v1::DeliveryKind::Clicked if email => Engagement::EmailClicked,
        v1::DeliveryKind::Unsubscribed if email => Engagement::EmailUnsubscribed,
        // Sends, deliveries, bounces and other channels are not rule fields (yet).
        _ => return Ok((event.tenant_id, Vec::new())),
    };
    if event.message_id.is_empty() {
        return Err(HandlerError::Permanent(
            "delivery event without message_id".into(),
        ));
    }
    let at = event
        .occurred_at
        .as_ref()
        .and_then(mkt_contracts::from_timestamp)
        .ok_or_else(|| HandlerError::Permanent("delivery event without occurred_at".into()))?;
    let counted = engagement::record(
        conn,
        &event.tenant_id,
        customer,
        &event.message_id,
        engagement,
        at,
    )
    .await?;
    Ok((
        event.tenant_id,
        if counted { vec![customer] } else { Vec::new() },
    ))
}
