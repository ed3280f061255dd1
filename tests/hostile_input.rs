//! Hostile charts, registries and indexes: one test per class of attack, each asserting the
//! exact safe outcome — the one-line error and exit code 1, nothing written outside the cache
//! or the target directory, the cache unchanged and `chart verify` clean, and memory and time
//! bounded.
//!
//! The archives are built byte by byte here (tar headers written by hand, so paths that no
//! honest tool writes can be made), served by the small in-process registry of `fault` and the
//! static file server of `classic`, since no real registry or repository would refuse them.

mod classic;
mod fault;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fault::{Artifact, FakeRegistry, Sandbox, error_line_of, sha256_hex};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use support::describe;

// ---- archives, byte by byte --------------------------------------------------------------

/// What one tar member is.
enum Kind<'a> {
    File(&'a [u8]),
    Symlink(&'a str),
}

/// A 512-byte tar header with `name` (and `link`) written as raw bytes, unchecked.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::new(typeflag));
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_cksum();
    *h.as_bytes()
}

/// The tar stream of `members`, without the end-of-archive blocks unless `end`.
fn tar_stream(members: &[(&str, Kind)], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind) in members {
        match kind {
            Kind::File(data) => {
                out.extend(header(name.as_bytes(), b'0', data.len() as u64, b""));
                out.extend(*data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
            Kind::Symlink(target) => {
                out.extend(header(name.as_bytes(), b'2', 0, target.as_bytes()))
            }
        }
    }
    if end {
        out.extend([0u8; 1024]);
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\n")
}

/// A chart archive of `mychart` 0.1.0 followed by `extra` members.
fn chart_with(extra: &[(&str, Kind)]) -> Vec<u8> {
    let yaml = chart_yaml("mychart", "0.1.0");
    let mut members = vec![("mychart/Chart.yaml", Kind::File(yaml.as_bytes()))];
    for (name, kind) in extra {
        let kind = match kind {
            Kind::File(d) => Kind::File(d),
            Kind::Symlink(t) => Kind::Symlink(t),
        };
        members.push((name, kind));
    }
    gzip(&tar_stream(&members, true))
}

/// A directory under /tmp that no test creates on purpose: an escape would create it.
fn outside_target(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chartcache-escape-{tag}-{}-{}",
        std::process::id(),
        sha256_hex(format!("{:?}", Instant::now()).as_bytes())
            .get(..8)
            .unwrap_or("x")
    ));
    assert!(!dir.exists());
    dir
}

fn write_tgz(sb: &Sandbox, file: &str, bytes: &[u8]) -> PathBuf {
    let path = sb.path().join("src").join(file);
    std::fs::write(&path, bytes).expect("write tgz");
    path
}

/// `chart save` of `tgz` must fail with exit 1 and an error that mentions `want`, leaving the
/// cache as it was; returns the error line.
fn save_refused(sb: &Sandbox, tgz: &Path, want: &str) -> String {
    let before = sb.snapshot();
    let out = sb.run(&[
        "chart",
        "save",
        tgz.to_str().expect("utf-8"),
        "localhost:5000/x/mychart:0.1.0",
    ]);
    let line = error_line_of(&out, "chart save");
    assert!(line.contains(want), "expected {want:?} in: {line}");
    let changes = sb.snapshot().changes_since(&before);
    assert!(
        changes.is_empty(),
        "a refused save changed the cache: {changes:?}"
    );
    line
}

/// A sandbox whose cache already holds a chart, so "nothing stored" is checked against a
/// cache with blobs, refs and an index.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.save("other", "1.0.0", "localhost:5000/myrepo/other:1.0.0");
    sb
}

/// Asserts the cache verifies clean (or does not exist yet).
fn verify_clean(sb: &Sandbox) {
    if sb.root().exists() {
        sb.ok(&["chart", "verify"]);
    }
}

/// An artifact with the given raw config and chart archive.
fn artifact(repo: &str, tag: &str, config: Vec<u8>, tgz: &[u8]) -> Artifact {
    let mut art = Artifact::chart(repo, tag, "mychart", "0.1.0", tgz);
    art.blobs.remove(&art.config_digest);
    art.config_digest = format!("sha256:{}", sha256_hex(&config));
    art.manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": art.config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": art.chart_digest, "size": tgz.len()}],
    })
    .to_string()
    .into_bytes();
    art.manifest_digest = format!("sha256:{}", sha256_hex(&art.manifest));
    art.blobs.insert(art.config_digest.clone(), config);
    art
}

fn serve(art: Artifact) -> FakeRegistry {
    FakeRegistry::start(move |req| art.serve(req))
}

