//! Database access shared by every service: the pool, migrations, and schema rules.
//!
//! Owns: how a service connects (diesel-async over tokio-postgres, a deadpool pool,
//! a `statement_timeout` on every connection so a runaway query cannot pin the pool,
//! `search_path` set to the service's own schema), how migrations run (embedded per
//! service, into that schema, with the migration table kept there too), and the
//! readiness probe.
//!
//! Must never: name a service, or reach into a schema other than the configured one.

use std::time::Duration;

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel_async::pooled_connection::deadpool::{Object, Pool as DeadPool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use diesel_async;
pub use tokio_postgres;

/// The connection pool type every service uses.
pub type Pool = DeadPool<AsyncPgConnection>;
/// A connection checked out of the pool.
pub type PooledConnection = Object<AsyncPgConnection>;
/// Why a connection could not be checked out (pool exhausted, database down).
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// Database settings (`MKT_DATABASE__*`).
#[derive(Debug, Clone, Deserialize)]
pub struct DbConfig {
    /// Connection URL of this service's own role.
    pub url: SecretString,
    /// Schema this service owns; defaults to the service's schema name.
    #[serde(default)]
    pub schema: Option<String>,
    /// Maximum pooled connections.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// `statement_timeout` for every statement, in milliseconds.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// How long a request waits for a pooled connection before failing.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

fn default_pool_size() -> usize {
    16
}
fn default_statement_timeout_ms() -> u64 {
    5_000
}
fn default_acquire_timeout_ms() -> u64 {
    5_000
}

impl DbConfig {
    /// A config for `url` with defaults, as tests build it.
    pub fn new(url: impl Into<String>, schema: &str) -> Self {
        Self {
            url: SecretString::from(url.into()),
            schema: Some(schema.to_owned()),
            pool_size: default_pool_size(),
            statement_timeout_ms: default_statement_timeout_ms(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
        }
    }

    /// The schema, or `default` when unset; validated as a plain identifier because it
    /// is spliced into `SET search_path`.
    pub fn schema_or(&self, default: &str) -> Result<String, DbError> {
        let schema = self.schema.clone().unwrap_or_else(|| default.to_owned());
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(schema)
        } else {
            Err(DbError::Config(format!("invalid schema name {schema:?}")))
        }
    }
}

/// Database failures at startup or in probes.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Bad settings.
    #[error("database configuration: {0}")]
    Config(String),
    /// Could not connect or query.
    #[error("database: {0}")]
    Connection(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// What every connection runs first: the service's schema, the statement timeout, and
/// an application name (`mkt-<schema><suffix>`) that tells connections apart in
/// `pg_stat_activity`.
fn session_setup(config: &DbConfig, schema: &str, suffix: &str) -> String {
    format!(
        "SET search_path TO {schema}; SET statement_timeout = {}; \
         SET application_name = 'mkt-{schema}{suffix}'",
        config.statement_timeout_ms
    )
}

/// Builds the pool. Connections are opened lazily, so this succeeds while the database
/// is down; [`ping`] tells readiness.
pub fn connect(config: &DbConfig, default_schema: &str) -> Result<Pool, DbError> {
    let schema = config.schema_or(default_schema)?;
    let setup_sql = session_setup(config, &schema, "");
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.custom_setup = Box::new(move |url| {
        let setup_sql = setup_sql.clone();
        let url = url.to_owned();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&setup_sql)
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.url.expose_secret(),
        manager_config,
    );
    let timeout = Some(Duration::from_millis(config.acquire_timeout_ms));
    DeadPool::builder(manager)
        .max_size(config.pool_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// A plain tokio-postgres connection for bulk transfers (binary `COPY`), which diesel
/// does not speak: the same URL, schema and application name as the pool's connections,
/// outside the pool so a long transfer never holds a pooled connection. Its
/// `statement_timeout` is the pool's; a caller that needs longer sets its own.
pub async fn connect_bulk(
    config: &DbConfig,
    default_schema: &str,
) -> Result<tokio_postgres::Client, DbError> {
    let schema = config.schema_or(default_schema)?;
    let (client, connection) =
        tokio_postgres::connect(config.url.expose_secret(), tokio_postgres::NoTls)
            .await
            .map_err(|e| DbError::Connection(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "bulk database connection ended");
        }
    });
    client
        .batch_execute(&session_setup(config, &schema, "-bulk"))
        .await
        .map_err(|e| DbError::Connection(e.to_string()))?;
    Ok(client)
}

/// Readiness: a connection can be checked out and answers `SELECT 1`.
pub async fn ping(pool: &Pool) -> Result<(), DbError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| DbError::Connection(e.to_string()))?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|e| DbError::Connection(e.to_string()))?;
    Ok(())
}

/// Several embedded migration sets applied as one ordered list (the bus's outbox and
/// inbox tables, then the service's own). Versions must not collide; the bus uses
/// versions starting with `00000000`.
pub struct Migrations(pub Vec<&'static (dyn MigrationSource<Pg> + Sync)>);

impl MigrationSource<Pg> for Migrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        let mut all = Vec::new();
        for source in &self.0 {
            all.extend(source.migrations()?);
        }
        all.sort_by_key(|m| m.name().version().as_owned());
        Ok(all)
    }
}

/// Runs pending migrations into `schema` (created if missing and permitted).
///
/// Runs on its own thread with its own small runtime: diesel's migration harness is
/// synchronous, and blocking an actix worker or a current-thread runtime would stall it.
pub async fn run_migrations(
    url: &SecretString,
    schema: &str,
    migrations: Migrations,
) -> Result<Vec<String>, DbError> {
    let url = url.expose_secret().to_owned();
    let schema = DbConfig::new("", schema).schema_or(schema)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(blocking::migrate(&url, &schema, migrations));
    });
    rx.await
        .map_err(|_| DbError::Migration("migration thread panicked".into()))?
}

/// Diesel's synchronous migration harness, kept apart so its sync traits do not clash
/// with the async ones in scope above.
mod blocking {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    use diesel_async::AsyncPgConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_migrations::MigrationHarness;

    use super::{DbError, Migrations};

    pub(super) fn migrate(
        url: &str,
        schema: &str,
        migrations: Migrations,
    ) -> Result<Vec<String>, DbError> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
            .map_err(|e| DbError::Connection(e.to_string()))?;
        // `CREATE SCHEMA IF NOT EXISTS` checks the CREATE privilege before existence, and
        // a service role provisioned with its schema must not need database-level CREATE.
        let ensure_schema = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = '{schema}') \
             THEN EXECUTE 'CREATE SCHEMA {schema}'; END IF; END $$; SET search_path TO {schema}"
        );
        conn.batch_execute(&ensure_schema)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        let applied = conn
            .run_pending_migrations(migrations)
            .map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(applied.into_iter().map(|v| v.to_string()).collect())
    }
}
