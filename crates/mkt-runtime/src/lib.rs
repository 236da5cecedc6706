//! What every service binary shares: its startup sequence, its infrastructure handles,
//! health and readiness routes, and OpenAPI serving.
//!
//! The sequence is always: config -> telemetry -> pool -> migrations -> bus (relay and
//! consumers) -> HTTP server. [`spawn`] runs it and returns the bound address, so tests
//! start a real service on port 0 exactly as `main` does.
//!
//! Must never: name a service, or hold domain logic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use mkt_auth::{AuthConfig, Verifier};
use mkt_bus::BusConfig;
use mkt_bus::consumer::Subscription;
use mkt_bus::relay::{Relay, RelayWaker};
use mkt_db::{DbConfig, Migrations, Pool};
use mkt_telemetry::TelemetryConfig;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub mod input;
pub mod openapi;
pub use openapi::CommonResponses;

/// Largest JSON body any service accepts (bulk endpoints included).
pub const MAX_JSON_BODY: usize = 8 * 1024 * 1024;

/// What identifies a service to the runtime.
pub struct ServiceSpec {
    /// Binary and queue-prefix name (`ingestion`, `cdp-analytics`).
    pub name: &'static str,
    /// Its Postgres schema (and role) name.
    pub schema: &'static str,
    /// Its own migrations ([`SHARED_MIGRATIONS`] are added in front).
    pub migrations: &'static diesel_migrations::EmbeddedMigrations,
}

/// HTTP listener settings (`MKT_HTTP__*`).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port (tests).
    #[serde(default = "default_addr")]
    pub addr: String,
    /// Worker threads; default: one per core.
    #[serde(default)]
    pub workers: Option<usize>,
}

fn default_addr() -> String {
    "127.0.0.1:0".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_addr(),
            workers: None,
        }
    }
}

/// Settings every service has (`MKT_HTTP__*`, `MKT_DATABASE__*`, `MKT_BUS__*`,
/// `MKT_AUTH__*`, `MKT_TELEMETRY__*`).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceConfig {
    /// Where the HTTP server listens and with how many workers (`MKT_HTTP__*`).
    #[serde(default)]
    pub http: HttpConfig,
    /// This service's database role and schema.
    pub database: DbConfig,
    /// The broker.
    pub bus: BusConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Run migrations at start (on by default; the Kubernetes migration Job runs
    /// `<service> migrate` instead and deployments set this to false).
    #[serde(default = "default_true")]
    pub run_migrations: bool,
}

fn default_true() -> bool {
    true
}

/// Handles shared by a service's handlers (registered as `web::Data<Infra>`).
#[derive(Clone)]
pub struct Infra {
    /// The service's pool.
    pub pool: Pool,
    /// Wakes the outbox relay after a commit that enqueued events.
    pub relay: RelayWaker,
    /// Broker settings.
    pub bus: BusConfig,
    /// Broker reachability for readiness.
    broker: Arc<BrokerProbe>,
    /// Database settings, for [`Infra::bulk_connection`].
    database: DbConfig,
    /// The service's schema.
    schema: String,
}

/// A running service.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Stops the HTTP server.
    pub server: actix_web::dev::ServerHandle,
    /// The server future's task.
    pub server_task: JoinHandle<std::io::Result<()>>,
    /// Relay and consumer tasks (aborted by [`Running::stop`]).
    pub background: Vec<JoinHandle<()>>,
    /// The infrastructure handles (tests read the pool).
    pub infra: Infra,
}

impl Running {
    /// Base URL, `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful HTTP stop, then background tasks are aborted.
    pub async fn stop(self) {
        self.server.stop(true).await;
        for task in self.background {
            task.abort();
        }
    }
}

/// Builds the service's routes on top of the shared ones. A closure, so a service can
/// hand its handlers state of its own (an in-memory index, a client) as `web::Data`.
pub type Routes = std::sync::Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A long-running background task of a service (an import worker, a scheduler),
/// started with the infrastructure handles and aborted on shutdown.
pub type Worker = Box<dyn FnOnce(Infra) -> futures_util::future::BoxFuture<'static, ()> + Send>;

/// What a service plugs into the shared runtime.
pub struct Parts {
    /// Its routes.
    pub routes: Routes,
    /// Its OpenAPI document.
    pub openapi: utoipa::openapi::OpenApi,
    /// The queues it consumes.
    pub subscriptions: Vec<Subscription>,
    /// Its background workers.
    pub workers: Vec<Worker>,
}

/// Runs migrations for `spec` with `url` (the `migrate` subcommand and tests).
pub async fn migrate(spec: &ServiceSpec, database: &DbConfig) -> anyhow::Result<Vec<String>> {
    let schema = database.schema_or(spec.schema)?;
    let applied = mkt_db::run_migrations(&database.url, &schema, migrations(spec)).await?;
    Ok(applied)
}

/// The tables every service schema gets before its own: the bus's outbox and inbox, and
/// the job runner's queue.
pub static SHARED_MIGRATIONS: [&diesel_migrations::EmbeddedMigrations; 2] =
    [&mkt_bus::MIGRATIONS, &mkt_jobs::MIGRATIONS];

/// Every migration of `spec`'s schema: [`SHARED_MIGRATIONS`], then its own.
pub fn migrations(spec: &ServiceSpec) -> Migrations {
    let mut all = Migrations(Vec::new());
    for shared in SHARED_MIGRATIONS {
        all.0.push(shared);
    }
    all.0.push(spec.migrations);
    all
}

