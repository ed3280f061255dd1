//! `chartcache sync` between real registries (CNCF distribution 2.8 on loopback) and the cache,
//! checked against `skopeo sync` itself: the same source synced by both tools gives the same
//! repository names, tags and manifest digests, with and without `--scoped`, from a repository
//! or from skopeo's sync YAML. Also: filters, single tags and digests, reruns that copy
//! nothing, changed tags, `--immutable-tags`, `--dry-run`, cross-repository mounts, the
//! air-gapped round trip through `cache:`, credentials from the login store and from flags,
//! failures with and without `--keep-going`, and bad input that writes nothing.

mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use fault::{
    Sandbox, catalog, count_logged, error_line_of, get_manifest, repo_tags, storage_snapshot,
    wait_logged,
};
use support::{Registry, Skopeo, describe};

/// A sandbox logged in to every registry of `regs` that has credentials.
fn sandbox_for(regs: &[&Registry]) -> Sandbox {
    let sb = Sandbox::new();
    for reg in regs {
        login(&sb, reg);
    }
    sb
}

fn login(sb: &Sandbox, reg: &Registry) {
    if let Some((user, pass)) = reg.credentials() {
        let out = sb.run_stdin(
            &[
                "registry",
                "login",
                &reg.host(),
                "--username",
                user,
                "--password-stdin",
            ],
            &format!("{pass}\n"),
        );
        assert!(out.status.success(), "login: {}", describe(&out));
    }
}

/// Extra transport flags `chart push` needs for `reg` (its CA for a TLS registry).
fn push_flags(reg: &Registry) -> Vec<String> {
    match reg.is_tls() {
        true => vec![
            "--ca-file".into(),
            reg.ca_pem_path().to_string_lossy().into_owned(),
        ],
        false => Vec::new(),
    }
}

/// Pushes chart `name` at `version` to `reg`'s repository `repo` from `sb`, with `salt` in its
/// values (another salt: other bytes, another digest). Returns the manifest digest.
fn push_chart(sb: &Sandbox, reg: &Registry, repo: &str, version: &str, salt: &str) -> String {
    let name = repo.rsplit('/').next().unwrap();
    let dir = sb.chart(name, version);
    fs::write(dir.join("values.yaml"), format!("salt: {salt:?}\n")).unwrap();
    let reference = format!("{}/{repo}:{}", reg.host(), version.replace('+', "_"));
    sb.ok(&["chart", "save", dir.to_str().unwrap(), &reference]);
    let mut args = vec!["chart".to_string(), "push".into(), reference.clone()];
    args.extend(push_flags(reg));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.ok(&args);
    sb.manifest_digest(&reference)
}

/// Publishes `versions` of the chart named after `repo`'s last element; returns tag → digest.
fn publish(reg: &Registry, repo: &str, versions: &[&str]) -> BTreeMap<String, String> {
    let sb = sandbox_for(&[reg]);
    versions
        .iter()
        .map(|v| (v.replace('+', "_"), push_chart(&sb, reg, repo, v, "first")))
        .collect()
}

/// tag → manifest digest of every tag of `repo` on `reg` (plain HTTP registries).
fn digests(reg: &Registry, repo: &str) -> BTreeMap<String, String> {
    repo_tags(reg, repo)
        .into_iter()
        .map(|t| {
            let d = get_manifest(reg, repo, &t)
                .header("Docker-Content-Digest")
                .expect("Docker-Content-Digest")
                .to_string();
            (t, d)
        })
        .collect()
}

fn sync(sb: &Sandbox, args: &[&str]) -> Output {
    let mut full = vec!["sync"];
    full.extend_from_slice(args);
    sb.run(&full)
}

fn sync_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sync(sb, args);
    assert!(
        out.status.success(),
        "sync {}: {}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn summary(verb: &str, done: usize, skipped: usize, failed: usize, from: &str) -> String {
    format!(
        "{verb}: {done}, skipped: {skipped}, failed: {failed} (of {} references from {from})",
        done + skipped + failed
    )
}

/// The item lines of a sync's output, sorted, and its last line.
fn item_lines(out: &str) -> (Vec<String>, String) {
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    let last = lines.pop().unwrap_or_default();
    lines.sort();
    (lines, last)
}

/// `skopeo sync --src docker --dest docker` between plain-HTTP registries.
fn skopeo_sync(extra: &[&str], src: &str, dest: &str) -> Output {
    let mut args = vec![
        "sync",
        "--src",
        "docker",
        "--dest",
        "docker",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[src, dest]);
    Skopeo::new().run(&args)
}

/// Every repository of `reg` under `prefix/`, with `prefix/` cut off, and its digests.
fn mirrored(reg: &Registry, prefix: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    catalog(reg)
        .into_iter()
        .filter_map(|r| {
            let rest = r.strip_prefix(&format!("{prefix}/"))?.to_string();
            Some((rest, digests(reg, &r)))
        })
        .collect()
}

