//! Registries that attack the client rather than fail: one that never answers, bodies that
//! trickle in or stop mid-way, endless or looping tag pages, a huge manifest, a huge error
//! body, a huge token answer. Each must end quickly (well within the bound asserted here, far
//! above the configured timeouts), with exit code 1, one `Error:` line naming the host and the
//! limit, and the cache unchanged (`chart verify` clean).
//!
//! Also: the client certificate is presented by chartcache's own HTTP client, so no local
//! listener exists while a command runs (there used to be a forward proxy on 127.0.0.1 that
//! any local user could use as the certificate's identity).
//!
//! The servers are the in-process `fault::FakeRegistry` (plain HTTP on loopback), except for
//! the mTLS check, which relays to a real distribution registry.

mod fault;
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fault::{Artifact, FakeRegistry, Request, Response, Sandbox, error_line_of};
use support::{Registry, chart_tgz, describe};

/// Far above every timeout configured below: the run must end before this.
const BOUND: Duration = Duration::from_secs(20);

fn artifact() -> Artifact {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = std::fs::read(chart_tgz(dir.path(), "mychart", "0.1.0")).expect("tgz");
    Artifact::chart("myrepo/mychart", "0.1.0", "mychart", "0.1.0", &tgz)
}

/// A sandbox whose cache already holds a chart, so "unchanged" means something.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.save("other", "1.0.0", "localhost:5000/myrepo/other:1.0.0");
    sb
}

/// Runs `chartcache ARGS…`, timed.
fn timed(sb: &Sandbox, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = sb.run(args);
    (out, start.elapsed())
}

/// Runs a command that must fail safely: exit code 1 within [`BOUND`], one error line naming
/// `host`, the cache unchanged and verifying clean. Returns the error line.
fn fails_safely(sb: &Sandbox, args: &[&str], host: &str) -> String {
    let before = sb.snapshot();
    let (out, elapsed) = timed(sb, args);
    let what = args.join(" ");
    assert_eq!(out.status.code(), Some(1), "{what}: {}", describe(&out));
    assert!(
        elapsed < BOUND,
        "{what} took {elapsed:?}: {}",
        describe(&out)
    );
    let line = error_line_of(&out, &what);
    assert!(line.contains(host), "the error should name {host}: {line}");
    assert!(line.len() < 1000, "a one-line error, not a dump: {line}");
    let changes = sb.snapshot().changes_since(&before);
    assert!(changes.is_empty(), "the cache changed: {changes:?}");
    sb.ok(&["chart", "verify"]);
    line
}

/// `art`, with `answer` for the request `path` instead of the real one.
fn serving_with(art: &Artifact, path: String, answer: Response) -> FakeRegistry {
    let served = art.clone();
    FakeRegistry::start(move |req| {
        if req.path == path && req.method == "GET" {
            return Some(answer.clone());
        }
        served.serve(req)
    })
}

fn pull_args<'a>(timeouts: &'a [&'a str], reference: &'a str) -> Vec<&'a str> {
    let mut args = timeouts.to_vec();
    args.extend(["chart", "pull", reference]);
    args
}

#[test]
fn a_registry_that_never_answers_times_out() {
    let art = artifact();
    let sb = sandbox();
    // No answer to the manifest request, then none to the very first request (the ping).
    let silent_manifest = serving_with(&art, art.manifest_path(&art.tag), Response::Hang);
    let silent_ping = FakeRegistry::start_with_ping(|_: &Request| Some(Response::Hang));
    for server in [silent_manifest, silent_ping] {
        let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
        let timeouts = ["--read-timeout", "1s"];
        let line = fails_safely(&sb, &pull_args(&timeouts, &reference), &server.host());
        assert!(
            line.contains("no answer within 1 s (--read-timeout)"),
            "{line}"
        );
    }
}

#[test]
fn a_blob_trickling_in_fails_as_stalled() {
    let art = artifact();
    let size = art.blobs[&art.chart_digest].len();
    let server = serving_with(
        &art,
        art.blob_path(&art.chart_digest),
        Response::Trickle {
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            declared: size,
            every: Duration::from_millis(1500),
        },
    );
    let sb = sandbox();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let timeouts = ["--read-timeout", "2s"];
    let line = fails_safely(&sb, &pull_args(&timeouts, &reference), &server.host());
    assert!(
        line.contains(&format!(
            "download of blob {}: stalled: less than 1 KiB in 2 s (--read-timeout)",
            art.chart_digest
        )),
        "{line}"
    );
}

