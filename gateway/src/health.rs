//! Liveness and readiness of the gateway. Ready means every upstream is ready.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::proxy::Proxy;

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: every service's `/readyz` answers 200 within two seconds.
pub async fn readyz(proxy: web::Data<Proxy>) -> HttpResponse {
    let checks = proxy.upstreams.all().map(|(name, base)| {
        let request = proxy
            .client
            .get(format!("{}/readyz", base.trim_end_matches('/')))
            .timeout(Duration::from_secs(2));
        async move {
            let status = match request.send().await {
                Ok(r) if r.status().is_success() => "ok".to_owned(),
                Ok(r) => format!("status {}", r.status().as_u16()),
                Err(e) => {
                    if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "unreachable".to_owned()
                    }
                }
            };
            (name, status)
        }
    });
    let results = futures_util::future::join_all(checks).await;
    let ready = results.iter().all(|(_, s)| s == "ok");
    let checks: Map<String, Value> = results
        .into_iter()
        .map(|(n, s)| (n.to_owned(), Value::String(s)))
        .collect();
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