/// A pull of `reference` and a sync of its repository into `cache:` must both fail (exit 1)
/// and store nothing; returns the pull's error line.
fn pull_and_sync_refused(sb: &Sandbox, reg: &FakeRegistry, repo: &str, tag: &str) -> String {
    let before = sb.snapshot();
    let reference = format!("{}/{repo}:{tag}", reg.host());
    let out = sb.run(&["chart", "pull", &reference]);
    let line = error_line_of(&out, "chart pull");
    let out = sb.run(&["sync", &reference, "cache:"]);
    assert_eq!(out.status.code(), Some(1), "sync: {}", describe(&out));
    let changes = sb.snapshot().changes_since(&before);
    assert!(
        changes.is_empty(),
        "a refused pull or sync changed the cache: {changes:?}"
    );
    verify_clean(sb);
    line
}

// ---- archive paths ---------------------------------------------------------------------

#[test]
fn archive_entry_with_a_doubled_slash_is_refused_by_save_and_pull() {
    let sb = sandbox();
    let outside = outside_target("dslash");
    let name = format!("mychart/{}/x", outside.display());
    assert!(name.contains("//"));
    let tgz = chart_with(&[(&name, Kind::File(b"pwned"))]);
    let path = write_tgz(&sb, "dslash.tgz", &tgz);
    save_refused(&sb, &path, "empty component");

    let reg = serve(artifact(
        "x/mychart",
        "0.1.0",
        br#"{"name":"mychart","version":"0.1.0","apiVersion":"v2"}"#.to_vec(),
        &tgz,
    ));
    let line = pull_and_sync_refused(&sb, &reg, "x/mychart", "0.1.0");
    assert!(line.contains("empty component"), "{line}");
    assert!(!outside.exists(), "{} was created", outside.display());
}

#[test]
fn symlinks_planted_through_odd_paths_are_refused() {
    let sb = sandbox();
    let outside = outside_target("link");
    let cases: Vec<(String, String, &str)> = vec![
        // A link whose own path escapes.
        (
            format!("mychart/{}", outside.display()),
            "templates".to_string(),
            "empty component",
        ),
        // A link pointing outside the chart.
        (
            "mychart/templates".to_string(),
            outside.display().to_string(),
            "outside the chart",
        ),
        // A link through `.` components.
        (
            "mychart/./t".to_string(),
            "../../..".to_string(),
            "'.' component",
        ),
    ];
    for (i, (path, target, want)) in cases.iter().enumerate() {
        let tgz = chart_with(&[(path, Kind::Symlink(target))]);
        let file = write_tgz(&sb, &format!("link{i}.tgz"), &tgz);
        save_refused(&sb, &file, want);
    }
    assert!(!outside.exists());
    verify_clean(&sb);
}

#[test]
fn control_characters_and_backslashes_in_entry_names_are_refused() {
    let sb = sandbox();
    for (i, (name, want)) in [
        ("mychart/templates/\u{1b}[2Jx.yaml", "control character"),
        ("mychart/templates/a\rb.yaml", "control character"),
        ("mychart\\..\\..\\x", "backslash"),
    ]
    .iter()
    .enumerate()
    {
        let tgz = chart_with(&[(name, Kind::File(b"x"))]);
        let file = write_tgz(&sb, &format!("ctl{i}.tgz"), &tgz);
        let line = save_refused(&sb, &file, want);
        assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{line:?}");
    }
}

// ---- names and versions from registries ---------------------------------------------

#[test]
fn config_names_that_would_leave_the_cache_are_refused() {
    let sb = sandbox();
    let outside = outside_target("cfg");
    let tgz = chart_with(&[]);
    for name in [
        format!("../../../../../../../..{}", outside.display()),
        outside.display().to_string(),
        "..".to_string(),
    ] {
        let config = json!({"name": name, "version": "0.1.0", "apiVersion": "v2"})
            .to_string()
            .into_bytes();
        let reg = serve(artifact("x/mychart", "0.1.0", config, &tgz));
        let line = pull_and_sync_refused(&sb, &reg, "x/mychart", "0.1.0");
        assert!(line.contains("name"), "{line}");
    }
    let config = json!({"name": "mychart", "version": "../../../../x", "apiVersion": "v2"})
        .to_string()
        .into_bytes();
    let reg = serve(artifact("x/mychart", "0.1.0", config, &tgz));
    let line = pull_and_sync_refused(&sb, &reg, "x/mychart", "0.1.0");
    assert!(line.contains("version"), "{line}");
    assert!(!outside.exists(), "{} was created", outside.display());
    assert!(!sb.root().join("charts").join("..").join("x").exists());
}

