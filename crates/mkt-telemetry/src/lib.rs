//! Tracing for every binary: structured logs, OpenTelemetry spans, and W3C trace
//! context carried across HTTP and AMQP.
//!
//! Owns: subscriber set-up (`RUST_LOG` filter, JSON or human format), OTLP/HTTP export
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the request middleware that reads
//! `traceparent`/`X-Request-Id` and answers with `X-Request-Id`, and helpers that inject
//! and extract trace context into plain string maps (the bus turns those into AMQP
//! headers). Must never: log request bodies or headers that may carry credentials.

use std::collections::HashMap;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The request id header we accept and always answer with.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Telemetry settings (`MKT_TELEMETRY__*`); the OTLP endpoint uses the standard
/// `OTEL_EXPORTER_OTLP_ENDPOINT` variable so collectors' docs apply unchanged.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetryConfig {
    /// `json` (default in containers) or `pretty`.
    #[serde(default)]
    pub log_format: Option<String>,
}

/// Keeps the exporter alive; flushes spans on drop.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber and propagator. Call once, first thing in `main`.
///
/// Spans always get OpenTelemetry ids (so `traceparent` propagates even with no
/// collector); they are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(service_name: &str, config: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let mut provider = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        // The exporter builds its own reqwest client, which needs TLS's provider.
        mkt_http_client::install_crypto_provider();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let otel_layer =
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name.to_owned()));

    // lapin logs every returned (unroutable) message at WARN with its whole body, which
    // carries customer data; the relay logs the routing key instead.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("lapin::returned_messages=error".parse()?);
    let fmt_layer = match config.log_format.as_deref() {
        Some("pretty") => tracing_subscriber::fmt::layer().boxed(),
        _ => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// Installs only the propagator and an id-generating tracer layer, for tests that
/// need `traceparent` to flow without a log subscriber of their own. Idempotent.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .with(layer)
            .try_init();
        // The provider must outlive every span; tests never shut it down.
        std::mem::forget(provider);
    });
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapReader<'a>(&'a HashMap<String, String>);

impl Extractor for MapReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The current span's trace context as headers (`traceparent`, maybe `tracestate`).
pub fn current_context_headers() -> HashMap<String, String> {
    let mut map = HashMap::new();
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MapCarrier(&mut map));
    map
}

/// Makes `span` a child of the trace context found in `headers` (if any).
pub fn set_parent_from(span: &tracing::Span, headers: &HashMap<String, String>) {
    let parent = TraceContextPropagator::new().extract(&MapReader(headers));
    let _ = span.set_parent(parent);
}

/// Request middleware (use with `actix_web::middleware::from_fn`): one span per
/// request, parented on an incoming `traceparent`, carrying the request id, which is
/// taken from `X-Request-Id` when the caller (the gateway) sent a sane one.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "http.request",
        http.method = %req.method(),
        http.route = req.match_pattern().as_deref().unwrap_or("unmatched"),
        http.status = tracing::field::Empty,
        request_id = %request_id,
    );
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str() == TRACEPARENT_HEADER || name.as_str() == "tracestate")
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    set_parent_from(&span, &headers);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let mut response = next.call(req).instrument(span.clone()).await?;
    span.record("http.status", response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(response)
}

/// The request id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);
