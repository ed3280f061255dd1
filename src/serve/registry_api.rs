//! The OCI distribution pull API, read-only: `/v2/`, manifests and blobs (HEAD and GET, with
//! ranges), tag lists and the catalog (with `n`, `last` and `Link` paging), and the referrers
//! API (distribution-spec 1.1: an image index, `?artifactType=` filtering).

use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Method, Request, Response, StatusCode};

use super::http::{self, Body, Source};
use super::metrics::Route;
use super::names::{ApiError, Object};
use super::router::State;
use crate::digest::Digest;
use crate::oci::INDEX_MEDIA_TYPE;

const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// Says which filters a referrers answer applied.
const FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum ApiPath<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// The metrics route of a `/v2/…` path.
pub(super) fn route_of(path: &str) -> Route {
    match parse_api_path(path) {
        Some(ApiPath::Base) => Route::ApiBase,
        Some(ApiPath::Catalog) => Route::Catalog,
        Some(ApiPath::Tags(_)) => Route::Tags,
        Some(ApiPath::Manifest(..)) => Route::Manifest,
        Some(ApiPath::Blob(..)) => Route::Blob,
        Some(ApiPath::Referrers(..)) => Route::Referrers,
        None => Route::Other,
    }
}

fn parse_api_path(path: &str) -> Option<ApiPath<'_>> {
    let rest = path.strip_prefix("/v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(ApiPath::Base);
    }
    if rest == "_catalog" {
        return Some(ApiPath::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(ApiPath::Tags(name));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(ApiPath::Manifest(name, reference));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(ApiPath::Blob(name, digest));
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        return Some(ApiPath::Referrers(name, digest));
    }
    None
}

pub(super) async fn route(
    state: &State,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let library = &state.library;
    let (method, headers) = (req.method(), req.headers());
    let query = req.uri().query();
    match parse_api_path(path) {
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "NAME_UNKNOWN",
            message: format!("{path}: not a registry API path"),
        }),
        Some(ApiPath::Base) => Ok(json_response(method, "{}".into(), None)),
        Some(ApiPath::Referrers(name, digest)) => {
            let digest = Digest::parse(digest).map_err(|e| ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "DIGEST_INVALID",
                message: e.to_string(),
            })?;
            let artifact_type = artifact_type_filter(query);
            let filtered = artifact_type.is_some();
            let body = library.referrers(name, &digest, artifact_type).await?;
            let mut resp = bytes_response(method, body, INDEX_MEDIA_TYPE);
            if filtered {
                http::set(&mut resp, FILTERS_APPLIED, "artifactType");
            }
            Ok(resp)
        }
        Some(ApiPath::Catalog) => {
            let all = library.catalog().await?;
            let (page, next) = paginate(&all, query, "/v2/_catalog")?;
            let body = serde_json::json!({ "repositories": page }).to_string();
            Ok(json_response(method, body, next))
        }
        Some(ApiPath::Tags(name)) => {
            let all = library.tags(name).await?;
            let (page, next) = paginate(&all, query, &format!("/v2/{name}/tags/list"))?;
            let body = serde_json::json!({ "name": name, "tags": page }).to_string();
            Ok(json_response(method, body, next))
        }
        Some(ApiPath::Manifest(name, reference)) => {
            let object = Object::parse(reference)?;
            let m = library.manifest(name, &object).await?;
            let etag = format!("\"{}\"", m.digest);
            Ok(http::serve(
                method,
                headers,
                Source::Memory(m.bytes),
                &m.media_type,
                &etag,
                &[(CONTENT_DIGEST, m.digest.to_string())],
            )
            .await)
        }
        Some(ApiPath::Blob(name, digest)) => {
            let digest = Digest::parse(digest).map_err(|e| ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "DIGEST_INVALID",
                message: e.to_string(),
            })?;
            let source = library.blob(name, &digest).await?;
            Ok(http::serve(
                method,
                headers,
                source,
                "application/octet-stream",
                &format!("\"{digest}\""),
                &[
                    (CONTENT_DIGEST, digest.to_string()),
                    (header::CACHE_CONTROL, "max-age=31536000, immutable".into()),
                ],
            )
            .await)
        }
    }
}

/// The `artifactType` a referrers request filters on: percent-decoded, with a `+` kept as
/// itself (media types have no spaces, and `application/spdx+json` is often sent raw).
fn artifact_type_filter(query: Option<&str>) -> Option<String> {
    let raw = query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "artifactType")?
        .1;
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!decoded.is_empty()).then_some(decoded)
}

