//! Builds the events ingestion publishes and writes them to the outbox.

use diesel_async::AsyncPgConnection;
use mkt_bus::outbox::{OutgoingEvent, enqueue};
use mkt_contracts::v1;

use crate::domain::order::OrderStatus;

use crate::store::customers::CustomerRow;
use crate::store::events::EventRow;
use crate::store::orders::{ItemRow, OrderRow};

/// `customer.upserted.v1` for many customers in one statement.
pub async fn customers_upserted(
    conn: &mut AsyncPgConnection,
    rows: &[CustomerRow],
) -> diesel::QueryResult<()> {
    let events: Vec<OutgoingEvent> = rows
        .iter()
        .map(|row| OutgoingEvent::of(&customer_upserted_event(row)))
        .collect();
    mkt_bus::outbox::enqueue_many(conn, &events).await
}

/// `customer.upserted.v1` with the customer's full current state.
pub async fn customer_upserted(
    conn: &mut AsyncPgConnection,
    row: &CustomerRow,
) -> diesel::QueryResult<()> {
    enqueue(conn, &customer_upserted_event(row)).await?;
    Ok(())
}

fn customer_upserted_event(row: &CustomerRow) -> v1::CustomerUpserted {
    let address = match (
        &row.street,
        &row.city,
        &row.state,
        &row.zip_code,
        &row.country,
    ) {
        (Some(street), Some(city), Some(state), Some(zip_code), Some(country)) => {
            Some(v1::Address {
                street: street.clone(),
                city: city.clone(),
                state: state.clone(),
                zip_code: zip_code.clone(),
                country: country.clone(),
            })
        }
        _ => None,
    };
    v1::CustomerUpserted {
        tenant_id: row.tenant_id.clone(),
        customer_id: row.id.to_string(),
        external_id: row.external_id.clone(),
        email: row.email.clone(),
        name: row.name.clone(),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        phone: row.phone.clone(),
        address,
        created_at: Some(mkt_contracts::timestamp(row.created_at)),
        updated_at: Some(mkt_contracts::timestamp(row.updated_at)),
        loyalty_tier: row.loyalty_tier.clone(),
        attributes_json: row.attributes.to_string(),
        consent: Some(v1::Consent {
            email: row.consent_email,
            sms: row.consent_sms,
            push: row.consent_push,
        }),
        version: row.version,
    }
}

/// `customer.erased.v1`.
pub async fn customer_erased(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer_id: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> diesel::QueryResult<()> {
    let event = v1::CustomerErased {
        tenant_id: tenant.to_owned(),
        customer_id: customer_id.to_string(),
        erased_at: Some(mkt_contracts::timestamp(at)),
    };
    enqueue(conn, &event).await?;
    Ok(())
}

fn order_message(order: &OrderRow, items: &[ItemRow]) -> v1::Order {
    let status = OrderStatus::from_name(&order.status).unwrap_or(OrderStatus::Unspecified);
    v1::Order {
        tenant_id: order.tenant_id.clone(),
        order_id: order.id.to_string(),
        external_id: order.external_id.clone(),
        customer_id: order.customer_id.to_string(),
        total_amount: order.total_amount,
        currency: order.currency.clone(),
        status: order.status.clone(),
        promo_code: order.promo_code.clone(),
        ordered_at: Some(mkt_contracts::timestamp(order.ordered_at)),
        items: items
            .iter()
            .map(|i| v1::OrderItem {
                item_id: i.id.to_string(),
                product_id: i.product_id.clone(),
                name: i.name.clone(),
                price: i.price,
                quantity: i.quantity,
                total: i.total,
            })
            .collect(),
        version: order.version,
        status_code: status as i32,
    }
}

/// `order.placed.v1` (aggregate: the customer, see `mkt_contracts::Event`).
pub async fn order_placed(
    conn: &mut AsyncPgConnection,
    order: &OrderRow,
    items: &[ItemRow],
) -> diesel::QueryResult<()> {
    let event = v1::OrderPlaced {
        order: Some(order_message(order, items)),
    };
    enqueue(conn, &event).await?;
    Ok(())
}

/// `order.updated.v1` with the previous status.
pub async fn order_updated(
    conn: &mut AsyncPgConnection,
    order: &OrderRow,
    items: &[ItemRow],
    previous_status: OrderStatus,
) -> diesel::QueryResult<()> {
    let event = v1::OrderUpdated {
        order: Some(order_message(order, items)),
        // The deprecated string is still written until every consumer reads the enum.
        previous_status: previous_status.name().to_owned(),
        previous_status_code: previous_status as i32,
    };
    enqueue(conn, &event).await?;
    Ok(())
}

/// `behaviour.tracked.v1`.
pub async fn behaviour_tracked(
    conn: &mut AsyncPgConnection,
    row: &EventRow,
) -> diesel::QueryResult<()> {
    let event = v1::BehaviourTracked {
        tenant_id: row.tenant_id.clone(),
        event_id: row.id.to_string(),
        customer_id: row.customer_id.to_string(),
        event_type: row.event_type.clone(),
        properties_json: row.properties.to_string(),
        occurred_at: Some(mkt_contracts::timestamp(row.occurred_at)),
    };
    enqueue(conn, &event).await?;
    Ok(())
}