#[test]
fn a_repository_lands_under_the_names_tags_and_digests_skopeo_sync_gives() {
    let src = Registry::plain();
    let dst = Registry::plain();
    let want = publish(
        &src,
        "charts/app",
        &["1.0.0", "1.0.0+build.1", "1.1.0", "2.0.0-rc.1"],
    );
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let out = sync_ok(&sb, &[&source, &format!("{}/cc", dst.host())]);
    let (lines, last) = item_lines(&out);
    let expected: Vec<String> = want
        .keys()
        .map(|t| format!("{source}:{t} -> {}/cc/app:{t}: synced", dst.host()))
        .collect();
    assert_eq!(lines, expected, "{out}");
    assert_eq!(last, summary("Synced", 4, 0, 0, &source));

    let sk = skopeo_sync(&[], &source, &format!("{}/sk", dst.host()));
    assert!(sk.status.success(), "skopeo sync: {}", describe(&sk));
    let ours = mirrored(&dst, "cc");
    let theirs = mirrored(&dst, "sk");
    assert_eq!(ours.keys().collect::<Vec<_>>(), ["app"]);
    assert_eq!(ours, theirs, "chartcache and skopeo made different things");
    assert_eq!(ours["app"], want, "the digests changed on the way");
    // Byte for byte, not just the same digest header.
    for tag in want.keys() {
        assert_eq!(
            get_manifest(&dst, "cc/app", tag).body,
            get_manifest(&src, "charts/app", tag).body
        );
    }
}

#[test]
fn scoped_names_are_skopeos_and_a_port_becomes_an_underscore() {
    // skopeo cannot scope a source that has a port, so this source listens on port 80.
    let src = Registry::builder().without_port().start();
    let dst = Registry::plain();
    let want = publish(&src, "charts/app", &["1.0.0", "1.1.0"]);
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    sync_ok(&sb, &["--scoped", &source, &format!("{}/cc", dst.host())]);
    let sk = skopeo_sync(&["--scoped"], &source, &format!("{}/sk", dst.host()));
    assert!(
        sk.status.success(),
        "skopeo sync --scoped: {}",
        describe(&sk)
    );
    let ours = mirrored(&dst, "cc");
    let scoped = format!("{}/charts/app", src.host());
    assert_eq!(ours.keys().collect::<Vec<_>>(), [&scoped]);
    assert_eq!(ours, mirrored(&dst, "sk"));
    assert_eq!(ours[&scoped], want);

    // With a port, chartcache writes `host_port`; skopeo refuses (`…/127.0.0.1:PORT/…` is
    // not a valid reference).
    let with_port = Registry::plain();
    let want = publish(&with_port, "charts/app", &["1.0.0"]);
    let source = format!("{}/charts/app", with_port.host());
    sync_ok(&sb, &["--scoped", &source, &format!("{}/cc2", dst.host())]);
    let escaped = format!("127.0.0.1_{}/charts/app", with_port.port());
    assert_eq!(mirrored(&dst, "cc2"), BTreeMap::from([(escaped, want)]));
    let sk = skopeo_sync(&["--scoped"], &source, &format!("{}/sk2", dst.host()));
    assert!(
        !sk.status.success(),
        "skopeo learned ports: {}",
        describe(&sk)
    );
}

#[test]
fn one_tag_one_digest_and_the_tag_filters() {
    let src = Registry::plain();
    let dst = Registry::plain();
    let want = publish(
        &src,
        "charts/app",
        &["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "2.0.0"],
    );
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let to = |p: &str| format!("{}/{p}", dst.host());

    let out = sync_ok(&sb, &[&format!("{source}:1.1.0"), &to("one")]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{source}:1.1.0 -> {}/one/app:1.1.0: synced", dst.host()),
            summary("Synced", 1, 0, 0, &format!("{source}:1.1.0")),
        ]
    );
    assert_eq!(
        digests(&dst, "one/app"),
        BTreeMap::from([("1.1.0".to_string(), want["1.1.0"].clone())])
    );

    // By digest: the manifest arrives under its digest, with no tag.
    let digest = &want["1.2.0"];
    sync_ok(&sb, &[&format!("{source}@{digest}"), &to("dig")]);
    assert!(repo_tags(&dst, "dig/app").is_empty());
    assert_eq!(
        get_manifest(&dst, "dig/app", digest).header("Docker-Content-Digest"),
        Some(digest.as_str())
    );

    for (args, tags) in [
        // Helm's rules: no pre-releases unless the constraint has one.
        (vec!["--constraint", "^1.1"], vec!["1.1.0", "1.2.0"]),
        (
            vec!["--constraint", ">=2.0.0-0"],
            vec!["2.0.0", "2.0.0-rc.1"],
        ),
        (vec!["--tag-regex", r"^2\."], vec!["2.0.0", "2.0.0-rc.1"]),
        (
            vec!["--constraint", ">=1.1", "--tag-regex", r"^1\."],
            vec!["1.1.0", "1.2.0"],
        ),
    ] {
        let prefix = format!("f{}", sha_prefix(&args.join(" ")));
        let mut full = vec![source.as_str()];
        let dest = to(&prefix);
        full.push(&dest);
        full.extend(args.iter().copied());
        let out = sync_ok(&sb, &full);
        assert!(
            out.ends_with(&format!(
                "{}\n",
                summary("Synced", tags.len(), 0, 0, &source)
            )),
            "{args:?}: {out}"
        );
        let got = digests(&dst, &format!("{prefix}/app"));
        let expected: BTreeMap<String, String> = tags
            .iter()
            .map(|t| (t.to_string(), want[*t].clone()))
            .collect();
        assert_eq!(got, expected, "{args:?}");
    }
}

