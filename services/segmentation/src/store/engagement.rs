//! Queries on `customer_engagements` and the engagement counters of `customer_scores`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{customer_engagements, customer_scores};

/// What a delivery event means for the rules' engagement fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engagement {
    /// An email was opened (counted once per message).
    EmailOpened,
    /// A link in an email was clicked (counted once per message).
    EmailClicked,
    /// The customer unsubscribed from email.
    EmailUnsubscribed,
}

impl Engagement {
    fn key(self) -> &'static str {
        match self {
            Engagement::EmailOpened => "email_opened",
            Engagement::EmailClicked => "email_clicked",
            Engagement::EmailUnsubscribed => "email_unsubscribed",
        }
    }
}

/// Records one engagement; returns false when this message already counted for it.
pub async fn record(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    message_id: &str,
    engagement: Engagement,
    at: DateTime<Utc>,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(customer_engagements::table)
        .values((
            customer_engagements::tenant_id.eq(tenant),
            customer_engagements::customer_id.eq(customer),
            customer_engagements::message_id.eq(message_id),
            customer_engagements::kind.eq(engagement.key()),
            customer_engagements::occurred_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    use customer_scores::dsl as s;
    let (opened, clicked, unsubscribed) = match engagement {
        Engagement::EmailOpened => (1i64, 0i64, false),
        Engagement::EmailClicked => (0, 1, false),
        Engagement::EmailUnsubscribed => (0, 0, true),
    };
    diesel::insert_into(s::customer_scores)
        .values((
            s::tenant_id.eq(tenant),
            s::customer_id.eq(customer),
            s::emails_opened.eq(opened),
            s::emails_clicked.eq(clicked),
            s::unsubscribed.eq(unsubscribed),
        ))
        .on_conflict((s::tenant_id, s::customer_id))
        .do_update()
        .set((
            s::emails_opened.eq(s::emails_opened + opened),
            s::emails_clicked.eq(s::emails_clicked + clicked),
            s::unsubscribed
                .eq(s::unsubscribed.or(unsubscribed.into_sql::<diesel::sql_types::Bool>())),
            s::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}
