//! `registry tags` follows the distribution spec's pagination: each page names the next one in
//! a `Link: <URL>; rel="next"` header, whose query is the registry's own business (an opaque
//! cursor on ECR, GHCR or Harbor, not necessarily `last=<tag>`).
//!
//! The real registry of the other tests (distribution 2.8) ignores `n`, sends no `Link` and
//! answers every tag at once, which `registry_push_pull.rs` covers; a registry that pages is
//! modelled here by the in-process server of `tests/fault`.

mod fault;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fault::{FakeRegistry, Request, Response, Sandbox};

const TAGS_PATH: &str = "/v2/myrepo/mychart/tags/list";

fn page(tags: &[&str]) -> Response {
    let body = serde_json::json!({"name": "myrepo/mychart", "tags": tags}).to_string();
    Response::ok(body.as_bytes(), "application/json")
}

fn query_param<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Three pages chained by opaque cursors: the first `Link` is relative, the second absolute.
/// A request without a known cursor gets the first page again, as a registry that does not
/// understand `last=` would answer.
fn paging_registry() -> (FakeRegistry, Arc<AtomicUsize>) {
    let pages = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pages);
    let host_slot: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
    let host_for_handler = Arc::clone(&host_slot);
    let server = FakeRegistry::start(move |req| {
        if req.method != "GET" || req.path != TAGS_PATH {
            return None;
        }
        counter.fetch_add(1, Ordering::SeqCst);
        Some(match query_param(req, "cursor") {
            Some("c2Vjb25k") => page(&["1.1.0", "latest", "0.2.0"]).with_header(
                "Link",
                &format!(
                    "<http://{}{TAGS_PATH}?cursor=dGhpcmQ%3D&n=3>; rel=\"next\"",
                    host_for_handler.get().map(String::as_str).unwrap_or("")
                ),
            ),
            Some("dGhpcmQ%3D") => page(&["2.0.0-rc.1", "0.1.0"]),
            _ => page(&["2.0.0", "1.0.0", "1.0.1"]).with_header(
                "Link",
                &format!("<{TAGS_PATH}?cursor=c2Vjb25k&n=3>; rel=\"next\""),
            ),
        })
    });
    let _ = host_slot.set(server.host());
    (server, pages)
}

#[test]
fn tags_follow_link_headers_across_pages() {
    let (server, pages) = paging_registry();
    let sb = Sandbox::new();
    let repo = format!("{}/myrepo/mychart", server.host());
    let out = sb.ok(&["registry", "tags", &repo]);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(
        got,
        ["2.0.0", "1.1.0", "1.0.1", "1.0.0", "0.2.0", "0.1.0"],
        "every page's versions, newest first: {out}\nrequests: {:?}",
        server.requests()
    );
    assert_eq!(
        pages.load(Ordering::SeqCst),
        3,
        "one request per page: {:?}",
        server.requests()
    );
    let devel = sb.ok(&["registry", "tags", &repo, "--devel"]);
    assert_eq!(
        devel.lines().take(2).collect::<Vec<_>>(),
        ["2.0.0", "2.0.0-rc.1"],
        "{devel}"
    );
}

#[test]
fn a_link_loop_ends_instead_of_spinning() {
    // A broken registry whose last page points back at the first.
    let pages = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pages);
    let server = FakeRegistry::start(move |req| {
        if req.path != TAGS_PATH {
            return None;
        }
        counter.fetch_add(1, Ordering::SeqCst);
        Some(match query_param(req, "cursor") {
            Some("b") => page(&["2.0.0"])
                .with_header("Link", &format!("<{TAGS_PATH}?cursor=a>; rel=\"next\"")),
            _ => page(&["1.0.0"])
                .with_header("Link", &format!("<{TAGS_PATH}?cursor=b>; rel=\"next\"")),
        })
    });
    let sb = Sandbox::new();
    let out = sb.ok(&[
        "registry",
        "tags",
        &format!("{}/myrepo/mychart", server.host()),
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["2.0.0", "1.0.0"], "{out}");
    assert!(pages.load(Ordering::SeqCst) <= 4, "{:?}", server.requests());
}
