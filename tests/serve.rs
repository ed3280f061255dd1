//! `chartcache serve`, run as the built binary on 127.0.0.1 and read by real clients: Helm v4
//! (`helm repo add` + `helm show` through the classic index, and `helm show oci://` through the
//! registry API), skopeo, chartcache itself, and a YAML parser. The pull-through mode runs in
//! front of a real CNCF distribution registry.

mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fault::{Sandbox, ServeProcess as Server, error_line_of, sha256_hex};
use support::{
    Helm, HttpResponse, Registry, Skopeo, TestPki, basic_auth, chart_tgz, describe, http_get,
    http_request,
};

/// Requests to a running server.
trait Requests {
    fn get(&self, path: &str) -> HttpResponse;
    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse;
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse;
}

impl Requests for Server {
    fn get(&self, path: &str) -> HttpResponse {
        self.get_with(path, &[])
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_get(&self.url(path), headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_request(method, &self.url(path), headers, &[])
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn yaml(resp: &HttpResponse) -> serde_json::Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_norway::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("index.yaml is not YAML ({e}):\n{}", resp.text()))
}

/// A sandbox holding three charts: `web` 1.0.0 and 1.10.0 and `db` 0.1.0+build.7 under
/// `reg.example.com/team`, and another `web` under `reg.example.com/other`.
fn three_charts() -> Sandbox {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    sb.save("web", "1.10.0", "reg.example.com/team/web:1.10.0");
    sb.save("db", "0.1.0+build.7", "reg.example.com/team/db");
    sb.save("web", "2.0.0", "reg.example.com/other/web:2.0.0");
    sb
}

/// The content blob (chart archive) a ref points at.
fn content(sb: &Sandbox, reference: &str) -> Vec<u8> {
    sb.ref_blob(reference, "content")
}

#[test]
fn index_yaml_lists_every_cached_chart_with_its_metadata() {
    let sb = three_charts();
    let server = Server::start(&sb, &[]);

    // Each prefix is a classic repository of its own.
    let team = yaml(&server.get("/reg.example.com/team/index.yaml"));
    assert_eq!(team["apiVersion"], "v1");
    let web = team["entries"]["web"].as_array().expect("web entries");
    let versions: Vec<&str> = web.iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.10.0", "1.0.0"], "newest first, SemVer order");
    assert_eq!(web[0]["name"], "web");
    assert_eq!(web[0]["apiVersion"], "v2");
    assert_eq!(web[0]["description"], "A chart for the registry tests");
    assert_eq!(web[0]["urls"][0], "charts/web-1.10.0.tgz");
    assert_eq!(
        web[0]["digest"],
        sha256_hex(&content(&sb, "reg.example.com/team/web:1.10.0"))
    );
    assert!(web[0]["created"].as_str().is_some_and(|c| c.ends_with('Z')));
    let db = &team["entries"]["db"][0];
    assert_eq!(db["version"], "0.1.0+build.7");
    assert_eq!(db["urls"][0], "charts/db-0.1.0+build.7.tgz");

    // The root lists all of them; the two `web` charts of two prefixes stay apart.
    let root = yaml(&server.get("/index.yaml"));
    let keys: Vec<&String> = root["entries"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "db",
            "reg.example.com/other/web",
            "reg.example.com/team/web"
        ]
    );
    assert_eq!(
        root["entries"]["reg.example.com/other/web"][0]["urls"][0],
        "reg.example.com/other/charts/web-2.0.0.tgz"
    );
    assert_eq!(
        root["entries"]["db"][0]["urls"][0],
        "charts/db-0.1.0+build.7.tgz"
    );

    // index.json is the same index.
    let json = server.get("/index.json");
    assert_eq!(json.status, 200);
    assert_eq!(json.json(), root);