#[test]
fn a_body_that_stops_mid_way_fails_as_stalled() {
    let art = artifact();
    let full = art.blobs[&art.chart_digest].clone();
    let server = serving_with(
        &art,
        art.blob_path(&art.chart_digest),
        Response::Stall {
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: full[..full.len() / 2].to_vec(),
            declared: full.len(),
        },
    );
    let sb = sandbox();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let timeouts = ["--read-timeout", "1s"];
    let line = fails_safely(&sb, &pull_args(&timeouts, &reference), &server.host());
    assert!(line.contains("stalled"), "{line}");
    assert!(line.contains(&art.chart_digest), "{line}");
}

const TAGS_PATH: &str = "/v2/myrepo/mychart/tags/list";

fn tag_page(tags: &[String], next: &str) -> Response {
    let body = serde_json::json!({"name": "myrepo/mychart", "tags": tags}).to_string();
    Response::ok(body.as_bytes(), "application/json")
        .with_header("Link", &format!("<{TAGS_PATH}?{next}>; rel=\"next\""))
}

#[test]
fn endless_tag_pages_end_with_an_error() {
    // Every page brings a new tag and names a new next page.
    let pages = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pages);
    let server = FakeRegistry::start(move |req: &Request| {
        if req.path != TAGS_PATH {
            return None;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Some(tag_page(
            &[format!("0.0.{n}")],
            &format!("cursor={}", n + 1),
        ))
    });
    let sb = sandbox();
    let repo = format!("{}/myrepo/mychart", server.host());
    let line = fails_safely(&sb, &["registry", "tags", &repo], &server.host());
    assert!(line.contains("more than 10000 pages"), "{line}");
    assert_eq!(pages.load(Ordering::SeqCst), 10_000);
}

#[test]
fn a_tag_page_link_loop_ends_with_an_error() {
    // Pages a and b name each other, and every answer brings a new tag, so the loop would
    // never run dry by itself.
    let pages = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pages);
    let server = FakeRegistry::start(move |req: &Request| {
        if req.path != TAGS_PATH {
            return None;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let next = if req.query.contains("cursor=a") {
            "cursor=b"
        } else {
            "cursor=a"
        };
        Some(tag_page(&[format!("0.0.{n}")], next))
    });
    let sb = sandbox();
    let repo = format!("{}/myrepo/mychart", server.host());
    let line = fails_safely(&sb, &["registry", "tags", &repo], &server.host());
    assert!(
        line.contains("the Link header leads back to a page already read"),
        "{line}"
    );
    assert!(pages.load(Ordering::SeqCst) <= 4, "{:?}", server.requests());
}

#[test]
fn a_10_mib_manifest_is_refused() {
    let art = artifact();
    // One tag declares its length, the other is delimited by the connection's end.
    let served = art.clone();
    let server = FakeRegistry::start(move |req| {
        let huge = |declare| Response::Huge {
            status: 200,
            headers: vec![("Content-Type".into(), fault::OCI_MANIFEST.into())],
            size: 10 << 20,
            fill: b' ',
            declare,
        };
        match req.path.as_str() {
            "/v2/myrepo/mychart/manifests/declared" => Some(huge(true)),
            "/v2/myrepo/mychart/manifests/streamed" => Some(huge(false)),
            _ => served.serve(req),
        }
    });
    let sb = sandbox();
    for tag in ["declared", "streamed"] {
        let reference = format!("{}/myrepo/mychart:{tag}", server.host());
        let line = fails_safely(&sb, &["chart", "pull", &reference], &server.host());
        assert!(
            line.contains(&format!("manifest {reference}"))
                && line.contains("larger than the limit of 4 MiB"),
            "{line}"
        );
    }
}

