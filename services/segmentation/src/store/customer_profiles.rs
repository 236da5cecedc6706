//! Queries on `customer_profiles`, the read model of ingestion's customers.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::customer_profiles;

/// A profile as received from a `customer.upserted` event.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customer_profiles)]
pub struct ProfileUpsert {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Store's id.
    pub external_id: Option<String>,
    /// Lower-cased address as ingestion stored it; `None` once the customer is erased.
    pub email: Option<String>,
    /// Full name as ingestion stored it; `None` once the customer is erased.
    pub name: Option<String>,
    /// Phone number as given: digits, spaces and `+ - ( ) .` only, at most 32 characters (not
    /// normalised to E.164).
    pub phone: Option<String>,
    /// City as given, not normalised.
    pub city: Option<String>,
    /// State or region as given (free text, not a code list).
    pub state: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// Country as given: free text up to 100 characters, not checked against ISO 3166.
    pub country: Option<String>,
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
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
    pub signed_up_at: Option<DateTime<Utc>>,
    /// Ingestion's version.
    pub version: i64,
}

/// Applies an upsert unless the stored version is newer or equal, or the customer was
/// erased. Returns whether anything changed.
pub async fn apply_upsert(
    conn: &mut AsyncPgConnection,
    profile: &ProfileUpsert,
) -> QueryResult<bool> {
    use customer_profiles::dsl as p;
    // Row-locked read first: the version check and the write must see the same row.
    let stored: Option<(i64, Option<DateTime<Utc>>)> = p::customer_profiles
        .filter(p::tenant_id.eq(&profile.tenant_id))
        .filter(p::customer_id.eq(profile.customer_id))
        .select((p::version, p::erased_at))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if let Some((version, erased_at)) = stored
        && (erased_at.is_some() || version >= profile.version)
    {
        return Ok(false);
    }
    let changed = diesel::insert_into(customer_profiles::table)
        .values(profile)
        .on_conflict((p::tenant_id, p::customer_id))
        .do_update()
        .set((
            p::external_id.eq(excluded(p::external_id)),
            p::email.eq(excluded(p::email)),
            p::name.eq(excluded(p::name)),
            p::phone.eq(excluded(p::phone)),
            p::city.eq(excluded(p::city)),
            p::state.eq(excluded(p::state)),
            p::zip_code.eq(excluded(p::zip_code)),
            p::country.eq(excluded(p::country)),
            p::loyalty_tier.eq(excluded(p::loyalty_tier)),
            p::attributes.eq(excluded(p::attributes)),
            p::consent_email.eq(excluded(p::consent_email)),
            p::consent_sms.eq(excluded(p::consent_sms)),
            p::consent_push.eq(excluded(p::consent_push)),
            p::signed_up_at.eq(excluded(p::signed_up_at)),
            p::version.eq(excluded(p::version)),
            p::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(changed > 0)
}

/// Erases a profile's personal data and leaves a tombstone that blocks later upserts.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    use customer_profiles::dsl as p;
    diesel::insert_into(customer_profiles::table)
        .values((
            p::tenant_id.eq(tenant),
            p::customer_id.eq(customer),
            p::version.eq(i64::MAX),
            p::erased_at.eq(at),
        ))
        .on_conflict((p::tenant_id, p::customer_id))
        .do_update()
        .set((
            p::external_id.eq(None::<String>),
            p::email.eq(None::<String>),
            p::name.eq(None::<String>),
            p::phone.eq(None::<String>),
            p::city.eq(None::<String>),
            p::state.eq(None::<String>),
            p::zip_code.eq(None::<String>),
            p::attributes.eq(serde_json::json!({})),
            p::erased_at.eq(at),
            p::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stamps `customers` as changed by this transaction (the engine's change feed), making
/// a stub profile for one not seen yet (its events may arrive before its profile).
pub async fn touch(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customers: &[Uuid],
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO customer_profiles (tenant_id, customer_id, version) \
         SELECT $1, id, 0 FROM unnest($2::uuid[]) AS t(id) \
         ON CONFLICT (tenant_id, customer_id) \
         DO UPDATE SET revision = pg_current_xact_id()::text::bigint",
    )
    .bind::<diesel::sql_types::Text, _>(tenant)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(customers)
    .execute(conn)
    .await?;
    Ok(())
}
