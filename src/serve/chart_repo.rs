//! The classic chart repository view: `index.yaml` and `index.json` of the root and of each
//! prefix, and chart downloads (`charts/NAME-VERSION.tgz` and `.prov`).

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};

use super::http::{self, Body, Source};
use super::names::ApiError;
use super::router::State;

pub(super) async fn route(
    state: &State,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let library = &state.library;
    let Some(path) = http::percent_decode(path.trim_start_matches('/')) else {
        return Ok(http::text(StatusCode::NOT_FOUND, "not found"));
    };
    if path.is_empty() {
        return Ok(http::text(
            StatusCode::OK,
            "chartcache serve: a chart repository at /index.yaml and a read-only OCI registry at /v2/",
        ));
    }
    let index = [("index.yaml", false), ("index.json", true)]
        .into_iter()
        .find_map(|(file, json)| {
            let prefix = if path == file {
                Some("")
            } else {
                path.strip_suffix(file)?.strip_suffix('/')
            };
            prefix.map(|p| (p.to_string(), json))
        });
    if let Some((prefix, json)) = index {
        let Some(view) = library.view(&prefix).await? else {
            return Ok(http::text(
                StatusCode::NOT_FOUND,
                &format!("no charts under /{prefix}"),
            ));
        };
        let (encoded, content_type) = match (json, &view.json) {
            (false, _) => (&view.yaml, "application/yaml"),
            (true, Some(j)) => (j, "application/json"),
            (true, None) => {
                return Ok(http::text(
                    StatusCode::NOT_FOUND,
                    "this repository has an index.yaml only",
                ));
            }
        };
        // Compressed once per build; sent to clients that take gzip (curl, proxies, CDNs).
        // Helm's getter turns compression off, so it gets the plain bytes.
        let mut extra = vec![
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::VARY, "Accept-Encoding".to_string()),
        ];
        let (body, etag) = if http::accepts_gzip(req.headers()) {
            extra.push((header::CONTENT_ENCODING, "gzip".to_string()));
            (Source::Memory(encoded.gzip.clone()), &encoded.gzip_etag)
        } else {
            (encoded.plain.source(), &encoded.etag)
        };
        // `view` is held until the body is open: a rebuild meanwhile cannot remove its file.
        return Ok(http::serve(
            req.method(),
            req.headers(),
            body,
            content_type,
            etag,
            &extra,
        )
        .await);
    }
    let Some(file) = library.download(&path).await? else {
        return Ok(http::text(
            StatusCode::NOT_FOUND,
            &format!("/{path}: not found"),
        ));
    };
    let content_type = if path.ends_with(".prov") {
        "application/pgp-signature"
    } else {
        "application/gzip"
    };
    Ok(http::serve(
        req.method(),
        req.headers(),
        file.source,
        content_type,
        &format!("\"{}\"", file.digest),
        &[(header::CACHE_CONTROL, "no-cache".into())],
    )
    .await)
}
