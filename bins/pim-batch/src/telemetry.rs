//! OpenTelemetry for this process: the `OTEL_*` settings handed to `pim_telemetry`, and the
//! guard's shutdown on the way out (issue 16, item 4).

use anyhow::Context;
use pim_core::config::TelemetrySettings;
use pim_telemetry::{OtelOptions, Telemetry};

/// Starts export as the settings say: nothing at all without an endpoint.
pub fn start(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    Telemetry::start(&options(settings), "pim-batch").context("OpenTelemetry")
}

/// The settings as `pim_telemetry` takes them (it depends on no pim crate but pim-http).
pub fn options(s: &TelemetrySettings) -> OtelOptions {
    OtelOptions {
        endpoint: s.endpoint.clone(),
        traces_endpoint: s.traces_endpoint.clone(),
        metrics_endpoint: s.metrics_endpoint.clone(),
        headers: s
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect(),
        timeout: s.timeout,
        metric_interval: s.metric_interval,
        service_name: s.service_name.clone(),
        resource_attributes: s.resource_attributes.clone(),
        disabled: s.disabled,
    }
}

/// Exports what is left and stops the export threads; a collector that cannot be reached is
/// a warning, never the run's exit code.
pub fn finish(telemetry: Telemetry) {
    if !telemetry.is_enabled() {
        return;
    }
    for problem in telemetry.shutdown() {
        tracing::warn!("OpenTelemetry: {problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_target_is_the_one_the_layer_exports() {
        assert_eq!(pim_core::TRACE_TARGET, pim_telemetry::TRACE_TARGET);
    }

    #[test]
    fn every_setting_reaches_the_options() {
        let env: std::collections::BTreeMap<String, String> = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k1"),
            ("OTEL_SERVICE_NAME", "pim-nightly"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=sec"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = pim_core::config::Settings::from_env(&env).unwrap();
        let o = options(&s.telemetry);
        assert_eq!(
            o.traces_url().as_deref(),
            Some("https://otel.example/v1/traces")
        );
        assert_eq!(o.headers, [("api-key".to_owned(), "k1".to_owned())]);
        assert_eq!(o.service_name.as_deref(), Some("pim-nightly"));
        assert_eq!(o.metric_interval, Some(std::time::Duration::from_secs(1)));
        assert!(!format!("{o:?}").contains("k1"));
    }
}
