//! Queries on `customers`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::customers;
use crate::domain::CustomerRef;
use crate::domain::customer::{ValidCustomer, ValidPatch};

/// A stored customer.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
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
    /// Phone number as given: digits, spaces and `+ - ( ) .` only, at most 32 characters (not
    /// normalised to E.164).
    pub phone: Option<String>,
    /// Street line as given (required whenever an address is).
    pub street: Option<String>,
    /// City as given, not normalised.
    pub city: Option<String>,
    /// State or region.
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
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Change counter.
    pub version: i64,
    /// Set when the customer was erased (GDPR).
    pub erased_at: Option<DateTime<Utc>>,
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
/// created. The sign-up time kept is the earliest known one, so a re-sent customer
/// keeps its history while a backfill can move it earlier.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: &ValidCustomer,
) -> QueryResult<CustomerRow> {
    let mut rows = upsert_many(conn, tenant, std::slice::from_ref(customer)).await?;
    rows.pop().ok_or(diesel::result::Error::NotFound)
}

/// Upserts many customers in one statement. Emails must be distinct within the call
/// (Postgres cannot update one row twice in a statement); callers dedupe first.
pub async fn upsert_many(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    batch: &[ValidCustomer],
) -> QueryResult<Vec<CustomerRow>> {
    let now = Utc::now();
    let rows: Vec<NewCustomerRow<'_>> = batch
        .iter()
        .map(|customer| {
            let address = customer.address.as_ref();
            NewCustomerRow {
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
            }
        })
        .collect();
    diesel::insert_into(customers::table)
        .values(&rows)
        .on_conflict((customers::tenant_id, customers::email))
        .do_update()
        .set((
            customers::external_id.eq(diesel::dsl::sql(
                "COALESCE(excluded.external_id, customers.external_id)",
            )),
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
            customers::created_at.eq(diesel::dsl::sql(
                "LEAST(customers.created_at, excluded.created_at)",
            )),
            customers::updated_at.eq(excluded(customers::updated_at)),
            customers::version.eq(customers::version + 1),
        ))
        .returning(CustomerRow::as_returning())
        .get_results(conn)
        .await
}

/// One customer of `tenant` by our id.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .filter(customers::tenant_id.eq(tenant))
        .filter(customers::id.eq(id))
        .filter(customers::erased_at.is_null())
        .select(CustomerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// One customer of `tenant` by any reference (id, external id, email).
pub async fn find_by_ref(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    reference: &CustomerRef,
) -> QueryResult<Option<CustomerRow>> {
    let query = customers::table
        .filter(customers::tenant_id.eq(tenant))
        .filter(customers::erased_at.is_null())
        .select(CustomerRow::as_select())
        .into_boxed();
    let query = match reference {
        CustomerRef::Id(id) => query.filter(customers::id.eq(*id)),
        CustomerRef::External(external) => query.filter(customers::external_id.eq(external)),
        CustomerRef::Email(email) => query.filter(customers::email.eq(email)),
    };
    query.first(conn).await.optional()
}

/// Filters of the customer list.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// Exact (normalised) email.
    pub email: Option<String>,
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
    pub loyalty_tier: Option<String>,
    /// Signed up at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Signed up before.
    pub created_before: Option<DateTime<Utc>>,
    /// Case-insensitive substring of name or email.
    pub search: Option<String>,
}

