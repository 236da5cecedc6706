//! The campaign service: Campaigns over email, SMS and push; promo codes; cart campaigns and funnels.
//!
//! Foundation stage: it runs with its own schema, role, migrations, health and
//! readiness, and an (empty) OpenAPI document; its domain comes with its issue.

pub mod api;
pub mod config;

use utoipa::OpenApi;

/// Name, schema and migrations of this service.
pub static SPEC: mkt_runtime::ServiceSpec = mkt_runtime::ServiceSpec {
    name: "campaign",
    schema: "campaign",
    migrations: &MIGRATIONS,
};

/// This service's own migrations (none yet beyond the bus tables).
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// What this service plugs into the shared runtime.
pub fn parts() -> mkt_runtime::Parts {
    mkt_runtime::Parts {
        routes: std::sync::Arc::new(api::routes),
        openapi: api::ApiDoc::openapi(),
        subscriptions: Vec::new(),
        workers: Vec::new(),
    }
}

/// Starts the service (tests call this with port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<mkt_runtime::Running> {
    mkt_runtime::spawn(&SPEC, config, parts()).await
}
