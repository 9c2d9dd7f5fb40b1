//! A loopback OpenTelemetry collector: the OTLP/HTTP receiver's `POST /v1/traces` and
//! `POST /v1/metrics` with protobuf bodies (issue 16, item 4).
//!
//! Bodies are decoded with `opentelemetry-proto`'s generated messages, the ones the exporter
//! encodes with, so a test asserts on real span names, parents and attributes and on real
//! metric values, not on bytes. A body that is not `application/x-protobuf`, or does not
//! decode, is answered 400 (as a collector would) and kept in
//! [`OtlpReceiver::problems`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{RecordedRequest, header_text, lock};

/// One span as the collector received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name, e.g. `pim.scan`.
    pub name: String,
    /// Its trace, as lower-case hex.
    pub trace_id: String,
    /// Its own id, as lower-case hex.
    pub span_id: String,
    /// Its parent's id, as lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// Its attributes, each value as text.
    pub attributes: BTreeMap<String, String>,
    /// The `service.name` of the resource that sent it.
    pub service_name: Option<String>,
    /// Every attribute of the resource that sent it.
    pub resource: BTreeMap<String, String>,
    /// Its length in nanoseconds.
    pub duration_nanos: u64,
}

/// The value of one metric data point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    /// A counter's (cumulative) sum or a gauge's value.
    Number(f64),
    /// A histogram's count of measurements and their sum.
    Histogram {
        /// Measurements recorded.
        count: u64,
        /// Their sum.
        sum: f64,
    },
}

/// One metric data point as the collector received it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The instrument's name, e.g. `pim.activations`.
    pub name: String,
    /// Its unit, e.g. `s`.
    pub unit: String,
    /// The point's attributes, each value as text.
    pub attributes: BTreeMap<String, String>,
    /// The value.
    pub value: PointValue,
    /// The `service.name` of the resource that sent it.
    pub service_name: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Vec<RecordedRequest>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    problems: Vec<String>,
}

/// A fake OTLP/HTTP collector on 127.0.0.1.
///
/// Point `OTEL_EXPORTER_OTLP_ENDPOINT` at [`endpoint`](Self::endpoint); the exporter appends
/// `/v1/traces` and `/v1/metrics`.
pub struct OtlpReceiver {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("OtlpReceiver")
            .field("endpoint", &self.server.uri())
            .field("traces", &state.traces.len())
            .field("metrics", &state.metrics.len())
            .finish()
    }
}

