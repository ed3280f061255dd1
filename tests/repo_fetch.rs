//! `chartcache repo fetch` against a real HTTP file server on 127.0.0.1 serving an index.yaml
//! and chart archives built here: Helm's version resolution, relative and absolute chart URLs,
//! Basic auth and where the credentials go, JSON indexes, `--save` into the cache, and every
//! kind of bad input (one `Error:` line, exit 1, nothing written to DIR or the cache).

mod classic;
mod fault;
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use classic::{FileServer, RepoFixture, Rule, basic, dir_listing};
use fault::{Sandbox, error_line_of};
use support::describe;

/// The fixture most tests use: chart `web` with stable versions, pre-releases, a build
/// version and an entry Helm skips; chart `db` with one version.
fn web_repo() -> RepoFixture {
    let mut repo = RepoFixture::new();
    for v in [
        "0.9.0",
        "1.0.0",
        "1.1.0",
        "1.1.3",
        "1.1.5-rc.1",
        "1.2.0-rc.1",
        "1.0.0+build.1",
    ] {
        repo.add("web", v);
    }
    repo.add("db", "3.4.5");
    repo.add_invalid("web", "latest");
    repo.write_index();
    repo
}

/// A fresh, empty output directory inside the sandbox.
fn out_dir(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.path().join(name);
    fs::create_dir_all(&dir).expect("mkdir out");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `repo fetch ARGS… -d DIR`, asserts success, and checks that DIR holds exactly the
/// archive of `name` `version`, byte for byte, and that stdout names it and its digest.
fn fetch_ok(sb: &Sandbox, repo: &RepoFixture, args: &[&str], name: &str, version: &str) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = out_dir(sb, &format!("out-{}", N.fetch_add(1, Ordering::SeqCst)));
    let mut full = vec!["repo", "fetch"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-d", s(&dir)]);
    let out = sb.run(&full);
    assert!(
        out.status.success(),
        "{}: {}",
        full.join(" "),
        describe(&out)
    );
    let chart = repo.chart(name, version);
    assert_eq!(
        dir_listing(&dir),
        [chart.file_name()],
        "{}: wrong files in DIR",
        full.join(" ")
    );
    assert!(
        fs::read(dir.join(chart.file_name())).unwrap() == chart.bytes,
        "the fetched archive differs from the served one"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Fetched {name} {version} to "))
            && stdout.contains(&format!("Digest: {}", chart.oci_digest())),
        "{}: {}",
        full.join(" "),
        describe(&out)
    );
}

#[test]
fn default_is_the_newest_stable_version_and_skipped_entries_warn() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let url = server.url();
    fetch_ok(&sb, &repo, &[&url, "web"], "web", "1.1.3");
    // The entry whose version is not SemVer is skipped with a warning, as Helm does.
    let dir = out_dir(&sb, "again");
    let out = sb.run(&["repo", "fetch", &url, "web", "-d", s(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("WARNING:"))
        .collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains("web") && warnings[0].contains("latest"),
        "expected one WARNING naming web latest: {}",
        describe(&out)
    );
    // Only the index and one archive were asked for.
    assert_eq!(server.tgz_requests(), ["/web-1.1.3.tgz", "/web-1.1.3.tgz"]);
}

#[test]
fn devel_allows_prereleases() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    fetch_ok(
        &sb,
        &repo,
        &[&server.url(), "web", "--devel"],
        "web",
        "1.2.0-rc.1",
    );
}

#[test]
fn exact_versions_and_build_metadata() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let url = server.url();
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", "1.0.0"],
        "web",
        "1.0.0",
    );
    // An exact string wins even for a pre-release no constraint would pick.
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", "1.1.5-rc.1"],
        "web",
        "1.1.5-rc.1",
    );
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", "1.0.0+build.1"],
        "web",
        "1.0.0+build.1",
    );
    fetch_ok(
        &sb,
        &repo,
        &[&url, "db", "--version", "3.4.5"],
        "db",
        "3.4.5",
    );
}

