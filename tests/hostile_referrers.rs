//! Registries that answer hostile referrers: an enormous referrers index (from the API, and
//! under the tag schema), thousands of referrers (in one page, and in pages without end), a
//! listing that loops back to the chart, a descriptor whose manifest has another digest, and
//! an endless chain of referrers of referrers; and a listing in pages, taken whole. `chart pull` must refuse each with one error line (or, for the endless chain,
//! stop at the depth limit), quickly, and never record a refused referrer in the cache.
//!
//! The registry is the in-process `fault::FakeRegistry`: a real registry never sends these.

mod fault;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault::{
    Artifact, FakeRegistry, OCI_MANIFEST, Request, Response, Sandbox, error_line_of, sha256_hex,
};
use serde_json::json;
use support::{chart_tgz, describe};

/// Far above what any of these takes: the run must end before this.
const BOUND: Duration = Duration::from_secs(30);
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY: &[u8] = b"{}";

fn artifact() -> Artifact {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = std::fs::read(chart_tgz(dir.path(), "app", "1.0.0")).expect("tgz");
    let mut art = Artifact::chart("charts/app", "1.0.0", "app", "1.0.0", &tgz);
    art.blobs.insert(digest_of(EMPTY), EMPTY.to_vec());
    art
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// An OCI 1.1 artifact manifest whose subject is `subject` (`size` bytes), numbered `n`.
fn referrer_of(subject: &str, size: usize, n: usize) -> Vec<u8> {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(EMPTY), "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size},
        "annotations": {"n": n.to_string()},
    })
    .to_string()
    .into_bytes()
}

fn descriptor(bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": OCI_MANIFEST, "digest": digest_of(bytes), "size": bytes.len(),
        "artifactType": "application/vnd.example.sbom"})
}

fn index(manifests: Vec<serde_json::Value>) -> Vec<u8> {
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        .to_string()
        .into_bytes()
}

fn referrers_path(art: &Artifact, digest: &str) -> String {
    format!("/v2/{}/referrers/{digest}", art.repo)
}

/// Serves `art`, the manifests of `extra` by digest, and `hostile`'s answers first.
fn serve(
    art: &Artifact,
    extra: Vec<Vec<u8>>,
    hostile: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
) -> FakeRegistry {
    let art = art.clone();
    let extra: HashMap<String, Vec<u8>> = extra.into_iter().map(|m| (digest_of(&m), m)).collect();
    let repo = art.repo.clone();
    FakeRegistry::start(move |req| {
        if let Some(answer) = hostile(req) {
            return Some(answer);
        }
        if req.path == format!("/v2/{repo}/tags/list") {
            return Some(Response::ok(
                json!({"name": repo, "tags": ["1.0.0"]})
                    .to_string()
                    .as_bytes(),
                "application/json",
            ));
        }
        if let Some(d) = req.path.strip_prefix(&format!("/v2/{repo}/manifests/"))
            && let Some(m) = extra.get(d)
        {
            return Some(Response::ok(m, OCI_MANIFEST).with_header("Docker-Content-Digest", d));
        }
        art.serve(req)
    })
}

/// `chart pull` of the chart at `server`, which must fail within [`BOUND`] with one error
/// line, leaving no referrer recorded and the cache verifying clean. Returns the line.
fn pull_fails(server: &FakeRegistry) -> String {
    let sb = Sandbox::new();
    let reference = format!("{}/charts/app:1.0.0", server.host());
    let start = Instant::now();
    let out = sb.run(&["chart", "pull", &reference]);
    assert!(
        start.elapsed() < BOUND,
        "took {:?}: {}",
        start.elapsed(),
        describe(&out)
    );
    let line = error_line_of(&out, "chart pull");
    assert!(line.len() < 1000, "a one-line error, not a dump: {line}");
    assert_no_referrers_recorded(&sb);
    line
}

fn assert_no_referrers_recorded(sb: &Sandbox) {
    let all = sb.ok(&["cache", "list", "-o", "json"]);
    assert!(!all.contains("sha256-"), "a referrer was recorded: {all}");
    sb.ok(&["chart", "verify"]);
}

#[test]
fn an_enormous_referrers_index_is_refused() {
    let art = artifact();
    let path = referrers_path(&art, &art.manifest_digest);
    let server = serve(&art, Vec::new(), move |req| {
        (req.path == path).then(|| Response::Huge {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_INDEX.into())],
            size: 256 << 20,
            fill: b' ',
            declare: true,
        })
    });
    let line = pull_fails(&server);
    assert!(
        line.contains("referrers") && line.contains("1 MiB"),
        "{line}"
    );
    assert!(
        server.body_bytes_sent() < 64 << 20,
        "stopped reading early: {} bytes sent",
        server.body_bytes_sent()
    );
}

