//! Faults a real registry never makes, from a small in-process server (`fault::FakeRegistry`)
//! on 127.0.0.1 (plain HTTP, which chartcache's loopback rule finds by itself): blobs and
//! manifests whose bytes do not match their digests, truncated bodies, rate limits and server
//! errors. Whatever goes wrong, a failed pull stores nothing.

mod fault;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fault::{Artifact, FakeRegistry, Response, Sandbox, error_line_of, sha256_hex};
use support::{chart_tgz, describe};

/// The chart `mychart` 0.1.0 as `myrepo/mychart:0.1.0`.
fn artifact() -> Artifact {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = std::fs::read(chart_tgz(dir.path(), "mychart", "0.1.0")).expect("tgz");
    Artifact::chart("myrepo/mychart", "0.1.0", "mychart", "0.1.0", &tgz)
}

/// A sandbox whose cache already holds another chart, so "nothing stored" is checked
/// against a cache with blobs, refs and an index.
fn sandbox_with_a_chart() -> Sandbox {
    let sb = Sandbox::new();
    sb.save("other", "1.0.0", "localhost:5000/myrepo/other:1.0.0");
    sb
}

/// Runs a pull that must fail, and checks the cache did not change at all (no blob, no ref,
/// no temp file left in `.tmp/`); returns the error line.
fn failed_pull_stores_nothing(sb: &Sandbox, reference: &str) -> String {
    let before = sb.snapshot();
    let out = sb.run(&["chart", "pull", reference]);
    let line = error_line_of(&out, &format!("chart pull {reference}"));
    let changes = sb.snapshot().changes_since(&before);
    assert!(
        changes.is_empty(),
        "a failed pull changed the cache: {changes:?}\n{}",
        describe(&out)
    );
    line
}

/// A server handing out `art` with the chart layer's bytes altered (same length).
fn tampered_chart_layer(art: &Artifact) -> FakeRegistry {
    let chart_path = art.blob_path(&art.chart_digest);
    let mut tampered = art.blobs[&art.chart_digest].clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0xff;
    let served = art.clone();
    FakeRegistry::start(move |req| {
        if req.path == chart_path {
            return Some(Response::ok(&tampered, "application/octet-stream"));
        }
        served.serve(req)
    })
}

#[test]
fn a_blob_that_does_not_match_its_digest_stores_nothing() {
    let art = artifact();
    let server = tampered_chart_layer(&art);
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(
        line.contains(&art.chart_digest),
        "the error should name the blob: {line}"
    );
    assert!(
        server.count("GET", &art.blob_path(&art.chart_digest)) >= 1,
        "{:?}",
        server.requests()
    );
    // Nothing half-done blocks a later good pull from the same place.
    let good = art.clone();
    let fixed = FakeRegistry::start(move |req| good.serve(req));
    let reference = format!("{}/myrepo/mychart:0.1.0", fixed.host());
    sb.ok(&["chart", "pull", &reference]);
    sb.ok(&["chart", "verify"]);
}

/// The mismatch is reported as `cannot connect: download of blob …: Invalid digest. Expected
/// …, got …` (oci-client's stream check, filed as a connection error) rather than as the
/// `digest mismatch … nothing was stored` the contract and `RegistryError::DigestMismatch`
/// promise.
#[test]
fn a_blob_digest_mismatch_is_reported_as_such() {
    let art = artifact();
    let server = tampered_chart_layer(&art);
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(
        line.contains("digest mismatch"),
        "the error should say `digest mismatch`: {line}"
    );
    assert!(
        !line.contains("cannot connect"),
        "a bad blob is not a connection problem: {line}"
    );
}

#[test]
fn a_config_blob_that_does_not_match_its_digest_stores_nothing() {
    let art = artifact();
    let config_path = art.blob_path(&art.config_digest);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == config_path {
            // Same length, other bytes.
            let fake = br#"{"apiVersion":"v2","name":"mychart","version":"6.6.6"}"#;
            let len = served.blobs[&served.config_digest].len();
            let mut body = fake.to_vec();
            body.resize(len, b' ');
            return Some(Response::ok(&body, "application/octet-stream"));
        }
        served.serve(req)
    });
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(line.contains(&art.config_digest), "{line}");
}

