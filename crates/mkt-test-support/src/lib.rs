//! Test support: real PostgreSQL and RabbitMQ for every test, isolated per test.
//!
//! `cargo xtask test` starts throwaway servers and exports `MKT_TEST_DATABASE_URL`,
//! `MKT_TEST_AMQP_URL` and `MKT_TEST_RABBITMQ_API`. Each test then gets its own
//! database, cloned from a template migrated once per service (so tests run in
//! parallel without sharing rows), and its own RabbitMQ vhost (so queues never
//! interleave). Must never: stub the database or the broker.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use mkt_auth::{AuthConfig, DevTokenSigner};
use mkt_bus::BusConfig;
use mkt_db::DbConfig;
use mkt_runtime::{HttpConfig, ServiceConfig, ServiceSpec};
use secrecy::SecretString;

/// HS256 secret of test tokens.
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// Issuer of test tokens.
pub const TEST_ISSUER: &str = "mkt-test";
/// Audience of test tokens.
pub const TEST_AUDIENCE: &str = "mkt-api";
/// Every role, for a token that may do anything.
pub const ALL_ROLES: &[&str] = &["admin", "ingest", "reader", "marketer", "analyst"];

/// Where the throwaway servers are.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// Superuser URL to the `postgres` database.
    pub database_url: String,
    /// AMQP URL to the default vhost.
    pub amqp_url: String,
    /// RabbitMQ management API base URL (guest/guest).
    pub rabbitmq_api: String,
}

/// Reads the servers' addresses; panics with the fix when they are missing, because a
/// test that silently skips is a test that cannot fail.
pub fn env() -> TestEnv {
    let get = |key: &str| {
        std::env::var(key)
            .unwrap_or_else(|_| panic!("{key} is not set: run the tests with `cargo xtask test`"))
    };
    TestEnv {
        database_url: get("MKT_TEST_DATABASE_URL"),
        amqp_url: get("MKT_TEST_AMQP_URL"),
        rabbitmq_api: get("MKT_TEST_RABBITMQ_API"),
    }
}

fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("database url");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

fn fingerprint(spec: &ServiceSpec) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for source in mkt_runtime::migrations(spec).0 {
        for migration in source.migrations().expect("embedded migrations") {
            migration.name().to_string().hash(&mut hasher);
        }
    }
    format!("{:016x}", hasher.finish())
}

/// A fresh database holding `spec`'s migrated schema. Returns its superuser URL.
///
/// The first caller per service migrates a template database under an advisory lock
/// (nextest runs each test in its own process); every test then clones it, which
/// takes milliseconds.
pub async fn database_for(spec: &ServiceSpec) -> String {
    let env = env();
    let template = format!("tmpl_{}_{}", spec.schema, fingerprint(spec));
    let mut admin = AsyncPgConnection::establish(&env.database_url)
        .await
        .expect("connect to test postgres");
    admin
        .batch_execute("SELECT pg_advisory_lock(7263001)")
        .await
        .expect("lock");
    let exists = scalar_on(
        &mut admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{template}'"),
    )
    .await;
    if exists == 0 {
        admin
            .batch_execute(&format!("CREATE DATABASE {template}"))
            .await
            .expect("create template");
        let config = DbConfig::new(with_database(&env.database_url, &template), spec.schema);
        mkt_runtime::migrate(spec, &config)
            .await
            .expect("migrate template");
    }
    admin
        .batch_execute("SELECT pg_advisory_unlock(7263001)")
        .await
        .expect("unlock");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .await
        .expect("clone template");
    with_database(&env.database_url, &name)
}

/// A fresh, empty database (for tests that migrate themselves).
pub async fn empty_database() -> String {
    let env = env();
    let mut admin = AsyncPgConnection::establish(&env.database_url)
        .await
        .expect("connect to test postgres");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    with_database(&env.database_url, &name)
}

