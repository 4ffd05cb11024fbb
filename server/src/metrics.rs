//! Prometheus metrics at `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    resource: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    provider: String,
    /// `build`, `skipped`, `replayed`, `refused`, `invalid`, `limited`, `failed`.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    resource: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    pub watches: Gauge,
    pub events_tailed: Counter,
    pub resource_version: Gauge,
    builds: Family<BuildLabels, Counter>,
    build_duration: Histogram,
    /// Connections closed at once for being over a connection cap.
    pub connections_refused: Counter,
    /// Logins refused without a check for too many recent failures.
    pub logins_throttled: Counter,
    webhooks: Family<WebhookLabels, Counter>,
}

impl Metrics {
    pub fn new(
        controllers: &podspace_runtime::Supervisor,
        gc: &podspace_registry::gc::GcTotals,
    ) -> Self {
        let mut registry = Registry::with_prefix("podspace");
        controllers.register(&mut registry);
        for (name, help, counter) in [
            (
                "registry_gc_runs",
                "Registry garbage collections run (not dry runs)",
                &gc.runs,
            ),
            (
                "registry_gc_manifests_deleted",
                "Manifests garbage collection deleted",
                &gc.manifests_deleted,
            ),
            (
                "registry_gc_blobs_deleted",
                "Blobs garbage collection deleted",
                &gc.blobs_deleted,
            ),
            (
                "registry_gc_freed_bytes",
                "Bytes garbage collection freed",
                &gc.bytes_freed,
            ),
            (
                "registry_gc_spared",
                "Collection candidates a push used again during the sweep",
                &gc.spared,
            ),
            (
                "registry_gc_errors",
                "Blobs whose bytes a collection could not delete (retried)",
                &gc.errors,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(
                [
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]
                .into_iter(),
            )
        });
        let watches = Gauge::default();
        let events_tailed = Counter::default();
        let resource_version = Gauge::default();
        let builds = Family::<BuildLabels, Counter>::default();
        let build_duration = Histogram::new(
            [1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0].into_iter(),
        );
        registry.register(
            "builds_finished",
            "Builds that reached a terminal phase as reported by build nodes, by phase",
            builds.clone(),
        );
        registry.register(
            "build_duration_seconds",
            "Time from a build's start on a node to its end",
            build_duration.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, resource and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register("watches_active", "Open watch streams", watches.clone());
        registry.register(
            "events_tailed",
            "Events read from the durable event log",
            events_tailed.clone(),
        );
        registry.register(
            "store_resource_version",
            "Newest resourceVersion seen by this process",
            resource_version.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections refused for being over --max-connections-per-ip or --max-connections",
            connections_refused.clone(),
        );
        let logins_throttled = Counter::default();
        registry.register(
            "logins_throttled",
            "Password logins refused unchecked after too many recent failures",
            logins_throttled.clone(),
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by provider and outcome",
            webhooks.clone(),
        );
        Metrics {
            webhooks,
            connections_refused,
            logins_throttled,
            registry,
            requests,
            latency,
            watches,
            events_tailed,
            resource_version,
            builds,
            build_duration,
        }
    }

    pub fn observe_build(&self, phase: &str, seconds: f64) {
        self.builds
            .get_or_create(&BuildLabels {
                phase: phase.to_string(),
            })
            .inc();
        self.build_duration.observe(seconds);
    }

    pub fn observe_webhook(&self, provider: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: provider.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn observe_request(&self, method: &str, resource: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                resource: resource.to_string(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                method: method.to_string(),
                resource: resource.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// A low-cardinality label for a path: the resource plural, or the route.
pub fn resource_label(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match parts.first() {
        Some(&"apis") => parts.get(3..).unwrap_or(&[]),
        Some(&"oapi") | Some(&"api") => parts.get(2..).unwrap_or(&[]),
        Some(other) => return (*other).to_string(),
        None => return "root".into(),
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let plural = rest.first().copied().unwrap_or("discovery");
    // The build node protocol: nodes/<node>/<call> or nodes/<node>/builds/<ns>/<name>/<call>.
    if plural == "nodes" && parts.get(1) == Some(&"podspace.io") {
        return format!("nodes/{}", rest.last().copied().unwrap_or_default());
    }
    let known =
        podspace_api::KINDS.iter().any(|k| k.plural == plural) || plural == "projectrequests";
    if !known {
        return "unknown".into();
    }
    match rest.get(2) {
        Some(sub)
            if [
                "status",
                "token",
                "log",
                "instantiate",
                "instantiatebinary",
                "clone",
                "webhooks",
            ]
            .contains(sub) =>
        {
            format!("{plural}/{sub}")
        }
        _ => plural.to_string(),
    }
}

pub async fn render(State(state): State<AppState>) -> Response {
    state.controllers.refresh_metrics();
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &state.metrics.registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::resource_label;

    #[test]
    fn labels_have_low_cardinality() {
        assert_eq!(
            resource_label("/apis/image.openshift.io/v1/namespaces/p/imagestreams/x"),
            "imagestreams"
        );
        assert_eq!(
            resource_label("/oapi/v1/namespaces/p/builds/b-1/log"),
            "builds/log"
        );
        assert_eq!(
            resource_label("/apis/x/v1/namespaces/p/whatever-123"),
            "unknown"
        );
        assert_eq!(resource_label("/healthz"), "healthz");
    }
}