/// A short name for a prefix, from some text.
fn sha_prefix(text: &str) -> String {
    fault::sha256_hex(text.as_bytes())[..8].to_string()
}

/// Writes `name` in a temp dir of `sb` and returns its path.
fn write_file(sb: &Sandbox, name: &str, text: &str) -> PathBuf {
    let path = sb.path().join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_skopeo_sync_file_works_unchanged_and_gives_what_skopeo_gives() {
    // A registry with a login, reached with `tls-verify: false` and `credentials`, and a TLS
    // registry whose CA comes from `cert-dir`.
    let basic = Registry::htpasswd("reader", "s3cret");
    let tls = Registry::tls();
    let app = publish(&basic, "charts/app", &["1.0.0", "1.1.0", "2.0.0"]);
    let lib = publish(&basic, "charts/lib", &["0.1.0", "0.2.0", "0.2.1"]);
    let other = publish(&basic, "team/other", &["3.0.0"]);
    let secure = publish(&tls, "charts/secure", &["1.0.0"]);
    let dst = Registry::plain();
    let sb = Sandbox::new();
    let yaml = format!(
        r#"{basic}:
  tls-verify: false
  credentials:
    username: reader
    password: s3cret
  images:
    charts/app: ["1.0.0", "2.0.0"]
    team/other: []
  images-by-tag-regex:
    charts/lib: ^0\.2\.
{tls}:
  cert-dir: {certs}
  images:
    charts/secure: []
"#,
        basic = basic.host(),
        tls = tls.host(),
        certs = tls.cert_dir().display(),
    );
    let file = write_file(&sb, "sync.yml", &yaml);
    let file = file.to_str().unwrap();
    let out = sync_ok(&sb, &["--config", file, &format!("{}/cc", dst.host())]);
    // The registries in the order of their names.
    let mut hosts = [basic.host(), tls.host()];
    hosts.sort();
    assert!(
        out.ends_with(&format!(
            "{}\n",
            summary("Synced", 6, 0, 0, &hosts.join(", "))
        )),
        "{out}"
    );
    let sk = Skopeo::new().run(&[
        "sync",
        "--src",
        "yaml",
        "--dest",
        "docker",
        "--dest-tls-verify=false",
        file,
        &format!("{}/sk", dst.host()),
    ]);
    assert!(
        sk.status.success(),
        "skopeo sync --src yaml: {}",
        describe(&sk)
    );
    let ours = mirrored(&dst, "cc");
    assert_eq!(ours, mirrored(&dst, "sk"));
    let pick = |all: &BTreeMap<String, String>, tags: &[&str]| -> BTreeMap<String, String> {
        tags.iter()
            .map(|t| (t.to_string(), all[*t].clone()))
            .collect()
    };
    assert_eq!(
        ours,
        BTreeMap::from([
            ("app".to_string(), pick(&app, &["1.0.0", "2.0.0"])),
            ("lib".to_string(), pick(&lib, &["0.2.0", "0.2.1"])),
            ("other".to_string(), other),
            ("secure".to_string(), secure),
        ])
    );

    // images-by-semver (skopeo 1.15+; older ones ignore the key and copy nothing for it).
    let yaml = format!(
        "{}:\n  tls-verify: false\n  credentials: {{username: reader, password: s3cret}}\n  images-by-semver:\n    charts/app: \">= 1.1.0\"\n",
        basic.host()
    );
    let file = write_file(&sb, "semver.yml", &yaml);
    let file = file.to_str().unwrap();
    sync_ok(&sb, &["--config", file, &format!("{}/sem", dst.host())]);
    assert_eq!(
        mirrored(&dst, "sem"),
        BTreeMap::from([("app".to_string(), pick(&app, &["1.1.0", "2.0.0"]))])
    );
    if skopeo_at_least(1, 15) {
        let sk = Skopeo::new().run(&[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            file,
            &format!("{}/sksem", dst.host()),
        ]);
        assert!(sk.status.success(), "{}", describe(&sk));
        assert_eq!(mirrored(&dst, "sksem"), mirrored(&dst, "sem"));
    }

    // A tag the file names but the registry lacks fails that item, like skopeo.
    let yaml = format!(
        "{}:\n  tls-verify: false\n  credentials: {{username: reader, password: s3cret}}\n  images:\n    charts/app: [\"1.1.0\", \"9.9.9\"]\n",
        basic.host()
    );
    let file = write_file(&sb, "missing.yml", &yaml);
    let out = sync(
        &sb,
        &[
            "--config",
            file.to_str().unwrap(),
            "--keep-going",
            &format!("{}/miss", dst.host()),
        ],
    );
    let line = error_line_of(&out, "sync of a missing tag");
    assert!(line.contains("charts/app:9.9.9"), "{line}");
    assert_eq!(repo_tags(&dst, "miss/app"), ["1.1.0"]);
}

/// Whether `skopeo --version` is at least `major.minor`.
fn skopeo_at_least(major: u64, minor: u64) -> bool {
    let out = Skopeo::new().run_ok(&["--version"]);
    let version = out.split_whitespace().nth(2).unwrap_or("0.0");
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

#[test]
fn a_rerun_copies_nothing_a_changed_tag_is_copied_again_and_immutable_tags_are_trusted() {
    let src = Registry::builder().log_level("info").start();
    let dst = Registry::builder().log_level("info").start();
    let publisher = Sandbox::new();
    let mut want: BTreeMap<String, String> = ["1.0.0", "1.1.0", "1.2.0"]
        .iter()
        .map(|v| {
            (
                v.to_string(),
                push_chart(&publisher, &src, "charts/app", v, "a"),
            )
        })
        .collect();
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let dest = format!("{}/m", dst.host());
    sync_ok(&sb, &[&source, &dest]);
    assert_eq!(digests(&dst, "m/app"), want);

    // Again: every tag up to date, not one byte written, and the source's tags listed once
    // (the plan's listing is also where the copies look for referrers' tags).
    wait_logged(&dst, "PUT", "/v2/m/app/manifests/", 3);
    let before = storage_snapshot(&dst);
    let writes =
        |reg: &Registry| count_logged(reg, "PUT", "/v2/") + count_logged(reg, "POST", "/v2/");
    let written = writes(&dst);
    // distribution logs a request once answered: a request of ours, logged, marks that every
    // request before it is.
    let settled = |reg: &Registry| {
        let marks = count_logged(reg, "GET", "/v2/_catalog");
        catalog(reg);
        wait_logged(reg, "GET", "/v2/_catalog", marks + 1);
    };
    let listings = |reg: &Registry| count_logged(reg, "GET", "/v2/charts/app/tags/list");
    settled(&src);
    let listed = listings(&src);
    let out = sync_ok(&sb, &[&source, &dest]);
    settled(&src);
    assert_eq!(listings(&src), listed + 1, "{}", src.log());
    let (lines, last) = item_lines(&out);
    assert!(
        lines.iter().all(|l| l.ends_with(": up to date, skipped")) && lines.len() == 3,
        "{out}"
    );
    assert_eq!(last, summary("Synced", 0, 3, 0, &source));
    assert!(
        storage_snapshot(&dst) == before,
        "a rerun changed the registry"
    );
    assert_eq!(writes(&dst), written, "a rerun wrote to the registry");

    // 1.1.0 changes at the source: only it is copied again.
    let changed = push_chart(&publisher, &src, "charts/app", "1.1.0", "b");
    assert_ne!(changed, want["1.1.0"]);
    want.insert("1.1.0".into(), changed);
    let out = sync_ok(&sb, &[&source, &dest]);
    assert!(
        out.contains(&format!("{source}:1.1.0 -> {dest}/app:1.1.0: synced"))
            && out.ends_with(&format!("{}\n", summary("Synced", 1, 2, 0, &source))),
        "{out}"
    );
    assert_eq!(digests(&dst, "m/app"), want);

    // 1.0.0 changes too, but --immutable-tags trusts what is there: no manifest is even
    // asked about at the source.
    let changed = push_chart(&publisher, &src, "charts/app", "1.0.0", "c");
    let heads = |reg: &Registry| count_logged(reg, "HEAD", "/v2/charts/app/manifests/");
    // Two reruns so far, each asked about the three tags.
    let asked = wait_logged(&src, "HEAD", "/v2/charts/app/manifests/", 6);
    assert_eq!(asked, 6, "{}", src.log());
    let out = sync_ok(&sb, &["--immutable-tags", &source, &dest]);
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 0, 3, 0, &source))),
        "{out}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        heads(&src),
        asked,
        "--immutable-tags still compared digests"
    );
    assert_eq!(digests(&dst, "m/app"), want);
    // Without it, the change is found.
    let out = sync_ok(&sb, &[&source, &dest]);
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 1, 2, 0, &source))),
        "{out}"
    );
    want.insert("1.0.0".into(), changed);
    assert_eq!(digests(&dst, "m/app"), want);
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let src = Registry::plain();
    let dst = Registry::plain();
    publish(&src, "charts/app", &["1.0.0", "1.1.0", "1.2.0"]);
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let dest = format!("{}/m", dst.host());
    sync_ok(&sb, &[&format!("{source}:1.0.0"), &dest]);

    let before = storage_snapshot(&dst);
    let out = sync_ok(&sb, &["--dry-run", &source, &dest]);
    let (lines, last) = item_lines(&out);
    assert_eq!(
        lines,
        [
            format!("{source}:1.0.0 -> {dest}/app:1.0.0: up to date, skipped"),
            format!("{source}:1.1.0 -> {dest}/app:1.1.0: would sync"),
            format!("{source}:1.2.0 -> {dest}/app:1.2.0: would sync"),
        ]
    );
    assert_eq!(last, summary("To sync", 2, 1, 0, &source));
    assert!(
        storage_snapshot(&dst) == before,
        "--dry-run changed the registry"
    );
    assert_eq!(repo_tags(&dst, "m/app"), ["1.0.0"]);

    // Into the cache: nothing stored either.
    let cache_before = sb.snapshot();
    let out = sync_ok(&sb, &["--dry-run", &source, "cache:"]);
    assert!(
        out.ends_with(&format!("{}\n", summary("To sync", 3, 0, 0, &source))),
        "{out}"
    );
    assert_eq!(
        sb.snapshot().changes_since(&cache_before),
        Vec::<String>::new()
    );
}