#[test]
fn an_enormous_tag_schema_index_is_refused() {
    let art = artifact();
    let tag = format!(
        "sha256-{}",
        art.manifest_digest.trim_start_matches("sha256:")
    );
    // Valid JSON, 2 MiB: within the manifest limit, over the referrers index limit.
    let mut big = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
    big["annotations"] = json!({"pad": "x".repeat(2 << 20)});
    let big = big.to_string().into_bytes();
    let (repo, referrers) = (art.repo.clone(), referrers_path(&art, ""));
    let server = serve(&art, Vec::new(), move |req| {
        if req.path.starts_with(&referrers) {
            return Some(Response::plain_status(404, "404 page not found"));
        }
        if req.path == format!("/v2/{repo}/tags/list") {
            let tags = json!({"name": repo, "tags": ["1.0.0", tag]}).to_string();
            return Some(Response::ok(tags.as_bytes(), "application/json"));
        }
        (req.path == format!("/v2/{repo}/manifests/{tag}")).then(|| Response::ok(&big, OCI_INDEX))
    });
    let line = pull_fails(&server);
    assert!(line.contains("over the limit of 1024 KiB"), "{line}");
}

#[test]
fn thousands_of_referrers_are_refused() {
    let art = artifact();
    let listed: Vec<serde_json::Value> = (0..5000)
        .map(|n| descriptor(&referrer_of(&art.manifest_digest, art.manifest.len(), n)))
        .collect();
    let body = index(listed);
    let path = referrers_path(&art, &art.manifest_digest);
    let server = serve(&art, Vec::new(), move |req| {
        (req.path == path).then(|| Response::ok(&body, OCI_INDEX))
    });
    let line = pull_fails(&server);
    assert!(
        line.contains("5000 referrers listed, more than the limit of 1000"),
        "{line}"
    );
    // Refused whole: not one of them was asked for.
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.contains("/manifests/sha256:"))
            .count(),
        0,
        "{:?}",
        server.requests()
    );
}

#[test]
fn a_listing_that_loops_back_is_refused() {
    let art = artifact();
    // The chart's referrer is real (its subject is the chart); its own referrers list the
    // chart, whose manifest has no subject: a loop only a listing can claim.
    let sbom = referrer_of(&art.manifest_digest, art.manifest.len(), 1);
    let (chart_path, sbom_path) = (
        referrers_path(&art, &art.manifest_digest),
        referrers_path(&art, &digest_of(&sbom)),
    );
    let (to_sbom, to_chart) = (
        index(vec![descriptor(&sbom)]),
        index(vec![descriptor(&art.manifest)]),
    );
    let server = serve(&art, vec![sbom.clone()], move |req| {
        if req.path == chart_path {
            return Some(Response::ok(&to_sbom, OCI_INDEX));
        }
        (req.path == sbom_path).then(|| Response::ok(&to_chart, OCI_INDEX))
    });
    let line = pull_fails(&server);
    assert!(
        line.contains(&format!(
            "listed as a referrer of {}, but its subject is missing",
            digest_of(&sbom)
        )),
        "{line}"
    );
}

#[test]
fn a_descriptor_whose_manifest_has_another_digest_is_refused() {
    let art = artifact();
    let listed = referrer_of(&art.manifest_digest, art.manifest.len(), 1);
    let served = referrer_of(&art.manifest_digest, art.manifest.len(), 2);
    let (path, manifest) = (
        referrers_path(&art, &art.manifest_digest),
        format!("/v2/{}/manifests/{}", art.repo, digest_of(&listed)),
    );
    let body = index(vec![descriptor(&listed)]);
    let server = serve(&art, Vec::new(), move |req| {
        if req.path == path {
            return Some(Response::ok(&body, OCI_INDEX));
        }
        (req.path == manifest).then(|| Response::ok(&served, OCI_MANIFEST))
    });
    let line = pull_fails(&server);
    assert!(line.contains("digest mismatch"), "{line}");
}

