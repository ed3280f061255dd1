//! `chartcache serve` in production: `/healthz`, `/readyz` and `/metrics` (parsed and checked
//! after known requests), the JSON access log, `--config FILE`, the gzip index and
//! `--chart-url oci` read by Helm v4. Run as the built binary on 127.0.0.1.

mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use fault::{Sandbox, ServeProcess as Server, sha256_hex};
use support::{Helm, HttpResponse, Registry, TestPki, basic_auth, http_get};

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_get(&server.url(path), headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn three_charts() -> Sandbox {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    sb.save("web", "1.10.0", "reg.example.com/team/web:1.10.0");
    sb.save("db", "0.1.0+build.7", "reg.example.com/team/db");
    sb
}

fn htpasswd(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .expect("htpasswd (apache2-utils) must be installed: run .ci/install-peers");
    assert!(out.status.success());
    let path = dir.join("htpasswd");
    fs::write(&path, out.stdout).unwrap();
    path
}

/// The samples of a Prometheus text page: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{l:?}"));
            (key.to_string(), value)
        })
        .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[test]
fn health_and_readiness_need_no_login_and_metrics_count_known_requests() {
    let sb = three_charts();
    let tmp = tempfile::tempdir().unwrap();
    let file = htpasswd(tmp.path(), "ops", "pw");
    let server = Server::start(&sb, &["--htpasswd", file.to_str().unwrap()]);
    let login = basic_auth("ops", "pw");
    let auth = [("Authorization", login.as_str())];

    let health = get(&server, "/healthz", &[]);
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = get(&server, "/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(
        get(&server, "/metrics", &[]).status,
        401,
        "metrics need the login"
    );
    assert_eq!(get(&server, "/index.yaml", &[]).status, 401);

    // Known requests: two index fetches, one plain and one gzip, one chart, one missing
    // manifest.
    let plain = get(&server, "/index.yaml", &auth);
    assert_eq!(plain.status, 200);
    let gz = get(
        &server,
        "/index.yaml",
        &[auth[0], ("Accept-Encoding", "gzip")],
    );
    assert_eq!(gz.status, 200);
    let chart = get(&server, "/charts/db-0.1.0+build.7.tgz", &auth);
    assert_eq!(chart.status, 200);
    let missing = get(
        &server,
        "/v2/reg.example.com/team/web/manifests/9.9.9",
        &auth,
    );
    assert_eq!(missing.status, 404);

    let page = get(&server, "/metrics", &auth);
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        page.header("Content-Type")
    );
    let text = page.text();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let m = samples(&text);
    let at = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    assert_eq!(
        at("chartcache_http_requests_total{route=\"index\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        at("chartcache_http_requests_total{route=\"index\",status=\"401\"}"),
        1.0
    );
    assert_eq!(
        at("chartcache_http_requests_total{route=\"chart\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        at("chartcache_http_requests_total{route=\"manifest\",status=\"404\"}"),
        1.0
    );
    assert_eq!(
        at("chartcache_http_requests_total{route=\"healthz\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        at("chartcache_http_requests_total{route=\"readyz\",status=\"200\"}"),
        1.0
    );
    // Bytes sent: both index bodies and the chart, exactly.
    let index_bytes = at("chartcache_http_response_bytes_total{route=\"index\"}");
    assert!(
        index_bytes >= (plain.body.len() + gz.body.len()) as f64,
        "{index_bytes} < {} + {}",
        plain.body.len(),
        gz.body.len()
    );
    assert_eq!(
        at("chartcache_http_response_bytes_total{route=\"chart\"}"),
        chart.body.len() as f64
    );
    assert_eq!(
        at("chartcache_http_request_duration_seconds_count{route=\"index\"}"),
        3.0
    );
    assert!(at("chartcache_index_builds_total") >= 1.0);
    assert!(at("chartcache_index_build_duration_seconds_count") >= 1.0);
}

#[test]
fn the_index_is_sent_gzip_compressed_to_clients_that_take_it() {
    let sb = three_charts();
    let server = Server::start(&sb, &[]);
    for path in [
        "/index.yaml",
        "/index.json",
        "/reg.example.com/team/index.yaml",
    ] {
        let plain = get(&server, path, &[]);
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("Content-Encoding"), None, "{path}");
        assert_eq!(plain.header("Vary"), Some("Accept-Encoding"));
        let gz = get(&server, path, &[("Accept-Encoding", "deflate, gzip;q=0.8")]);
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("Content-Encoding"), Some("gzip"), "{path}");
        assert_eq!(gz.header("Vary"), Some("Accept-Encoding"));
        assert_eq!(gunzip(&gz.body), plain.body, "{path}: the same index");
        assert!(gz.body.len() < plain.body.len());
        assert_eq!(
            gz.header("Content-Length"),
            Some(gz.body.len().to_string().as_str())
        );
        // Each representation has its own ETag, and each revalidates.
        let (etag, gz_etag) = (plain.header("ETag").unwrap(), gz.header("ETag").unwrap());
        assert_ne!(etag, gz_etag);
        let again = get(
            &server,
            path,
            &[("Accept-Encoding", "gzip"), ("If-None-Match", gz_etag)],
        );
        assert_eq!(again.status, 304, "{path}");
        let again = get(&server, path, &[("If-None-Match", etag)]);
        assert_eq!(again.status, 304, "{path}");
        let refused = get(&server, path, &[("Accept-Encoding", "gzip;q=0")]);
        assert_eq!(refused.header("Content-Encoding"), None);
    }
    // The compressed bytes are the same at every request and after a restart.
    let first = get(&server, "/index.yaml", &[("Accept-Encoding", "gzip")]);
    drop(server);
    let server = Server::start(&sb, &[]);
    let second = get(&server, "/index.yaml", &[("Accept-Encoding", "gzip")]);
    assert_eq!(first.body, second.body);
    assert_eq!(first.header("ETag"), second.header("ETag"));
    // curl takes it too, and writes the plain index.
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--compressed", &server.url("/index.yaml")])
        .output()
        .expect("curl");
    assert!(out.status.success());
    assert_eq!(out.stdout, get(&server, "/index.yaml", &[]).body);
}