#[test]
fn terminal_escapes_from_a_registry_never_reach_the_terminal() {
    let sb = sandbox();
    let tgz = chart_with(&[]);
    let config =
        json!({"name": "my\u{1b}]0;pwned\u{7}chart", "version": "0.1.0", "apiVersion": "v2"})
            .to_string()
            .into_bytes();
    let reg = serve(artifact("x/mychart", "0.1.0", config, &tgz));
    let reference = format!("{}/x/mychart:0.1.0", reg.host());
    let out = sb.run(&["chart", "pull", &reference]);
    let line = error_line_of(&out, "chart pull");
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.iter().any(|&b| b == 0x1b || b == 0x07),
            "control bytes reached the terminal: {line:?}"
        );
    }
    assert!(
        line.contains("\\u{1b}"),
        "the escape is shown escaped: {line}"
    );
}

#[test]
fn a_config_that_disagrees_with_the_archive_is_refused() {
    let sb = sandbox();
    let tgz = chart_with(&[]);
    for (name, version) in [("other", "0.1.0"), ("mychart", "9.9.9")] {
        let config = json!({"name": name, "version": version, "apiVersion": "v2"})
            .to_string()
            .into_bytes();
        let reg = serve(artifact("x/mychart", "0.1.0", config, &tgz));
        let line = pull_and_sync_refused(&sb, &reg, "x/mychart", "0.1.0");
        assert!(
            line.contains("the config names chart") && line.contains("Chart.yaml says"),
            "{line}"
        );
    }
    // `chart list` can therefore never show what the archive is not.
    let out = sb.ok(&["chart", "list", "-o", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(rows.len(), 1, "only the chart saved before: {out}");
}

#[test]
fn manifest_sizes_over_the_limits_are_refused_before_downloading() {
    let sb = sandbox();
    let tgz = chart_with(&[]);
    let config = br#"{"name":"mychart","version":"0.1.0","apiVersion":"v2"}"#.to_vec();
    let mut art = artifact("x/mychart", "0.1.0", config.clone(), &tgz);
    // The manifest claims a 4 GiB config: nothing is fetched.
    let mut manifest: serde_json::Value = serde_json::from_slice(&art.manifest).expect("json");
    manifest["config"]["size"] = json!(4u64 << 30);
    art.manifest = manifest.to_string().into_bytes();
    art.manifest_digest = format!("sha256:{}", sha256_hex(&art.manifest));
    let config_path = art.blob_path(&art.config_digest);
    let reg = serve(art);
    let line = pull_and_sync_refused(&sb, &reg, "x/mychart", "0.1.0");
    assert!(line.contains("over the limit"), "{line}");
    assert_eq!(reg.count("GET", &config_path), 0, "{:?}", reg.requests());
}

// ---- index.yaml ---------------------------------------------------------------------

#[test]
fn index_entries_whose_names_leave_the_directory_are_skipped() {
    let sb = sandbox();
    let repo = tempfile::tempdir().expect("tempdir");
    let outside = outside_target("idx");
    let tgz = chart_with(&[]);
    std::fs::write(repo.path().join("c.tgz"), &tgz).expect("write");
    let digest = sha256_hex(&tgz);
    let evil = [
        "../escaped".to_string(),
        format!("{}", outside.display()),
        "a\u{1b}[2Jb".to_string(),
    ];
    let mut index = String::from("apiVersion: v1\nentries:\n");
    for (i, name) in evil.iter().enumerate() {
        index.push_str(&format!(
            "  key{i}:\n    - name: {}\n      version: 0.1.0\n      urls: [c.tgz]\n      digest: {digest}\n",
            serde_json::to_string(name).expect("json")
        ));
    }
    std::fs::write(repo.path().join("index.yaml"), index).expect("write");
    let server = classic::FileServer::start(repo.path());
    let dest = sb.path().join("dest");
    std::fs::create_dir_all(&dest).expect("mkdir");
    for i in 0..evil.len() {
        let out = sb.run(&[
            "repo",
            "fetch",
            &server.url(),
            &format!("key{i}"),
            "-d",
            dest.to_str().expect("utf-8"),
        ]);
        let line = error_line_of(&out, "repo fetch");
        assert!(line.contains("not in the repository"), "{line}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("skipping"), "a warning says why: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    }
    assert_eq!(std::fs::read_dir(&dest).expect("dest").count(), 0);
    assert!(!sb.path().join("escaped-0.1.0.tgz").exists());
    assert!(!outside.exists());
    assert_eq!(server.tgz_requests().len(), 0);
}

// ---- size and time -----------------------------------------------------------------

/// Runs `chartcache ARGS…` with its address space limited to `mib` MiB, so an unbounded
/// allocation aborts the process instead of passing unnoticed.
fn run_limited(sb: &Sandbox, mib: u64, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = sb
        .std_command("sh")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mib * 1024))
        .arg(Sandbox::bin())
        .arg("--home")
        .arg(sb.cache_home())
        .args(args)
        .output()
        .expect("run chartcache");
    (out, started.elapsed())
}

/// A gzip stream of a tar whose second member is an extension entry (`typeflag`) claiming
/// `size` bytes, which follow: the body is many small gzip members of 64 MiB each (Helm reads
/// every member, so they count), which keeps the file small and its making fast.
fn huge_extension_archive(typeflag: u8, size: u64) -> Vec<u8> {
    const BLOCK: u64 = 64 << 20;
    assert_eq!(size % BLOCK, 0);
    let yaml = chart_yaml("mychart", "0.1.0");
    let mut out = gzip(&tar_stream(
        &[("mychart/Chart.yaml", Kind::File(yaml.as_bytes()))],
        false,
    ));
    out.extend(gzip(&header(b"././@LongLink", typeflag, size, b"")));
    let block = gzip(&vec![b'a'; BLOCK as usize]);
    for _ in 0..size / BLOCK {
        out.extend(&block);
    }
    out.extend(gzip(&tar_stream(
        &[("mychart/values.yaml", Kind::File(b"a: 1\n"))],
        true,
    )));
    out
}

#[test]
fn huge_long_name_and_pax_headers_are_refused_in_bounded_memory() {
    let sb = sandbox();
    for (typeflag, what) in [(b'L', "long name"), (b'x', "PAX")] {
        let tgz = huge_extension_archive(typeflag, 1 << 30);
        let file = write_tgz(&sb, &format!("huge-{}.tgz", typeflag as char), &tgz);
        let (out, took) = run_limited(
            &sb,
            384,
            &[
                "chart",
                "save",
                file.to_str().expect("utf-8"),
                "localhost:5000/x/mychart",
            ],
        );
        let line = error_line_of(&out, &format!("chart save ({what})"));
        assert!(
            line.contains("extension header") && line.contains("1 MiB"),
            "{line}"
        );
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
    }
    verify_clean(&sb);
}

#[test]
fn decompression_bombs_stop_at_helms_limits() {
    let sb = sandbox();
    // One file over 5 MiB.
    let big = vec![0u8; 6 << 20];
    let tgz = chart_with(&[("mychart/big.bin", Kind::File(&big))]);
    let file = write_tgz(&sb, "bigfile.tgz", &tgz);
    save_refused(&sb, &file, "5 MiB");
    // Many files, 104 MiB in all: the stream stops at 100 MiB, headers included.
    let chunk = vec![0u8; 4 << 20];
    let names: Vec<String> = (0..26).map(|i| format!("mychart/f{i}.bin")).collect();
    let members: Vec<(&str, Kind)> = names
        .iter()
        .map(|n| (n.as_str(), Kind::File(&chunk)))
        .collect();
    let tgz = chart_with(&members);
    let file = write_tgz(&sb, "bomb.tgz", &tgz);
    let (out, took) = run_limited(
        &sb,
        384,
        &[
            "chart",
            "save",
            file.to_str().expect("utf-8"),
            "localhost:5000/x/mychart",
        ],
    );
    let line = error_line_of(&out, "chart save (bomb)");
    assert!(line.contains("100 MiB"), "{line}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    verify_clean(&sb);
}

#[test]
fn every_gzip_member_is_read_as_helm_reads_it() {
    let sb = sandbox();
    let yaml = chart_yaml("mychart", "0.1.0");
    let first = gzip(&tar_stream(
        &[("mychart/Chart.yaml", Kind::File(yaml.as_bytes()))],
        false,
    ));
    // A second member with a path the first member's reader would never have seen.
    let outside = outside_target("member");
    let bad = format!("mychart/{}/x", outside.display());
    let mut tgz = first.clone();
    tgz.extend(gzip(&tar_stream(&[(&bad, Kind::File(b"pwned"))], true)));
    let file = write_tgz(&sb, "members-bad.tgz", &tgz);
    save_refused(&sb, &file, "empty component");

    // A second member that replaces Chart.yaml: chartcache reads the chart Helm would load.
    let other = chart_yaml("mychart", "0.2.0");
    let mut tgz = first;
    tgz.extend(gzip(&tar_stream(
        &[("mychart/Chart.yaml", Kind::File(other.as_bytes()))],
        true,
    )));
    let file = write_tgz(&sb, "members.tgz", &tgz);
    let out = sb.ok(&["chart", "save", file.to_str().expect("utf-8")]);
    assert!(out.contains("Version: 0.2.0"), "{out}");
    assert!(!outside.exists());
    verify_clean(&sb);
}

#[test]
fn deeply_nested_chart_yaml_is_refused_quickly() {
    let sb = sandbox();
    for opener in ["[", "{a: "] {
        let yaml = format!(
            "apiVersion: v2\nname: mychart\nversion: 0.1.0\ndescription: {}\n",
            opener.repeat(100_000)
        );
        let tgz = gzip(&tar_stream(
            &[("mychart/Chart.yaml", Kind::File(yaml.as_bytes()))],
            true,
        ));
        assert!(tgz.len() < 10_000, "a small archive: {} bytes", tgz.len());
        let file = write_tgz(&sb, "nested.tgz", &tgz);
        let started = Instant::now();
        let line = save_refused(&sb, &file, "Chart.yaml");
        assert!(
            line.contains("recursion limit") || line.contains("nested deeper than 64"),
            "{line}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn a_tampered_cache_cannot_export_outside_the_target() {
    let sb = sandbox();
    let reference = "localhost:5000/myrepo/other:1.0.0";
    let link = sb.ref_dir(reference).join("chart");
    let target = std::fs::read_link(&link).expect("chart link");
    let tampered = format!(
        "{}/../versions/1.0.0",
        target
            .to_str()
            .expect("utf-8")
            .trim_end_matches("/versions/1.0.0")
    );
    std::fs::remove_file(&link).expect("rm link");
    std::os::unix::fs::symlink(&tampered, &link).expect("symlink");
    let dest = sb.path().join("out").join("inner");
    std::fs::create_dir_all(&dest).expect("mkdir");
    std::fs::write(dest.join("keep"), b"x").expect("write");
    let out = sb.run(&[
        "chart",
        "export",
        reference,
        "-d",
        dest.to_str().expect("utf-8"),
        "--force",
    ]);
    let line = error_line_of(&out, "chart export");
    assert!(
        line.contains("other:1.0.0") || line.contains("chart link"),
        "{line}"
    );
    assert!(
        dest.join("keep").exists(),
        "the parent of the target was replaced"
    );
    let out = sb.run(&["chart", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify reports the tampered ref"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chart link"));
}

/// One plain HTTP/1.1 GET on 127.0.0.1; returns the status code.
fn http_status(host: &str, path: &str) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("status");
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Starts `chartcache serve --upstream UPSTREAM` and GETs `path` once; returns the status.
fn pull_through_status(sb: &Sandbox, upstream: &str, path: &str) -> u16 {
    use std::io::{BufRead, BufReader};
    let mut child = sb
        .std_command(Sandbox::bin())
        .arg("--home")
        .arg(sb.cache_home())
        .args([
            "serve",
            "-q",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("listening line");
    let host = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .and_then(|w| w.split(['/', ' ', ',', ')']).next())
        .expect("listening address")
        .to_string();
    let status = http_status(&host, path);
    let _ = child.kill();
    let _ = child.wait();
    status
}

#[test]
fn serve_pull_through_refuses_hostile_configs() {
    let sb = sandbox();
    let outside = outside_target("upstream");
    let tgz = chart_with(&[]);
    let path = "/v2/mychart/manifests/0.1.0";
    // The same request for an honest chart is served: the route is right.
    let honest = serve(artifact(
        "x/mychart",
        "0.1.0",
        br#"{"name":"mychart","version":"0.1.0","apiVersion":"v2"}"#.to_vec(),
        &tgz,
    ));
    let status = pull_through_status(&sb, &format!("{}/x", honest.host()), path);
    assert_eq!(status, 200);
    sb.ok(&[
        "chart",
        "remove",
        &format!("{}/x/mychart:0.1.0", honest.host()),
    ]);
    sb.ok(&["chart", "prune"]);

    let config =
        json!({"name": format!("../../../../../../..{}", outside.display()), "version": "0.1.0"})
            .to_string()
            .into_bytes();
    let reg = serve(artifact("x/mychart", "0.1.0", config, &tgz));
    let before = sb.snapshot();
    let status = pull_through_status(&sb, &format!("{}/x", reg.host()), path);
    // Refused as "not a Helm chart" (MANIFEST_UNKNOWN), as any non-chart upstream object is.
    assert_eq!(status, 404, "served a hostile chart: {status}");
    let changes = sb.snapshot().changes_since(&before);
    assert!(changes.is_empty(), "the pull-through stored: {changes:?}");
    assert!(!outside.exists());
    verify_clean(&sb);
}