/// A fresh RabbitMQ vhost the guest user may use. Returns its AMQP URL.
pub async fn vhost() -> String {
    let env = env();
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let client = mkt_http_client::client();
    let api = env.rabbitmq_api.trim_end_matches('/');
    client
        .put(format!("{api}/api/vhosts/{name}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create vhost");
    client
        .put(format!("{api}/api/permissions/{name}/guest"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("grant vhost");
    let mut url = url::Url::parse(&env.amqp_url).expect("amqp url");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Token settings matching [`token`].
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SecretString::from(TEST_SECRET)),
        jwks_url: None,
        issuer: TEST_ISSUER.into(),
        audience: TEST_AUDIENCE.into(),
        leeway_secs: 0,
    }
}

/// The signer behind [`token`] (tests forge bad tokens with it).
pub fn signer() -> DevTokenSigner {
    DevTokenSigner::new(TEST_SECRET, TEST_ISSUER, TEST_AUDIENCE)
}

/// A valid token for `tenant` with `roles`, valid for an hour.
pub fn token(tenant: &str, roles: &[&str]) -> String {
    signer().sign(tenant, roles, 3600)
}

/// A service config on port 0 with its own database and vhost.
pub fn service_config(database_url: &str, amqp_url: &str) -> ServiceConfig {
    let mut bus = BusConfig::new(amqp_url);
    bus.poll_interval_ms = 50;
    ServiceConfig {
        http: HttpConfig {
            addr: "127.0.0.1:0".into(),
            workers: Some(1),
        },
        database: DbConfig::new(database_url, "unused"),
        bus,
        auth: auth_config(),
        telemetry: Default::default(),
        run_migrations: false,
    }
}

/// Creates a database for `spec` and a vhost, and returns a config using both.
pub async fn service_config_for(spec: &ServiceSpec, amqp_url: &str) -> ServiceConfig {
    let database_url = database_for(spec).await;
    let mut config = service_config(&database_url, amqp_url);
    config.database.schema = Some(spec.schema.to_owned());
    config
}

/// Polls `check` every 25 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls a scalar `SELECT` ([`scalar_i64`]) on `database_url` until it returns
/// `expected`, or panics after `timeout`: waiting for an event to reach a read model.
pub async fn eventually_scalar(
    timeout: Duration,
    what: &str,
    database_url: &str,
    sql: &str,
    expected: i64,
) {
    eventually(timeout, what, || async {
        (scalar_i64(database_url, sql).await == expected).then_some(())
    })
    .await;
}

/// Runs a scalar `SELECT` returning one number (`count(*)`...) on `database_url`.
pub async fn scalar_i64(database_url: &str, sql: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("connect");
    scalar_on(&mut conn, sql).await
}

async fn scalar_on(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        value: i64,
    }
    let row: Row = diesel::sql_query(format!("SELECT ({sql})::int8 AS value"))
        .get_result(conn)
        .await
        .expect("scalar query");
    row.value
}

/// Checks that a `store/schema.rs` (diesel `table!` blocks) matches what the migrations
/// really create: the same tables, columns in order, SQL types and nullability. This is
/// the CI check that `schema.rs` is current, without needing `diesel_cli` on CI.
///
/// Tables present in the database but absent from `schema_rs` fail too, except those
/// listed in `ignore` (the bus's tables, which `mkt-bus` checks itself).
pub async fn assert_schema_rs_matches(
    database_url: &str,
    schema: &str,
    schema_rs: &str,
    ignore: &[&str],
) {
    #[derive(diesel::QueryableByName, Debug)]
    struct Column {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        data_type: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        is_nullable: String,
    }
    let mut conn = AsyncPgConnection::establish(database_url)
        .await
        .expect("connect");
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name <> '__diesel_schema_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .bind::<diesel::sql_types::Text, _>(schema)
    .load(&mut conn)
    .await
    .expect("information_schema");
    let mut actual: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for c in columns
        .into_iter()
        .filter(|c| !ignore.contains(&c.table_name.as_str()))
    {
        let base = match c.data_type.as_str() {
            "text" => "Text",
            "uuid" => "Uuid",
            "bigint" => "Int8",
            "integer" => "Int4",
            "smallint" => "Int2",
            "boolean" => "Bool",
            "jsonb" => "Jsonb",
            "bytea" => "Bytea",
            "timestamp with time zone" => "Timestamptz",
            "date" => "Date",
            "character" => "Bpchar",
            "double precision" => "Float8",
            "ARRAY" => "Array",
            other => other,
        };
        let ty = if c.is_nullable == "YES" {
            format!("Nullable<{base}>")
        } else {
            base.to_owned()
        };
        actual
            .entry(c.table_name)
            .or_default()
            .push((c.column_name, ty));
    }
    let declared = parse_table_macros(schema_rs);
    assert_eq!(
        declared, actual,
        "store/schema.rs is out of date with the migrations of schema {schema} (left: schema.rs, right: database)"
    );
}

/// Tables and `column -> Type` lines of `diesel::table!` blocks, in declaration order.
fn parse_table_macros(source: &str) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut tables = std::collections::BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in source.lines().map(str::trim) {
        if let Some((table, _)) = line
            .split_once(" (")
            .filter(|_| line.ends_with('{') && current.is_none())
        {
            current = Some((table.trim().to_owned(), Vec::new()));
        } else if let Some((column, ty)) = line.split_once(" -> ") {
            if let Some((_, columns)) = current.as_mut() {
                // `Array<Text>` is compared as `Array`: information_schema names no element type.
                let ty = ty.trim_end_matches(',').trim();
                let ty = if ty.contains("Array<") {
                    if ty.starts_with("Nullable<") {
                        "Nullable<Array>".to_owned()
                    } else {
                        "Array".to_owned()
                    }
                } else {
                    ty.to_owned()
                };
                columns.push((column.trim().to_owned(), ty));
            }
        } else if line == "}"
            && let Some((table, columns)) = current.take()
        {
            tables.insert(table, columns);
        }
    }
    tables
}
