//! The API gateway: one public entry for `/api/v1/marketing/*` and `/api/v2/cdp/*`.
//!
//! Verifies the bearer JWT (401), checks the caller's roles against the routing table
//! (403), and forwards to the owning service with streamed bodies, a deadline (504),
//! and `X-Request-Id`/`traceparent`; an unreachable service is a 502. Services verify
//! the token again: the gateway is a filter, not the trust boundary.
//!
//! Layout: `routes` (the table), `proxy` (forwarding), `docs` (merged OpenAPI),
//! `health`, `error`, `config`.

pub mod config;
pub mod docs;
pub mod error;
pub mod health;
pub mod proxy;
pub mod routes;

use std::net::SocketAddr;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use mkt_auth::Verifier;

/// A running gateway.
pub struct Running {
    /// Bound address.
    pub addr: SocketAddr,
    /// Stops the server.
    pub server: actix_web::dev::ServerHandle,
    /// The server task.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds and starts the gateway (tests use port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<Running> {
    let verifier = web::Data::new(Verifier::new(&config.auth)?);
    let proxy = web::Data::new(proxy::Proxy::new(config.upstreams.clone())?);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(mkt_error::envelope_errors))
            .wrap(from_fn(mkt_telemetry::trace_requests))
            .app_data(verifier.clone())
            .app_data(proxy.clone())
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/openapi.json", web::get().to(docs::openapi))
            .route("/docs", web::get().to(docs::docs))
            .default_service(web::to(proxy::forward))
    })
    .shutdown_timeout(10);
    if let Some(workers) = config.http.workers {
        server = server.workers(workers);
    }
    let server = server.bind(&config.http.addr)?;
    let addr = *server
        .addrs()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no listen address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, "gateway listening");
    Ok(Running {
        addr,
        server: handle,
        task,
    })
}