/// A page of customers, newest sign-ups first, and the total matching.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    filter: &ListFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<CustomerRow>, i64)> {
    let build = || {
        let mut query = customers::table
            .filter(customers::tenant_id.eq(tenant))
            .filter(customers::erased_at.is_null())
            .into_boxed();
        if let Some(email) = &filter.email {
            query = query.filter(customers::email.eq(email.clone()));
        }
        if let Some(tier) = &filter.loyalty_tier {
            query = query.filter(customers::loyalty_tier.eq(tier.clone()));
        }
        if let Some(after) = filter.created_after {
            query = query.filter(customers::created_at.ge(after));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(customers::created_at.lt(before));
        }
        if let Some(search) = &filter.search {
            let pattern = format!(
                "%{}%",
                search
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            query = query.filter(
                customers::name
                    .ilike(pattern.clone())
                    .or(customers::email.ilike(pattern)),
            );
        }
        query
    };
    let total = build().count().get_result(conn).await?;
    let rows = build()
        .order((customers::created_at.desc(), customers::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(CustomerRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Applies a validated patch to a locked row and bumps its version.
pub async fn apply_patch(
    conn: &mut AsyncPgConnection,
    current: &CustomerRow,
    patch: &ValidPatch,
) -> QueryResult<CustomerRow> {
    let mut next = current.clone();
    if let Some(name) = &patch.name {
        next.name = name.clone();
    }
    if let Some(email) = &patch.email {
        next.email = email.as_str().to_owned();
    }
    if let Some(phone) = &patch.phone {
        next.phone = phone.clone();
    }
    if let Some(address) = &patch.address {
        next.street = address.as_ref().map(|a| a.street.clone());
        next.city = address.as_ref().map(|a| a.city.clone());
        next.state = address.as_ref().map(|a| a.state.clone());
        next.zip_code = address.as_ref().map(|a| a.zip_code.clone());
        next.country = address.as_ref().map(|a| a.country.clone());
    }
    if let Some(v) = &patch.first_name {
        next.first_name = v.clone();
    }
    if let Some(v) = &patch.last_name {
        next.last_name = v.clone();
    }
    if let Some(v) = &patch.external_id {
        next.external_id = v.clone();
    }
    if let Some(v) = &patch.loyalty_tier {
        next.loyalty_tier = v.clone();
    }
    if let Some(merge) = &patch.attributes
        && let Some(object) = next.attributes.as_object_mut()
    {
        for (key, value) in merge {
            if value.is_null() {
                object.remove(key);
            } else {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    next.consent_email = patch.consent.email.unwrap_or(next.consent_email);
    next.consent_sms = patch.consent.sms.unwrap_or(next.consent_sms);
    next.consent_push = patch.consent.push.unwrap_or(next.consent_push);
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(&current.tenant_id))
            .filter(customers::id.eq(current.id)),
    )
    .set((
        customers::name.eq(&next.name),
        customers::email.eq(&next.email),
        customers::phone.eq(&next.phone),
        customers::street.eq(&next.street),
        customers::city.eq(&next.city),
        customers::state.eq(&next.state),
        customers::zip_code.eq(&next.zip_code),
        customers::country.eq(&next.country),
        customers::first_name.eq(&next.first_name),
        customers::last_name.eq(&next.last_name),
        customers::external_id.eq(&next.external_id),
        customers::loyalty_tier.eq(&next.loyalty_tier),
        customers::attributes.eq(&next.attributes),
        customers::consent_email.eq(next.consent_email),
        customers::consent_sms.eq(next.consent_sms),
        customers::consent_push.eq(next.consent_push),
        customers::updated_at.eq(Utc::now()),
        customers::version.eq(customers::version + 1),
    ))
    .returning(CustomerRow::as_returning())
    .get_result(conn)
    .await
}

/// Locks one customer row for an update in the caller's transaction.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .filter(customers::tenant_id.eq(tenant))
        .filter(customers::id.eq(id))
        .filter(customers::erased_at.is_null())
        .select(CustomerRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Wipes every personal field of the customer, deletes its behaviour events, and marks
/// it erased. The row stays because orders (financial records) reference its id.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    use super::schema::behaviour_events;
    diesel::delete(
        behaviour_events::table
            .filter(behaviour_events::tenant_id.eq(tenant))
            .filter(behaviour_events::customer_id.eq(id)),
    )
    .execute(conn)
    .await?;
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(tenant))
            .filter(customers::id.eq(id)),
    )
    .set((
        customers::email.eq(format!("erased+{id}@invalid")),
        customers::name.eq(""),
        customers::external_id.eq(None::<String>),
        customers::first_name.eq(None::<String>),
        customers::last_name.eq(None::<String>),
        customers::phone.eq(None::<String>),
        customers::street.eq(None::<String>),
        customers::city.eq(None::<String>),
        customers::state.eq(None::<String>),
        customers::zip_code.eq(None::<String>),
        customers::country.eq(None::<String>),
        customers::loyalty_tier.eq(None::<String>),
        customers::attributes.eq(serde_json::json!({})),
        customers::consent_email.eq(false),
        customers::consent_sms.eq(false),
        customers::consent_push.eq(false),
        customers::updated_at.eq(at),
        customers::erased_at.eq(at),
        customers::version.eq(customers::version + 1),
    ))
    .execute(conn)
    .await?;
    Ok(())
}