impl OtlpReceiver {
    /// Starts the receiver.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(method("POST"))
            .respond_with(OtlpResponder {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    /// Every request received, in arrival order (bodies are binary: read
    /// [`spans`](Self::spans) and [`metrics`](Self::metrics) instead).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Bodies refused: wrong path, wrong content type, or not the protobuf message expected.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.state).problems.clone()
    }

    /// Every span received, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let state = lock(&self.state);
        let mut out = Vec::new();
        for request in &state.traces {
            for rs in &request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| service_name(&r.attributes));
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push(ReceivedSpan {
                            name: span.name.clone(),
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                            attributes: attributes(&span.attributes),
                            service_name: service.clone(),
                            resource: resource.clone(),
                            duration_nanos: span
                                .end_time_unix_nano
                                .saturating_sub(span.start_time_unix_nano),
                        });
                    }
                }
            }
        }
        out
    }

    /// The latest data point of every metric and attribute set. Our exporter sends cumulative
    /// sums, so the latest point is the total since the process started.
    pub fn metrics(&self) -> Vec<MetricPoint> {
        let state = lock(&self.state);
        let mut latest: BTreeMap<(String, Vec<(String, String)>), MetricPoint> = BTreeMap::new();
        for request in &state.metrics {
            for rm in &request.resource_metrics {
                let service = rm
                    .resource
                    .as_ref()
                    .and_then(|r| service_name(&r.attributes));
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        for (attrs, value) in points(m.data.as_ref()) {
                            let key = (
                                m.name.clone(),
                                attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            );
                            latest.insert(
                                key,
                                MetricPoint {
                                    name: m.name.clone(),
                                    unit: m.unit.clone(),
                                    attributes: attrs,
                                    value,
                                    service_name: service.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
        latest.into_values().collect()
    }

    /// The sum of a counter over the points whose attributes include every `(key, value)` of
    /// `with`; 0 when there is none.
    pub fn counter(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with)
            .filter_map(|p| match p.value {
                PointValue::Number(n) => Some(n),
                PointValue::Histogram { .. } => None,
            })
            .sum()
    }

    /// The measurements of a histogram over the points whose attributes include `with`.
    pub fn histogram_count(&self, name: &str, with: &[(&str, &str)]) -> u64 {
        self.matching(name, with)
            .filter_map(|p| match p.value {
                PointValue::Histogram { count, .. } => Some(count),
                PointValue::Number(_) => None,
            })
            .sum()
    }

    fn matching(&self, name: &str, with: &[(&str, &str)]) -> impl Iterator<Item = MetricPoint> {
        let with: Vec<(String, String)> = with
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let name = name.to_owned();
        self.metrics().into_iter().filter(move |p| {
            p.name == name
                && with
                    .iter()
                    .all(|(k, v)| p.attributes.get(k).is_some_and(|got| got == v))
        })
    }
}

fn points(data: Option<&metric::Data>) -> Vec<(BTreeMap<String, String>, PointValue)> {
    let number = |v: Option<&number_data_point::Value>| match v {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => 0.0,
    };
    match data {
        Some(metric::Data::Sum(sum)) => sum
            .data_points
            .iter()
            .map(|p| {
                (
                    attributes(&p.attributes),
                    PointValue::Number(number(p.value.as_ref())),
                )
            })
            .collect(),
        Some(metric::Data::Gauge(gauge)) => gauge
            .data_points
            .iter()
            .map(|p| {
                (
                    attributes(&p.attributes),
                    PointValue::Number(number(p.value.as_ref())),
                )
            })
            .collect(),
        Some(metric::Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| {
                (
                    attributes(&p.attributes),
                    PointValue::Histogram {
                        count: p.count,
                        sum: p.sum.unwrap_or_default(),
                    },
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

fn service_name(kvs: &[KeyValue]) -> Option<String> {
    kvs.iter()
        .find(|kv| kv.key == "service.name")
        .map(|kv| text(kv.value.as_ref()))
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct OtlpResponder {
    state: Arc<Mutex<State>>,
}

impl Respond for OtlpResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        state.requests.push(RecordedRequest::from_wiremock(request));
        let path = request.url.path().to_owned();
        let protobuf = header_text(request, "content-type")
            .is_some_and(|c| c.eq_ignore_ascii_case("application/x-protobuf"));
        if !protobuf {
            state
                .problems
                .push(format!("{path}: not application/x-protobuf"));
            return ResponseTemplate::new(415);
        }
        let decoded = match path.as_str() {
            "/v1/traces" => ExportTraceServiceRequest::decode(request.body.as_slice())
                .map(|r| state.traces.push(r)),
            "/v1/metrics" => ExportMetricsServiceRequest::decode(request.body.as_slice())
                .map(|r| state.metrics.push(r)),
            _ => {
                state.problems.push(format!("{path}: no such OTLP path"));
                return ResponseTemplate::new(404);
            }
        };
        match decoded {
            // An empty message is the encoding of an empty Export*ServiceResponse: success,
            // nothing rejected.
            Ok(()) => ResponseTemplate::new(200).set_body_raw(Vec::new(), "application/x-protobuf"),
            Err(e) => {
                state.problems.push(format!("{path}: {e}"));
                ResponseTemplate::new(400)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.to_owned())),
            }),
            ..KeyValue::default()
        }
    }

    fn export(total: i64) -> Vec<u8> {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope::default()),
                    metrics: vec![Metric {
                        name: "pim.runs".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("outcome", "success")],
                                value: Some(number_data_point::Value::AsInt(total)),
                                ..NumberDataPoint::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn decodes_protobuf_keeps_the_latest_cumulative_point_and_refuses_the_rest() {
        let rx = OtlpReceiver::start().await;
        let client = reqwest::Client::new();
        let post = |path: &'static str, ty: &'static str, body: Vec<u8>| {
            let client = client.clone();
            let url = format!("{}{path}", rx.endpoint());
            async move {
                client
                    .post(url)
                    .header("content-type", ty)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(
            post("/v1/metrics", "application/x-protobuf", export(1)).await,
            200
        );
        assert_eq!(
            post("/v1/metrics", "application/x-protobuf", export(3)).await,
            200
        );
        assert_eq!(rx.counter("pim.runs", &[("outcome", "success")]), 3.0);
        assert_eq!(rx.counter("pim.runs", &[("outcome", "failure")]), 0.0);
        assert_eq!(
            post("/v1/metrics", "application/json", b"{}".to_vec()).await,
            415
        );
        assert_eq!(
            post("/v1/traces", "application/x-protobuf", vec![0xff, 0xff]).await,
            400
        );
        assert_eq!(
            post("/v1/logs", "application/x-protobuf", Vec::new()).await,
            404
        );
        assert_eq!(rx.problems().len(), 3, "{:?}", rx.problems());
        assert!(rx.spans().is_empty());
        assert_eq!(rx.requests().len(), 5);
    }
}