#[test]
fn an_endless_chain_of_referrers_stops_at_the_depth_limit() {
    let art = artifact();
    // Every manifest has a referrer, made up on demand: a chain with no end.
    let made: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
    let sizes: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    sizes
        .lock()
        .unwrap()
        .insert(art.manifest_digest.clone(), art.manifest.len());
    let prefix = referrers_path(&art, "");
    let manifests = format!("/v2/{}/manifests/", art.repo);
    let (made2, sizes2) = (Arc::clone(&made), Arc::clone(&sizes));
    let server = serve(&art, Vec::new(), move |req| {
        if let Some(subject) = req.path.strip_prefix(&prefix) {
            let size = *sizes2.lock().unwrap().get(subject)?;
            let next = referrer_of(subject, size, 0);
            let d = digest_of(&next);
            sizes2.lock().unwrap().insert(d.clone(), next.len());
            made2.lock().unwrap().insert(d, next.clone());
            return Some(Response::ok(&index(vec![descriptor(&next)]), OCI_INDEX));
        }
        let d = req.path.strip_prefix(&manifests)?;
        let m = made2.lock().unwrap().get(d)?.clone();
        Some(Response::ok(&m, OCI_MANIFEST).with_header("Docker-Content-Digest", d))
    });
    let sb = Sandbox::new();
    let start = Instant::now();
    sb.ok(&[
        "chart",
        "pull",
        &format!("{}/charts/app:1.0.0", server.host()),
    ]);
    assert!(start.elapsed() < BOUND);
    let asked = server
        .requests()
        .iter()
        .filter(|r| r.contains("/referrers/"))
        .count();
    assert_eq!(asked, 8, "followed 8 deep: {:?}", server.requests());
    let shown = sb.ok(&[
        "chart",
        "show",
        &format!("{}/charts/app:1.0.0", server.host()),
        "--referrers",
    ]);
    assert_eq!(shown.lines().count(), 1 + 8, "{shown}");
    sb.ok(&["chart", "verify"]);
}

/// The referrers API in pages, as registries with long listings send it: each page names the
/// next in a `Link` header.
#[test]
fn referrers_listed_over_pages_are_all_taken() {
    let art = artifact();
    let sboms: Vec<Vec<u8>> = (1..=3)
        .map(|n| referrer_of(&art.manifest_digest, art.manifest.len(), n))
        .collect();
    let path = referrers_path(&art, &art.manifest_digest);
    let (first, second) = (
        index(vec![descriptor(&sboms[0])]),
        // The second page repeats one of the first: it is taken once.
        index(sboms.iter().map(|m| descriptor(m)).collect()),
    );
    let link = format!("<{path}?page=2>; rel=\"next\"");
    let server = serve(&art, sboms.clone(), move |req| {
        if req.path != path {
            return None;
        }
        Some(match req.query.as_str() {
            "page=2" => Response::ok(&second, OCI_INDEX),
            _ => Response::ok(&first, OCI_INDEX).with_header("Link", &link),
        })
    });
    let sb = Sandbox::new();
    let reference = format!("{}/charts/app:1.0.0", server.host());
    sb.ok(&["chart", "pull", &reference]);
    let shown = sb.ok(&["chart", "show", &reference, "--referrers"]);
    for sbom in &sboms {
        assert!(shown.contains(&digest_of(sbom)), "{shown}");
    }
    assert_eq!(shown.lines().count(), 1 + 3, "{shown}");
    sb.ok(&["chart", "verify"]);
}

/// Pages without end, each with new referrers: refused once the listing passes the limit,
/// not after thousands of pages.
#[test]
fn endless_pages_of_referrers_are_refused() {
    let art = artifact();
    let (path, subject, size) = (
        referrers_path(&art, &art.manifest_digest),
        art.manifest_digest.clone(),
        art.manifest.len(),
    );
    let server = serve(&art, Vec::new(), move |req| {
        if req.path != path {
            return None;
        }
        let page: usize = req
            .query
            .strip_prefix("page=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let listed = (0..100)
            .map(|n| descriptor(&referrer_of(&subject, size, page * 100 + n)))
            .collect();
        let link = format!("<{path}?page={}>; rel=\"next\"", page + 1);
        Some(Response::ok(&index(listed), OCI_INDEX).with_header("Link", &link))
    });
    let line = pull_fails(&server);
    assert!(line.contains("more than the limit of 1000"), "{line}");
    let pages = server
        .requests()
        .iter()
        .filter(|r| r.contains("/referrers/"))
        .count();
    assert_eq!(pages, 11, "{:?}", server.requests());
}

/// A listing whose next page is gone: refused in one line, nothing recorded (the first page
/// alone is not the listing).
#[test]
fn a_missing_page_of_referrers_is_refused() {
    let art = artifact();
    let sbom = referrer_of(&art.manifest_digest, art.manifest.len(), 1);
    let path = referrers_path(&art, &art.manifest_digest);
    let first = index(vec![descriptor(&sbom)]);
    let link = format!("<{path}?page=2>; rel=\"next\"");
    let server = serve(&art, vec![sbom], move |req| {
        if req.path != path {
            return None;
        }
        Some(match req.query.as_str() {
            "page=2" => Response::plain_status(404, "404 page not found"),
            _ => Response::ok(&first, OCI_INDEX).with_header("Link", &link),
        })
    });
    let line = pull_fails(&server);
    assert!(line.contains("a page of the listing is missing"), "{line}");
}
