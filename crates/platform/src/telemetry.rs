//! Tracing, logs and trace export, set up once per process.
//!
//! Spans come from `tracing`; `tracing-opentelemetry` turns them into OpenTelemetry spans, which
//! are exported by OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific variable)
//! is set, and kept local otherwise (ids still propagate, nothing is sent, nothing is logged about
//! it). The sampler is the SDK's, configured by `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` (the SDK's default is `parentbased_always_on`; deploy/ and compose
//! set `parentbased_traceidratio` with 0.1: a parent's decision — Envoy's 10% in the mesh — is
//! always honoured, and the roots the app starts itself are sampled at the same ratio).
//! Logs are JSON lines (timestamp, level, message, trace_id, span_id, tenant, order_id) unless
//! `LOG_FORMAT=pretty` or standard error is a terminal.

use std::{io::IsTerminal, sync::OnceLock, time::Duration};

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanProcessor},
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use trace_context::PropagatorSet;

use crate::configuration::LogFormat;

mod json_log;

/// Which service this process is, as telemetry names it.
#[derive(Debug, Clone, Copy)]
pub struct ServiceIdentity {
    /// `order-service`, … (the OpenTelemetry `service.name` unless `OTEL_SERVICE_NAME` is set).
    pub name: &'static str,
    /// `order`, `payment`, `inventory` or `notify`: the `service_type` span attribute.
    pub service_type: &'static str,
}

/// Flushes and stops trace export when the process ends.
#[must_use = "dropping the guard does not flush; call shutdown()"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// Writes the last buffered log lines when dropped.
    log_writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl TelemetryGuard {
    /// Exports what is buffered, waiting at most a few seconds.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            tracing::warn!(%error, "trace export did not flush cleanly");
        }
        drop(self.log_writer);
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// The tenant and service type of this process (set by [`init`]): every span is tagged with them.
static TAGS: OnceLock<(String, &'static str)> = OnceLock::new();

/// Runs work a background task does on behalf of an earlier request inside an internal span
/// named `name`: the span continues `parent` (a context stored with the work), so it joins that
/// request's trace. (Work done within a request is traced with `#[tracing::instrument]`.)
pub async fn in_span_continuing<F: Future>(
    name: &'static str,
    order_id: Option<uuid::Uuid>,
    parent: opentelemetry::Context,
    work: F,
) -> F::Output {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = internal_span(name, order_id);
    let _ = span.set_parent(parent);
    work.instrument(span).await
}

/// Like [`in_span_continuing`], for work that starts a trace of its own but follows from an earlier one
/// (a reconciliation of an order another request created): the span links to `linked`.
pub async fn in_span_linked<F: Future>(
    name: &'static str,
    order_id: Option<uuid::Uuid>,
    linked: opentelemetry::Context,
    work: F,
) -> F::Output {
    use opentelemetry::trace::TraceContextExt;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = internal_span(name, order_id);
    span.add_link(linked.span().span_context().clone());
    work.instrument(span).await
}

/// The current span's trace context (and the request's `x-request-id`) as header name → value
/// pairs, to store beside work that another task finishes later (an outbox entry), so that work
/// continues the same trace and the same request ([`trace_context::capture`]).
pub fn capture_current() -> trace_context::StoredContext {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    trace_context::capture(
        &tracing::Span::current().context(),
        crate::context::request_id(),
    )
}

fn internal_span(name: &'static str, order_id: Option<uuid::Uuid>) -> tracing::Span {
    let (tenant, service_type) = TAGS.get().map_or(("", ""), |(t, s)| (t.as_str(), *s));
    let span = tracing::info_span!(
        "internal",
        otel.name = name,
        tenant = tenant,
        service_type = service_type,
        order_id = tracing::field::Empty,
    );
    if let Some(id) = order_id {
        span.record("order_id", tracing::field::display(id));
    }
    span
}

/// Installs the global subscriber, propagator and tracer provider. Only the first call in a
/// process does anything (tests start several apps in one process); later calls get an inert guard.
pub fn init(
    service: ServiceIdentity,
    tenant: &str,
    format: Option<LogFormat>,
) -> Result<TelemetryGuard, String> {
    if INSTALLED.set(()).is_err() {
        return Ok(TelemetryGuard {
            provider: None,
            log_writer: None,
        });
    }
    let _ = TAGS.set((tenant.to_owned(), service.service_type));
    let propagators = match crate::configuration::optional("OTEL_PROPAGATORS") {
        Some(list) => PropagatorSet::parse(&list).map_err(|e| format!("OTEL_PROPAGATORS: {e}"))?,
        None => PropagatorSet::ALL,
    };
    trace_context::install(propagators);

    let provider = tracer_provider(service, tenant)?;
    let tracer = provider.tracer(service.name);
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let (logs, log_writer) = match format {
        LogFormat::Json => {
            let (writer, guard) = log_writer();
            (json_log::JsonLogLayer::new(writer).boxed(), Some(guard))
        }
        LogFormat::Pretty => (
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .compact()
                .boxed(),
            None,
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer(tracer))
        .with(logs)
        .try_init()
        .map_err(|e| format!("installing the tracing subscriber: {e}"))?;
    Ok(TelemetryGuard {
        provider: Some(provider),
        log_writer,
    })
}

/// Log lines queued for the writer thread at most: seconds of the busiest load `make bench` puts
/// on a service (≈ 2,000 lines/s).
const QUEUED_LOG_LINES: usize = 8_192;

/// Standard output for the JSON log lines, written by a thread of its own: a request formats its
/// line and queues it; the writer thread writes whatever has queued in one `write` (a buffer
/// flushed whenever the queue runs empty), instead of each line taking the stdout lock and a
/// system call on a runtime worker. Should standard output stall, lines beyond the queue's
/// [`QUEUED_LOG_LINES`] are dropped rather than blocking requests.
fn log_writer() -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .thread_name("log-writer")
        // The queue's slots are allocated up front: its default 128,000 lines cost 4 MB of RSS.
        .buffered_lines_limit(QUEUED_LOG_LINES)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ))
}