#[test]
fn constraints_use_helm_syntax() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let url = server.url();
    // ~1.1 is >=1.1.0 <1.2.0: 1.1.3, not the 1.1.5-rc.1 pre-release nor 1.2.0-rc.1.
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", "~1.1"],
        "web",
        "1.1.3",
    );
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", "<1.0.0"],
        "web",
        "0.9.0",
    );
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", ">=1.0.0, <1.1.0"],
        "web",
        "1.0.0",
    );
    // A constraint with a pre-release admits pre-releases.
    fetch_ok(
        &sb,
        &repo,
        &[&url, "web", "--version", ">=1.2.0-0"],
        "web",
        "1.2.0-rc.1",
    );
}

#[test]
fn relative_urls_resolve_against_the_repo_url_and_absolute_ones_are_used_as_is() {
    let mut repo = RepoFixture::new();
    // The repository lives under a path; its index says `charts/…` (relative to it).
    repo.add_at("rel", "1.0.0", "stable/charts/rel-1.0.0.tgz");
    repo.chart_mut("rel", "1.0.0").url = "charts/rel-1.0.0.tgz".into();
    // Another chart is listed by an absolute URL outside the repository path.
    repo.add_at("abs", "2.0.0", "elsewhere/abs-2.0.0.tgz");
    let server = FileServer::start(repo.root());
    repo.chart_mut("abs", "2.0.0").url = server.url_of("elsewhere/abs-2.0.0.tgz");
    repo.write_file("stable/index.yaml", repo.index_yaml().as_bytes());

    let sb = Sandbox::new();
    // Without a trailing slash: relative URLs still resolve under /stable/.
    let base = server.url_of("stable");
    fetch_ok(&sb, &repo, &[&base, "rel"], "rel", "1.0.0");
    fetch_ok(&sb, &repo, &[&base, "abs"], "abs", "2.0.0");
    let with_slash = server.url_of("stable/");
    fetch_ok(&sb, &repo, &[&with_slash, "rel"], "rel", "1.0.0");
    assert_eq!(
        server.tgz_requests(),
        [
            "/stable/charts/rel-1.0.0.tgz",
            "/elsewhere/abs-2.0.0.tgz",
            "/stable/charts/rel-1.0.0.tgz"
        ]
    );
    assert_eq!(server.count("/stable/index.yaml"), 3);
}

#[test]
fn json_index() {
    let mut repo = RepoFixture::new();
    repo.add("j", "1.0.0");
    repo.add("j", "1.5.0");
    repo.add("j", "2.0.0-beta.1");
    repo.add_invalid("j", "not.a.version");
    // Served as index.yaml, written as JSON (JSON is YAML).
    repo.write_file("index.yaml", repo.index_json().as_bytes());
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    fetch_ok(&sb, &repo, &[&server.url(), "j"], "j", "1.5.0");
    fetch_ok(
        &sb,
        &repo,
        &[&server.url(), "j", "--devel"],
        "j",
        "2.0.0-beta.1",
    );
    fetch_ok(
        &sb,
        &repo,
        &[&server.url(), "j", "--version", "^1.0"],
        "j",
        "1.5.0",
    );
}

