//! What cdp-analytics publishes, always through the outbox in the transaction that
//! stores the scores: `analytics.scores.updated.v1` and `churn.alert.v1`.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use mkt_bus::outbox::{OutgoingEvent, enqueue_many};
use mkt_contracts::Message;
use mkt_contracts::v1::{self, routing};
use uuid::Uuid;

use crate::store::scores::ScoreRow;

/// Customers per `analytics.scores.updated.v1` message.
pub const SCORES_PER_MESSAGE: usize = 1_000;

/// The run's scores, in slices of [`SCORES_PER_MESSAGE`] customers.
pub async fn scores_updated(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    run: Uuid,
    computed_at: DateTime<Utc>,
    rows: &[ScoreRow],
) -> diesel::QueryResult<()> {
    let events: Vec<OutgoingEvent> = rows
        .chunks(SCORES_PER_MESSAGE)
        .map(|chunk| {
            let event = v1::ScoresUpdated {
                tenant_id: tenant.to_owned(),
                run_id: run.to_string(),
                computed_at: Some(mkt_contracts::timestamp(computed_at)),
                as_of: chunk.first().map(|r| mkt_contracts::timestamp(r.as_of)),
                scores: chunk
                    .iter()
                    .map(|r| v1::CustomerScores {
                        customer_id: r.customer_id.to_string(),
                        rfm_segment: r.rfm_segment.clone(),
                        recency_score: r.recency_score,
                        frequency_score: r.frequency_score,
                        monetary_score: r.monetary_score,
                        clv: r.predicted_value,
                        clv_tier: r.clv_tier.clone(),
                        churn_risk: r.churn_risk.clone(),
                        churn_probability: r.churn_probability,
                        currency: r.currency.clone().unwrap_or_default(),
                    })
                    .collect(),
            };
            OutgoingEvent {
                routing_key: routing::ANALYTICS_SCORES_UPDATED,
                tenant_id: tenant.to_owned(),
                aggregate_id: tenant.to_owned(),
                payload: event.encode_to_vec(),
            }
        })
        .collect();
    enqueue_many(conn, &events).await
}

/// A customer crossed into churning.
#[derive(Debug, Clone)]
pub struct ChurnCrossing {
    /// Customer.
    pub customer_id: Uuid,
    /// Risk before this run.
    pub previous_risk: String,
    /// Probability now.
    pub probability: f64,
}

/// One `churn.alert.v1` per crossing.
pub async fn churn_alerts(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    run: Uuid,
    at: DateTime<Utc>,
    crossings: &[ChurnCrossing],
) -> diesel::QueryResult<()> {
    let events: Vec<OutgoingEvent> = crossings
        .iter()
        .map(|c| OutgoingEvent {
            routing_key: routing::CHURN_ALERT,
            tenant_id: tenant.to_owned(),
            aggregate_id: c.customer_id.to_string(),
            payload: v1::ChurnAlert {
                tenant_id: tenant.to_owned(),
                customer_id: c.customer_id.to_string(),
                previous_risk: c.previous_risk.clone(),
                risk: "churning".into(),
                churn_probability: c.probability,
                detected_at: Some(mkt_contracts::timestamp(at)),
                run_id: run.to_string(),
            }
            .encode_to_vec(),
        })
        .collect();
    enqueue_many(conn, &events).await
}