#[test]
fn a_truncated_blob_is_refused() {
    let art = artifact();
    let chart_path = art.blob_path(&art.chart_digest);
    let full = art.blobs[&art.chart_digest].clone();
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == chart_path {
            return Some(Response::Truncated {
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: full[..full.len() / 2].to_vec(),
                declared: full.len(),
            });
        }
        served.serve(req)
    });
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(
        line.contains(&server.host()) || line.contains(&art.chart_digest),
        "the error should name the registry or the blob: {line}"
    );
}

/// The registry module promises retries on dropped connections, but a connection dropped in
/// the middle of a blob body fails the pull at once (`cannot connect: download of blob …:
/// error decoding response body`): the retry wraps only the request, not the body stream.
#[test]
fn a_blob_cut_off_once_is_fetched_again() {
    let art = artifact();
    let chart_path = art.blob_path(&art.chart_digest);
    let full = art.blobs[&art.chart_digest].clone();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == chart_path && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(Response::Truncated {
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: full[..full.len() / 2].to_vec(),
                declared: full.len(),
            });
        }
        served.serve(req)
    });
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.run(&["chart", "pull", &reference]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(hits.load(Ordering::SeqCst) >= 2, "{:?}", server.requests());
}

/// A server for `art` whose first manifest request gets `first`.
fn manifest_fails_once(art: &Artifact, first: Response) -> (FakeRegistry, Arc<AtomicUsize>) {
    let manifest_path = art.manifest_path(&art.tag);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == manifest_path && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(first.clone());
        }
        served.serve(req)
    });
    (server, hits)
}

#[test]
fn a_rate_limited_manifest_is_retried() {
    let art = artifact();
    let (server, hits) = manifest_fails_once(
        &art,
        Response::plain_status(429, "slow down").with_header("Retry-After", "0"),
    );
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    assert!(
        hits.load(Ordering::SeqCst) >= 2,
        "the manifest was not asked for again: {:?}",
        server.requests()
    );
    assert_eq!(sb.ref_blob(&reference, "manifest"), art.manifest);
    sb.ok(&["chart", "verify"]);
}

/// Docker Hub answers a rate limit with 429 and an OCI error body (`TOOMANYREQUESTS`).
/// oci-client turns a 4xx with such a body into `RegistryError{envelope}`, which
/// `is_transient` does not look at, so the pull fails at once (`Toomanyrequests: You have
/// reached your pull rate limit.`), where a plain-bodied 429 is retried.
#[test]
fn a_rate_limit_with_an_oci_error_body_is_retried() {
    let art = artifact();
    let body = serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS",
        "message": "You have reached your pull rate limit."}]})
    .to_string();
    let (server, hits) = manifest_fails_once(
        &art,
        Response::ok(body.as_bytes(), "application/json").with_status(429),
    );
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.run(&["chart", "pull", &reference]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(hits.load(Ordering::SeqCst) >= 2, "{:?}", server.requests());
}

#[test]
fn a_blob_that_fails_once_with_503_is_retried() {
    let art = artifact();
    let chart_path = art.blob_path(&art.chart_digest);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == chart_path && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(Response::status(503));
        }
        served.serve(req)
    });
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    sb.ok(&["chart", "pull", &reference]);
    assert!(hits.load(Ordering::SeqCst) >= 2, "{:?}", server.requests());
    assert_eq!(
        sb.ref_blob(&reference, "content"),
        art.blobs[&art.chart_digest]
    );
}

#[test]
fn a_permanent_server_error_fails_after_retries_naming_the_host() {
    let art = artifact();
    let manifest_path = art.manifest_path("0.1.0");
    let server =
        FakeRegistry::start(move |req| (req.path == manifest_path).then(|| Response::status(500)));
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(line.contains(&server.host()), "{line}");
    assert!(
        line.contains("500"),
        "the error should keep the status: {line}"
    );
    let tries = server.count("GET", &art.manifest_path("0.1.0"));
    assert!(tries > 1, "no retry on 500: {:?}", server.requests());
}

#[test]
fn a_manifest_that_does_not_hash_to_the_requested_digest_is_refused() {
    let art = artifact();
    // Serve the real manifest under the digest of something else.
    let claimed = format!("sha256:{}", sha256_hex(b"some other manifest"));
    let claimed_path = art.manifest_path(&claimed);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == claimed_path {
            return Some(Response::ok(&served.manifest, fault::OCI_MANIFEST));
        }
        served.serve(req)
    });
    let sb = sandbox_with_a_chart();
    let reference = format!("{}/myrepo/mychart@{claimed}", server.host());
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(line.contains("digest"), "{line}");
    assert!(
        line.contains(&claimed),
        "the error should name the digest: {line}"
    );
    assert_eq!(
        server.count("GET", &art.blob_path(&art.chart_digest)),
        0,
        "blobs were fetched for a manifest that failed its digest"
    );
}