/// `body` as `content_type`, with its length (no body for HEAD).
fn bytes_response(method: &Method, body: Vec<u8>, content_type: &str) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(if method == Method::HEAD {
        http::empty()
    } else {
        http::full(body)
    });
    http::set(&mut resp, header::CONTENT_TYPE, content_type);
    http::set(&mut resp, header::CONTENT_LENGTH, len.to_string());
    resp
}

fn json_response(method: &Method, body: String, link: Option<String>) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(if method == Method::HEAD {
        http::empty()
    } else {
        http::full(body)
    });
    http::set(&mut resp, header::CONTENT_TYPE, "application/json");
    http::set(&mut resp, header::CONTENT_LENGTH, len.to_string());
    if let Some(link) = link {
        http::set(&mut resp, header::LINK, link);
    }
    resp
}

/// One page of a sorted list by the spec's `n` and `last`, and the `Link` to the next page.
fn paginate<'a>(
    all: &'a [String],
    query: Option<&str>,
    path: &str,
) -> Result<(&'a [String], Option<String>), ApiError> {
    let last = http::query_param(query, "last");
    let start = match &last {
        Some(l) => all.partition_point(|x| x.as_str() <= l.as_str()),
        None => 0,
    };
    let rest = &all[start..];
    let n = match http::query_param(query, "n") {
        None => return Ok((rest, None)),
        Some(n) => n.parse::<usize>().map_err(|_| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "PAGINATION_NUMBER_INVALID",
            message: format!("n={n:?} is not a number"),
        })?,
    };
    if n >= rest.len() {
        return Ok((rest, None));
    }
    let page = &rest[..n];
    let next = page.last().map(|l| {
        format!(
            "<{path}?last={}&n={n}>; rel=\"next\"",
            http::query_escape(l)
        )
    });
    Ok((page, next))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert_eq!(parse_api_path("/v2/"), Some(ApiPath::Base));
        assert_eq!(parse_api_path("/v2"), Some(ApiPath::Base));
        assert_eq!(parse_api_path("/v2/_catalog"), Some(ApiPath::Catalog));
        assert_eq!(
            parse_api_path("/v2/a/b/tags/list"),
            Some(ApiPath::Tags("a/b"))
        );
        assert_eq!(
            parse_api_path("/v2/a/manifests/b/manifests/1.0"),
            Some(ApiPath::Manifest("a/manifests/b", "1.0"))
        );
        assert_eq!(
            parse_api_path("/v2/a/blobs/sha256:00"),
            Some(ApiPath::Blob("a", "sha256:00"))
        );
        assert_eq!(
            parse_api_path("/v2/a/b/referrers/sha256:00"),
            Some(ApiPath::Referrers("a/b", "sha256:00"))
        );
        assert_eq!(parse_api_path("/v2/a/other"), None);
    }

    #[test]
    fn artifact_type_filters() {
        assert_eq!(
            artifact_type_filter(Some("artifactType=application%2Fspdx%2Bjson")).as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(
            artifact_type_filter(Some("n=1&artifactType=application/spdx+json")).as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(artifact_type_filter(Some("artifactType=")), None);
        assert_eq!(artifact_type_filter(Some("other=x")), None);
        assert_eq!(artifact_type_filter(None), None);
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let (page, next) = paginate(&all, Some("n=2"), "/v2/x/tags/list").unwrap();
        assert_eq!(page, ["a", "b"]);
        assert_eq!(
            next.as_deref(),
            Some("</v2/x/tags/list?last=b&n=2>; rel=\"next\"")
        );
        let (page, next) = paginate(&all, Some("n=2&last=b"), "/p").unwrap();
        assert_eq!((page, next), (&all[2..], None));
        let (page, _) = paginate(&all, Some("last=bb"), "/p").unwrap();
        assert_eq!(page, ["c", "d"]);
        let (page, next) = paginate(&all, Some("n=0"), "/p").unwrap();
        assert!(page.is_empty() && next.is_none());
        assert_eq!(
            paginate(&all, Some("n=x"), "/p").unwrap_err().code,
            "PAGINATION_NUMBER_INVALID"
        );
        assert_eq!(http::query_escape("a/b:c"), "a%2Fb%3Ac");
    }
}
