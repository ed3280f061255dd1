//! The retry policy, seen from a server (`fault::FakeRegistry` on 127.0.0.1): a blob or chart
//! archive cut off mid-way is asked for again from where it stopped (`Range`, `If-Range`) and
//! comes out whole and right whatever the server does with the range (honours it, ignores it,
//! answers another one); a `Retry-After` is waited for, measured at the server, and one above
//! the limit fails at once naming the wait; an upload started over as a whole counts its tries
//! once; a complete body with the wrong digest is never asked for again.

mod classic;
mod fault;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault::{Artifact, FakeRegistry, Request, Response, Sandbox, error_line_of};
use support::{chart_tgz, describe};

/// The chart `mychart` 0.1.0 as `myrepo/mychart:0.1.0`.
fn artifact() -> Artifact {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = std::fs::read(chart_tgz(dir.path(), "mychart", "0.1.0")).expect("tgz");
    Artifact::chart("myrepo/mychart", "0.1.0", "mychart", "0.1.0", &tgz)
}

const ETAG: &str = "\"the-chart-layer\"";

/// The requests for one path, in order.
type Seen = Arc<Mutex<Vec<Request>>>;

/// `art`, its chart layer answered by `layer(n, request, bytes)` for the n-th request (from 0);
/// returns the server and the layer requests it saw.
fn serving_layer(
    art: &Artifact,
    layer: impl Fn(usize, &Request, &[u8]) -> Response + Send + Sync + 'static,
) -> (FakeRegistry, Seen) {
    let path = art.blob_path(&art.chart_digest);
    let data = art.blobs[&art.chart_digest].clone();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == path && req.method == "GET" {
            let mut log = log.lock().expect("log");
            log.push(req.clone());
            return Some(layer(log.len() - 1, req, &data));
        }
        served.serve(req)
    });
    (server, seen)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name).map(str::to_string)
}

/// Pulls `art` from `server`; the pulled chart layer must be the served one, byte for byte.
fn pulls_whole(server: &FakeRegistry, art: &Artifact) {
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.run(&["chart", "pull", &reference]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        sb.ref_blob(&reference, "content"),
        art.blobs[&art.chart_digest]
    );
    sb.ok(&["chart", "verify"]);
}

#[test]
fn a_blob_cut_off_resumes_from_where_it_stopped() {
    let art = artifact();
    let keep = art.blobs[&art.chart_digest].len() / 2;
    let (server, seen) = serving_layer(&art, move |n, req, data| match n {
        0 => Response::cut(data, keep, &[("ETag", ETAG)]),
        _ => Response::ranged(req, data, &[("ETag", ETAG)]),
    });
    pulls_whole(&server, &art);
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 2, "{:?}", server.requests());
    assert_eq!(header(&seen[0], "Range"), None);
    assert_eq!(header(&seen[1], "Range"), Some(format!("bytes={keep}-")));
    assert_eq!(header(&seen[1], "If-Range").as_deref(), Some(ETAG));
}

#[test]
fn a_server_ignoring_the_range_gets_the_blob_written_again_from_the_start() {
    let art = artifact();
    let keep = art.blobs[&art.chart_digest].len() / 3;
    let (server, seen) = serving_layer(&art, move |n, _, data| match n {
        0 => Response::cut(data, keep, &[]),
        // The whole blob again, with a 200, whatever was asked.
        _ => Response::ok(data, "application/octet-stream"),
    });
    pulls_whole(&server, &art);
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 2, "{:?}", server.requests());
    assert_eq!(header(&seen[1], "Range"), Some(format!("bytes={keep}-")));
    // Without an ETag there is nothing to make the range conditional on.
    assert_eq!(header(&seen[1], "If-Range"), None);
}

#[test]
fn a_range_answer_that_does_not_fit_is_not_appended() {
    let art = artifact();
    let keep = art.blobs[&art.chart_digest].len() / 2;
    let (server, seen) = serving_layer(&art, move |n, req, data| match n {
        0 => Response::cut(data, keep, &[]),
        // Off by one: appended, this would make a corrupt blob.
        1 => Response::Full {
            status: 206,
            headers: vec![(
                "Content-Range".into(),
                format!("bytes {}-{}/{}", keep - 1, data.len() - 1, data.len()),
            )],
            body: data[keep - 1..].to_vec(),
        },
        _ => Response::ranged(req, data, &[]),
    });
    pulls_whole(&server, &art);
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 3, "{:?}", server.requests());
    assert_eq!(header(&seen[1], "Range"), Some(format!("bytes={keep}-")));
    assert_eq!(
        header(&seen[2], "Range"),
        None,
        "after a range answer it could not use, the client asks for the whole blob"
    );
}

#[test]
fn a_complete_blob_with_the_wrong_digest_is_not_asked_for_again() {
    let art = artifact();
    let (server, seen) = serving_layer(&art, |_, _, data| {
        let mut tampered = data.to_vec();
        tampered[0] ^= 0xff;
        Response::ok(&tampered, "application/octet-stream")
    });
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let out = sb.run(&["chart", "pull", &reference]);
    let line = error_line_of(&out, "chart pull (tampered)");
    assert!(line.contains("digest mismatch"), "{line}");
    assert_eq!(
        seen.lock().expect("log").len(),
        1,
        "{:?}",
        server.requests()
    );
}

