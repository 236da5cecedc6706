//! End-to-end test support: every service and the gateway started in-process on port
//! 0 against real PostgreSQL and RabbitMQ (see `mkt-test-support`). The tests live in
//! `tests/`.

pub mod fake_vtex;

use mkt_runtime::Running;
use mkt_test_support as support;
use serde_json::Value;

/// Ingestion's credential encryption key for tenant integrations in tests (base64 of
/// 32 bytes).
pub const TEST_INTEGRATIONS_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// All five services and the gateway, each on port 0, with their own databases and
/// one shared vhost.
pub struct Stack {
    /// Part of the stack.
    pub gateway: gateway::Running,
    /// Part of the stack.
    pub ingestion: Running,
    /// Part of the stack.
    pub segmentation: Running,
    /// Part of the stack.
    pub ingestion_db: String,
    /// Part of the stack.
    pub segmentation_db: String,
    /// Part of the stack (cdp-analytics' database).
    pub analytics_db: String,
    /// Part of the stack (tests call its scheduler directly).
    pub analytics: Running,
    /// Part of the stack.
    pub http: reqwest::Client,
    /// The vhost's AMQP URL.
    pub amqp_url: String,
    _others: Vec<Running>,
}

impl Stack {
    /// Starts all five services and the gateway in-process, every upstream working (see
    /// [`Stack::start_with`]).
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts all five services and the gateway; `broken_upstream` points the gateway's
    /// cdp-analytics route at a closed port instead.
    pub async fn start_with(broken_upstream: Option<&str>) -> Self {
        Self::start_full(broken_upstream, None).await
    }

    /// Starts everything with ingestion's VTEX base URL at `vtex_url` (a
    /// [`fake_vtex::FakeVtex`]).
    pub async fn start_with_vtex(vtex_url: &str) -> Self {
        Self::start_full(None, Some(vtex_url)).await
    }

    /// Ingestion's settings in the stack: the test encryption key, VTEX at `vtex_url`
    /// (a closed port unless a test brings a fake VTEX), a short sync poll.
    pub fn ingestion_config(
        service: mkt_runtime::ServiceConfig,
        vtex_url: Option<&str>,
    ) -> ingestion::config::Config {
        ingestion::config::Config {
            service,
            integrations: ingestion::config::IntegrationsConfig {
                encryption_key: Some(TEST_INTEGRATIONS_KEY.into()),
                vtex_base_url: vtex_url.unwrap_or("http://127.0.0.1:9").to_owned(),
                sync_poll_ms: 200,
                ..Default::default()
            },
        }
    }

    async fn start_full(broken_upstream: Option<&str>, vtex_url: Option<&str>) -> Self {
        let amqp = support::vhost().await;
        let amqp_url = amqp.clone();
        let ingestion_db = support::database_for(&ingestion::SPEC).await;
        let segmentation_db = support::database_for(&segmentation::SPEC).await;
        let config = |db: &str, schema: &str| {
            let mut config = support::service_config(db, &amqp);
            config.database.schema = Some(schema.to_owned());
            config
        };
        // Integrations are an import source of ingestion: no ingestion URL or token to
        // give it, it writes its syncs in-process.
        let ingestion = ingestion::spawn(Self::ingestion_config(
            config(&ingestion_db, "ingestion"),
            vtex_url,
        ))
        .await
        .expect("ingestion");
        let segmentation = segmentation::spawn(config(&segmentation_db, "segmentation"))
            .await
            .expect("segmentation");
        let campaign = campaign::spawn(support::service_config_for(&campaign::SPEC, &amqp).await)
            .await
            .expect("campaign");
        let webhook = webhook::spawn(support::service_config_for(&webhook::SPEC, &amqp).await)
            .await
            .expect("webhook");
        let analytics_db = support::database_for(&cdp_analytics::SPEC).await;
        let analytics = cdp_analytics::spawn(config(&analytics_db, "cdp_analytics"))
            .await
            .expect("analytics");
        let upstreams = gateway::config::Upstreams {
            ingestion: ingestion.url(),
            segmentation: segmentation.url(),
            campaign: campaign.url(),
            webhook: webhook.url(),
            cdp_analytics: broken_upstream
                .map(str::to_owned)
                .unwrap_or_else(|| analytics.url()),
            timeout_ms: 5_000,
            upload_timeout_ms: 600_000,
            connect_timeout_ms: 500,
        };
        let gateway = gateway::spawn(gateway::config::Config {
            http: mkt_runtime::HttpConfig {
                addr: "127.0.0.1:0".into(),
                workers: Some(1),
            },
            auth: support::auth_config(),
            upstreams,
            telemetry: Default::default(),
        })
        .await
        .expect("gateway");
        Stack {
            gateway,
            ingestion,
            segmentation,
            ingestion_db,
            segmentation_db,
            analytics_db,
            http: mkt_http_client::client(),
            amqp_url,
            analytics,
            _others: vec![campaign, webhook],
        }
    }

    /// A gateway URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// POSTs JSON through the gateway.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs through the gateway.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends any request through the gateway with a token and optional JSON body and
    /// extra headers; returns status, headers and the JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

/// A test's own queue on the event exchange, bound to one routing key: what a
/// downstream consumer of our events would receive.
pub struct Listener {
    consumer: lapin::Consumer,
    _channel: lapin::Channel,
    _connection: lapin::Connection,
}

impl Listener {
    /// The next message's payload, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: std::time::Duration) -> Option<Vec<u8>> {
        use futures_util::StreamExt;
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .ok()??
            .ok()?;
        Some(delivery.data.clone())
    }
}

impl Stack {
    /// Creates a customer through the gateway; returns its id.
    pub async fn create_customer(&self, token: &str, email: &str, state: &str) -> String {
        let customer = serde_json::json!({"name": email, "email": email,
            "address": {"street": "1 St", "city": "X", "state": state, "zipCode": "1", "country": "USA"}});
        let (status, _, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v2/cdp/customers",
                token,
                Some(&customer),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().expect("id").to_owned()
    }

    /// Places a delivered order of `amount` cents (USD) through the gateway; returns its id.
    pub async fn place_order(&self, token: &str, customer: &str, amount: i64) -> String {
        let order = serde_json::json!({"customerId": customer, "currency": "USD", "status": "delivered",
            "totalAmount": amount,
            "items": [{"productId": "p", "name": "n", "price": amount, "quantity": 1, "total": amount}]});
        let (status, _, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v2/cdp/orders",
                token,
                Some(&order),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["id"].as_str().expect("id").to_owned()
    }

    /// Binds a fresh exclusive queue to `routing_key` on the event exchange.
    pub async fn listen(&self, routing_key: &str) -> Listener {
        use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let connection =
            lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        let queue = format!("test.{}", uuid::Uuid::new_v4());
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
        channel
            .queue_bind(
                queue.as_str().into(),
                "mkt.events".into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        Listener {
            consumer,
            _channel: channel,
            _connection: connection,
        }
    }

    /// Publishes an event as another service would (tenant header, fresh message id).
    pub async fn publish(&self, routing_key: &str, tenant: &str, payload: Vec<u8>) {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
        let connection =
            lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("amqp");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let mut headers = FieldTable::default();
        headers.insert(
            ShortString::from("x-tenant-id"),
            AMQPValue::LongString(LongString::from(tenant)),
        );
        channel
            .basic_publish(
                "mkt.events".into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &payload,
                lapin::BasicProperties::default()
                    .with_message_id(uuid::Uuid::new_v4().to_string().into())
                    .with_headers(headers),
            )
            .await
            .expect("publish")
            .await
            .expect("confirmed");
    }
}
