//! The segmentation service: audience segments over a read model of customers that it
//! keeps from ingestion's (and later analytics') events.
//!
//! Layout: `api/` routes and handlers, `domain/` rules and segment validation,
//! `service/` use cases (segment writes, live membership, exports), `store/` tables and
//! queries, `events/` what it consumes and publishes.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod service;
pub mod store;

use utoipa::OpenApi;

/// Name, schema and migrations of this service.
pub static SPEC: mkt_runtime::ServiceSpec = mkt_runtime::ServiceSpec {
    name: "segmentation",
    schema: "segmentation",
    migrations: &MIGRATIONS,
};

/// This service's own migrations.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// What this service plugs into the shared runtime: its routes (with the replica's
/// segment engines as handler state), consumers, the membership clock and the engine
/// refresher.
pub fn parts() -> mkt_runtime::Parts {
    let engines = std::sync::Arc::new(service::engine::Engines::default());
    let for_routes = engines.clone();
    mkt_runtime::Parts {
        routes: std::sync::Arc::new(move |cfg: &mut actix_web::web::ServiceConfig| {
            cfg.app_data(actix_web::web::Data::from(for_routes.clone()));
            api::routes(cfg);
        }),
        openapi: api::ApiDoc::openapi(),
        subscriptions: events::consume::subscriptions(),
        workers: vec![
            Box::new(|infra| Box::pin(service::membership::run_clock(infra))),
            Box::new(move |infra| Box::pin(service::engine::run_refresher(infra, engines))),
        ],
    }
}

/// Starts the service (tests call this with port 0).
pub async fn spawn(config: config::Config) -> anyhow::Result<mkt_runtime::Running> {
    mkt_runtime::spawn(&SPEC, config, parts()).await
}