#[test]
fn a_100_mib_error_body_is_read_only_in_part() {
    let art = artifact();
    let server = serving_with(
        &art,
        art.manifest_path(&art.tag),
        Response::Huge {
            status: 400,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            size: 100 << 20,
            fill: b'x',
            declare: false,
        },
    );
    let sb = sandbox();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = fails_safely(&sb, &["chart", "pull", &reference], &server.host());
    assert!(line.contains("registry answered 400"), "{line}");
    // The client stops after 64 KiB; what the server got out is at most that plus the
    // socket buffers.
    let sent = server.body_bytes_sent();
    assert!(sent < 32 << 20, "{sent} bytes of the error body were sent");
}

#[test]
fn a_100_mib_token_answer_is_refused() {
    let host: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let host_in_handler = Arc::clone(&host);
    let server = FakeRegistry::start_with_ping(move |req: &Request| {
        let me = host_in_handler.get().cloned().unwrap_or_default();
        match req.path.as_str() {
            "/v2/" => Some(Response::status(401).with_header(
                "WWW-Authenticate",
                &format!("Bearer realm=\"http://{me}/token\",service=\"fake\""),
            )),
            "/token" => Some(Response::Huge {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                size: 100 << 20,
                fill: b' ',
                declare: false,
            }),
            _ => None,
        }
    });
    let _ = host.set(server.host());
    let sb = sandbox();
    let reference = format!("{}/myrepo/mychart:0.1.0", server.host());
    let line = fails_safely(&sb, &["chart", "pull", &reference], &server.host());
    assert!(
        line.contains("token request: larger than the limit of 1 MiB"),
        "{line}"
    );
    let sent = server.body_bytes_sent();
    assert!(
        sent < 32 << 20,
        "{sent} bytes of the token answer were sent"
    );
}

/// The inodes of the TCP sockets `pid` holds in LISTEN state.
fn listening_sockets(pid: u32) -> Vec<String> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st is the 4th column (0A: LISTEN), the inode the 10th.
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                listening.push(format!("{table} {}", cols[1]));
            }
        }
    }
    listening
}

/// A TCP relay to `target` that holds every chunk coming back for `delay`, so a command
/// through it runs long enough to be looked at. Stops with the test process.
fn slow_relay(target: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let addr = listener.local_addr().expect("relay addr").to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let Ok(upstream) = TcpStream::connect(&target) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream, delay: Duration| {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                std::thread::sleep(delay);
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                continue;
            };
            pipe(client, u2, Duration::ZERO);
            pipe(upstream, c2, delay);
        }
    });
    addr
}