/// GET over HTTPS with curl, trusting `ca`.
fn curl_tls(url: &str, ca: &Path, extra: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "--cacert", ca.to_str().unwrap()])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn helm_reads_a_gzip_serving_index_with_oci_urls() {
    // Helm follows an index's oci:// URL with its registry client over HTTPS (its repository
    // settings do not carry plain HTTP there), so this server speaks TLS.
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(pki_dir.path());
    let helm = Helm::require().with_ca_file(&pki.ca_pem_path());
    let sb = three_charts();
    let server = Server::start(
        &sb,
        &[
            "--chart-url",
            "oci",
            "--tls-cert",
            pki.server_cert_path().to_str().unwrap(),
            "--tls-key",
            pki.server_key_path().to_str().unwrap(),
        ],
    );
    let host = server.host();
    let ca = pki.ca_pem_path();
    let root: serde_json::Value =
        serde_norway::from_slice(&curl_tls(&server.url("/index.yaml"), &ca, &[])).unwrap();
    assert_eq!(
        root["entries"]["web"][0]["urls"][0],
        format!("oci://{host}/reg.example.com/team/web:1.10.0")
    );
    assert_eq!(
        root["entries"]["db"][0]["urls"][0],
        format!("oci://{host}/reg.example.com/team/db:0.1.0_build.7")
    );
    // The same index, compressed, for the clients that ask.
    let head = curl_tls(
        &server.url("/index.yaml"),
        &ca,
        &["-o", "/dev/null", "-D", "-", "-H", "Accept-Encoding: gzip"],
    );
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let shown = helm
        .show_chart_from_repo(&server.url(""), "web", None)
        .unwrap_or_else(|e| panic!("helm repo add + show through oci:// URLs: {e}"));
    assert!(shown.contains("version: 1.10.0"), "{shown}");
    // Helm fetched the plain index and then pulled the chart through the registry API.
    let log = server.log();
    assert!(log.contains("\"GET /index.yaml HTTP/1.1\" 200"), "{log}");
    assert!(
        log.contains("GET /v2/reg.example.com/team/web/manifests/1.10.0"),
        "{log}"
    );
    let layer = sb.ref_blob("reg.example.com/team/web:1.10.0", "content");
    assert!(
        log.contains(&format!("/blobs/sha256:{}", sha256_hex(&layer))),
        "{log}"
    );

    // With --base-url, its host names the server.
    let based = Server::start(
        &sb,
        &[
            "--chart-url",
            "oci",
            "--base-url",
            "https://charts.example.com:8443/x",
        ],
    );
    let root: serde_json::Value =
        serde_norway::from_slice(&get(&based, "/index.yaml", &[]).body).unwrap();
    assert_eq!(
        root["entries"]["web"][0]["urls"][0],
        "oci://charts.example.com:8443/reg.example.com/team/web:1.10.0"
    );
}

