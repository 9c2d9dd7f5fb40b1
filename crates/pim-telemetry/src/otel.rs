//! OpenTelemetry export over OTLP/HTTP (protobuf): traces of the scan stages and the scan's
//! metrics, off unless an endpoint is configured (issue 16, item 4).
//!
//! [`Telemetry::start`] reads nothing itself: the binary passes [`OtelOptions`], which
//! `pim_core::config::Settings` filled from the standard `OTEL_*` variables. Without an endpoint
//! (or with `OTEL_SDK_DISABLED=true`) it returns [`Telemetry::disabled`]: no exporter, no
//! background thread, no tracing layer, and the scan's spans are disabled at their call sites.
//!
//! With an endpoint, a tracer provider with a batch span processor and a meter provider with a
//! periodic reader each run one export thread of the SDK's own, sending with the blocking
//! `reqwest` client (so no async runtime is needed, and the binaries' runtimes can come and go).
//! The binaries hold the [`Telemetry`] guard until `main` returns: [`Telemetry::shutdown`] (or
//! dropping it) exports what is left, so the last batch leaves on every exit path, failures
//! included.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use pim_http::secret::Redacted;
use tracing_subscriber::{Layer, Registry};

use crate::logging::BoxedLayer;
use crate::{Error, Result};

/// The `tracing` target of every span meant for export (`pim_core`'s scan and stage spans).
/// Only spans of this target reach the OpenTelemetry layer, and the log layers never see them,
/// so log lines look the same with telemetry on or off.
pub const TRACE_TARGET: &str = "pim::trace";

/// The instrumentation scope of the tracer and the meter.
const SCOPE: &str = "pim-audit";

/// How the binaries export telemetry, from the `OTEL_*` variables. [`Default`] is off.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtelOptions {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL; `/v1/traces` and `/v1/metrics`
    /// are appended. Without it (and without a per-signal endpoint) nothing is exported.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL for traces, used as is.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: the full URL for metrics, used as is.
    pub metrics_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, decoded: sent with every export. They usually carry an API
    /// key, so `Debug` never prints their values.
    pub headers: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`: how long one export may take (default 10 s).
    pub timeout: Option<Duration>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`: time between metric exports of a long-running process
    /// (default 60 s); a short-lived one also exports at exit.
    pub metric_interval: Option<Duration>,
    /// `OTEL_SERVICE_NAME`: the `service.name` resource attribute (default: the binary's name).
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded: more resource attributes. `service.name` here is
    /// used when `OTEL_SERVICE_NAME` is not set, as the specification says.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_SDK_DISABLED=true`: nothing is exported, whatever the rest says.
    pub disabled: bool,
}

impl fmt::Debug for OtelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtelOptions")
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("metrics_endpoint", &self.metrics_endpoint)
            .field("header_names", &header_names)
            .field("header_values", &Redacted::if_some(self.headers.first()))
            .field("timeout", &self.timeout)
            .field("metric_interval", &self.metric_interval)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl OtelOptions {
    /// The URL traces go to, if any: the per-signal endpoint as given, else the base endpoint
    /// with `/v1/traces` appended.
    pub fn traces_url(&self) -> Option<String> {
        signal_url(
            self.traces_endpoint.as_deref(),
            self.endpoint.as_deref(),
            "v1/traces",
        )
    }

    /// The URL metrics go to, if any (as [`traces_url`](Self::traces_url), `/v1/metrics`).
    pub fn metrics_url(&self) -> Option<String> {
        signal_url(
            self.metrics_endpoint.as_deref(),
            self.endpoint.as_deref(),
            "v1/metrics",
        )
    }

    /// Whether anything would be exported.
    pub fn enabled(&self) -> bool {
        !self.disabled && (self.traces_url().is_some() || self.metrics_url().is_some())
    }
}

/// The OTLP/HTTP rule: a per-signal endpoint is the whole URL; the base endpoint gets the
/// signal's path appended (one `/` between them).
fn signal_url(signal: Option<&str>, base: Option<&str>, path: &str) -> Option<String> {
    fn nonblank(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(url) = nonblank(signal) {
        return Some(url.to_owned());
    }
    nonblank(base).map(|b| format!("{}/{path}", b.trim_end_matches('/')))
}

/// The process's OpenTelemetry: its providers when export is on, nothing when it is off.
///
/// Hold it until the end of `main`: dropping it (or [`shutdown`](Self::shutdown)) exports
/// what is still buffered and stops the export threads.
///
/// ```
/// use pim_telemetry::{OtelOptions, Telemetry};
///
/// // No endpoint: nothing is built, and no thread is started.
/// let telemetry = Telemetry::start(&OtelOptions::default(), "pim-batch").unwrap();
/// assert!(!telemetry.is_enabled());
/// assert!(telemetry.meter().is_none());
/// ```
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .finish()
    }
}

impl Telemetry {
    /// Telemetry that is off: exports nothing and costs nothing.
    pub fn disabled() -> Self {
        Self {
            tracer: None,
            meter: None,
        }
    }