#[test]
fn blobs_the_destination_has_are_skipped_and_on_one_registry_mounted() {
    let reg = Registry::builder().log_level("info").start();
    let dst = Registry::builder().log_level("info").start();
    let publisher = Sandbox::new();
    let digest = push_chart(&publisher, &reg, "charts/app", "1.0.0", "x");
    push_chart(&publisher, &reg, "charts/app", "1.1.0", "y");
    // `stable` is the same manifest as 1.0.0, so the same blobs.
    let stable = format!("{}/charts/app:stable", reg.host());
    publisher.ok(&[
        "chart",
        "tag",
        &format!("{}/charts/app:1.0.0", reg.host()),
        &stable,
    ]);
    publisher.ok(&["chart", "push", &stable]);
    let want = digests(&reg, "charts/app");
    assert_eq!(want["stable"], digest);
    let source = format!("{}/charts/app", reg.host());
    let sb = Sandbox::new();

    // Another registry: 1.0.0 first, then the rest; `stable` needs no blob uploaded.
    sync_ok(
        &sb,
        &[&format!("{source}:1.0.0"), &format!("{}/m", dst.host())],
    );
    assert_eq!(wait_logged(&dst, "PUT", "/v2/m/app/manifests/", 1), 1);
    let uploads = count_logged(&dst, "PUT", "/v2/m/app/blobs/uploads/");
    assert_eq!(uploads, 2, "config and chart layer\n{}", dst.log());
    sync_ok(&sb, &[&source, &format!("{}/m", dst.host())]);
    assert_eq!(digests(&dst, "m/app"), want);
    assert_eq!(wait_logged(&dst, "PUT", "/v2/m/app/manifests/", 3), 3);
    assert_eq!(
        count_logged(&dst, "PUT", "/v2/m/app/blobs/uploads/"),
        uploads + 2,
        "only 1.1.0's two blobs were to be uploaded\n{}",
        dst.log()
    );

    // The same registry: every blob is mounted, none uploaded.
    sync_ok(&sb, &[&source, &format!("{}/mirror", reg.host())]);
    assert_eq!(digests(&reg, "mirror/app"), want);
    wait_logged(&reg, "PUT", "/v2/mirror/app/manifests/", 3);
    let mounts = fault::logged_requests(&reg)
        .into_iter()
        .filter(|(m, u)| {
            m == "POST" && u.starts_with("/v2/mirror/app/blobs/uploads/") && u.contains("mount=")
        })
        .count();
    // Two blobs for each of 1.0.0 and 1.1.0; `stable` shares 1.0.0's.
    assert_eq!(mounts, 4, "{}", reg.log());
    assert_eq!(
        count_logged(&reg, "PUT", "/v2/mirror/app/blobs/uploads/"),
        0,
        "blob bytes were uploaded instead of mounted"
    );
}