/// A server for `art` whose manifest requests get `first` until `times` of them were made; the
/// times the manifest was asked for are recorded.
fn manifest_limited(
    art: &Artifact,
    first: Response,
    times: usize,
) -> (FakeRegistry, Arc<Mutex<Vec<Instant>>>) {
    let manifest_path = art.manifest_path(&art.tag);
    let asked: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        if req.path == manifest_path && req.method == "GET" {
            let mut log = log.lock().expect("log");
            log.push(Instant::now());
            if log.len() <= times {
                return Some(first.clone());
            }
        }
        served.serve(req)
    });
    (server, asked)
}

#[test]
fn a_retry_after_is_waited_for() {
    let art = artifact();
    let (server, asked) = manifest_limited(
        &art,
        Response::plain_status(429, "slow down").with_header("Retry-After", "1"),
        1,
    );
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    sb.ok(&["chart", "pull", &reference]);
    let asked = asked.lock().expect("log");
    assert_eq!(asked.len(), 2);
    let waited = asked[1] - asked[0];
    assert!(
        waited >= Duration::from_secs(1),
        "asked again after {waited:?}, before the 1 s the server asked for"
    );
}

#[test]
fn a_retry_after_above_the_limit_fails_at_once_naming_the_wait() {
    let art = artifact();
    let (server, asked) = manifest_limited(
        &art,
        Response::plain_status(429, "come back in an hour").with_header("Retry-After", "3600"),
        usize::MAX,
    );
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let start = Instant::now();
    let out = sb.run(&["chart", "pull", &reference]);
    let elapsed = start.elapsed();
    let line = error_line_of(&out, "chart pull (Retry-After: 3600)");
    assert!(
        line.contains(&server.host()) && line.contains("3600 s") && line.contains("Retry-After"),
        "{line}"
    );
    assert_eq!(asked.lock().expect("log").len(), 1, "asked again: {line}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// `chart push` to a registry whose blob uploads always fail with 503: each blob's upload is
/// started over as a whole `CHARTCACHE_RETRIES` times at most, never more (the POST and the PUT
/// inside an upload are not retried on their own), and the error says it gave up.
#[test]
fn an_upload_started_over_counts_its_tries_once() {
    let puts: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&puts);
    let server = FakeRegistry::start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v2/myrepo/mychart/blobs/uploads/") => Some(
            Response::status(202).with_header("Location", "/v2/myrepo/mychart/blobs/uploads/u1"),
        ),
        ("PUT", "/v2/myrepo/mychart/blobs/uploads/u1") => {
            log.lock().expect("log").push(req.query.clone());
            Some(Response::status(503))
        }
        _ => None,
    });
    let mut sb = Sandbox::new();
    sb.set_env("CHARTCACHE_RETRIES", "3");
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    sb.save("mychart", "0.1.0", &reference);
    let out = sb.run(&["chart", "push", &reference]);
    let line = error_line_of(&out, "chart push (uploads fail)");
    assert!(
        line.contains("503") && line.contains("gave up after 3 tries"),
        "{line}"
    );
    // Blobs are sent at once, and the push stops at the first that fails for good: that one
    // was tried 3 times, and none more.
    let puts = puts.lock().expect("log");
    let mut per_blob = std::collections::HashMap::<&str, usize>::new();
    for query in puts.iter() {
        *per_blob.entry(query.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_blob.values().max(),
        Some(&3),
        "{per_blob:?}: {:?}",
        server.requests()
    );
    let posts = server.count("POST", "/v2/myrepo/mychart/blobs/uploads/");
    assert_eq!(posts, puts.len(), "{:?}", server.requests());
}

#[test]
fn a_classic_chart_archive_cut_off_resumes() {
    let mut repo = classic::RepoFixture::new();
    repo.add("web", "1.0.0");
    let index = repo.index_yaml();
    let chart = repo.chart("web", "1.0.0").clone();
    let archive_path = format!("/charts/{}", chart.file_name());
    let keep = chart.bytes.len() / 2;
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let data = chart.bytes.clone();
    let server = FakeRegistry::start(move |req| {
        if req.method != "GET" {
            return None;
        }
        if req.path == "/charts/index.yaml" {
            return Some(Response::ok(index.as_bytes(), "text/yaml"));
        }
        if req.path == archive_path {
            let mut log = log.lock().expect("log");
            log.push(req.clone());
            return Some(if log.len() == 1 {
                Response::cut(&data, keep, &[("ETag", ETAG)])
            } else {
                Response::ranged(req, &data, &[("ETag", ETAG)])
            });
        }
        None
    });
    let sb = Sandbox::new();
    let dir = sb.path().join("out");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let url = format!("http://{}/charts", server.host());
    let dest = dir.to_string_lossy().into_owned();
    let out = sb.run(&[
        "repo",
        "fetch",
        &url,
        "web",
        "--version",
        "1.0.0",
        "-d",
        &dest,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        std::fs::read(dir.join(chart.file_name())).expect("fetched archive"),
        chart.bytes
    );
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 2, "{:?}", server.requests());
    assert_eq!(header(&seen[1], "Range"), Some(format!("bytes={keep}-")));
    assert_eq!(header(&seen[1], "If-Range").as_deref(), Some(ETAG));
}
