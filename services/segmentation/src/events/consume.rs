//! Handlers for consumed events. Each runs inside the consumer's transaction, together
//! with the inbox row, so a redelivery has no second effect.

use mkt_bus::consumer::{HandlerError, Subscription};
use mkt_contracts::v1;
use mkt_contracts::{required_instant, uuid_field};
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

/// Subscribes `handler` to its event type; after it, every customer it touched is
/// re-evaluated against the tenant's dynamic segments (see `service::membership`).
macro_rules! subscription {
    ($handler:ident) => {
        Subscription::on(crate::SPEC.name, |conn, event| {
            Box::pin(async move {
                let (tenant, customers) = $handler(conn, event).await?;
                if !customers.is_empty() {
                    membership::customers_changed(conn, &tenant, &customers, Utc::now()).await?;
                }
                Ok(())
            })
        })
    };
}

/// Every queue segmentation consumes.
pub fn subscriptions() -> Vec<Subscription> {
    vec![
        subscription!(customer_upserted),
        subscription!(customer_erased),
        subscription!(order_placed),
        subscription!(order_updated),
        subscription!(behaviour_tracked),
        subscription!(scores_updated),
        subscription!(delivery_recorded),
    ]
}

fn customer_id(raw: &str) -> Result<Uuid, HandlerError> {
    Ok(uuid_field(raw, "customer_id")?)
}

async fn customer_upserted(
    conn: &mut diesel_async::AsyncPgConnection,
    event: v1::CustomerUpserted,
) -> Result<Touched, HandlerError> {
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
    event: v1::CustomerErased,
) -> Result<Touched, HandlerError> {
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
    order: Option<v1::Order>,
) -> Result<Touched, HandlerError> {
    let order = order.ok_or_else(|| HandlerError::Permanent("event without order".into()))?;
    let status = order
        .current_status()
        .ok_or_else(|| HandlerError::Permanent(format!("unknown status {:?}", order.status)))?;
    let state = OrderState {
        order_id: uuid_field(&order.order_id, "order_id")?,
        customer_id: customer_id(&order.customer_id)?,
        status: status.name().to_owned(),
        total_amount: order.total_amount,
        currency: order.currency,
        promo_code: order.promo_code,
        ordered_at: required_instant(order.ordered_at.as_ref(), "ordered_at")?,
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
    event: v1::OrderPlaced,
) -> Result<Touched, HandlerError> {
    apply_order(conn, event.order).await
}

async fn order_updated(
    conn: &mut diesel_async::AsyncPgConnection,
    event: v1::OrderUpdated,
) -> Result<Touched, HandlerError> {
    apply_order(conn, event.order).await
}

async fn behaviour_tracked(
    conn: &mut diesel_async::AsyncPgConnection,
    event: v1::BehaviourTracked,
) -> Result<Touched, HandlerError> {
    let tracked = TrackedEvent {
        event_id: uuid_field(&event.event_id, "event_id")?,
        customer_id: customer_id(&event.customer_id)?,
        event_type: event.event_type,
        properties: serde_json::from_str(&event.properties_json)
            .unwrap_or_else(|_| serde_json::json!({})),
        occurred_at: required_instant(event.occurred_at.as_ref(), "occurred_at")?,
        tenant_id: event.tenant_id,
    };
    events::insert(conn, &tracked).await?;
    Ok((tracked.tenant_id, vec![tracked.customer_id]))
}

async fn scores_updated(
    conn: &mut diesel_async::AsyncPgConnection,
    event: v1::ScoresUpdated,
) -> Result<Touched, HandlerError> {
    let computed_at = required_instant(event.computed_at.as_ref(), "computed_at")?;
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
    event: v1::DeliveryRecorded,
) -> Result<Touched, HandlerError> {
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
    let at = required_instant(event.occurred_at.as_ref(), "occurred_at")?;
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