/// Distribution 2.8 can lose a repository's link to a blob committed twice at once (the
/// manifest is then refused with MANIFEST_BLOB_UNKNOWN): tags that share blobs, copied in
/// parallel into a new repository, must send each blob once.
#[test]
fn tags_sharing_blobs_send_each_blob_once() {
    let src = Registry::plain();
    let dst = Registry::builder().log_level("info").start();
    let publisher = Sandbox::new();
    push_chart(&publisher, &src, "charts/app", "1.0.0", "x");
    push_chart(&publisher, &src, "charts/app", "1.1.0", "y");
    let one = format!("{}/charts/app:1.0.0", src.host());
    for tag in ["stable", "latest", "1", "1.0"] {
        let other = format!("{}/charts/app:{tag}", src.host());
        publisher.ok(&["chart", "tag", &one, &other]);
        publisher.ok(&["chart", "push", &other]);
    }
    let want = digests(&src, "charts/app");
    assert_eq!(want.len(), 6);

    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let out = sync_ok(&sb, &[&source, &format!("{}/m", dst.host())]);
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 6, 0, 0, &source))),
        "{out}"
    );
    assert_eq!(digests(&dst, "m/app"), want);
    assert_eq!(wait_logged(&dst, "PUT", "/v2/m/app/manifests/", 6), 6);
    assert_eq!(
        count_logged(&dst, "PUT", "/v2/m/app/blobs/uploads/"),
        4,
        "two charts of two blobs each\n{}",
        dst.log()
    );

    // The same from the cache (where the five tags are one chart under five names).
    let out = sync_ok(
        &publisher,
        &[&format!("cache:{source}"), &format!("{}/c", dst.host())],
    );
    assert!(
        out.ends_with(&format!(
            "{}\n",
            summary("Synced", 6, 0, 0, &format!("the cache ({source})"))
        )),
        "{out}"
    );
    assert_eq!(digests(&dst, "c/app"), want);
    assert_eq!(wait_logged(&dst, "PUT", "/v2/c/app/manifests/", 6), 6);
    assert_eq!(
        count_logged(&dst, "PUT", "/v2/c/app/blobs/uploads/"),
        4,
        "{}",
        dst.log()
    );
}