#[test]
fn basic_auth_with_password_stdin() {
    let repo = web_repo();
    let server = FileServer::with_basic_auth(repo.root(), "reader", "s3cret pass");
    let sb = Sandbox::new();
    let url = server.url();

    // Without credentials: unauthorized, naming the URL.
    let dir = out_dir(&sb, "noauth");
    let line = sb.fails(&["repo", "fetch", &url, "web", "-d", s(&dir)]);
    assert!(line.contains(&format!("{url}index.yaml")), "{line}");
    assert!(dir_listing(&dir).is_empty());

    // A wrong password: the same.
    let out = sb.run_stdin(
        &[
            "repo",
            "fetch",
            &url,
            "web",
            "-d",
            s(&dir),
            "--username",
            "reader",
            "--password-stdin",
        ],
        "wrong\n",
    );
    let line = error_line_of(&out, "fetch with a wrong password");
    assert!(line.contains(&url), "{line}");
    assert!(dir_listing(&dir).is_empty());

    // The right one, read from stdin (one trailing newline trimmed).
    server.clear_hits();
    let out = sb.run_stdin(
        &[
            "repo",
            "fetch",
            &url,
            "web",
            "--version",
            "1.0.0",
            "-d",
            s(&dir),
            "--username",
            "reader",
            "--password-stdin",
        ],
        "s3cret pass\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(dir_listing(&dir), ["web-1.0.0.tgz"]);
    let hits = server.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    let want = basic("reader", "s3cret pass");
    assert!(
        hits.iter()
            .all(|h| h.authorization.as_deref() == Some(want.as_str()) && h.status == 200),
        "{hits:?}"
    );
}

/// Server A (Basic auth) holds the index; its entries point at server B (another port, so
/// another origin) by absolute URLs. B records what it was sent.
struct TwoOrigins {
    repo: RepoFixture,
    other: RepoFixture,
    a: FileServer,
    b: FileServer,
}

fn two_origins() -> TwoOrigins {
    let mut other = RepoFixture::new();
    other.add("far", "1.0.0");
    let b = FileServer::start(other.root());
    let mut repo = RepoFixture::new();
    repo.add("near", "1.0.0");
    let mut far = other.chart("far", "1.0.0").clone();
    far.url = b.url_of("far-1.0.0.tgz");
    repo.charts.push(far);
    repo.write_index();
    let a = FileServer::with_basic_auth(repo.root(), "u", "p");
    TwoOrigins { repo, other, a, b }
}

fn fetch_with_creds(sb: &Sandbox, url: &str, chart: &str, dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "repo",
        "fetch",
        url,
        chart,
        "-d",
        s(dir),
        "--username",
        "u",
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    let out = sb.run_stdin(&args, "p\n");
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        describe(&out)
    );
}

#[test]
fn credentials_stay_with_the_repository_origin() {
    let t = two_origins();
    let sb = Sandbox::new();
    let dir = out_dir(&sb, "out");
    fetch_with_creds(&sb, &t.a.url(), "far", &dir, &[]);
    assert_eq!(dir_listing(&dir), ["far-1.0.0.tgz"]);
    assert_eq!(
        fs::read(dir.join("far-1.0.0.tgz")).unwrap(),
        t.other.chart("far", "1.0.0").bytes
    );
    let b_hits = t.b.hits();
    assert_eq!(b_hits.len(), 1, "{b_hits:?}");
    assert_eq!(
        b_hits[0].authorization, None,
        "the repository's credentials went to another origin: {b_hits:?}"
    );
    // The repository's own origin got them.
    assert!(
        t.a.hits()
            .iter()
            .all(|h| h.authorization.as_deref() == Some(basic("u", "p").as_str())),
        "{:?}",
        t.a.hits()
    );
    // The near chart (same origin) is fetched with them too.
    fetch_with_creds(&sb, &t.a.url(), "near", &dir, &[]);
    assert_eq!(
        fs::read(dir.join("near-1.0.0.tgz")).unwrap(),
        t.repo.chart("near", "1.0.0").bytes
    );
}

#[test]
fn pass_credentials_sends_them_to_other_origins() {
    let t = two_origins();
    let sb = Sandbox::new();
    let dir = out_dir(&sb, "out");
    fetch_with_creds(&sb, &t.a.url(), "far", &dir, &["--pass-credentials"]);
    let b_hits = t.b.hits();
    assert_eq!(b_hits.len(), 1, "{b_hits:?}");
    assert_eq!(
        b_hits[0].authorization.as_deref(),
        Some(basic("u", "p").as_str()),
        "--pass-credentials: {b_hits:?}"
    );
}

