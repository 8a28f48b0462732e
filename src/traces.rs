//! OpenTelemetry traces over OTLP (HTTP/protobuf, or gRPC), from the `tracing` spans.
//!
//! Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Read
//! here: the transport (`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`, `http/protobuf` or `grpc`) and a
//! CA file for the collector's TLS (`OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`). The other
//! standard variables configure the rest, read by the OpenTelemetry SDK itself:
//! `OTEL_EXPORTER_OTLP_HEADERS` (and `_TRACES_HEADERS`), `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME` (default here: `atomic-signup`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, and the batch processor's `OTEL_BSP_*`.
//!
//! Spans are exported in batches on a thread of the SDK's, off the request path: a full queue
//! (OTEL_BSP_MAX_QUEUE_SIZE) drops spans, and so does a failed export, both counted in a metric;
//! nothing waits. Over HTTP the collector is called with the service's own client (reqwest, no
//! redirects) on the service's runtime; over gRPC through tonic's channel. W3C trace context
//! (`traceparent`, `tracestate`) is read from requests and sent to GoTrue, the captcha provider
//! and HTTP hooks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};

/// The provider, kept for the flush at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// How long the flush at shutdown may take.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// The collector's endpoint, as the SDK reads it: the traces one, else the general one.
fn endpoint() -> Option<String> {
    first_set([
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ])
}

/// The value of the first of `names` that is set and not blank.
fn first_set<const N: usize>(names: [&str; N]) -> Option<String> {
    names.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The OTLP transport (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`):
/// `http/protobuf` (the default) or `grpc`.
fn protocol() -> Result<opentelemetry_otlp::Protocol, String> {
    match first_set([
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ])
    .as_deref()
    {
        None | Some("http/protobuf") => Ok(opentelemetry_otlp::Protocol::HttpBinary),
        Some("grpc") => Ok(opentelemetry_otlp::Protocol::Grpc),
        Some(other) => Err(format!(
            "OTLP protocol {other:?} is not supported (http/protobuf or grpc)"
        )),
    }
}

/// The certificates (PEM) that a collector's TLS certificate may chain to besides the public
/// roots: the file `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, else `OTEL_EXPORTER_OTLP_CERTIFICATE`,
/// names (a private CA's, say).
fn ca_certificates() -> Result<Option<Vec<u8>>, String> {
    let Some(path) = first_set([
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ]) else {
        return Ok(None);
    };
    std::fs::read(&path)
        .map(Some)
        .map_err(|e| format!("OTLP certificate file {path}: {e}"))
}

/// The OTLP exporter of `protocol` (to `endpoint`, which the SDK reads itself). HTTP goes
/// through the service's own client (with its runtime); gRPC through tonic's channel, TLS for an
/// `https://` endpoint (public roots and `ca`).
fn exporter(
    protocol: opentelemetry_otlp::Protocol,
    endpoint: &str,
    ca: Option<&[u8]>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match protocol {
        opentelemetry_otlp::Protocol::Grpc => {
            use opentelemetry_otlp::WithTonicConfig as _;
            let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if endpoint.to_ascii_lowercase().starts_with("https://") {
                let mut tls = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
                if let Some(pem) = ca {
                    tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                }
                builder = builder.with_tls_config(tls);
            }
            builder.build()
        }
        _ => {
            let client = CollectorClient::new(ca).map_err(|e| format!("OTLP client: {e}"))?;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(client)
                .build()
        }
    };
    built.map_err(|e| format!("OTLP exporter: {e}"))
}

/// The tracer provider for the configured endpoint, installed as the global one (with the W3C
/// propagator); `None` when no endpoint is set. Must be called inside the Tokio runtime.
pub fn provider_from_env() -> Result<Option<SdkTracerProvider>, String> {
    let Some(endpoint) = endpoint() else {
        return Ok(None);
    };
    let exporter = exporter(protocol()?, &endpoint, ca_certificates()?.as_deref())?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("atomic-signup");
    }
    let queued = Arc::new(AtomicUsize::new(0));
    let limit = queue_limit();
    // The SDK's batch processor, behind a gate of `limit` spans that counts what it drops (the
    // SDK's own queue, twice as long, then never fills).
    let batch = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        queued: Arc::clone(&queued),
        failing: Arc::new(AtomicBool::new(false)),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(limit.saturating_mul(2).max(1))
            .build(),
    )
    .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Gate {
            inner: batch,
            queued,
            limit,
        })
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = PROVIDER.set(provider.clone());
    Ok(Some(provider))
}

/// Spans waiting for export at most (OTEL_BSP_MAX_QUEUE_SIZE, the SDK's default 2,048).
fn queue_limit() -> usize {
    std::env::var(opentelemetry_sdk::trace::OTEL_BSP_MAX_QUEUE_SIZE)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(opentelemetry_sdk::trace::OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT)
}