/// Starts everything and returns once the HTTP listener is bound.
pub async fn spawn(
    spec: &ServiceSpec,
    config: ServiceConfig,
    parts: Parts,
) -> anyhow::Result<Running> {
    let Parts {
        routes,
        openapi,
        subscriptions,
        workers,
    } = parts;
    let mut openapi = openapi;
    utoipa::Modify::modify(&CommonResponses, &mut openapi);
    if config.run_migrations {
        let applied = migrate(spec, &config.database).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
    }
    let schema = config.database.schema_or(spec.schema)?;
    let pool = mkt_db::connect(&config.database, spec.schema)?;
    let verifier = Verifier::new(&config.auth)?;
    let waker = RelayWaker::default();
    let infra = Infra {
        pool: pool.clone(),
        relay: waker.clone(),
        bus: config.bus.clone(),
        broker: Arc::new(BrokerProbe {
            config: config.bus.clone(),
            name: format!("{}-probe", spec.name),
            connection: Mutex::new(None),
        }),
        database: config.database.clone(),
        schema: schema.clone(),
    };

    let mut background = Vec::new();
    background.push(tokio::spawn(
        Relay {
            pool: pool.clone(),
            config: config.bus.clone(),
            schema,
            name: format!("{}-relay", spec.name),
            waker,
        }
        .run(),
    ));
    // Queues first (bounded: a broker that is down must not stop the service starting;
    // the consumers then declare them when they connect).
    match tokio::time::timeout(
        Duration::from_secs(10),
        mkt_bus::consumer::declare_queues(&config.bus, &subscriptions),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "could not declare queues at start"),
        Err(_) => tracing::warn!("declaring queues at start timed out"),
    }
    for subscription in subscriptions {
        background.push(tokio::spawn(mkt_bus::consumer::run(
            pool.clone(),
            config.bus.clone(),
            subscription,
        )));
    }
    for worker in workers {
        background.push(tokio::spawn(worker(infra.clone())));
    }

    let openapi = web::Data::new(openapi);
    let data = web::Data::new(infra.clone());
    let verifier = web::Data::new(verifier);
    let mut server = HttpServer::new(move || {
        App::new()
            // Innermost: refuse by the role policy before extractors read the input.
            .wrap(from_fn(mkt_auth::policy::enforce))
            .wrap(from_fn(input::refuse_nul_bytes))
            .wrap(from_fn(mkt_error::envelope_errors))
            .wrap(from_fn(mkt_telemetry::trace_requests))
            .app_data(mkt_error::json_config(MAX_JSON_BODY))
            .app_data(mkt_error::query_config())
            .app_data(mkt_error::path_config())
            .app_data(data.clone())
            .app_data(verifier.clone())
            .app_data(openapi.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/openapi.json", web::get().to(openapi_json))
            .configure(|cfg| routes(cfg))
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
    let server_task = tokio::spawn(server);
    tracing::info!(service = spec.name, %addr, "listening");
    Ok(Running {
        addr,
        server: handle,
        server_task,
        background,
        infra,
    })
}

/// The body of `main` for every service: `<bin> [serve|migrate]`.
pub async fn main(spec: &ServiceSpec, parts: fn() -> Parts) -> anyhow::Result<()> {
    let config: ServiceConfig = mkt_config::load()?;
    let _telemetry = mkt_telemetry::init(spec.name, &config.telemetry)?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => {
            let applied = migrate(spec, &config.database).await?;
            tracing::info!(?applied, "migrations applied");
            Ok(())
        }
        None | Some("serve") => {
            let running = spawn(spec, config, parts()).await?;
            let result = running.server_task.await;
            for task in running.background {
                task.abort();
            }
            result??;
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; use `serve` (default) or `migrate`")
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(infra: web::Data<Infra>) -> HttpResponse {
    let (database, broker) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(2), mkt_db::ping(&infra.pool)),
        infra.broker.check(),
    );
    let database = match database {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timeout".to_owned(),
    };
    let broker = broker.map(|()| "ok".to_owned()).unwrap_or_else(|e| e);
    let ready = database == "ok" && broker == "ok";
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "broker": broker },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn openapi_json(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}

/// Keeps one broker connection for readiness checks, reopened when it drops.
struct BrokerProbe {
    config: BusConfig,
    name: String,
    connection: Mutex<Option<lapin::Connection>>,
}

impl BrokerProbe {
    async fn check(&self) -> Result<(), String> {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| c.status().connected()) {
            return Ok(());
        }
        match tokio::time::timeout(
            Duration::from_secs(2),
            mkt_bus::connect(&self.config, &self.name),
        )
        .await
        {
            Ok(Ok(connection)) => {
                *slot = Some(connection);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout".into()),
        }
    }
}

/// Publishes through the outbox is done by services; this helper is the common
/// "commit then wake the relay" step.
impl Infra {
    /// Call after a transaction that enqueued events has committed.
    pub fn events_committed(&self) {
        self.relay.wake();
    }

    /// A connection outside the pool for bulk transfers (`mkt_db::connect_bulk`).
    pub async fn bulk_connection(&self) -> Result<mkt_db::tokio_postgres::Client, mkt_db::DbError> {
        mkt_db::connect_bulk(&self.database, &self.schema).await
    }
}

/// Re-exported so services name one crate for their plumbing.
pub use mkt_auth::{Principal, Role};

/// OpenAPI modifier declaring the `bearer` (JWT) security scheme every route uses.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