#[test]
fn a_redirect_to_another_origin_does_not_carry_the_credentials() {
    let t = two_origins();
    // The same-origin URL answers with a redirect to B.
    t.a.set_rule(
        "/near-1.0.0.tgz",
        Rule::Redirect(t.b.url_of("far-1.0.0.tgz")),
    );
    let mut repo = RepoFixture::new();
    let mut near = t.other.chart("far", "1.0.0").clone();
    near.name = "near".into();
    near.url = "near-1.0.0.tgz".into();
    repo.charts.push(near);
    fs::write(t.repo.root().join("index.yaml"), repo.index_yaml()).unwrap();
    let sb = Sandbox::new();
    let dir = out_dir(&sb, "out");
    fetch_with_creds(&sb, &t.a.url(), "near", &dir, &[]);
    let b_hits = t.b.hits();
    assert_eq!(b_hits.len(), 1, "{b_hits:?}");
    assert_eq!(
        b_hits[0].authorization, None,
        "the credentials followed a redirect to another origin: {b_hits:?}"
    );
}

#[test]
fn save_puts_the_archive_in_the_cache_byte_for_byte() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let dir = out_dir(&sb, "out");
    let out = sb.run(&[
        "repo",
        "fetch",
        &server.url(),
        "web",
        "--version",
        "~1.1",
        "-d",
        s(&dir),
        "--save",
        "localhost:5000/mirror/web",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let chart = repo.chart("web", "1.1.3");
    assert_eq!(dir_listing(&dir), [chart.file_name()]);
    let list: serde_json::Value =
        serde_json::from_str(&sb.ok(&["chart", "list", "-o", "json"])).expect("list json");
    let items = list.as_array().expect("array");
    assert_eq!(items.len(), 1, "{list:#}");
    assert_eq!(
        items[0]["ref"], "localhost:5000/mirror/web:1.1.3",
        "{list:#}"
    );
    assert_eq!(items[0]["name"], "web");
    assert_eq!(items[0]["version"], "1.1.3");
    assert_eq!(items[0]["digest"], chart.oci_digest().as_str(), "{list:#}");
    assert_eq!(items[0]["size"], chart.bytes.len() as u64);
    assert_eq!(
        sb.ref_blob("localhost:5000/mirror/web:1.1.3", "content"),
        chart.bytes
    );

    // With an explicit tag, and a build version.
    let out = sb.run(&[
        "repo",
        "fetch",
        &server.url(),
        "web",
        "--version",
        "1.0.0+build.1",
        "-d",
        s(&dir),
        "--save",
        "oci://localhost:5000/other/web",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let chart = repo.chart("web", "1.0.0+build.1");
    assert_eq!(
        sb.ref_blob("localhost:5000/other/web:1.0.0_build.1", "content"),
        chart.bytes
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: one `Error:` line naming the URL or chart, exit 1, nothing written.
// ---------------------------------------------------------------------------------------------

/// Runs a fetch that must fail into an empty DIR (with `--save`), and checks the error line
/// mentions every one of `mentions`, DIR stays empty and the cache unchanged.
fn fetch_fails(sb: &Sandbox, args: &[&str], mentions: &[&str]) -> String {
    let dir = out_dir(sb, "failing");
    let before = sb.snapshot();
    let mut full = vec!["repo", "fetch"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-d", s(&dir), "--save", "localhost:5000/m/x"]);
    let out = sb.run(&full);
    let line = error_line_of(&out, &full.join(" "));
    for m in mentions {
        assert!(
            line.contains(m),
            "the error should name {m:?}: {}",
            describe(&out)
        );
    }
    assert_eq!(
        dir_listing(&dir),
        Vec::<String>::new(),
        "DIR is not empty after a failed fetch"
    );
    assert_eq!(
        sb.snapshot().changes_since(&before),
        Vec::<String>::new(),
        "the cache changed after a failed fetch"
    );
    line
}

#[test]
fn unreachable_repository() {
    let sb = Sandbox::new();
    let url = format!("http://127.0.0.1:{}/charts/", classic::dead_port());
    fetch_fails(&sb, &[&url, "web"], &[&format!("{url}index.yaml")]);
    fetch_fails(
        &sb,
        &["ftp://example.com/charts", "web"],
        &["ftp://example.com/charts"],
    );
}

#[test]
fn index_404_and_500() {
    let repo = RepoFixture::new();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let url = server.url();
    let index = format!("{url}index.yaml");
    fetch_fails(&sb, &[&url, "web"], &[&index, "404"]);
    server.set_rule("/index.yaml", Rule::Status(500));
    fetch_fails(&sb, &[&url, "web"], &[&index, "500"]);
}

#[test]
fn malformed_index_names_the_line() {
    let repo = web_repo();
    let mut text = repo.index_yaml();
    // Break line 5 (inside the first entry) with an unclosed flow sequence: the parser
    // notices on line 6, where a `key: value` appears inside it.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[4] = "      urls: [unclosed".into();
    text = lines.join("\n");
    repo.write_file("index.yaml", text.as_bytes());
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let line = fetch_fails(
        &sb,
        &[&server.url(), "web"],
        &[&format!("{}index.yaml", server.url())],
    );
    assert!(
        line.contains("line 5") || line.contains("line 6"),
        "the error should name line 5 or 6: {line}"
    );

    // Not an index at all.
    repo.write_file("index.yaml", b"<html><body>Not here</body></html>\n");
    fetch_fails(&sb, &[&server.url(), "web"], &[&server.url()]);
}

#[test]
fn missing_archive() {
    let repo = web_repo();
    repo.remove_file("web-1.1.3.tgz");
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    fetch_fails(
        &sb,
        &[&server.url(), "web"],
        &[&server.url_of("web-1.1.3.tgz"), "404"],
    );
}

#[test]
fn digest_mismatch_keeps_nothing() {
    let mut repo = web_repo();
    repo.chart_mut("web", "1.1.3").digest = classic::sha256_hex(b"something else");
    repo.write_index();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let line = fetch_fails(
        &sb,
        &[&server.url(), "web"],
        &[&server.url_of("web-1.1.3.tgz"), "digest"],
    );
    assert!(
        line.contains(&repo.chart("web", "1.1.3").digest),
        "the error should show the expected digest: {line}"
    );
    // The download really happened (the check is on the bytes, not skipped).
    assert_eq!(server.count("/web-1.1.3.tgz"), 1);
}

#[test]
fn a_chart_with_only_invalid_versions_is_not_in_the_repository() {
    let mut repo = web_repo();
    repo.add_invalid("broken", "one.two");
    repo.add_invalid("broken", "");
    repo.write_index();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let dir = out_dir(&sb, "o");
    let out = sb.run(&["repo", "fetch", &server.url(), "broken", "-d", s(&dir)]);
    let line = error_line_of(&out, "fetch broken");
    assert!(line.contains("broken"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("WARNING:") && l.contains("one.two")),
        "{}",
        describe(&out)
    );
    assert!(dir_listing(&dir).is_empty());
    assert!(server.tgz_requests().is_empty());
}

#[test]
fn unknown_chart_and_no_matching_version() {
    let repo = web_repo();
    let server = FileServer::start(repo.root());
    let sb = Sandbox::new();
    let url = server.url();
    fetch_fails(&sb, &[&url, "nope"], &["nope"]);
    fetch_fails(
        &sb,
        &[&url, "web", "--version", ">=5.0.0"],
        &["web", ">=5.0.0"],
    );
    fetch_fails(&sb, &[&url, "web", "--version", "9.9.9"], &["web", "9.9.9"]);
    // Only pre-releases would match, and the constraint does not name one.
    fetch_fails(&sb, &[&url, "web", "--version", "~1.2"], &["web", "~1.2"]);
    assert!(server.tgz_requests().is_empty());
}
