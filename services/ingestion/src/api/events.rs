//! `/api/v2/cdp/events` handlers (seed 004's event tracking).

use actix_web::{HttpRequest, HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;

use super::common::{batch_items, parse, respond};
use crate::domain::event::{EventInput, EventRejection};
use crate::error::ApiError;
use crate::service::{self, Idempotency};

fn rejection(
    tenant: &str,
) -> impl Fn(EventInput) -> Result<crate::domain::event::ValidEvent, ApiError> + '_ {
    move |input| {
        input.validate(tenant).map_err(|r| match r {
            EventRejection::Invalid(errors) => ApiError::InvalidEvent(errors),
            EventRejection::TenantMismatch => ApiError::TenantMismatch,
        })
    }
}

/// Track one behaviour event.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/events",
    tag = "events",
    request_body = EventInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 201, description = "Tracked"),
        (status = 400, description = "Invalid event", body = mkt_error::ErrorEnvelope),
        (status = 403, description = "tenant_id differs from the token's", body = mkt_error::ErrorEnvelope),
        (status = 404, description = "Unknown customer", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn track(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::EVENTS_TRACK)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let event = rejection(principal.tenant.as_str())(parse(body.into_inner())?)?;
    Ok(respond(
        service::events::track(&infra, &principal.tenant, idempotency.as_ref(), event).await?,
    ))
}

/// A batch of events: `{"events": [...]}`, up to 1,000.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsBatch {
    /// The events (each as for a single POST).
    #[schema(value_type = Vec<EventInput>)]
    pub events: Vec<serde_json::Value>,
}

/// Track up to 1,000 events; valid ones commit even when others fail.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/events/batch",
    tag = "events",
    request_body = EventsBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 200, description = "Per-item results in request order"),
        (status = 413, description = "More than 1,000 items", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn track_batch(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::EVENTS_TRACK_BATCH)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let batch: EventsBatch = parse(body.into_inner())?;
    let items = batch_items::<EventInput, _>(batch.events, rejection(principal.tenant.as_str()))?;
    Ok(respond(
        service::events::track_batch(&infra, &principal.tenant, idempotency.as_ref(), items)
            .await?,
    ))
}
