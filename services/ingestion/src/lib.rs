//! The ingestion service: the raw truth about customers (orders and behaviour events
//! follow). Every other service learns about customers from its events.
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

/// What this service plugs into the shared runtime.
pub fn parts() -> mkt_runtime::Parts {
    mkt_runtime::Parts {
        routes: std::sync::Arc::new(api::routes),
        openapi: api::ApiDoc::openapi(),
        subscriptions: Vec::new(),
        workers: vec![service::imports::worker()],
    }
}

/// Starts the service (tests call this with port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<mkt_runtime::Running> {
    mkt_runtime::spawn(&SPEC, config, parts()).await
}
