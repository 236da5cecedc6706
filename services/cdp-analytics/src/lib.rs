//! The cdp-analytics service: RFM, CLV and churn scores; the customer 360. (Tenant
//! integrations are an import source of ingestion.)
//!
//! Layout: `api/` routes and handlers, `domain/` RFM and the processing run's models,
//! `service/` use cases (processing runs, their worker and schedule), `store/` tables and
//! queries, `events/` what it consumes (ingestion, delivery) and publishes (scores, churn
//! alerts).

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod service;
pub mod store;

/// Name, schema and migrations of this service.
pub static SPEC: mkt_runtime::ServiceSpec = mkt_runtime::ServiceSpec {
    name: "cdp-analytics",
    schema: "cdp_analytics",
    migrations: &MIGRATIONS,
};

/// This service's own migrations.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// What this service plugs into the shared runtime.
pub fn parts() -> mkt_runtime::Parts {
    mkt_runtime::Parts {
        routes: std::sync::Arc::new(api::routes),
        openapi: api::openapi(),
        subscriptions: events::consume::subscriptions(),
        workers: vec![
            Box::new(|infra| Box::pin(service::processing::run_worker(infra))),
            Box::new(|infra| Box::pin(service::processing::run_schedule(infra))),
        ],
    }
}

/// Starts the service (tests call this with port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<mkt_runtime::Running> {
    mkt_runtime::spawn(&SPEC, config, parts()).await
}
