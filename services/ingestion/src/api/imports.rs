//! `/api/v2/cdp/imports` handlers: CSV upload, status, live progress (SSE), rejection
//! report.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::StreamExt;
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::import::{ImportKind, MAX_UPLOAD_BYTES};
use crate::error::ApiError;
use crate::service;
use crate::store::imports::JobRow;
use crate::views::envelope;

/// `?type=customers|orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// What the file holds: `customers` or `orders`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// An import job as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportData {
    /// Job id.
    pub id: Uuid,
    /// customers | orders.
    #[serde(rename = "type")]
    pub kind: String,
    /// receiving | queued | processing | completed | failed.
    pub status: String,
    /// Data rows received.
    pub total_rows: i64,
    /// Rows processed.
    pub processed_rows: i64,
    /// Rows imported.
    pub succeeded_rows: i64,
    /// Rows rejected (see `rejections_url`).
    pub rejected_rows: i64,
    /// processed / total, 0-100, two decimals.
    pub progress: f64,
    /// Why the job failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Finished.
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Live progress (server-sent events).
    pub events_url: String,
    /// The rejected rows with reasons, as CSV.
    pub rejections_url: String,
}

impl From<JobRow> for ImportData {
    fn from(job: JobRow) -> Self {
        let progress = if job.total_rows == 0 {
            if job.status == "completed" {
                100.0
            } else {
                0.0
            }
        } else {
            ((job.processed_rows as f64 / job.total_rows as f64) * 10_000.0).round() / 100.0
        };
        ImportData {
            events_url: format!("/api/v2/cdp/imports/{}/events", job.id),
            rejections_url: format!("/api/v2/cdp/imports/{}/rejections", job.id),
            id: job.id,
            kind: job.kind,
            status: job.status,
            total_rows: job.total_rows,
            processed_rows: job.processed_rows,
            succeeded_rows: job.succeeded_rows,
            rejected_rows: job.rejected_rows,
            progress,
            error: job.error,
            created_at: job.created_at,
            completed_at: job.completed_at,
        }
    }
}

/// Upload a CSV (body `text/csv`, streamed, any size up to 10M rows); 202 with the job.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/imports",
    tag = "imports",
    params(UploadQuery),
    request_body(content = String, content_type = "text/csv", description = "customers: name,email,phone,street,city,state,zip_code,country,first_name,last_name,external_id,created_at,loyalty_tier,consent_email,consent_sms,consent_push; orders (one row per line item): order_external_id,customer_email|customer_external_id|customer_id,ordered_at,currency,status,promo_code,product_id,name,price,quantity"),
    responses(
        (status = 202, description = "Received and queued", body = ImportData),
        (status = 400, description = "Bad type, header or file", body = mkt_error::ErrorEnvelope),
        (status = 413, description = "Over the upload's byte cap (`payload_too_large`)", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<UploadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::IMPORTS_UPLOAD)?;
    let kind = ImportKind::parse(&query.kind).ok_or_else(|| {
        let mut errors = crate::domain::FieldErrors::new();
        crate::domain::push(&mut errors, "type", "must be customers or orders");
        ApiError::InvalidQuery(errors)
    })?;
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.starts_with("text/csv")
        || content_type.starts_with("application/octet-stream"))
    {
        return Err(ApiError::InvalidHeader("Content-Type", "must be text/csv"));
    }
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok());
    if mkt_csv::declared_over(declared, MAX_UPLOAD_BYTES) {
        return Err(ApiError::UploadTooLarge(MAX_UPLOAD_BYTES));
    }
    // The request payload is tied to this worker thread; the relay hands its chunks to
    // the Send stream the CSV reader needs, keeping back-pressure and the byte cap.
    let (pump, body, overflow) = mkt_csv::relay(payload, MAX_UPLOAD_BYTES);
    let (job, ()) = futures_util::join!(
        service::imports::receive(&infra, &principal.tenant, kind, body),
        pump
    );
    if overflow.happened() {
        // The job was marked failed where the reader stopped.
        return Err(ApiError::UploadTooLarge(MAX_UPLOAD_BYTES));
    }
    Ok(HttpResponse::Accepted().json(envelope("Import received.", ImportData::from(job?))))
}

