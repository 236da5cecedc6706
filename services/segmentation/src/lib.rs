//! The segmentation service: audience segments over a read model of customers that it
//! keeps from ingestion's (and later analytics') events.
//!
//! Layout: `api/` routes and handlers, `store/` tables and queries, `events/` what it
//! consumes.

pub mod api;
pub mod config;
pub mod events;
pub mod store;

use utoipa::OpenApi;

/// Name, schema and migrations of this service.
pub static SPEC: mkt_runtime::ServiceSpec = mkt_runtime::ServiceSpec {
    name: "segmentation",
    schema: "segmentation",
    migrations: &MIGRATIONS,
};

/// This service's own migrations.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations = diesel_migrations::embed_migrations!("migrations");

/// Starts the service (tests call this with port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<mkt_runtime::Running> {
    mkt_runtime::spawn(&SPEC, config, api::routes, api::ApiDoc::openapi(), events::consume::subscriptions()).await
}
