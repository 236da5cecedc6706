//! The ingestion service: the raw truth about customers, orders and behaviour events.
//! Every other service learns about customers from its events. Data arrives through
//! the API, CSV imports and tenant integrations (VTEX syncs), all three through the same
//! use cases.
//!
//! Layout: `api/` routes and thin handlers, `domain/` validation, `service` use cases
//! (transaction + outbox), `store/` tables and queries, `events/` what it publishes.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod service;
pub mod store;
pub mod views;

use utoipa::OpenApi;

/// Name, schema and migrations of this service.
pub static SPEC: mkt_runtime::ServiceSpec = mkt_runtime::ServiceSpec {
    name: "ingestion",
    schema: "ingestion",
    migrations: &MIGRATIONS,
};

/// This service's own migrations (the bus tables come from `mkt-bus`).
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// What this service plugs into the shared runtime (without the integration sync
/// worker, which needs [`config::Config`]; [`spawn`] adds it).
pub fn parts() -> mkt_runtime::Parts {
    mkt_runtime::Parts {
        routes: std::sync::Arc::new(api::routes),
        openapi: api::ApiDoc::openapi(),
        subscriptions: Vec::new(),
        workers: vec![service::imports::worker()],
    }
}

/// Starts the service (tests call this with port 0, with a `ServiceConfig` or a full
/// [`config::Config`]).
pub async fn spawn(config: impl Into<config::Config>) -> anyhow::Result<mkt_runtime::Running> {
    let config = config.into();
    let integrations = service::integrations::Context::from_config(&config.integrations)?;
    let mut parts = parts();
    parts
        .workers
        .push(service::integrations::worker::worker(integrations.clone()));
    let routes = parts.routes.clone();
    let integrations = actix_web::web::Data::from(integrations);
    parts.routes = std::sync::Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
        cfg.app_data(integrations.clone());
        routes(cfg);
    });
    mkt_runtime::spawn(&SPEC, config.service, parts).await
}