    /// Starts export as `options` say; `default_service` names the service when
    /// `OTEL_SERVICE_NAME` does not. Off (and free) without an endpoint or when disabled.
    ///
    /// # Errors
    /// [`Error::Otel`] when an exporter cannot be built (an endpoint that is not a URL, a
    /// header that is not a valid HTTP header).
    pub fn start(options: &OtelOptions, default_service: &str) -> Result<Self> {
        if !options.enabled() {
            return Ok(Self::disabled());
        }
        let resource = resource(options, default_service);
        let headers: HashMap<String, String> = options.headers.iter().cloned().collect();
        let timeout = options.timeout.unwrap_or(Duration::from_secs(10));
        let tracer = match options.traces_url() {
            Some(url) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url)
                    .with_timeout(timeout)
                    .with_headers(headers.clone())
                    .build()
                    .map_err(|e| Error::Otel {
                        signal: "traces",
                        message: e.to_string(),
                    })?;
                Some(
                    SdkTracerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource.clone())
                        .build(),
                )
            }
            None => None,
        };
        let meter = match options.metrics_url() {
            Some(url) => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(url)
                    .with_timeout(timeout)
                    .with_headers(headers)
                    .build()
                    .map_err(|e| Error::Otel {
                        signal: "metrics",
                        message: e.to_string(),
                    })?;
                let reader = PeriodicReader::builder(exporter)
                    .with_interval(options.metric_interval.unwrap_or(Duration::from_secs(60)))
                    .build();
                Some(
                    SdkMeterProvider::builder()
                        .with_reader(reader)
                        .with_resource(resource)
                        .build(),
                )
            }
            None => None,
        };
        Ok(Self { tracer, meter })
    }

    /// Whether anything is exported.
    pub fn is_enabled(&self) -> bool {
        self.tracer.is_some() || self.meter.is_some()
    }

    /// The meter the scan's instruments are created from, when metrics are exported.
    pub fn meter(&self) -> Option<Meter> {
        self.meter.as_ref().map(|m| m.meter(SCOPE))
    }

    /// The tracing layer that turns the spans of [`TRACE_TARGET`] into exported spans, when
    /// traces are exported. No event becomes a span event: log records stay in the logs.
    pub(crate) fn layer(&self) -> Option<BoxedLayer> {
        let provider = self.tracer.as_ref()?;
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SCOPE))
            // Only the span's own fields: no source location, thread, target or busy/idle
            // times, which would only repeat the same values on every span.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target() == TRACE_TARGET
            }));
        Some(Box::new(layer) as Box<dyn Layer<Registry> + Send + Sync>)
    }

    /// Exports what is buffered and stops the export threads. Returns the problems, one per
    /// signal that could not be flushed (the collector down, a timeout): telemetry never fails
    /// a run, so the binary only logs them.
    pub fn shutdown(mut self) -> Vec<String> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(tracer) = self.tracer.take()
            && let Err(e) = tracer.shutdown()
        {
            problems.push(format!("exporting traces: {e}"));
        }
        if let Some(meter) = self.meter.take()
            && let Err(e) = meter.shutdown()
        {
            problems.push(format!("exporting metrics: {e}"));
        }
        problems
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // The last batch leaves even on an early return or a panic's unwinding.
        let _ = self.stop();
    }
}

/// `service.name` (the variable, else `OTEL_RESOURCE_ATTRIBUTES`' own, else the binary's),
/// `service.version`, and the other resource attributes as given. Built without the SDK's
/// environment detectors: every value comes through the settings.
fn resource(options: &OtelOptions, default_service: &str) -> Resource {
    let from_attributes = options
        .resource_attributes
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    let service = options
        .service_name
        .clone()
        .or(from_attributes)
        .unwrap_or_else(|| default_service.to_owned());
    let others = options
        .resource_attributes
        .iter()
        .filter(|(k, _)| k != "service.name")
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    Resource::builder_empty()
        .with_attributes(others)
        .with_attribute(KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION").to_owned(),
        ))
        .with_service_name(service)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_otlp_http_rules() {
        let o = OtelOptions {
            endpoint: Some("http://collector:4318/".into()),
            metrics_endpoint: Some("http://other:9000/custom".into()),
            ..OtelOptions::default()
        };
        assert_eq!(
            o.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(o.metrics_url().as_deref(), Some("http://other:9000/custom"));
        assert!(o.enabled());
        let disabled = OtelOptions {
            disabled: true,
            ..o
        };
        assert!(!disabled.enabled());
        assert!(!OtelOptions::default().enabled());
    }

    #[test]
    fn off_builds_nothing() {
        let t = Telemetry::start(&OtelOptions::default(), "pim-batch").unwrap();
        assert!(!t.is_enabled());
        assert!(t.meter().is_none());
        assert!(t.layer().is_none());
        let disabled = OtelOptions {
            endpoint: Some("http://127.0.0.1:1".into()),
            disabled: true,
            ..OtelOptions::default()
        };
        let t = Telemetry::start(&disabled, "pim-batch").unwrap();
        assert!(!t.is_enabled());
        assert!(t.shutdown().is_empty());
    }

    #[test]
    fn debug_never_prints_a_header_value() {
        let o = OtelOptions {
            endpoint: Some("http://collector:4318".into()),
            headers: vec![("api-key".into(), "s3cr3t-header-value".into())],
            ..OtelOptions::default()
        };
        let text = format!("{o:?}");
        assert!(!text.contains("s3cr3t-header-value"), "{text}");
        assert!(text.contains("api-key"), "{text}");
    }

    #[test]
    fn the_service_name_comes_from_the_variable_then_the_attributes_then_the_binary() {
        let name = |o: &OtelOptions| {
            resource(o, "pim-chat")
                .get(&opentelemetry::Key::new("service.name"))
                .map(|v| v.to_string())
        };
        let mut o = OtelOptions::default();
        assert_eq!(name(&o).as_deref(), Some("pim-chat"));
        o.resource_attributes = vec![
            ("service.name".into(), "from-attrs".into()),
            ("deployment.environment.name".into(), "prod".into()),
        ];
        assert_eq!(name(&o).as_deref(), Some("from-attrs"));
        o.service_name = Some("pim-nightly".into());
        assert_eq!(name(&o).as_deref(), Some("pim-nightly"));
        let r = resource(&o, "pim-chat");
        assert_eq!(
            r.get(&opentelemetry::Key::new("deployment.environment.name"))
                .map(|v| v.to_string())
                .as_deref(),
            Some("prod")
        );
    }
}
