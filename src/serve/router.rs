//! What a request gets: the operational endpoints (`/healthz`, `/readyz`, never behind a
//! login, and `/metrics`), the `--htpasswd` check, the read-only rule (GET and HEAD), the
//! choice between the classic repository view ([`super::chart_repo`]) and the registry API
//! ([`super::registry_api`]), and what every answer adds to the metrics and the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Method, Request, Response, StatusCode};

use super::http::{self, Body};
use super::log::{Access, Log};
use super::metrics::{self, Metrics, Route};
use super::{Htpasswd, Library, chart_repo, registry_api};

/// What every connection shares.
pub(super) struct State {
    pub library: Arc<Library>,
    pub htpasswd: Option<Arc<Htpasswd>>,
    pub log: Log,
    pub metrics: Arc<Metrics>,
}

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// Which route a path takes, for the metrics (a fixed set, whatever the path).
fn classify(path: &str) -> Route {
    match path {
        "/healthz" => return Route::Healthz,
        "/readyz" => return Route::Readyz,
        "/metrics" => return Route::Metrics,
        _ => {}
    }
    if path == "/v2" || path.starts_with("/v2/") {
        return registry_api::route_of(path);
    }
    if path.ends_with("/index.yaml") || path.ends_with("/index.json") {
        Route::Index
    } else if path.starts_with("/charts/") || path.contains("/charts/") {
        Route::Chart
    } else {
        Route::Other
    }
}

/// One request: the operational endpoints or authentication and routing, then the metrics
/// and the access log line.
pub(super) async fn handle(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let route_kind = classify(&path);
    let api = path == "/v2" || path.starts_with("/v2/");
    let (mut resp, user) = match operational(state, &req, route_kind).await {
        Some(resp) => (resp, None),
        None => match authenticate(state, &req).await {
            Err(resp) => (resp, None),
            Ok(user) if route_kind == Route::Metrics && read_only(req.method()) => {
                (metrics_page(state, req.method()), user)
            }
            Ok(user) => (route(state, &req, &path, api).await, user),
        },
    };
    if api {
        resp.headers_mut().insert(
            API_VERSION,
            header::HeaderValue::from_static("registry/2.0"),
        );
    }
    let status = resp.status().as_u16();
    state.metrics.request(route_kind, status, started.elapsed());
    let length = {
        use hyper::body::Body as _;
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .or_else(|| resp.body().size_hint().exact())
    };
    state.log.access(&Access {
        remote: peer.ip(),
        user: user.as_deref(),
        method: req.method().as_str(),
        target: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        protocol: &format!("{:?}", req.version()),
        status,
        bytes: length,
        took: started.elapsed(),
    });
    // Body bytes are counted as they go to the connection, so a download cut short counts
    // what was sent.
    let sent = state.metrics.bytes_counter(route_kind);
    // The counting below hides the body's size from hyper: a body of known size keeps its
    // Content-Length (rather than going out chunked).
    if !resp.headers().contains_key(header::CONTENT_LENGTH)
        && let Some(exact) = length
        && req.method() != Method::HEAD
        && resp.status() != hyper::StatusCode::NOT_MODIFIED
        && resp.status() != hyper::StatusCode::NO_CONTENT
    {
        http::set(&mut resp, header::CONTENT_LENGTH, exact.to_string());
    }
    resp.map(move |body| {
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                sent.inc_by(data.len() as u64);
            }
            frame
        })
        .boxed_unsync()
    })
}

fn read_only(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// `/healthz` (the process answers) and `/readyz` (the cache is readable and the upstream
/// answered recently), for load balancers and orchestrators that have no login to give.
async fn operational(
    state: &State,
    req: &Request<Incoming>,
    route: Route,
) -> Option<Response<Body>> {
    if !read_only(req.method()) {
        return None;
    }
    let (status, text) = match route {
        Route::Healthz => (StatusCode::OK, "ok".to_string()),
        Route::Readyz => match state.library.readiness().await {
            Ok(()) => (StatusCode::OK, "ready".to_string()),
            Err((what, why)) => {
                state.log.event(&format!("not ready: {what}: {why}"));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {what}"),
                )
            }
        },
        _ => return None,
    };
    let mut resp = http::text(status, &text);
    http::set(&mut resp, header::CACHE_CONTROL, "no-store");
    if req.method() == Method::HEAD {
        *resp.body_mut() = http::empty();
    }
    Some(resp)
}

fn metrics_page(state: &State, method: &Method) -> Response<Body> {
    let text = state.metrics.render();
    let len = text.len();
    let mut resp = Response::new(if method == Method::HEAD {
        http::empty()
    } else {
        http::full(text)
    });
    http::set(&mut resp, header::CONTENT_TYPE, metrics::CONTENT_TYPE);
    http::set(&mut resp, header::CONTENT_LENGTH, len.to_string());
    http::set(&mut resp, header::CACHE_CONTROL, "no-store");
    resp
}

/// The logged-in user (`None` without `--htpasswd`), or the 401 to send.
async fn authenticate(
    state: &State,
    req: &Request<Incoming>,
) -> Result<Option<String>, Response<Body>> {
    let Some(users) = &state.htpasswd else {
        return Ok(None);
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let users = Arc::clone(users);
    let user = match authorization {
        None => None,
        Some(a) => tokio::task::spawn_blocking(move || users.check(Some(&a)))
            .await
            .ok()
            .flatten(),
    };
    match user {
        Some(u) => Ok(Some(u)),
        None => {
            let path = req.uri().path();
            let mut resp = if path == "/v2" || path.starts_with("/v2/") {
                http::oci_error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                )
            } else {
                http::text(StatusCode::UNAUTHORIZED, "authentication required")
            };
            http::set(
                &mut resp,
                header::WWW_AUTHENTICATE,
                "Basic realm=\"chartcache\"",
            );
            Err(resp)
        }
    }
}

async fn route(state: &State, req: &Request<Incoming>, path: &str, api: bool) -> Response<Body> {
    let method = req.method();
    if !read_only(method) {
        let mut resp = if api {
            http::oci_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only",
            )
        } else {
            http::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served",
            )
        };
        http::set(&mut resp, header::ALLOW, "GET, HEAD");
        return resp;
    }
    let result = if api {
        registry_api::route(state, req, path).await
    } else {
        chart_repo::route(state, req, path).await
    };
    result.unwrap_or_else(|e| {
        if api {
            http::oci_error(e.status, e.code, &e.message)
        } else {
            http::text(e.status, &e.message)
        }
    })
}