#[test]
fn json_access_log_and_a_config_file_with_flags_winning() {
    let sb = three_charts();
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd(tmp.path(), "cfg", "pw");
    let config = tmp.path().join("serve.yaml");
    fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:1\nhtpasswd: {}\nlog-format: json\nmemory-cache: 0\n",
            users.display()
        ),
    )
    .unwrap();
    // The harness passes --listen 127.0.0.1:0, which wins over the file's port 1.
    let server = Server::start(&sb, &["--config", config.to_str().unwrap()]);
    assert_eq!(
        get(&server, "/index.yaml", &[]).status,
        401,
        "htpasswd from the file"
    );
    let login = basic_auth("cfg", "pw");
    let ok = get(
        &server,
        "/charts/web-1.0.0.tgz?x=%1b",
        &[("Authorization", login.as_str())],
    );
    assert_eq!(ok.status, 200);
    server.wait_log("\"status\":200", 1);
    let lines: Vec<serde_json::Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let hit = lines
        .iter()
        .find(|v| v["status"] == 200)
        .expect("a 200 line");
    assert_eq!(hit["method"], "GET");
    assert_eq!(hit["target"], "/charts/web-1.0.0.tgz?x=%1b");
    assert_eq!(hit["user"], "cfg");
    assert_eq!(hit["remote"], "127.0.0.1");
    assert_eq!(hit["bytes"], ok.body.len());
    assert!(hit["duration_ms"].is_number() && hit["time"].is_string());
    assert!(
        lines
            .iter()
            .any(|v| v["status"] == 401 && v["user"].is_null())
    );

    // A key that is not a flag stops the server before it listens.
    fs::write(&config, "listen: 127.0.0.1:0\nhtpasswdd: x\n").unwrap();
    let err = Server::try_start(&sb, &["--config", config.to_str().unwrap()])
        .err()
        .expect("an unknown key fails");
    assert!(
        err.contains("htpasswdd") && err.contains("serve.yaml"),
        "{err}"
    );
}

#[test]
fn readiness_follows_the_upstream() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let upstream = format!("{}/charts", reg.host());
    let server = Server::start(&sb, &["--upstream", &upstream]);
    let ready = get(&server, "/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.text());

    // An upstream that does not answer: alive, not ready, and /readyz says why.
    let dead = format!("127.0.0.1:{}/charts", support::free_port());
    let server = Server::start(&sb, &["--upstream", &dead, "--plain-http"]);
    let r = get(&server, "/readyz", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.text().trim(), "not ready: the upstream does not answer");
    assert_eq!(
        get(&server, "/healthz", &[]).status,
        200,
        "alive all the same"
    );
    let m = samples(&get(&server, "/metrics", &[]).text());
    assert_eq!(
        m.get("chartcache_upstream_fetches_total{kind=\"probe\",outcome=\"error\"}"),
        Some(&1.0)
    );
}