#[test]
fn a_push_with_a_client_certificate_opens_no_local_listener() {
    let reg = Registry::builder().mtls().start();
    let relay = slow_relay(reg.host(), Duration::from_millis(150));
    let ca = reg.ca_pem_path();
    let cert = reg.client_cert_path();
    let key = reg.client_key_path();
    let sb = Sandbox::new();
    let reference = format!("{relay}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    let mut child = sb
        .std_command(Sandbox::bin())
        .arg("--home")
        .arg(sb.cache_home())
        .args(["chart", "push", &reference, "--ca-file"])
        .arg(&ca)
        .arg("--cert-file")
        .arg(&cert)
        .arg("--key-file")
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn chartcache");
    let pid = child.id();
    let mut seen = Vec::new();
    let mut looks = 0;
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() && start.elapsed() < Duration::from_secs(60) {
        seen.extend(listening_sockets(pid));
        looks += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("chartcache output");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        looks >= 10,
        "the push ended before it could be looked at ({looks} looks)"
    );
    assert!(
        seen.is_empty(),
        "chartcache listened on a local port while pushing: {seen:?}"
    );
}

/// A classic repository whose index.yaml is `answer`.
fn classic_repo(answer: Response) -> FakeRegistry {
    FakeRegistry::start(move |req: &Request| {
        (req.method == "GET" && req.path == "/charts/index.yaml").then(|| answer.clone())
    })
}

#[test]
fn a_classic_index_over_the_size_limit_is_refused() {
    let entry = "apiVersion: v1\nentries: {}\n";
    let mut index = entry.to_string();
    index.push_str(&"# padding\n".repeat(300));
    let server = classic_repo(Response::ok(index.as_bytes(), "text/yaml"));
    let url = format!("http://{}/charts", server.host());
    let sb = sandbox();
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().to_string_lossy().into_owned();
    let args = [
        "repo",
        "fetch",
        &url,
        "mychart",
        "-d",
        &dest,
        "--max-index-size",
        "2KiB",
    ];
    let line = fails_safely(&sb, &args, &server.host());
    assert!(
        line.contains(&format!("{url}/index.yaml"))
            && line.contains("larger than the limit of 2 KiB (--max-index-size)"),
        "{line}"
    );
    // The same limit from the environment; a streamed index is cut off as well.
    let streamed = classic_repo(Response::Huge {
        status: 200,
        headers: vec![("Content-Type".into(), "text/yaml".into())],
        size: 100 << 20,
        fill: b'#',
        declare: false,
    });
    let url = format!("http://{}/charts", streamed.host());
    let mut sb = sandbox();
    sb.set_env("CHARTCACHE_MAX_INDEX_SIZE", "1MiB");
    let args = ["repo", "fetch", &url, "mychart", "-d", &dest];
    let line = fails_safely(&sb, &args, &streamed.host());
    assert!(
        line.contains("larger than the limit of 1 MiB (--max-index-size)"),
        "{line}"
    );
    assert!(streamed.body_bytes_sent() < 32 << 20);
}

#[test]
fn a_classic_index_trickling_in_fails_as_stalled() {
    let server = classic_repo(Response::Trickle {
        headers: vec![("Content-Type".into(), "text/yaml".into())],
        declared: 4096,
        every: Duration::from_millis(500),
    });
    let url = format!("http://{}/charts", server.host());
    let mut sb = sandbox();
    sb.set_env("CHARTCACHE_READ_TIMEOUT", "1s");
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().to_string_lossy().into_owned();
    let args = ["repo", "fetch", &url, "mychart", "-d", &dest];
    let line = fails_safely(&sb, &args, &server.host());
    assert!(
        line.contains("stalled: less than 1 KiB in 1 s (--read-timeout)"),
        "{line}"
    );
}

/// A registry redirecting a blob download to another origin (as registries do to a CDN or an
/// object store) gets the credentials; the other origin does not.
#[test]
fn a_redirect_to_another_origin_does_not_carry_the_credentials() {
    use std::sync::Mutex;
    let art = artifact();
    let seen_elsewhere: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seen_elsewhere);
    let blobs = art.clone();
    let cdn = FakeRegistry::start(move |req: &Request| {
        seen.lock()
            .expect("lock")
            .push(req.header("Authorization").map(str::to_string));
        let digest = req.path.strip_prefix("/cdn/")?;
        Some(Response::ok(
            blobs.blobs.get(digest)?,
            "application/octet-stream",
        ))
    });
    let cdn_host = cdn.host();
    let served = art.clone();
    let chart_path = art.blob_path(&art.chart_digest);
    let chart_digest = art.chart_digest.clone();
    let unauthorized = Arc::new(AtomicUsize::new(0));
    let refused = Arc::clone(&unauthorized);
    let registry = FakeRegistry::start_with_ping(move |req: &Request| {
        // "alice:s3cret"
        if req.header("Authorization") != Some("Basic YWxpY2U6czNjcmV0") {
            if req.path != "/v2/" {
                refused.fetch_add(1, Ordering::SeqCst);
            }
            return Some(
                Response::status(401).with_header("WWW-Authenticate", "Basic realm=\"fake\""),
            );
        }
        if req.path == "/v2/" {
            return None;
        }
        if req.path == chart_path {
            return Some(
                Response::status(307)
                    .with_header("Location", &format!("http://{cdn_host}/cdn/{chart_digest}")),
            );
        }
        served.serve(req)
    });
    let sb = Sandbox::new();
    let out = sb.login_stdin(&registry.host(), "alice", "s3cret");
    assert!(out.status.success(), "login: {}", describe(&out));
    let reference = format!("{}/myrepo/mychart:0.1.0", registry.host());
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    assert_eq!(
        sb.ref_blob(&reference, "content"),
        art.blobs[&art.chart_digest]
    );
    assert_eq!(unauthorized.load(Ordering::SeqCst), 0);
    let elsewhere = seen_elsewhere.lock().expect("lock").clone();
    assert_eq!(elsewhere, vec![None], "the other origin got: {elsewhere:?}");
}
