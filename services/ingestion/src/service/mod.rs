//! Use cases: each runs in one transaction that changes tables, writes the events the
//! change produces to the outbox and, with an `Idempotency-Key`, stores the response;
//! the relay is woken after the commit.

pub mod customers;
pub mod events;
pub mod imports;
pub mod integrations;
pub mod orders;

use actix_web::HttpRequest;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::BoxFuture;
use mkt_auth::TenantId;
use mkt_runtime::Infra;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The most items one batch request may carry.
pub const MAX_BATCH: usize = 1_000;

/// A response decided inside a transaction: what is sent and, with an idempotency
/// key, stored.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
    /// True when this is a stored response replayed for a retried request.
    pub replayed: bool,
}

impl Reply {
    /// A fresh reply.
    pub fn new(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body,
            replayed: false,
        }
    }
}

/// An `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The client's key.
    pub key: String,
    /// SHA-256 of method, path and the canonical JSON body.
    pub request_hash: String,
}

impl Idempotency {
    /// Reads the header, if any. Keys are 1-255 visible ASCII characters.
    pub fn from_request(
        req: &HttpRequest,
        body: &serde_json::Value,
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = req.headers().get("idempotency-key") else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .map_err(|_| ApiError::InvalidHeader("Idempotency-Key", "must be visible ASCII"))?;
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::InvalidHeader(
                "Idempotency-Key",
                "must be 1-255 visible ASCII characters",
            ));
        }
        Ok(Some(Self::for_request(
            req.method().as_str(),
            req.path(),
            key.to_owned(),
            body,
        )))
    }

    /// The key and fingerprint of a request made in-process (an integration sync): the
    /// same fingerprint the HTTP request with this method, path and body would have.
    pub fn for_request(method: &str, path: &str, key: String, body: &serde_json::Value) -> Self {
        // serde_json's maps are ordered by key, so the same JSON in another key order or
        // spacing has the same fingerprint.
        let mut hasher = Sha256::new();
        hasher.update(method);
        hasher.update(b" ");
        hasher.update(path);
        hasher.update(b"\n");
        hasher.update(body.to_string());
        let request_hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self { key, request_hash }
    }
}

/// A unit of work run inside the transaction.
pub type Work<'a> = Box<
    dyn for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<Reply, ApiError>>
        + Send
        + 'a,
>;

/// Runs `work` in one transaction, honouring an idempotency key: the same key and body
/// replay the stored response; the same key with another body is 422. Only successful
/// replies are stored (a failed request changed nothing and may simply be retried).
pub async fn execute(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    work: Work<'_>,
) -> Result<Reply, ApiError> {
    let mut conn = infra.pool.get().await?;
    let mut work = Some(work);
    // A concurrent request with the same key may commit between our lookup and our
    // insert; the second attempt then finds and replays it.
    for attempt in 0..2 {
        let result = conn
            .transaction(async |conn| {
                if let Some(idem) = idempotency
                    && let Some(stored) =
                        crate::store::idempotency::find(conn, tenant.as_str(), &idem.key).await?
                {
                    if stored.request_hash != idem.request_hash {
                        return Err(ApiError::IdempotencyMismatch);
                    }
                    return Ok(Reply {
                        status: stored.status_code as u16,
                        body: stored.response_body,
                        replayed: true,
                    });
                }
                let work = work.take().ok_or(ApiError::Conflict(
                    "idempotency_in_progress",
                    "A request with this Idempotency-Key is being processed; retry shortly.",
                ))?;
                let reply = work(conn).await?;
                if let Some(idem) = idempotency {
                    crate::store::idempotency::insert(
                        conn,
                        tenant.as_str(),
                        &idem.key,
                        &idem.request_hash,
                        reply.status,
                        &reply.body,
                    )
                    .await?;
                }
                Ok(reply)
            })
            .await;
        match result {
            Err(ApiError::Conflict("idempotency_in_progress", _))
                if attempt == 0 && work.is_none() =>
            {
                // Our work rolled back; the other request's reply is stored now, and the
                // retry can only replay it, never run the work again.
                continue;
            }
            Ok(reply) => {
                if !reply.replayed {
                    infra.events_committed();
                }
                return Ok(reply);
            }
            Err(error) => return Err(error),
        }
    }
    Err(ApiError::Conflict(
        "idempotency_in_progress",
        "A request with this Idempotency-Key is being processed; retry shortly.",
    ))
}

/// One item's outcome in a batch response.
pub fn batch_item_error(index: usize, error: &ApiError) -> serde_json::Value {
    let info = error.info();
    if let ApiError::Internal(cause) = error {
        tracing::error!(index, error = %format!("{cause:#}"), "batch item failed");
    }
    serde_json::json!({
        "index": index,
        "status": info.status.as_u16(),
        "error": info.message,
        "code": info.code,
        "details": info.details,
    })
}

/// Applies one batch item on a connection inside its savepoint; returns the item's
/// status and the id of what it wrote.
pub type ApplyItem<T> = for<'c> fn(
    &'c mut AsyncPgConnection,
    &'c str,
    T,
) -> BoxFuture<'c, Result<(u16, uuid::Uuid), ApiError>>;

/// Runs a batch in one transaction, each valid item in its own savepoint (a failing
/// item rolls back alone), and answers per-item results in request order.
pub async fn run_batch<T: Send + 'static>(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    items: Vec<Result<T, ApiError>>,
    apply: ApplyItem<T>,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let mut results = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    let outcome = match item {
                        Err(error) => Err(error),
                        Ok(value) => {
                            let tenant_id = tenant_id.clone();
                            conn.transaction(async |conn| apply(conn, &tenant_id, value).await)
                                .await
                        }
                    };
                    results.push(match outcome {
                        Ok((status, id)) => {
                            serde_json::json!({"index": index, "status": status, "id": id})
                        }
                        Err(error) => batch_item_error(index, &error),
                    });
                }
                Ok(batch_reply(results))
            })
        }),
    )
    .await
}

/// The batch response envelope.
pub fn batch_reply(results: Vec<serde_json::Value>) -> Reply {
    let failed = results.iter().filter(|r| r.get("error").is_some()).count();
    let succeeded = results.len() - failed;
    Reply::new(
        200,
        serde_json::json!({
            "success": true,
            "message": format!("{succeeded} succeeded, {failed} failed."),
            "data": {"succeeded": succeeded, "failed": failed, "results": results},
        }),
    )
}
