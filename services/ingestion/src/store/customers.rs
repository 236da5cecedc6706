//! Queries on `customers`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::customers;
use crate::domain::customer::ValidCustomer;

/// A stored customer.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    /// Tenant.
    pub tenant_id: String,
    /// Our id.
    pub id: Uuid,
    /// Store's id.
    pub external_id: Option<String>,
    /// Lower-cased email.
    pub email: String,
    /// Full name.
    pub name: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Street.
    pub street: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Loyalty tier.
    pub loyalty_tier: Option<String>,
    /// Custom traits.
    pub attributes: serde_json::Value,
    /// Email consent.
    pub consent_email: bool,
    /// SMS consent.
    pub consent_sms: bool,
    /// Push consent.
    pub consent_push: bool,
    /// Sign-up time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Change counter.
    pub version: i64,
}

#[derive(Insertable)]
#[diesel(table_name = customers)]
struct NewCustomerRow<'a> {
    tenant_id: &'a str,
    id: Uuid,
    external_id: Option<&'a str>,
    email: &'a str,
    name: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    phone: Option<&'a str>,
    street: Option<&'a str>,
    city: Option<&'a str>,
    state: Option<&'a str>,
    zip_code: Option<&'a str>,
    country: Option<&'a str>,
    loyalty_tier: Option<&'a str>,
    attributes: &'a serde_json::Value,
    consent_email: bool,
    consent_sms: bool,
    consent_push: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

/// Inserts or updates by (tenant, email). Returns the row; `version == 1` means it was
/// created. On update, `created_at` keeps its stored value unless the caller sent one.
pub async fn upsert(conn: &mut AsyncPgConnection, tenant: &str, customer: &ValidCustomer) -> QueryResult<CustomerRow> {
    let now = Utc::now();
    let address = customer.address.as_ref();
    let row = NewCustomerRow {
        tenant_id: tenant,
        id: Uuid::now_v7(),
        external_id: customer.external_id.as_deref(),
        email: customer.email.as_str(),
        name: &customer.name,
        first_name: customer.first_name.as_deref(),
        last_name: customer.last_name.as_deref(),
        phone: customer.phone.as_deref(),
        street: address.map(|a| a.street.as_str()),
        city: address.map(|a| a.city.as_str()),
        state: address.map(|a| a.state.as_str()),
        zip_code: address.map(|a| a.zip_code.as_str()),
        country: address.map(|a| a.country.as_str()),
        loyalty_tier: customer.loyalty_tier.as_deref(),
        attributes: &customer.attributes,
        consent_email: customer.consent.email,
        consent_sms: customer.consent.sms,
        consent_push: customer.consent.push,
        created_at: customer.created_at.unwrap_or(now),
        updated_at: now,
        version: 1,
    };
    // A re-sent customer keeps its sign-up time unless the store sends one (backfills).
    let created_at = diesel::dsl::sql::<diesel::sql_types::Timestamptz>("CASE WHEN ")
        .bind::<diesel::sql_types::Bool, _>(customer.created_at.is_some())
        .sql(" THEN excluded.created_at ELSE customers.created_at END");
    diesel::insert_into(customers::table)
        .values(&row)
        .on_conflict((customers::tenant_id, customers::email))
        .do_update()
        .set((
            customers::external_id.eq(diesel::dsl::sql("COALESCE(excluded.external_id, customers.external_id)")),
            customers::name.eq(excluded(customers::name)),
            customers::first_name.eq(excluded(customers::first_name)),
            customers::last_name.eq(excluded(customers::last_name)),
            customers::phone.eq(excluded(customers::phone)),
            customers::street.eq(excluded(customers::street)),
            customers::city.eq(excluded(customers::city)),
            customers::state.eq(excluded(customers::state)),
            customers::zip_code.eq(excluded(customers::zip_code)),
            customers::country.eq(excluded(customers::country)),
            customers::loyalty_tier.eq(excluded(customers::loyalty_tier)),
            customers::attributes.eq(excluded(customers::attributes)),
            customers::consent_email.eq(excluded(customers::consent_email)),
            customers::consent_sms.eq(excluded(customers::consent_sms)),
            customers::consent_push.eq(excluded(customers::consent_push)),
            customers::created_at.eq(created_at),
            customers::updated_at.eq(excluded(customers::updated_at)),
            customers::version.eq(customers::version + 1),
        ))
        .returning(CustomerRow::as_returning())
        .get_result(conn)
        .await
}

/// One customer of `tenant` by our id.
pub async fn find(conn: &mut AsyncPgConnection, tenant: &str, id: Uuid) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .filter(customers::tenant_id.eq(tenant))
        .filter(customers::id.eq(id))
        .select(CustomerRow::as_select())
        .first(conn)
        .await
        .optional()
}
