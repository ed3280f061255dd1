//! What a request gets: the `--htpasswd` check, the read-only rule (GET and HEAD), the
//! choice between the classic repository view ([`super::chart_repo`]) and the registry API
//! ([`super::registry_api`]), and the access log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Method, Request, Response, StatusCode};

use super::http::{self, Body};
use super::{Htpasswd, Library, chart_repo, registry_api};

/// What every connection shares.
pub(super) struct State {
    pub library: Arc<Library>,
    pub htpasswd: Option<Arc<Htpasswd>>,
    pub access_log: bool,
}

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// One request: authentication, routing, the access log line.
pub(super) async fn handle(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let api = path == "/v2" || path.starts_with("/v2/");
    let (mut resp, user) = match authenticate(state, &req).await {
        Err(resp) => (resp, None),
        Ok(user) => (route(state, &req, &path, api).await, user),
    };
    if api {
        resp.headers_mut().insert(
            API_VERSION,
            header::HeaderValue::from_static("registry/2.0"),
        );
    }
    if state.access_log {
        use hyper::body::Body as _;
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| resp.body().size_hint().exact().map(|n| n.to_string()))
            .unwrap_or_else(|| "-".into());
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let line = format!(
            "{} - {} [{}] \"{} {} {:?}\" {} {} {}ms\n",
            peer.ip(),
            user.as_deref().unwrap_or("-"),
            crate::output::rfc3339(SystemTime::now()),
            req.method(),
            target.escape_debug(),
            req.version(),
            resp.status().as_u16(),
            length,
            started.elapsed().as_millis()
        );
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
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
    if method != Method::GET && method != Method::HEAD {
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