/// Copies a cache (`--home` dir) to another sandbox, as a USB stick would.
fn carry_cache(from: &Sandbox, to: &Sandbox) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from.root())
        .arg(to.cache_home())
        .status()
        .unwrap();
    assert!(status.success());
}

/// ref → manifest digest, from `chart list -o json`.
fn cached(sb: &Sandbox) -> BTreeMap<String, String> {
    let out = sb.ok(&["chart", "list", "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ref"].as_str().unwrap().to_string(),
                r["manifest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn air_gapped_round_trip_through_the_cache_keeps_every_digest() {
    let src = Registry::plain();
    let app = publish(&src, "charts/app", &["1.0.0", "1.1.0"]);
    let lib = publish(&src, "charts/lib", &["0.1.0"]);
    let host = src.host();

    // The connected machine: registry -> cache, under the source's own names.
    let outside = Sandbox::new();
    let out = sync_ok(&outside, &[&format!("{host}/charts/app"), "cache:"]);
    assert!(
        out.contains(&format!(
            "{host}/charts/app:1.0.0 -> {host}/charts/app:1.0.0: synced"
        )),
        "{out}"
    );
    sync_ok(&outside, &[&format!("{host}/charts/lib"), "cache:"]);
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for (repo, tags) in [("charts/app", &app), ("charts/lib", &lib)] {
        for (t, d) in tags {
            want.insert(format!("{host}/{repo}:{t}"), d.clone());
        }
    }
    assert_eq!(cached(&outside), want);
    outside.ok(&["chart", "verify"]);
    // Again: nothing to do, the cache untouched.
    let before = outside.snapshot();
    let out = sync_ok(&outside, &[&format!("{host}/charts/app"), "cache:"]);
    assert!(
        out.ends_with(&format!(
            "{}\n",
            summary("Synced", 0, 2, 0, &format!("{host}/charts/app"))
        )),
        "{out}"
    );
    assert_eq!(
        outside.snapshot().changes_since(&before),
        Vec::<String>::new()
    );

    // Inside, with the source gone: cache -> the internal registry.
    let inside = Sandbox::new();
    carry_cache(&outside, &inside);
    drop(src);
    let internal = Registry::plain();
    let out = sync_ok(&inside, &["cache:", &format!("{}/vendor", internal.host())]);
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 3, 0, 0, "the cache"))),
        "{out}"
    );
    assert_eq!(
        mirrored(&internal, "vendor"),
        BTreeMap::from([("app".to_string(), app.clone()), ("lib".to_string(), lib)])
    );
    assert_eq!(cached(&inside), want, "chart list inside");
    let out = sync_ok(&inside, &["cache:", &format!("{}/vendor", internal.host())]);
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 0, 3, 0, "the cache"))),
        "{out}"
    );
    // One repository of the cache, scoped names.
    sync_ok(
        &inside,
        &[
            "--scoped",
            &format!("cache:{host}/charts/app"),
            &format!("{}/scoped", internal.host()),
        ],
    );
    assert_eq!(
        mirrored(&internal, "scoped"),
        BTreeMap::from([(format!("{}/charts/app", host.replace(':', "_")), app)])
    );
}

