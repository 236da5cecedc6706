//! Builds the events ingestion publishes and writes them to the outbox.

use diesel_async::AsyncPgConnection;
use mkt_bus::outbox::{OutgoingEvent, enqueue};
use mkt_contracts::Message;
use mkt_contracts::v1::{self, routing};

use crate::store::customers::CustomerRow;

/// `customer.upserted.v1` with the customer's full current state.
pub async fn customer_upserted(conn: &mut AsyncPgConnection, row: &CustomerRow) -> diesel::QueryResult<()> {
    let address = match (&row.street, &row.city, &row.state, &row.zip_code, &row.country) {
        (Some(street), Some(city), Some(state), Some(zip_code), Some(country)) => Some(v1::Address {
            street: street.clone(),
            city: city.clone(),
            state: state.clone(),
            zip_code: zip_code.clone(),
            country: country.clone(),
        }),
        _ => None,
    };
    let event = v1::CustomerUpserted {
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
        consent: Some(v1::Consent { email: row.consent_email, sms: row.consent_sms, push: row.consent_push }),
        version: row.version,
    };
    enqueue(
        conn,
        &OutgoingEvent {
            routing_key: routing::CUSTOMER_UPSERTED,
            tenant_id: row.tenant_id.clone(),
            aggregate_id: row.id.to_string(),
            payload: event.encode_to_vec(),
        },
    )
    .await?;
    Ok(())
}
