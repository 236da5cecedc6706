//! What segmentation publishes, always through the outbox in the transaction that made
//! the change: `segment.membership.changed.v1`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use mkt_bus::outbox::{OutgoingEvent, enqueue_many};
use mkt_contracts::v1;
use uuid::Uuid;

use crate::store::members::{Change, MembershipChange};

pub use v1::MembershipReason as Reason;

/// One `segment.membership.changed.v1` per change; `names` holds each segment's name.
pub async fn membership_changed(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    changes: &[MembershipChange],
    names: &HashMap<Uuid, String>,
    reason: Reason,
    at: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let events: Vec<OutgoingEvent> = changes
        .iter()
        .map(|c| {
            OutgoingEvent::of(&v1::SegmentMembershipChanged {
                tenant_id: tenant.to_owned(),
                segment_id: c.segment_id.to_string(),
                customer_id: c.customer_id.to_string(),
                change: match c.change {
                    Change::Entered => v1::MembershipChange::Entered,
                    Change::Exited => v1::MembershipChange::Exited,
                } as i32,
                reason: reason as i32,
                changed_at: Some(mkt_contracts::timestamp(at)),
                segment_name: names.get(&c.segment_id).cloned().unwrap_or_default(),
            })
        })
        .collect();
    // Large recomputations go out in slices so one statement stays bounded.
    for chunk in events.chunks(1_000) {
        enqueue_many(conn, chunk).await?;
    }
    Ok(())
}