#[test]
fn credentials_come_from_the_login_store_or_the_flags() {
    let src = Registry::htpasswd("alice", "a-pass");
    let dst = Registry::htpasswd("bob", "b-pass");
    let want = publish(&src, "charts/app", &["1.0.0", "1.1.0"]);
    let source = format!("{}/charts/app", src.host());

    // No login: the source says who it is.
    let sb = Sandbox::new();
    let out = sync(&sb, &[&source, &format!("{}/none", dst.host())]);
    let line = error_line_of(&out, "sync without credentials");
    assert!(
        line.contains(&src.host()) && line.contains("unauthorized"),
        "{line}"
    );
    // The flags.
    sync_ok(
        &sb,
        &[
            "--src-creds",
            "alice:a-pass",
            "--dest-creds",
            "bob:b-pass",
            &source,
            &format!("{}/flags", dst.host()),
        ],
    );
    assert_eq!(digests(&dst, "flags/app"), want);

    // The login store (shared with Helm).
    let sb = sandbox_for(&[&src, &dst]);
    sync_ok(&sb, &[&source, &format!("{}/stored", dst.host())]);
    assert_eq!(digests(&dst, "stored/app"), want);
    // A flag overrides the stored login.
    let before = storage_snapshot(&dst);
    let out = sync(
        &sb,
        &[
            "--dest-creds",
            "bob:wrong",
            &source,
            &format!("{}/wrong", dst.host()),
        ],
    );
    let line = error_line_of(&out, "sync with wrong --dest-creds");
    assert!(
        line.contains(&dst.host()) && line.contains("unauthorized"),
        "{line}"
    );
    assert!(!line.contains("wrong"), "the password leaked: {line}");
    assert!(storage_snapshot(&dst) == before);
}

/// tag → manifest digest of `repo`'s tags on a TLS registry, read with skopeo.
fn tls_digests(reg: &Registry, repo: &str, tags: &[&String]) -> BTreeMap<String, String> {
    let certs = reg.cert_dir();
    tags.iter()
        .map(|t| {
            let out = Skopeo::new().run(&[
                "inspect",
                "--raw",
                "--cert-dir",
                certs.to_str().unwrap(),
                &reg.docker(&format!("{repo}:{t}")),
            ]);
            assert!(out.status.success(), "{}", describe(&out));
            (
                t.to_string(),
                format!("sha256:{}", fault::sha256_hex(&out.stdout)),
            )
        })
        .collect()
}

#[test]
fn a_token_registry_into_a_tls_registry_with_flags_per_side() {
    let src = Registry::token("bob", "hunter2");
    let dst = Registry::tls();
    let want = publish(&src, "charts/app", &["1.0.0", "1.1.0"]);
    let tags: Vec<&String> = want.keys().collect();
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());
    let creds = ["--src-creds", "bob:hunter2"];

    // The destination's CA is not the system's: refused, and said so.
    let out = sync(
        &sb,
        &[creds[0], creds[1], &source, &format!("{}/m", dst.host())],
    );
    let line = error_line_of(&out, "sync to a TLS registry without its CA");
    assert!(line.contains(&dst.host()) && line.contains("TLS"), "{line}");

    let ca = dst.ca_pem_path();
    let certs = dst.cert_dir();
    for (flags, prefix) in [
        (vec!["--dest-ca-file", ca.to_str().unwrap()], "ca"),
        (vec!["--dest-cert-dir", certs.to_str().unwrap()], "dir"),
        (vec!["--dest-tls-verify=false"], "noverify"),
    ] {
        let mut args = vec![creds[0], creds[1]];
        args.extend(flags.iter().copied());
        let dest = format!("{}/{prefix}", dst.host());
        args.extend([source.as_str(), dest.as_str()]);
        sync_ok(&sb, &args);
        assert_eq!(
            tls_digests(&dst, &format!("{prefix}/app"), &tags),
            want,
            "{flags:?}"
        );
    }

    // A rerun checks every digest with a token asked for once per repository, not per
    // request.
    let issuer = src.token_issuer().expect("token issuer");
    issuer.clear_requests();
    let out = sync_ok(
        &sb,
        &[
            creds[0],
            creds[1],
            "--dest-ca-file",
            ca.to_str().unwrap(),
            &source,
            &format!("{}/ca", dst.host()),
        ],
    );
    assert!(
        out.ends_with(&format!("{}\n", summary("Synced", 0, 2, 0, &source))),
        "{out}"
    );
    let asked = issuer.requests();
    assert!(
        !asked.is_empty() && asked.len() <= 2 && asked.iter().all(|r| r.status == 200),
        "{asked:?}"
    );
}

