//! Queries on `tenant_settings`.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::tenant_settings;

/// The tenant's RFM mapping, if it configured one.
pub async fn rfm_rules(
    conn: &mut AsyncPgConnection,
    tenant: &str,
) -> QueryResult<Option<serde_json::Value>> {
    Ok(tenant_settings::table
        .find(tenant)
        .select(tenant_settings::rfm_rules)
        .first::<Option<serde_json::Value>>(conn)
        .await
        .optional()?
        .flatten())
}

/// Stores the tenant's RFM mapping (`None`: back to the default).
pub async fn set_rfm_rules(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    rules: Option<serde_json::Value>,
) -> QueryResult<()> {
    diesel::insert_into(tenant_settings::table)
        .values((
            tenant_settings::tenant_id.eq(tenant),
            tenant_settings::rfm_rules.eq(&rules),
            tenant_settings::updated_at.eq(Utc::now()),
        ))
        .on_conflict(tenant_settings::tenant_id)
        .do_update()
        .set((
            tenant_settings::rfm_rules.eq(&rules),
            tenant_settings::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's nightly schedule: whether it runs and at which UTC hour.
pub async fn schedule(conn: &mut AsyncPgConnection, tenant: &str) -> QueryResult<(bool, i32)> {
    Ok(tenant_settings::table
        .find(tenant)
        .select((
            tenant_settings::schedule_enabled,
            tenant_settings::schedule_hour_utc,
        ))
        .first(conn)
        .await
        .optional()?
        .unwrap_or((true, DEFAULT_HOUR_UTC)))
}

/// The nightly run's hour when a tenant set none.
pub const DEFAULT_HOUR_UTC: i32 = 2;

/// Stores the tenant's nightly schedule.
pub async fn set_schedule(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    enabled: bool,
    hour_utc: i32,
) -> QueryResult<()> {
    diesel::insert_into(tenant_settings::table)
        .values((
            tenant_settings::tenant_id.eq(tenant),
            tenant_settings::schedule_enabled.eq(enabled),
            tenant_settings::schedule_hour_utc.eq(hour_utc),
            tenant_settings::updated_at.eq(Utc::now()),
        ))
        .on_conflict(tenant_settings::tenant_id)
        .do_update()
        .set((
            tenant_settings::schedule_enabled.eq(enabled),
            tenant_settings::schedule_hour_utc.eq(hour_utc),
            tenant_settings::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
