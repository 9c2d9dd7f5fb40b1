//! OpenTelemetry for this process: the `OTEL_*` settings handed to `pim_telemetry`, and the
//! guard's shutdown on the way out (issue 16, item 4).

use anyhow::Context;
use pim_core::config::TelemetrySettings;
use pim_telemetry::{OtelOptions, Telemetry};

/// Starts export as the settings say: nothing at all without an endpoint.
pub fn start(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    Telemetry::start(&options(settings), "pim-chat").context("OpenTelemetry")
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