#[test]
fn the_fake_registry_serves_a_good_chart() {
    // The control for the fault tests above: the same artifact, served faithfully, pulls.
    let art = artifact();
    let served = art.clone();
    let server = FakeRegistry::start(move |req| served.serve(req));
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    assert_eq!(sb.ref_blob(&reference, "manifest"), art.manifest);
    let by_digest = format!("{}/myrepo/mychart@{}", server.host(), art.manifest_digest);
    let out = sb.ok(&["chart", "pull", &by_digest]);
    assert!(out.contains("Status:"), "{out}");
}

#[test]
fn an_unreachable_registry_is_named_and_nothing_is_stored() {
    let host = format!("127.0.0.1:{}", support::free_port());
    let sb = sandbox_with_a_chart();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    let line = failed_pull_stores_nothing(&sb, &reference);
    assert!(line.contains(&host), "{line}");
    let out = sb.run_stdin(
        &["registry", "login", &host, "-u", "u", "--password-stdin"],
        "p\n",
    );
    let line = error_line_of(&out, "registry login (unreachable)");
    assert!(line.contains(&host), "{line}");
    assert!(!sb.registry_config().exists());
}

/// distribution can lose a repository's link to a blob two writers commit at the same moment,
/// and then refuses the manifest with `MANIFEST_BLOB_UNKNOWN` although the upload succeeded.
/// `chart push` checks the blobs again, re-sends the missing one and retries the manifest.
#[test]
fn a_manifest_refused_for_a_lost_blob_is_mended_by_sending_the_blob_again() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    let sb = Sandbox::new();
    let lost: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let present: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let refusals = Arc::new(AtomicUsize::new(0));
    let (lost_h, present_h, refusals_h) = (
        Arc::clone(&lost),
        Arc::clone(&present),
        Arc::clone(&refusals),
    );
    let server = FakeRegistry::start(move |req| {
        let blobs = "/v2/myrepo/mychart/blobs/";
        match (req.method.as_str(), req.path.as_str()) {
            ("HEAD", p) if p.starts_with(blobs) => {
                let digest = &p[blobs.len()..];
                let known = present_h.lock().expect("lock").contains(digest);
                Some(Response::status(if known { 200 } else { 404 }))
            }
            ("POST", "/v2/myrepo/mychart/blobs/uploads/") => Some(
                Response::status(202)
                    .with_header("Location", "/v2/myrepo/mychart/blobs/uploads/u1?_state=x"),
            ),
            ("PUT", "/v2/myrepo/mychart/blobs/uploads/u1") => {
                let digest = req
                    .query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("digest="))
                    .unwrap_or("")
                    .replace("%3A", ":");
                assert!(req.query.contains("_state=x"), "{}", req.query);
                assert_eq!(format!("sha256:{}", sha256_hex(&req.body)), digest);
                present_h.lock().expect("lock").insert(digest);
                Some(Response::status(201))
            }
            ("PUT", p) if p.starts_with("/v2/myrepo/mychart/manifests/") => {
                if refusals_h.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Lose the link to the first blob of the set, as the race does.
                    let mut set = present_h.lock().expect("lock");
                    let victim = set.iter().next().cloned();
                    if let Some(v) = &victim {
                        set.remove(v);
                    }
                    *lost_h.lock().expect("lock") = victim;
                    let body = serde_json::json!({"errors": [{"code": "MANIFEST_BLOB_UNKNOWN",
                        "message": "blob unknown to registry"}]})
                    .to_string();
                    return Some(
                        Response::ok(body.as_bytes(), "application/json").with_status(400),
                    );
                }
                Some(Response::status(201))
            }
            _ => None,
        }
    });
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    sb.save("mychart", "0.1.0", &reference);
    let out = sb.ok(&["chart", "push", &reference]);
    assert!(out.contains("0.1.0: pushed to remote"), "{out}");
    assert_eq!(
        refusals.load(Ordering::SeqCst),
        2,
        "{:?}",
        server.requests()
    );
    let victim = lost.lock().expect("lock").clone().expect("a blob was lost");
    assert!(
        present.lock().expect("lock").contains(&victim),
        "the lost blob was not sent again: {:?}",
        server.requests()
    );
}
