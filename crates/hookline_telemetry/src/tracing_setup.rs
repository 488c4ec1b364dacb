//! Structured logs plus optional OpenTelemetry trace export, and W3C trace-context
//! propagation helpers for carrying a trace across the queue.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter alive; dropping it flushes what is buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Whether spans are exported. When not, no OpenTelemetry work happens on any path.
pub fn tracing_enabled() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs logging and, when `otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set,
/// OTLP/gRPC span export for `service`. An `https://` endpoint is reached over TLS
/// (rustls) trusting the system store plus the PEM file named by
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` (the OpenTelemetry variable for a private CA).
/// `format` is `auto` (JSON unless stdout is a terminal), `json` or `pretty`;
/// `RUST_LOG` overrides `default_level`. A second call does nothing.
pub fn init(
    service: &str,
    format: &str,
    default_level: &str,
    otlp_endpoint: Option<&str>,
) -> TelemetryGuard {
    let endpoint = otlp_endpoint
        .map(str::to_string)
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.is_empty());
    let provider = endpoint.and_then(|endpoint| {
        let ca_file = std::env::var_os("OTEL_EXPORTER_OTLP_CERTIFICATE");
        match otlp_exporter(&endpoint, ca_file.as_deref().map(std::path::Path::new)) {
            Ok(exporter) => Some(provider_with(service, |b| b.with_batch_exporter(exporter))),
            Err(e) => {
                eprintln!("OTLP exporter could not be built ({e}); traces are not exported");
                None
            }
        }
    });
    install(format, default_level, provider)
}

/// The OTLP/gRPC span exporter for `endpoint`. For `https://`, TLS trusts the system
/// store and, if given, the PEM certificates in `ca_file`; `http://` stays plaintext.
///
/// # Errors
/// A message naming what is wrong: an unreadable CA file, an invalid endpoint.
pub fn otlp_exporter(
    endpoint: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        // The exporter's own default for https trusts no root at all; name them.
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("OTEL_EXPORTER_OTLP_CERTIFICATE {}: {e}", path.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        builder = builder.with_tls_config(tls);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Like [`init`] with an explicit tracer provider (tests pass one with an in-memory
/// exporter).
pub fn init_with_provider(
    format: &str,
    default_level: &str,
    provider: SdkTracerProvider,
) -> TelemetryGuard {
    install(format, default_level, Some(provider))
}

/// A tracer provider for `service` configured by `configure` (add exporters there).
pub fn provider_with(
    service: &str,
    configure: impl FnOnce(
        opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder,
) -> SdkTracerProvider {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    configure(SdkTracerProvider::builder().with_resource(resource)).build()
}

fn install(
    format: &str,
    default_level: &str,
    provider: Option<SdkTracerProvider>,
) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        "json" => true,
        "pretty" => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if json {
        Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false),
        )
    } else {
        Box::new(tracing_subscriber::fmt::layer().with_target(false))
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("hookline"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    // Each layer filters for itself: the log level does not decide which spans are
    // exported, and with logs at `warn` and no exporter, spans are not even created.
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    TelemetryGuard {
        provider: provider.filter(|_| installed),
    }
}

/// The W3C `traceparent` of `span`, when traces are exported and the span has a valid
/// context; `None` otherwise (no cost when tracing is off).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the remote span named by `traceparent` (no-op when tracing is
/// off or the value is not a valid traceparent).
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let (Some(traceparent), true) = (traceparent, tracing_enabled()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The trace id inside a `traceparent` value (`00-<trace id>-<span id>-<flags>`), for
/// logs: present whether or not spans are exported.
pub fn trace_id_of(traceparent: Option<&str>) -> Option<&str> {
    let mut parts = traceparent?.split('-');
    let (_, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_read_out_of_traceparents() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_of(Some(tp)),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of(Some("garbage")), None);
        assert_eq!(trace_id_of(None), None);
    }
}
