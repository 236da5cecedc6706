//! What cdp-analytics publishes: `analytics.scores.updated.v1` and `churn.alert.v1`,
//! encoded here and written to the outbox by the processing run, in the transaction that
//! swaps its scores in.

use chrono::{DateTime, Utc};
use mkt_bus::outbox::OutgoingEvent;
use mkt_contracts::v1;
use uuid::Uuid;

use crate::store::scores::{Crossing, RunScores};

/// Customers per `analytics.scores.updated.v1` message.
pub const SCORES_PER_MESSAGE: usize = 1_000;

/// The run's scores as `analytics.scores.updated.v1` events, in slices of
/// [`SCORES_PER_MESSAGE`] customers, ready for the outbox. Pure encoding, so a run builds
/// them before its write transaction opens.
pub fn scores_updated(scores: &RunScores<'_>, computed_at: DateTime<Utc>) -> Vec<OutgoingEvent> {
    let run = scores.run.to_string();
    let computed_at = mkt_contracts::timestamp(computed_at);
    let as_of = mkt_contracts::timestamp(scores.as_of);
    scores
        .customers
        .chunks(SCORES_PER_MESSAGE)
        .map(|chunk| {
            OutgoingEvent::of(&v1::ScoresUpdated {
                tenant_id: scores.tenant.to_owned(),
                run_id: run.clone(),
                computed_at: Some(computed_at),
                as_of: Some(as_of),
                scores: chunk
                    .iter()
                    .map(|c| v1::CustomerScores {
                        customer_id: c.customer_id.to_string(),
                        rfm_segment: c.rfm.as_ref().map(|r| r.1.clone()),
                        recency_score: c.rfm.as_ref().map(|r| i32::from(r.0.recency)),
                        frequency_score: c.rfm.as_ref().map(|r| i32::from(r.0.frequency)),
                        monetary_score: c.rfm.as_ref().map(|r| i32::from(r.0.monetary)),
                        clv: c.clv.map(|v| v.0),
                        clv_tier: c.clv_tier.map(str::to_owned),
                        churn_risk: c.churn.map(|v| v.1.to_owned()),
                        churn_probability: c.churn.map(|v| v.0),
                        currency: scores.currency.to_owned(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// One `churn.alert.v1` per crossing, ready for the outbox.
pub fn churn_alerts(
    tenant: &str,
    run: Uuid,
    at: DateTime<Utc>,
    crossings: &[Crossing],
) -> Vec<OutgoingEvent> {
    crossings
        .iter()
        .map(|c| {
            OutgoingEvent::of(&v1::ChurnAlert {
                tenant_id: tenant.to_owned(),
                customer_id: c.customer_id.to_string(),
                previous_risk: c.previous_risk.clone(),
                risk: "churning".into(),
                churn_probability: c.churn_probability,
                detected_at: Some(mkt_contracts::timestamp(at)),
                run_id: run.to_string(),
            })
        })
        .collect()
}