/// The layer turning `tracing` spans into OpenTelemetry spans, without the per-span extras the
/// traces here do not use: source location and thread attributes, busy/idle timing (two clock
/// reads per poll of every instrumented future) and activating an OpenTelemetry context on every
/// enter (propagation reads the context from the `tracing` span). Each of them costs on every
/// span, sampled or not — 90% of them are not at the mesh's 10%.
fn otel_layer<S>(tracer: opentelemetry_sdk::trace::Tracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
}

fn tracer_provider(service: ServiceIdentity, tenant: &str) -> Result<SdkTracerProvider, String> {
    let service_name =
        crate::configuration::optional("OTEL_SERVICE_NAME").unwrap_or_else(|| service.name.into());
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attributes([
            KeyValue::new("tenant", tenant.to_owned()),
            KeyValue::new("service_type", service.service_type),
        ])
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if export_configured() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("building the OTLP exporter: {e}"))?;
        let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build();
        builder = builder.with_span_processor(Tagged {
            next: batch,
            tags: [
                KeyValue::new("tenant", tenant.to_owned()),
                KeyValue::new("service_type", service.service_type),
            ],
        });
    }
    Ok(builder.build())
}

/// Tags every exported span that does not carry them yet with `tenant` and `service_type`, so a
/// span made by `#[tracing::instrument]` is tagged like the server and client spans that name
/// them themselves.
#[derive(Debug)]
struct Tagged<P> {
    next: P,
    tags: [KeyValue; 2],
}

impl<P: SpanProcessor> SpanProcessor for Tagged<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.next.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        for tag in &self.tags {
            if !span.attributes.iter().any(|kv| kv.key == tag.key) {
                span.attributes.push(tag.clone());
            }
        }
        self.next.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}

/// Whether an OTLP endpoint is configured and export is not switched off.
fn export_configured() -> bool {
    let endpoint = crate::configuration::optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| crate::configuration::optional("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = crate::configuration::optional("OTEL_TRACES_EXPORTER").as_deref()
        == Some("none")
        || crate::configuration::optional("OTEL_SDK_DISABLED").as_deref() == Some("true");
    endpoint.is_some() && !disabled
}