/// An import job's status and progress.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/imports/{id}",
    operation_id = "get_import",
    tag = "imports",
    params(("id" = Uuid, Path, description = "Import id")),
    responses((status = 200, body = ImportData), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn get(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::IMPORTS_GET)?;
    let job = service::imports::find(&infra, &principal.tenant, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(envelope("Import status.", ImportData::from(job))))
}

/// Live progress as server-sent events: `progress` events while it runs, then `done`.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/imports/{id}/events",
    tag = "imports",
    params(("id" = Uuid, Path, description = "Import id")),
    responses((status = 200, description = "text/event-stream of ImportData"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn events(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::IMPORTS_EVENTS)?;
    let id = id.into_inner();
    // Fail fast with a 404 before the stream starts.
    service::imports::find(&infra, &principal.tenant, id).await?;
    let tenant = principal.tenant.clone();
    let state = (infra.into_inner(), tenant, None::<String>, false);
    let stream =
        futures_util::stream::unfold(state, move |(infra, tenant, last, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let (event, body, done) = match service::imports::find(&infra, &tenant, id).await {
                    Ok(job) => {
                        let done = matches!(job.status.as_str(), "completed" | "failed");
                        let body =
                            serde_json::to_string(&ImportData::from(job)).unwrap_or_default();
                        (if done { "done" } else { "progress" }, body, done)
                    }
                    Err(error) => (
                        "error",
                        serde_json::json!({"error": error.to_string()}).to_string(),
                        true,
                    ),
                };
                if done || last.as_deref() != Some(body.as_str()) {
                    let frame = Bytes::from(format!("event: {event}\ndata: {body}\n\n"));
                    return Some((
                        Ok::<_, actix_web::Error>(frame),
                        (infra, tenant, Some(body), done),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "text/event-stream"))
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream))
}

/// The rejected rows as CSV: `row_number,reason,<the file's columns>`, streamed.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/imports/{id}/rejections",
    tag = "imports",
    params(("id" = Uuid, Path, description = "Import id")),
    responses((status = 200, description = "text/csv"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn rejections(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::IMPORTS_REJECTIONS)?;
    let id = id.into_inner();
    let job = service::imports::find(&infra, &principal.tenant, id).await?;
    let mut header = vec!["row_number".to_owned(), "reason".to_owned()];
    header.extend(job.header.iter().cloned());
    let first = mkt_csv::record(&header).await;
    let tenant = principal.tenant.clone();
    let pages = futures_util::stream::unfold(
        (infra.into_inner(), tenant, 0i64, false),
        move |(infra, tenant, after, done)| async move {
            if done {
                return None;
            }
            match service::imports::rejections(&infra, &tenant, id, after, 1_000).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let last = page.last().map_or(after, |r| r.row_number);
                    let mut out = Vec::new();
                    for rejection in page {
                        let mut record = vec![rejection.row_number.to_string(), rejection.reason];
                        record.extend(rejection.fields);
                        out.extend(mkt_csv::record(&record).await);
                    }
                    Some((
                        Ok::<_, actix_web::Error>(Bytes::from(out)),
                        (infra, tenant, last, false),
                    ))
                }
                Err(error) => Some((
                    Err(actix_web::error::ErrorInternalServerError(
                        error.to_string(),
                    )),
                    (infra, tenant, after, true),
                )),
            }
        },
    );
    let body =
        futures_util::stream::once(async move { Ok::<_, actix_web::Error>(Bytes::from(first)) })
            .chain(pages);
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "text/csv; charset=utf-8"))
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"import-{id}-rejections.csv\""),
        ))
        .streaming(body))
}