#[test]
fn a_failing_item_stops_new_copies_unless_keep_going() {
    let src = Registry::plain();
    let dst = Registry::plain();
    let want = publish(&src, "charts/app", &["1.0.0", "1.1.0", "1.2.0"]);
    // 9.0.0, the newest tag (copied first), lost its chart layer at the source (deleted
    // under the manifest): its copy fails.
    publish(&src, "charts/app", &["9.0.0"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&get_manifest(&src, "charts/app", "9.0.0").body).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = src.request("DELETE", &format!("/v2/charts/app/blobs/{layer}"), &[], &[]);
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    let sb = Sandbox::new();
    let source = format!("{}/charts/app", src.host());

    let dest = format!("{}/stop", dst.host());
    let out = sync(&sb, &["--jobs", "1", &source, &dest]);
    let line = error_line_of(&out, "sync of a broken artifact");
    assert!(
        line.contains(&format!("{source}:9.0.0")) && line.contains(&layer),
        "{line}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last().unwrap_or_default(),
        format!(
            "{}; 3 not attempted after the failure (use --keep-going)",
            summary("Synced", 0, 0, 1, &source).replace("of 1 ", "of 4 ")
        ),
        "{}",
        describe(&out)
    );
    assert!(repo_tags(&dst, "stop/app").is_empty());

    let dest = format!("{}/go", dst.host());
    for skipped in [0, 3] {
        let out = sync(&sb, &["--keep-going", &source, &dest]);
        let line = error_line_of(&out, "sync --keep-going");
        assert!(line.contains(&format!("{source}:9.0.0")), "{line}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().last().unwrap_or_default(),
            summary("Synced", 3 - skipped, skipped, 1, &source),
            "{}",
            describe(&out)
        );
        assert_eq!(digests(&dst, "go/app"), want);
    }
}

#[test]
fn bad_input_is_one_error_line_and_writes_nothing() {
    let src = Registry::plain();
    let dst = Registry::plain();
    publish(&src, "charts/app", &["1.0.0"]);
    let sb = Sandbox::new();
    let s = src.host();
    let d = dst.host();
    let bad_yaml = write_file(&sb, "bad.yml", "images: [\n");
    let not_skopeo = write_file(&sb, "list.yml", "- just\n- a list\n");
    let bad_regex = write_file(
        &sb,
        "regex.yml",
        &format!("{s}:\n  images-by-tag-regex:\n    charts/app: \"(\"\n"),
    );
    let missing: PathBuf = sb.path().join("missing.yml");
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let app = format!("{s}/charts/app");
    let dest = format!("{d}/m");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec![format!("{s}/Charts/App"), dest.clone()],
            vec!["Charts".into()],
        ),
        (
            vec![format!("{s}/charts/nope"), dest.clone()],
            vec!["charts/nope".into()],
        ),
        (
            vec![format!("{app}:9.9.9"), dest.clone()],
            vec!["9.9.9".into()],
        ),
        (
            vec![app.clone(), dest.clone(), "--tag-regex".into(), "(".into()],
            vec!["--tag-regex".into()],
        ),
        (
            vec![
                app.clone(),
                dest.clone(),
                "--constraint".into(),
                ">>1".into(),
            ],
            vec![">>1".into()],
        ),
        (
            vec![app.clone(), dest.clone(), "--tag-regex".into(), "^9".into()],
            vec!["no tag matches".into(), "^9".into()],
        ),
        (
            vec![
                format!("{app}:1.0.0"),
                dest.clone(),
                "--constraint".into(),
                "^1".into(),
            ],
            vec!["--constraint".into()],
        ),
        (
            vec![app.clone(), format!("{d}//m")],
            vec![format!("{d}//m")],
        ),
        (
            vec![app.clone(), "127.0.0.1:1/m".into()],
            vec!["127.0.0.1:1".into()],
        ),
        (
            vec![
                app.clone(),
                dest.clone(),
                "--src-creds".into(),
                "nocolon".into(),
            ],
            vec!["--src-creds".into()],
        ),
        (vec!["cache:".into(), "cache:".into()], vec!["cache".into()]),
        (
            vec!["cache:".into(), dest.clone()],
            vec!["no charts".into()],
        ),
        (
            vec![
                "cache:".into(),
                dest.clone(),
                "--tag-regex".into(),
                "(".into(),
            ],
            vec!["--tag-regex".into()],
        ),
        (
            vec!["--config".into(), p(&missing), dest.clone()],
            vec![p(&missing)],
        ),
        (
            vec!["--config".into(), p(&bad_yaml), dest.clone()],
            vec![p(&bad_yaml)],
        ),
        (
            vec!["--config".into(), p(&not_skopeo), dest.clone()],
            vec![p(&not_skopeo)],
        ),
        (
            vec!["--config".into(), p(&bad_regex), dest.clone()],
            vec![p(&bad_regex), "charts/app".into()],
        ),
        (
            vec!["--config".into(), p(&bad_regex), app.clone(), dest.clone()],
            vec!["--config".into()],
        ),
    ];
    let registry_before = storage_snapshot(&dst);
    let cache_before = sb.snapshot();
    for (args, mentions) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sync(&sb, &args);
        let line = error_line_of(&out, &format!("sync {}", args.join(" ")));
        for m in &mentions {
            assert!(line.contains(m.as_str()), "sync {}: {line}", args.join(" "));
        }
        assert!(
            out.stdout.is_empty(),
            "sync {}: {}",
            args.join(" "),
            describe(&out)
        );
    }
    assert!(
        storage_snapshot(&dst) == registry_before,
        "bad input wrote to the registry"
    );
    assert_eq!(
        sb.snapshot().changes_since(&cache_before),
        Vec::<String>::new()
    );
}