    // ETags: a second fetch with If-None-Match is a 304 without a body.
    let first = server.get("/index.yaml");
    let etag = first.header("ETag").expect("ETag").to_string();
    let again = server.get_with("/index.yaml", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(server.get("/nope/index.yaml").status, 404);
    // The access log names every request.
    assert!(
        server.log().contains("\"GET /index.yaml HTTP/1.1\" 304"),
        "{}",
        server.log()
    );
}

#[test]
fn the_index_follows_the_cache_without_a_restart() {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    let server = Server::start(&sb, &[]);
    let before = server.get("/index.yaml");
    let etag = before.header("ETag").unwrap().to_string();
    assert_eq!(yaml(&before)["entries"]["web"].as_array().unwrap().len(), 1);

    sb.save("web", "1.1.0", "reg.example.com/team/web:1.1.0");
    let after = server.get_with("/index.yaml", &[("If-None-Match", &etag)]);
    assert_eq!(after.status, 200, "a changed cache is not a 304");
    assert_ne!(after.header("ETag"), Some(etag.as_str()));
    assert_eq!(yaml(&after)["entries"]["web"][0]["version"], "1.1.0");

    sb.ok(&["chart", "remove", "reg.example.com/team/web:1.0.0"]);
    let versions = yaml(&server.get("/index.yaml"))["entries"]["web"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(versions, 1);
    assert_eq!(server.get("/charts/web-1.0.0.tgz").status, 404);
}

#[test]
fn helm_installs_from_the_index_of_the_root_and_of_a_prefix() {
    let helm = Helm::require();
    let sb = three_charts();
    let server = Server::start(&sb, &[]);
    let shown = helm
        .show_chart_from_repo(&server.url(""), "db", None)
        .unwrap_or_else(|e| panic!("helm repo add + show from the root index: {e}"));
    assert!(shown.contains("version: 0.1.0+build.7"), "{shown}");
    let helm = Helm::require();
    let shown = helm
        .show_chart_from_repo(&server.url("/reg.example.com/other"), "web", None)
        .unwrap_or_else(|e| panic!("helm repo add + show from a prefix index: {e}"));
    assert!(shown.contains("version: 2.0.0"), "{shown}");
    // Helm downloaded the archives through the index's relative URLs.
    let log = server.log();
    assert!(
        log.contains("GET /charts/db-0.1.0+build.7.tgz HTTP/1.1\" 200"),
        "{log}"
    );
    assert!(
        log.contains("GET /reg.example.com/other/charts/web-2.0.0.tgz HTTP/1.1\" 200"),
        "{log}"
    );
}

#[test]
fn chart_downloads_are_the_stored_bytes_with_ranges_and_provenance() {
    let sb = Sandbox::new();
    let tmp = tempfile::tempdir().unwrap();
    let tgz = chart_tgz(tmp.path(), "signed", "3.1.4");
    let prov = b"-----BEGIN PGP SIGNED MESSAGE-----\nnot really\n".to_vec();
    fs::write(format!("{}.prov", tgz.display()), &prov).unwrap();
    sb.ok(&[
        "chart",
        "save",
        tgz.to_str().unwrap(),
        "reg.example.com/s/signed",
    ]);
    let server = Server::start(&sb, &["--memory-cache", "0"]);

    let stored = fs::read(&tgz).unwrap();
    let whole = server.get("/charts/signed-3.1.4.tgz");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, stored, "the .tgz is served byte for byte");
    assert_eq!(
        whole.header("Content-Length"),
        Some(stored.len().to_string().as_str())
    );
    assert_eq!(whole.header("Content-Type"), Some("application/gzip"));
    assert_eq!(
        server
            .get("/reg.example.com/s/charts/signed-3.1.4.tgz")
            .body,
        stored
    );

    let part = server.get_with("/charts/signed-3.1.4.tgz", &[("Range", "bytes=10-19")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, stored[10..20]);
    let len = stored.len();
    assert_eq!(
        part.header("Content-Range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    let tail = server.get_with("/charts/signed-3.1.4.tgz", &[("Range", "bytes=-5")]);
    assert_eq!(tail.body, stored[len - 5..]);
    let beyond = server.get_with(
        "/charts/signed-3.1.4.tgz",
        &[("Range", &format!("bytes={len}-"))],
    );
    assert_eq!(beyond.status, 416);
    let head = server.request("HEAD", "/charts/signed-3.1.4.tgz", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(len.to_string().as_str())
    );

    assert_eq!(server.get("/charts/signed-3.1.4.tgz.prov").body, prov);
    assert_eq!(server.get("/charts/signed-9.9.9.tgz").status, 404);
    assert_eq!(server.get("/charts/../blobs/sha256").status, 404);
    assert_eq!(
        server
            .request("PUT", "/charts/signed-3.1.4.tgz", &[])
            .status,
        405
    );
}

#[test]
fn skopeo_helm_and_chartcache_pull_from_the_registry_api() {
    let sb = three_charts();
    let reference = "reg.example.com/team/web:1.10.0";
    let digest = sb.manifest_digest(reference);
    let server = Server::start(&sb, &[]);
    let host = server.host();
    let name = "reg.example.com/team/web";

    // skopeo reads the manifest and copies the artifact with its digest kept.
    let skopeo = Skopeo::new();
    let raw = skopeo.run_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/{name}:1.10.0"),
    ]);
    assert_eq!(
        sha256_hex(raw.as_bytes()),
        digest.trim_start_matches("sha256:")
    );
    let layout = tempfile::tempdir().unwrap();
    skopeo.run_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{name}:1.10.0"),
        &format!("oci:{}:web", layout.path().display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());

    // Helm v4 pulls it through its own OCI client.
    let helm = Helm::require();
    let shown = helm
        .show_chart(&format!("oci://{host}/{name}:1.10.0"))
        .unwrap_or_else(|e| panic!("helm show oci:// from serve: {e}"));
    assert!(shown.contains("version: 1.10.0"), "{shown}");

    // chartcache pulls it into another cache, by tag and by digest.
    let other = Sandbox::new();
    let out = other.ok(&["chart", "pull", &format!("{host}/{name}:1.10.0")]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    assert_eq!(
        other.manifest_digest(&format!("{host}/{name}:1.10.0")),
        digest
    );
    assert_eq!(
        other.ref_blob(&format!("{host}/{name}:1.10.0"), "content"),
        content(&sb, reference)
    );
    // The same manifest by digest is already there: nothing is downloaded again.
    let out = other.ok(&["chart", "pull", &format!("{host}/{name}@{digest}")]);
    assert!(out.contains("Status: Chart is up to date"), "{out}");
}

#[test]
fn the_registry_api_answers_as_the_distribution_spec_asks() {
    let sb = three_charts();
    let reference = "reg.example.com/team/web:1.0.0";
    let digest = sb.manifest_digest(reference);
    let server = Server::start(&sb, &[]);
    let name = "reg.example.com/team/web";

    let base = server.get("/v2/");
    assert_eq!(base.status, 200);
    assert_eq!(
        base.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    let manifest = server.get_with(
        &format!("/v2/{name}/manifests/1.0.0"),
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(manifest.status, 200);
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digest.as_str())
    );
    assert_eq!(manifest.header("Content-Type"), Some(OCI_MANIFEST));
    assert_eq!(sb.ref_blob(reference, "manifest"), manifest.body);
    let by_digest = server.get(&format!("/v2/{name}/manifests/{digest}"));
    assert_eq!(by_digest.body, manifest.body);
    let head = server.request("HEAD", &format!("/v2/{name}/manifests/1.0.0"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(
        head.header("Content-Length"),
        Some(manifest.body.len().to_string().as_str())
    );

    // Blobs: the chart layer, with its digest and ranges.
    let layer = content(&sb, reference);
    let layer_digest = format!("sha256:{}", sha256_hex(&layer));
    let blob = server.get(&format!("/v2/{name}/blobs/{layer_digest}"));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, layer);
    assert_eq!(
        blob.header("Docker-Content-Digest"),
        Some(layer_digest.as_str())
    );
    let part = server.get_with(
        &format!("/v2/{name}/blobs/{layer_digest}"),
        &[("Range", "bytes=0-1")],
    );
    assert_eq!((part.status, part.body.as_slice()), (206, &layer[..2]));

    // Errors, with the spec's JSON bodies.
    let fails = |method: &str, path: &str, status: u16, code: &str| {
        let resp = server.request(method, path, &[]);
        let got = resp.json()["errors"][0]["code"]
            .as_str()
            .map(str::to_string);
        assert_eq!(
            (resp.status, got.as_deref()),
            (status, Some(code)),
            "{method} {path}"
        );
    };
    fails(
        "GET",
        "/v2/reg.example.com/team/nope/manifests/1.0.0",
        404,
        "NAME_UNKNOWN",
    );
    fails(
        "GET",
        &format!("/v2/{name}/manifests/9.9.9"),
        404,
        "MANIFEST_UNKNOWN",
    );
    fails(
        "GET",
        &format!("/v2/{name}/manifests/sha256:xyz"),
        400,
        "DIGEST_INVALID",
    );
    fails(
        "GET",
        &format!("/v2/{name}/blobs/sha256:12"),
        400,
        "DIGEST_INVALID",
    );
    // A blob of another repository is not this repository's.
    let other_layer = sha256_hex(&content(&sb, "reg.example.com/other/web:2.0.0"));
    fails(
        "GET",
        &format!("/v2/{name}/blobs/sha256:{other_layer}"),
        404,
        "BLOB_UNKNOWN",
    );
    for method in ["PUT", "DELETE", "POST"] {
        fails(
            method,
            &format!("/v2/{name}/manifests/1.0.0"),
            405,
            "UNSUPPORTED",
        );
    }

    // Tags and catalog, paged with n, last and Link.
    let tags = server.get(&format!("/v2/{name}/tags/list"));
    assert_eq!(tags.json()["tags"], serde_json::json!(["1.0.0", "1.10.0"]));
    let page = server.get(&format!("/v2/{name}/tags/list?n=1"));
    assert_eq!(page.json()["tags"], serde_json::json!(["1.0.0"]));
    let link = page.header("Link").expect("Link header").to_string();
    assert_eq!(
        link,
        format!("</v2/{name}/tags/list?last=1.0.0&n=1>; rel=\"next\"")
    );
    let next = server.get(&format!("/v2/{name}/tags/list?last=1.0.0&n=1"));
    assert_eq!(next.json()["tags"], serde_json::json!(["1.10.0"]));
    assert!(next.header("Link").is_none());
    let catalog = server.get("/v2/_catalog");
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!([
            "reg.example.com/other/web",
            "reg.example.com/team/db",
            "reg.example.com/team/web"
        ])
    );
    let first = server.get("/v2/_catalog?n=2");
    assert_eq!(first.json()["repositories"].as_array().unwrap().len(), 2);
    assert!(first.header("Link").is_some());
}

/// A bcrypt htpasswd file for `user:pass`.
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

#[test]
fn htpasswd_logins_are_required_and_accepted_by_every_client() {
    let sb = three_charts();
    let tmp = tempfile::tempdir().unwrap();
    let file = htpasswd(tmp.path(), "alice", "wonder land");
    let server = Server::start(&sb, &["--htpasswd", file.to_str().unwrap()]);
    let host = server.host();
    let name = "reg.example.com/team/web";

    for path in ["/index.yaml", "/charts/db-0.1.0+build.7.tgz", "/v2/"] {
        let resp = server.get(path);
        assert_eq!(resp.status, 401, "{path}");
        assert_eq!(
            resp.header("WWW-Authenticate"),
            Some("Basic realm=\"chartcache\"")
        );
    }
    assert_eq!(
        server.get("/v2/").json()["errors"][0]["code"],
        "UNAUTHORIZED"
    );
    let wrong = basic_auth("alice", "wrong");
    assert_eq!(
        server
            .get_with("/index.yaml", &[("Authorization", &wrong)])
            .status,
        401
    );
    let right = basic_auth("alice", "wonder land");
    assert_eq!(
        server
            .get_with("/index.yaml", &[("Authorization", &right)])
            .status,
        200
    );
    assert!(
        server.log().contains(" - alice ["),
        "the log names the user"
    );

    // skopeo, Helm (classic and OCI) and chartcache log in.
    Skopeo::new().run_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wonder land",
        &format!("docker://{host}/{name}:1.0.0"),
    ]);
    let helm = Helm::require();
    let shown = helm
        .show_chart_from_repo(&server.url(""), "db", Some(("alice", "wonder land")))
        .unwrap_or_else(|e| panic!("helm through the index with a login: {e}"));
    assert!(shown.contains("name: db"), "{shown}");
    let helm = Helm::require().with_registry_auth(&host, "alice", "wonder land");
    helm.show_chart(&format!("oci://{host}/{name}:1.0.0"))
        .unwrap_or_else(|e| panic!("helm oci:// with a login: {e}"));

    let client = Sandbox::new();
    let pull = format!("{host}/{name}:1.0.0");
    let line = client.fails(&["chart", "pull", &pull]);
    assert!(line.contains("unauthorized"), "{line}");
    let out = client.login_stdin(&host, "alice", "wonder land");
    assert!(out.status.success(), "{}", describe(&out));
    let line = client.login_stdin(&host, "alice", "nope");
    assert!(
        !line.status.success(),
        "a wrong password is refused at login"
    );
    client.ok(&["chart", "pull", &pull]);
    assert!(
        !server.log().contains("wonder land"),
        "no password in the log"
    );
}

#[test]
fn tls_is_served_with_the_given_certificate() {
    let sb = three_charts();
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(pki_dir.path());
    let server = Server::start(
        &sb,
        &[
            "--tls-cert",
            pki.server_cert_path().to_str().unwrap(),
            "--tls-key",
            pki.server_key_path().to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let host = server.host();
    let name = "reg.example.com/team/web";
    Skopeo::new().run_ok(&[
        "inspect",
        "--raw",
        "--cert-dir",
        pki.cert_dir().to_str().unwrap(),
        &format!("docker://{host}/{name}:1.0.0"),
    ]);
    let client = Sandbox::new();
    let pull = format!("{host}/{name}:1.0.0");
    let line = client.fails(&["chart", "pull", &pull]);
    assert!(
        line.contains("TLS"),
        "without the CA the certificate is refused: {line}"
    );
    client.ok(&[
        "chart",
        "pull",
        &pull,
        "--ca-file",
        pki.ca_pem_path().to_str().unwrap(),
    ]);
}

#[test]
fn bad_options_fail_before_listening() {
    let sb = Sandbox::new();
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = sb
            .cmd()
            .arg("serve")
            .args(args)
            .timeout(Duration::from_secs(20))
            .output()
            .expect("run serve");
        error_line_of(&out, &args.join(" "))
    };
    let apr1 = tmp.path().join("apr1");
    fs::write(&apr1, "bob:$apr1$xyz$0123456789abcdefghijkl\n").unwrap();
    let line = run(&["--htpasswd", apr1.to_str().unwrap()]);
    assert!(
        line.contains(&format!("{}:1", apr1.display())) && line.contains("bcrypt"),
        "{line}"
    );
    let missing = tmp.path().join("missing.pem");
    let line = run(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        missing.to_str().unwrap(),
    ]);
    assert!(line.contains("missing.pem"), "{line}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = run(&["--listen", &addr]);
    assert!(line.contains(&addr), "{line}");
    let line = run(&["--upstream", "not a registry"]);
    assert!(line.contains("not a registry"), "{line}");
    let line = run(&["--base-url", "ftp://x"]);
    assert!(line.contains("ftp://x"), "{line}");
}

#[test]
fn sigterm_lets_a_download_in_flight_finish() {
    let sb = Sandbox::new();
    // A chart with 8 MB of incompressible data (in files under Helm's 5 MiB cap), well past
    // what is read whole into memory.
    let dir = sb.chart("big", "1.0.0");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..4 {
        let mut data = vec![0u8; 2 * 1024 * 1024];
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        fs::write(dir.join(format!("blob{i}.bin")), &data).unwrap();
    }
    sb.ok(&[
        "chart",
        "save",
        dir.to_str().unwrap(),
        "reg.example.com/big/big",
    ]);
    let stored = content(&sb, "reg.example.com/big/big:1.0.0");
    let mut server = Server::start(&sb, &["--memory-cache", "0"]);

    let mut stream = TcpStream::connect(server.host()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /charts/big-1.0.0.tgz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    stream.read_exact(&mut first).unwrap();
    // Most of the 8 MB is still to come (socket buffers hold a few MB at most) when the
    // server is told to stop and stops listening.
    server.terminate();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("shutting down") {
        assert!(Instant::now() < deadline, "no shutdown: {}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        TcpStream::connect(server.host()).is_err(),
        "still listening"
    );
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    let status = server.wait();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let text = String::from_utf8_lossy(&first[..200]).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body_at = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        first.len() - body_at,
        stored.len(),
        "the whole archive arrived"
    );
    assert_eq!(sha256_hex(&first[body_at..]), sha256_hex(&stored));
}

// ---------------------------------------------------------------------------------------------
// Pull-through mode
// ---------------------------------------------------------------------------------------------

/// Pushes `name` `version` charts to `reg` under `charts/`, from a throw-away sandbox.
fn publish(reg: &Registry, charts: &[(&str, &str)]) -> BTreeMap<String, String> {
    let sb = Sandbox::new();
    let mut digests = BTreeMap::new();
    for (name, version) in charts {
        let reference = format!("{}/charts/{name}:{version}", reg.host());
        sb.save(name, version, &reference);
        sb.ok(&["chart", "push", &reference]);
        digests.insert(format!("{name}:{version}"), sb.manifest_digest(&reference));
    }
    digests
}

#[test]
fn pull_through_fetches_once_verifies_and_serves_from_disk_after() {
    let reg = Registry::plain();
    let digests = publish(
        &reg,
        &[("web", "1.0.0"), ("web", "1.1.0"), ("api", "0.3.0")],
    );
    let sb = Sandbox::new();
    let upstream = format!("{}/charts", reg.host());
    let server = Server::start(&sb, &["--upstream", &upstream]);
    let host = server.host();

    // Nothing is cached until asked for.
    assert!(!sb.ok(&["chart", "list"]).contains("charts/web"));
    let manifest = server.get_with("/v2/web/manifests/1.0.0", &[("Accept", OCI_MANIFEST)]);
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digests["web:1.0.0"].as_str())
    );
    let cached = format!("{}/charts/web:1.0.0", reg.host());
    assert_eq!(sb.manifest_digest(&cached), digests["web:1.0.0"]);
    sb.ok(&["chart", "verify"]);

    // Clients pull through it: skopeo and Helm.
    Skopeo::new().run_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/web:1.1.0"),
    ]);
    let helm = Helm::require();
    helm.show_chart(&format!("oci://{host}/api:0.3.0"))
        .unwrap_or_else(|e| panic!("helm through the pull-through cache: {e}"));
    assert_eq!(
        sb.manifest_digest(&format!("{}/charts/api:0.3.0", reg.host())),
        digests["api:0.3.0"]
    );

    // The index lists what the upstream holds (from its catalog), and a chart download pulls
    // it through too.
    let root = yaml(&server.get("/index.yaml"));
    let web: Vec<&str> = root["entries"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    assert_eq!(web, ["1.1.0", "1.0.0"]);
    assert!(root["entries"]["api"].is_array());
    let tags = server.get("/v2/web/tags/list");
    assert_eq!(tags.json()["tags"], serde_json::json!(["1.0.0", "1.1.0"]));

    // With the upstream gone, what was cached is still served.
    drop(reg);
    let again = server.get("/v2/web/manifests/1.0.0");
    assert_eq!(again.status, 200);
    let layer_digest = again.json()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server.get(&format!("/v2/web/blobs/{layer_digest}")).status,
        200
    );
    let missing = server.get("/v2/web/manifests/9.9.9");
    assert_eq!(missing.status, 502, "{}", missing.text());
    let pulled = server
        .log()
        .lines()
        .filter(|l| l.contains("pulled ") && l.contains("web:1.0.0"))
        .count();
    assert_eq!(
        pulled,
        1,
        "fetched from the upstream once: {}",
        server.log()
    );
}