/// Lets a finished span into the batch processor while fewer than `limit` wait for export;
/// drops it otherwise, counted in `atomic_signup_trace_spans_dropped_total{reason="queue_full"}`.
/// A slow or absent collector thus costs spans, never memory beyond the limit, and never a
/// request's time.
#[derive(Debug)]
struct Gate {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl SpanProcessor for Gate {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            metrics::counter!(crate::observe::TRACE_SPANS_DROPPED, "reason" => "queue_full")
                .increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, telling the [`Gate`] when spans have left the queue, and counting the spans of
/// a batch the collector did not take (refused, unreachable, an error status, no answer within
/// the client's timeout) in `atomic_signup_trace_spans_dropped_total{reason="export_failed"}`.
/// One warning when exports start failing and one line when they work again: an absent
/// collector costs two log lines, not one per batch.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        self.queued.fetch_sub(spans, Ordering::SeqCst);
        let export = self.inner.export(batch);
        let failing = Arc::clone(&self.failing);
        async move {
            let result = export.await;
            match &result {
                Ok(()) => {
                    if failing.swap(false, Ordering::SeqCst) {
                        tracing::info!("trace export works again");
                    }
                }
                Err(err) => {
                    metrics::counter!(
                        crate::observe::TRACE_SPANS_DROPPED,
                        "reason" => "export_failed"
                    )
                    .increment(u64::try_from(spans).unwrap_or(u64::MAX));
                    // The SDK's errors name no address, header or body ("network error",
                    // "status code: 503").
                    if !failing.swap(true, Ordering::SeqCst) {
                        tracing::warn!(
                            error = %err,
                            "trace export failed; spans are dropped until the collector takes them"
                        );
                    }
                }
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("atomic-signup"))
}

/// Exports what is still queued, within a short time; never blocks shutdown longer.
pub async fn shutdown() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    let flush = tokio::task::spawn_blocking(move || provider.shutdown());
    if tokio::time::timeout(SHUTDOWN_FLUSH, flush).await.is_err() {
        tracing::warn!("traces not flushed within 2 s at shutdown");
    }
}

/// Records a finished child of the current span, from `start` to `end`: work measured elsewhere
/// (a hashing thread's wait and hash), as spans of their own; when tracing is on.
pub fn record_child(name: &'static str, start: std::time::SystemTime, end: std::time::SystemTime) {
    if PROVIDER.get().is_none() {
        return;
    }
    use opentelemetry::trace::{Span as _, Tracer as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let parent = tracing::Span::current().context();
    let tracer = opentelemetry::global::tracer("atomic-signup");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .start_with_context(&tracer, &parent);
    span.end_with_timestamp(end);
}

/// Records `field` (declared empty) of `span` when tracing is on; off, the value is never built
/// (a span's name in traces is its `otel.name`).
pub fn record(span: &tracing::Span, field: &'static str, value: impl FnOnce() -> String) {
    if PROVIDER.get().is_some() {
        span.record(field, value());
    }
}

/// Makes `span` the server span of a request, when tracing is on (off, nothing is formatted or
/// parsed): names it `<method> <route>`, continues the trace of the request's `traceparent` /
/// `tracestate`, and records the trace's and its own ids in its `trace_id` and `span_id` fields,
/// so the request's log lines carry them and logs join traces.
pub fn continue_trace(
    span: &tracing::Span,
    method: &axum::http::Method,
    route: &str,
    headers: &axum::http::HeaderMap,
) {
    if PROVIDER.get().is_none() {
        return;
    }
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    record(span, "otel.name", || format!("{method} {route}"));
    let _ = span.set_parent(extract(headers));
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// The trace context that `headers` carry (`traceparent`, `tracestate`).
fn extract(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    })
}

/// The current span's W3C `traceparent` (and `tracestate`) as headers for an outgoing request
/// (GoTrue, the captcha provider, an HTTP hook); empty when tracing is off.
pub fn current_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    inject_current(&mut headers);
    headers
}

/// The current span's W3C `traceparent`, when tracing is on and the span is being recorded.
pub fn current_traceparent() -> Option<String> {
    PROVIDER.get()?;
    current_headers()
        .get("traceparent")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// Links `span` to the trace of `traceparent` (the signup's, kept with an outbox row).
pub fn link_to(span: &tracing::Span, traceparent: &str) {
    if PROVIDER.get().is_none() {
        return;
    }
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let Ok(value) = reqwest::header::HeaderValue::from_str(traceparent) else {
        return;
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("traceparent", value);
    let linked = extract(&headers).span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Adds the current span's `traceparent` (and `tracestate`) to `headers`, when tracing is on.
fn inject_current(headers: &mut reqwest::header::HeaderMap) {
    if PROVIDER.get().is_none() {
        return;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

/// The collector's HTTP client: the service's reqwest, called on the service's runtime (the
/// SDK's batch thread has none of its own).
#[derive(Debug)]
struct CollectorClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl CollectorClient {
    /// A client trusting the public roots and the certificates of `ca` (PEM).
    fn new(ca: Option<&[u8]>) -> Result<Self, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(pem) = ca {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("OTLP certificate file: {e}"))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let answer = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let body = crate::answer::read_at_most(answer, COLLECTOR_ANSWER_LIMIT)
                .await?
                .ok_or_else(|| format!("collector answer over {COLLECTOR_ANSWER_LIMIT} bytes"))?;
            Ok::<_, HttpError>((status, body))
        });
        let (status, body) = sent.await??;
        let mut response = Response::new(Bytes::from(body));
        *response.status_mut() = status;
        Ok(response)
    }
}

/// The most of a collector's answer that is read (an OTLP answer is a few bytes: a partial
/// success at most); a longer one fails the export instead of growing memory.
const COLLECTOR_ANSWER_LIMIT: usize = 64 * 1024;
