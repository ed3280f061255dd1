//! `GET /metrics`: what the server did, in the Prometheus (OpenMetrics) text format, kept by
//! the `prometheus-client` crate.
//!
//! ```text
//! chartcache_http_requests_total{route,status}      requests answered
//! chartcache_http_response_bytes_total{route}       body bytes sent (as the client took them)
//! chartcache_http_request_duration_seconds{route}   time to the response head (histogram)
//! chartcache_upstream_fetches_total{kind,outcome}   fetches from the upstream (kind: chart,
//!                                                   index, probe; outcome: ok, error)
//! chartcache_pull_through_total{result}             pull-through lookups: hit (served from
//!                                                   the cache) or miss (fetched)
//! chartcache_index_builds_total                     index views built
//! chartcache_index_build_duration_seconds           how long each build took (histogram)
//! ```
//!
//! Label values come from fixed sets (routes are classified, never copied from the path), so
//! a client cannot grow the label space.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The media type [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a request asked for, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Index,
    Chart,
    ApiBase,
    Catalog,
    Tags,
    Manifest,
    Blob,
    Referrers,
    Healthz,
    Readyz,
    Metrics,
    Other,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::Index => "index",
            Route::Chart => "chart",
            Route::ApiBase => "v2",
            Route::Catalog => "catalog",
            Route::Tags => "tags",
            Route::Manifest => "manifest",
            Route::Blob => "blob",
            Route::Referrers => "referrers",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Other => "other",
        }
    }
}

/// What the upstream was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    Chart,
    Index,
    Probe,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 33 s.
    Histogram::new(exponential_buckets(0.0005, 3.0, 11))
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes: Family<RouteLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    fetches: Family<FetchLabels, Counter>,
    lookups: Family<LookupLabels, Counter>,
    index_builds: Counter,
    index_build_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chartcache");
        let requests = Family::<RequestLabels, Counter>::default();
        let bytes = Family::<RouteLabels, Counter>::default();
        let latency: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency_histogram);
        let fetches = Family::<FetchLabels, Counter>::default();
        let lookups = Family::<LookupLabels, Counter>::default();
        let index_builds = Counter::default();
        let index_build_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        registry.register(
            "http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Response body bytes sent, by route",
            bytes.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to its response head, by route",
            latency.clone(),
        );
        registry.register(
            "upstream_fetches",
            "Requests to the upstream, by what was fetched and how it went",
            fetches.clone(),
        );
        registry.register(
            "pull_through",
            "Pull-through lookups: served from the cache (hit) or fetched first (miss)",
            lookups.clone(),
        );
        registry.register("index_builds", "Index views built", index_builds.clone());
        registry.register(
            "index_build_duration_seconds",
            "How long building the index views took",
            index_build_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            bytes,
            latency,
            fetches,
            lookups,
            index_builds,
            index_build_seconds,
        }
    }

    /// A request answered with `status` after `took`.
    pub fn request(&self, route: Route, status: u16, took: Duration) {
        let route = route.label();
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// The counter of body bytes sent for `route` (cloned into each response body).
    pub fn bytes_counter(&self, route: Route) -> Counter {
        self.bytes.get_or_create_owned(&RouteLabels {
            route: route.label(),
        })
    }

    pub fn fetch(&self, kind: Fetch, ok: bool) {
        let kind = match kind {
            Fetch::Chart => "chart",
            Fetch::Index => "index",
            Fetch::Probe => "probe",
        };
        let outcome = if ok { "ok" } else { "error" };
        self.fetches
            .get_or_create(&FetchLabels { kind, outcome })
            .inc();
    }

    /// A pull-through lookup: `hit` when the cache had it.
    pub fn lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.lookups.get_or_create(&LookupLabels { result }).inc();
    }

    pub fn index_built(&self, took: Duration) {
        self.index_builds.inc();
        self.index_build_seconds.observe(took.as_secs_f64());
    }

    /// Every metric, in the text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_builds_are_counted_in_the_text_format() {
        let m = Metrics::new();
        m.request(Route::Index, 200, Duration::from_millis(2));
        m.request(Route::Index, 200, Duration::from_millis(3));
        m.request(Route::Blob, 404, Duration::from_millis(1));
        m.bytes_counter(Route::Index).inc_by(1234);
        m.fetch(Fetch::Chart, true);
        m.lookup(false);
        m.lookup(true);
        m.index_built(Duration::from_millis(40));
        let text = m.render();
        for line in [
            "chartcache_http_requests_total{route=\"index\",status=\"200\"} 2",
            "chartcache_http_requests_total{route=\"blob\",status=\"404\"} 1",
            "chartcache_http_response_bytes_total{route=\"index\"} 1234",
            "chartcache_http_request_duration_seconds_count{route=\"index\"} 2",
            "chartcache_upstream_fetches_total{kind=\"chart\",outcome=\"ok\"} 1",
            "chartcache_pull_through_total{result=\"miss\"} 1",
            "chartcache_pull_through_total{result=\"hit\"} 1",
            "chartcache_index_builds_total 1",
            "chartcache_index_build_duration_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