#[test]
fn pull_through_with_revalidate_follows_a_moved_tag() {
    let reg = Registry::plain();
    publish(&reg, &[("web", "1.0.0")]);
    let sb = Sandbox::new();
    let upstream = format!("{}/charts", reg.host());
    let plain = Server::start(&sb, &["--upstream", &upstream]);
    let first = plain.get("/v2/web/manifests/1.0.0");
    assert_eq!(first.status, 200);
    drop(plain);

    // The tag moves upstream (new content under the same version).
    let publisher = Sandbox::new();
    let reference = format!("{}/charts/web:1.0.0", reg.host());
    let dir = publisher.chart("web", "1.0.0");
    fs::write(dir.join("values.yaml"), "moved: true\n").unwrap();
    publisher.ok(&["chart", "save", dir.to_str().unwrap(), &reference]);
    publisher.ok(&["chart", "push", &reference]);
    let moved = publisher.manifest_digest(&reference);

    let trusting = Server::start(&sb, &["--upstream", &upstream]);
    let stale = trusting.get("/v2/web/manifests/1.0.0");
    assert_eq!(
        stale.header("Docker-Content-Digest"),
        first.header("Docker-Content-Digest")
    );
    drop(trusting);
    let checking = Server::start(&sb, &["--upstream", &upstream, "--revalidate"]);
    let fresh = checking.get("/v2/web/manifests/1.0.0");
    assert_eq!(fresh.header("Docker-Content-Digest"), Some(moved.as_str()));
}

#[test]
fn pull_through_uses_the_stored_login_of_the_upstream() {
    let reg = Registry::htpasswd("bob", "b0bpass");
    let sb = Sandbox::new();
    let out = sb.login_stdin(&reg.host(), "bob", "b0bpass");
    assert!(out.status.success(), "{}", describe(&out));
    let reference = format!("{}/charts/web:1.0.0", reg.host());
    sb.save("web", "1.0.0", &reference);
    sb.ok(&["chart", "push", &reference]);
    let digest = sb.manifest_digest(&reference);
    sb.ok(&["chart", "remove", &reference]);
    sb.ok(&["chart", "prune"]);

    let server = Server::start(&sb, &["--upstream", &format!("{}/charts", reg.host())]);
    let manifest = server.get("/v2/web/manifests/1.0.0");
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digest.as_str())
    );
    let root = yaml(&server.get("/index.yaml"));
    assert_eq!(root["entries"]["web"][0]["version"], "1.0.0");
    let download = server.get("/charts/web-1.0.0.tgz");
    assert_eq!(download.status, 200);
    assert_eq!(
        sha256_hex(&download.body),
        root["entries"]["web"][0]["digest"]
    );
}
