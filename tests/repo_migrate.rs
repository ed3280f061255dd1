//! `chartcache repo migrate` from a real HTTP file server on 127.0.0.1 (an index.yaml and
//! chart archives built here) into a real registry (CNCF distribution 2.8): byte-for-byte
//! chart layers, Helm's config and annotations (`created` from the index), provenance layers,
//! `+` tags, skipping what is there, `--dry-run`, filters, `--jobs`, failures with and without
//! `--keep-going`, Basic auth on both sides, and Helm v4 reading (and pushing) the same charts.

mod classic;
mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;

use classic::{ChartFile, FileServer, RepoFixture, Rule, basic};
use fault::{
    Sandbox, error_line_of, get_manifest, registry_get as rget, repo_tags as tags, sha256_hex,
    storage_snapshot, wait_logged,
};
use support::{HELM_CHART_LAYER_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, Helm, Registry, describe};

const PROV_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
const A: &str = "org.opencontainers.image.";

/// alpha 1.0.0, 1.1.0, 2.0.0-rc.1; beta 0.1.0 (with a .prov), 1.0.0+build.1; gamma 3.0.0;
/// and a `gamma latest` entry Helm skips.
fn mixed_repo() -> RepoFixture {
    let mut repo = RepoFixture::new();
    for (name, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.1.0"),
        ("alpha", "2.0.0-rc.1"),
        ("beta", "0.1.0"),
        ("beta", "1.0.0+build.1"),
        ("gamma", "3.0.0"),
    ] {
        repo.add(name, version);
    }
    repo.add_prov("beta", "0.1.0");
    repo.add_invalid("gamma", "latest");
    repo.write_index();
    repo
}

/// The versions in the order migrate works through them: by chart name, newest first.
fn ordered(repo: &RepoFixture) -> Vec<&ChartFile> {
    let mut v: Vec<&ChartFile> = repo.charts.iter().collect();
    v.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| semver_key(&b.version).cmp(&semver_key(&a.version)))
    });
    v
}

/// Enough of SemVer ordering for the fixtures: numbers, then release before pre-release.
fn semver_key(v: &str) -> (u64, u64, u64, bool, String) {
    let core = v.split('+').next().unwrap();
    let (nums, pre) = match core.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (core, None),
    };
    let n: Vec<u64> = nums.split('.').map(|x| x.parse().unwrap()).collect();
    (
        n[0],
        n[1],
        n[2],
        pre.is_none(),
        pre.unwrap_or("").to_string(),
    )
}

fn migrate(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let mut full = vec!["repo", "migrate"];
    full.extend_from_slice(args);
    sb.run(&full)
}

fn migrate_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = migrate(sb, args);
    assert!(
        out.status.success(),
        "repo migrate {}: {}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stdout_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// The sorted lines a migrate of every chart of `repo` prints: one `PREFIX/NAME:TAG: outcome`
/// per version, then `summary`.
fn every_chart_then(
    repo: &RepoFixture,
    prefix: &str,
    outcome: &str,
    summary: String,
) -> Vec<String> {
    let mut want: Vec<String> = repo
        .charts
        .iter()
        .map(|c| format!("{prefix}/{}:{}: {outcome}", c.name, c.tag()))
        .collect();
    want.push(summary);
    want.sort();
    want
}

fn summary(verb: &str, done: usize, skipped: usize, failed: usize, url: &str) -> String {
    format!(
        "{verb}: {done}, skipped: {skipped}, failed: {failed} (of {} chart versions from {url})",
        done + skipped + failed
    )
}

/// Checks what the registry holds for `chart` under `prefix`: the chart layer is the served
/// archive (digest == index digest), Helm's config media type and JSON, the annotations Helm
/// writes with `created` from the index, and the provenance layer when there is a `.prov`.
/// Returns the manifest digest.
fn check_migrated(reg: &Registry, prefix: &str, chart: &ChartFile) -> String {
    let repo = format!("{prefix}/{}", chart.name);
    let resp = get_manifest(reg, &repo, &chart.tag());
    let m = resp.json();
    let what = format!("{repo}:{}", chart.tag());
    assert_eq!(m["schemaVersion"], 2, "{what}: {m:#}");
    assert_eq!(m["config"]["mediaType"], HELM_CONFIG_MEDIA_TYPE, "{what}");
    let layers = m["layers"].as_array().expect("layers");
    let chart_layers: Vec<_> = layers
        .iter()
        .filter(|l| l["mediaType"] == HELM_CHART_LAYER_MEDIA_TYPE)
        .collect();
    assert_eq!(chart_layers.len(), 1, "{what}: {m:#}");
    assert_eq!(
        chart_layers[0]["digest"],
        chart.oci_digest().as_str(),
        "{what}: the chart layer digest is not the index digest"
    );
    assert_eq!(chart_layers[0]["size"], chart.bytes.len() as u64, "{what}");
    let blob = rget(reg, &format!("/v2/{repo}/blobs/{}", chart.oci_digest()));
    assert_eq!(blob.status, 200, "{what}: chart blob");
    assert!(blob.body == chart.bytes, "{what}: the chart blob differs");

    let provs: Vec<_> = layers
        .iter()
        .filter(|l| l["mediaType"] == PROV_MEDIA_TYPE)
        .collect();
    match &chart.prov {
        Some(prov) => {
            assert_eq!(provs.len(), 1, "{what}: no provenance layer: {m:#}");
            assert_eq!(
                provs[0]["digest"],
                format!("sha256:{}", sha256_hex(prov)).as_str(),
                "{what}"
            );
            assert_eq!(layers.len(), 2, "{what}: {m:#}");
            // Helm sorts the layers by digest.
            let digests: Vec<&str> = layers
                .iter()
                .map(|l| l["digest"].as_str().unwrap())
                .collect();
            let mut s = digests.clone();
            s.sort();
            assert_eq!(digests, s, "{what}: layers not sorted by digest");
            let pb = rget(
                reg,
                &format!("/v2/{repo}/blobs/{}", provs[0]["digest"].as_str().unwrap()),
            );
            assert!(pb.body == *prov, "{what}: the provenance blob differs");
        }
        None => assert_eq!(layers.len(), 1, "{what}: unexpected layers: {m:#}"),
    }

    let ann = &m["annotations"];
    assert_eq!(
        ann[format!("{A}title")],
        chart.name.as_str(),
        "{what}: {m:#}"
    );
    assert_eq!(ann[format!("{A}version")], chart.version.as_str(), "{what}");
    assert_eq!(
        ann[format!("{A}description")],
        chart.description.as_str(),
        "{what}"
    );
    assert_eq!(
        ann[format!("{A}created")],
        chart.created.as_str(),
        "{what}: created should be the index's"
    );
    assert_eq!(
        ann[format!("{A}url")],
        format!("https://example.com/charts/{}", chart.name).as_str(),
        "{what}"
    );
    assert_eq!(
        ann[format!("{A}source")],
        format!("https://github.com/example/{}", chart.name).as_str(),
        "{what}"
    );

    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config = rget(reg, &format!("/v2/{repo}/blobs/{config_digest}"));
    assert_eq!(config.status, 200, "{what}: config blob");
    let c = config.json();
    assert_eq!(c["name"], chart.name.as_str(), "{what}: config {c:#}");
    assert_eq!(c["version"], chart.version.as_str(), "{what}: config {c:#}");
    assert_eq!(c["apiVersion"], "v2", "{what}: config {c:#}");
    resp.header("Docker-Content-Digest")
        .expect("digest header")
        .to_string()
}

#[test]
fn migrates_every_version_byte_for_byte_and_a_rerun_pushes_nothing() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());

    let out = migrate(&sb, &[&url, &prefix]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = every_chart_then(
        &repo,
        &prefix,
        "migrated",
        summary("Migrated", 6, 0, 0, &url),
    );
    assert_eq!(stdout_lines(&stdout), want, "{}", describe(&out));
    assert_eq!(
        stdout.lines().last(),
        Some(summary("Migrated", 6, 0, 0, &url).as_str()),
        "the summary comes last"
    );
    // The skipped entry is named in one warning.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with("WARNING:")
            && warnings[0].contains("gamma")
            && warnings[0].contains("latest"),
        "{}",
        describe(&out)
    );

    let mut digests = BTreeMap::new();
    for c in &repo.charts {
        digests.insert(
            (c.name.clone(), c.version.clone()),
            check_migrated(&reg, "mirror", c),
        );
    }
    assert_eq!(tags(&reg, "mirror/alpha"), ["1.0.0", "1.1.0", "2.0.0-rc.1"]);
    // `+` becomes `_` in the tag.
    assert_eq!(tags(&reg, "mirror/beta"), ["0.1.0", "1.0.0_build.1"]);
    assert_eq!(tags(&reg, "mirror/gamma"), ["3.0.0"]);
    // Each archive (and the one .prov) was downloaded once.
    let mut downloaded = server.tgz_requests();
    downloaded.sort();
    let mut expected: Vec<String> = repo
        .charts
        .iter()
        .map(|c| format!("/{}", c.file_name()))
        .collect();
    expected.sort();
    assert_eq!(downloaded, expected);

    // A rerun: every version is up to date, nothing is downloaded or pushed.
    let before = storage_snapshot(&reg);
    server.clear_hits();
    let out = migrate(&sb, &[&url, &prefix]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = every_chart_then(
        &repo,
        &prefix,
        "up to date, skipped",
        summary("Migrated", 0, 6, 0, &url),
    );
    assert_eq!(stdout_lines(&stdout), want, "{}", describe(&out));
    assert_eq!(
        server.paths(),
        ["/index.yaml"],
        "the rerun downloaded charts"
    );
    assert!(
        storage_snapshot(&reg) == before,
        "the rerun changed the registry's storage"
    );
    // A fresh cache gives the same answer: the registry, not the cache, is what counts.
    let fresh = Sandbox::new();
    let out = migrate_ok(&fresh, &[&url, &prefix]);
    assert!(
        out.contains(&summary("Migrated", 0, 6, 0, &url)),
        "fresh cache rerun: {out}"
    );
    assert!(storage_snapshot(&reg) == before);
    for c in &repo.charts {
        let resp = get_manifest(&reg, &format!("mirror/{}", c.name), &c.tag());
        assert_eq!(
            resp.header("Docker-Content-Digest"),
            Some(digests[&(c.name.clone(), c.version.clone())].as_str())
        );
    }
}

#[test]
fn dry_run_changes_nothing() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());

    let before = storage_snapshot(&reg);
    let cache_before = sb.snapshot();
    let out = migrate_ok(&sb, &[&url, &prefix, "--dry-run"]);
    let want = every_chart_then(
        &repo,
        &prefix,
        "would migrate",
        summary("To migrate", 6, 0, 0, &url),
    );
    assert_eq!(stdout_lines(&out), want);
    assert!(
        storage_snapshot(&reg) == before,
        "--dry-run wrote to the registry"
    );
    assert_eq!(
        sb.snapshot().changes_since(&cache_before),
        Vec::<String>::new(),
        "--dry-run changed the cache"
    );
    assert_eq!(
        server.paths(),
        ["/index.yaml"],
        "--dry-run downloaded charts"
    );

    // With part of it there, the plan says so.
    migrate_ok(&sb, &[&url, &prefix, "--chart", "beta"]);
    let before = storage_snapshot(&reg);
    let cache_before = sb.snapshot();
    let out = migrate_ok(&sb, &[&url, &prefix, "--dry-run"]);
    let mut want: Vec<String> = repo
        .charts
        .iter()
        .map(|c| {
            let what = if c.name == "beta" {
                "up to date, skipped"
            } else {
                "would migrate"
            };
            format!("{prefix}/{}:{}: {what}", c.name, c.tag())
        })
        .collect();
    want.push(summary("To migrate", 4, 2, 0, &url));
    want.sort();
    assert_eq!(stdout_lines(&out), want);
    assert!(
        storage_snapshot(&reg) == before,
        "--dry-run wrote to the registry"
    );
    assert_eq!(
        sb.snapshot().changes_since(&cache_before),
        Vec::<String>::new()
    );
    assert_eq!(tags(&reg, "mirror/alpha"), Vec::<String>::new());
}

#[test]
fn chart_and_version_filters() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let host = reg.host();

    // --chart, repeated.
    let out = migrate_ok(
        &sb,
        &[
            &url,
            &format!("{host}/a"),
            "--chart",
            "beta",
            "--chart",
            "gamma",
        ],
    );
    assert!(out.contains(&summary("Migrated", 3, 0, 0, &url)), "{out}");
    assert_eq!(tags(&reg, "a/alpha"), Vec::<String>::new());
    assert_eq!(tags(&reg, "a/beta"), ["0.1.0", "1.0.0_build.1"]);
    assert_eq!(tags(&reg, "a/gamma"), ["3.0.0"]);

    // --version: a Helm constraint over every chart (pre-releases only when it names one).
    let out = migrate_ok(
        &sb,
        &[&url, &format!("{host}/b"), "--version", ">=1.0.0 <3"],
    );
    assert!(out.contains(&summary("Migrated", 3, 0, 0, &url)), "{out}");
    assert_eq!(tags(&reg, "b/alpha"), ["1.0.0", "1.1.0"]);
    assert_eq!(tags(&reg, "b/beta"), ["1.0.0_build.1"]);
    assert_eq!(tags(&reg, "b/gamma"), Vec::<String>::new());

    // Both, with a tilde range.
    let out = migrate_ok(
        &sb,
        &[
            &url,
            &format!("{host}/c"),
            "--chart",
            "alpha",
            "--version",
            "~1.1",
        ],
    );
    assert!(out.contains(&summary("Migrated", 1, 0, 0, &url)), "{out}");
    assert_eq!(tags(&reg, "c/alpha"), ["1.1.0"]);
    check_migrated(&reg, "c", repo.chart("alpha", "1.1.0"));
    for c in [repo.chart("beta", "0.1.0"), repo.chart("gamma", "3.0.0")] {
        check_migrated(&reg, "a", c);
    }

    // --devel lets the constraint match pre-releases.
    let out = migrate_ok(
        &sb,
        &[&url, &format!("{host}/d"), "--version", ">=1.5", "--devel"],
    );
    assert!(out.contains(&summary("Migrated", 2, 0, 0, &url)), "{out}");
    assert_eq!(tags(&reg, "d/alpha"), ["2.0.0-rc.1"]);
    assert_eq!(tags(&reg, "d/gamma"), ["3.0.0"]);

    // An unknown chart name is an error naming it; nothing is pushed.
    let before = storage_snapshot(&reg);
    let out = migrate(
        &sb,
        &[
            &url,
            &format!("{host}/e"),
            "--chart",
            "alpha",
            "--chart",
            "zeta",
        ],
    );
    let line = error_line_of(&out, "migrate --chart zeta");
    assert!(line.contains("zeta"), "{line}");
    assert!(storage_snapshot(&reg) == before);
}

#[test]
fn no_version_matching_is_an_error() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let prefix = format!("{}/m", reg.host());
    let out = migrate(&sb, &[&server.url(), &prefix, "--version", ">=9"]);
    let line = error_line_of(&out, "migrate --version >=9");
    assert!(line.contains(">=9"), "{line}");
    let out = migrate(
        &sb,
        &[
            &server.url(),
            &prefix,
            "--chart",
            "alpha",
            "--version",
            "5.0.0",
        ],
    );
    let line = error_line_of(&out, "migrate --chart alpha --version 5.0.0");
    assert!(line.contains("alpha") && line.contains("5.0.0"), "{line}");
}

#[test]
fn jobs_1_and_8_give_the_same_result() {
    let mut repo = RepoFixture::new();
    for name in ["one", "two", "three", "four"] {
        for v in ["0.1.0", "0.2.0", "1.0.0", "1.0.1-beta.1"] {
            repo.add(name, v);
        }
    }
    repo.add_prov("two", "1.0.0");
    repo.write_index();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let url = server.url();
    let host = reg.host();

    let sb1 = Sandbox::new();
    let out1 = migrate_ok(&sb1, &[&url, &format!("{host}/j1"), "--jobs", "1"]);
    let sb8 = Sandbox::new();
    let out8 = migrate_ok(&sb8, &[&url, &format!("{host}/j8"), "--jobs", "8"]);
    assert!(
        out1.contains(&summary("Migrated", 16, 0, 0, &url)),
        "{out1}"
    );
    assert!(
        out8.contains(&summary("Migrated", 16, 0, 0, &url)),
        "{out8}"
    );
    assert_eq!(
        stdout_lines(&out1.replace("/j1/", "/jX/")),
        stdout_lines(&out8.replace("/j8/", "/jX/"))
    );
    // With --jobs 1 the order is the index order: by chart, newest first.
    let order: Vec<String> = ordered(&repo)
        .iter()
        .map(|c| format!("{host}/j1/{}:{}: migrated", c.name, c.tag()))
        .collect();
    let got: Vec<&str> = out1.lines().filter(|l| l.ends_with(": migrated")).collect();
    assert_eq!(got, order);
    // The same manifests, byte for byte (created comes from the index, not the clock).
    for c in &repo.charts {
        let d1 = check_migrated(&reg, "j1", c);
        let d8 = check_migrated(&reg, "j8", c);
        assert_eq!(d1, d8, "{} {}", c.name, c.version);
    }
}

/// A repository whose first version (in migrate's order) has no archive on the server.
fn repo_with_a_missing_archive() -> RepoFixture {
    let repo = mixed_repo();
    repo.remove_file("alpha-2.0.0-rc.1.tgz");
    repo
}

#[test]
fn a_missing_archive_stops_new_work_without_keep_going() {
    let repo = repo_with_a_missing_archive();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    let out = migrate(&sb, &[&url, &prefix, "--jobs", "1"]);
    let line = error_line_of(&out, "migrate with a missing archive");
    assert!(
        line.contains(&format!("{prefix}/alpha:2.0.0-rc.1"))
            && line.contains(&server.url_of("alpha-2.0.0-rc.1.tgz"))
            && line.contains("404"),
        "{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&summary("Migrated", 0, 0, 1, &url).replace("of 1 ", "of 6 ")),
        "{}",
        describe(&out)
    );
    assert!(
        last.contains("5 not attempted"),
        "the summary should count what was not attempted: {}",
        describe(&out)
    );
    assert!(!stdout.contains(": migrated"), "{}", describe(&out));
    for chart in ["alpha", "beta", "gamma"] {
        assert_eq!(tags(&reg, &format!("mirror/{chart}")), Vec::<String>::new());
    }
    // No other archive was even downloaded.
    assert_eq!(server.tgz_requests(), ["/alpha-2.0.0-rc.1.tgz"]);
}

#[test]
fn keep_going_migrates_the_rest_and_still_fails() {
    let repo = repo_with_a_missing_archive();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    for jobs in ["1", "4"] {
        let sb = Sandbox::new();
        let p = format!("{prefix}{jobs}");
        let out = migrate(&sb, &[&url, &p, "--keep-going", "--jobs", jobs]);
        let line = error_line_of(&out, "migrate --keep-going");
        assert!(
            line.contains(&format!("{p}/alpha:2.0.0-rc.1")) && line.contains("404"),
            "{}",
            describe(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.lines().last(),
            Some(summary("Migrated", 5, 0, 1, &url).as_str()),
            "{}",
            describe(&out)
        );
        let repo_prefix = format!("mirror{jobs}");
        assert_eq!(
            tags(&reg, &format!("{repo_prefix}/alpha")),
            ["1.0.0", "1.1.0"]
        );
        assert_eq!(
            tags(&reg, &format!("{repo_prefix}/beta")),
            ["0.1.0", "1.0.0_build.1"]
        );
        for c in repo.charts.iter().filter(|c| c.version != "2.0.0-rc.1") {
            check_migrated(&reg, &repo_prefix, c);
        }
    }
}

#[test]
fn a_digest_mismatch_stores_and_pushes_nothing_for_that_version() {
    let mut repo = mixed_repo();
    repo.chart_mut("beta", "0.1.0").digest = sha256_hex(b"not the archive");
    repo.write_index();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    let out = migrate(&sb, &[&url, &prefix, "--keep-going"]);
    let line = error_line_of(&out, "migrate with a wrong digest");
    assert!(
        line.contains(&format!("{prefix}/beta:0.1.0")) && line.contains("digest"),
        "{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some(summary("Migrated", 5, 0, 1, &url).as_str())
    );
    assert_eq!(tags(&reg, "mirror/beta"), ["1.0.0_build.1"]);
    // Nothing of it in the cache: no ref, no blob with the archive's bytes.
    let real = sha256_hex(&repo.chart("beta", "0.1.0").bytes);
    assert!(
        !sb.ref_dir(&format!("{prefix}/beta:0.1.0")).exists(),
        "a ref was stored for the version that failed"
    );
    assert!(
        !sb.root().join("blobs/sha256").join(&real).exists(),
        "the mismatching archive was stored in the cache"
    );
    // The rerun does the one that failed only after the index is fixed.
    repo.chart_mut("beta", "0.1.0").digest = real;
    repo.write_index();
    let out = migrate_ok(&sb, &[&url, &prefix]);
    assert!(out.contains(&summary("Migrated", 1, 5, 0, &url)), "{out}");
    check_migrated(&reg, "mirror", repo.chart("beta", "0.1.0"));
}

#[test]
fn a_tag_holding_other_content_is_replaced_not_skipped() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    // Someone pushed another gamma 3.0.0 there (packaged from a directory: other bytes).
    let other = format!("{prefix}/gamma:3.0.0");
    sb.save("gamma", "3.0.0", &other);
    sb.ok(&["chart", "push", &other]);
    let before = get_manifest(&reg, "mirror/gamma", "3.0.0").json();
    assert_ne!(
        before["layers"][0]["digest"],
        repo.chart("gamma", "3.0.0").oci_digest().as_str()
    );

    let out = migrate_ok(&sb, &[&url, &prefix, "--chart", "gamma"]);
    assert!(
        out.contains(&format!("{other}: migrated"))
            && out.contains(&summary("Migrated", 1, 0, 0, &url)),
        "{out}"
    );
    check_migrated(&reg, "mirror", repo.chart("gamma", "3.0.0"));
}

#[test]
fn helm_reads_migrated_charts_and_would_push_the_same_config() {
    let helm = Helm::require();
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let prefix = format!("{}/mirror", reg.host());
    migrate_ok(&sb, &[&server.url(), &prefix]);

    for c in [repo.chart("alpha", "1.1.0"), repo.chart("beta", "0.1.0")] {
        let shown = helm
            .show_chart(&format!("oci://{prefix}/{}:{}", c.name, c.version))
            .unwrap_or_else(|e| panic!("helm show chart {} {}: {e}", c.name, c.version));
        assert!(
            shown.contains(&format!("name: {}", c.name))
                && shown.contains(&format!("version: {}", c.version))
                && shown.contains(&c.description),
            "{shown}"
        );
    }
    // The build version. Helm reads a ref's tag as a version constraint, where neither
    // `1.0.0+build.1` (an invalid tag) nor `1.0.0_build.1` (an improper constraint) passes, so
    // Helm is pointed at the manifest digest of the tag it would itself have written.
    let digest = get_manifest(&reg, "mirror/beta", "1.0.0_build.1")
        .header("Docker-Content-Digest")
        .expect("Docker-Content-Digest")
        .to_string();
    let shown = helm
        .show_chart(&format!("oci://{prefix}/beta@{digest}"))
        .unwrap_or_else(|e| panic!("helm show chart beta@{digest}: {e}"));
    assert!(shown.contains("version: 1.0.0+build.1"), "{shown}");

    // Helm pushing the same archive writes the same config and the same annotations (but
    // `created`, which Helm takes from the file time).
    let tmp = tempfile::tempdir().unwrap();
    for c in [
        repo.chart("alpha", "1.1.0"),
        repo.chart("beta", "1.0.0+build.1"),
    ] {
        let tgz = tmp.path().join(c.file_name());
        fs::write(&tgz, &c.bytes).unwrap();
        helm.push(&tgz, &format!("oci://{}/helm", reg.host()), true)
            .unwrap_or_else(|e| panic!("helm push {}: {e}", c.file_name()));
        let ours = get_manifest(&reg, &format!("mirror/{}", c.name), &c.tag()).json();
        let helms = get_manifest(&reg, &format!("helm/{}", c.name), &c.tag()).json();
        assert_eq!(
            ours["config"], helms["config"],
            "config differs from Helm's"
        );
        assert_eq!(ours["layers"], helms["layers"], "layers differ from Helm's");
        let strip = |v: &serde_json::Value| {
            let mut a = v["annotations"].as_object().unwrap().clone();
            a.remove(&format!("{A}created"));
            a
        };
        assert_eq!(
            strip(&ours),
            strip(&helms),
            "annotations differ from Helm's"
        );
        assert!(helms["annotations"][format!("{A}created")].is_string());
    }
}

#[test]
fn basic_auth_repository_into_an_htpasswd_registry() {
    let reg = Registry::htpasswd("pusher", "reg-pass");
    let mut other = RepoFixture::new();
    other.add("far", "0.5.0");
    let b = FileServer::start(other.root());
    let mut repo = mixed_repo();
    let mut far = other.chart("far", "0.5.0").clone();
    far.url = b.url_of("far-0.5.0.tgz");
    repo.charts.push(far);
    repo.write_index();
    let a = FileServer::with_basic_auth(repo.root(), "reader", "repo-pass");
    let sb = Sandbox::new();
    let url = a.url();
    let prefix = format!("{}/mirror", reg.host());

    // Not logged in: every push fails, the run says so.
    let out = sb.run_stdin(
        &[
            "repo",
            "migrate",
            &url,
            &prefix,
            "--username",
            "reader",
            "--password-stdin",
            "--chart",
            "gamma",
        ],
        "repo-pass\n",
    );
    let line = error_line_of(&out, "migrate without a registry login");
    assert!(line.contains(&reg.host()), "{}", describe(&out));

    let login = sb.run_stdin(
        &[
            "registry",
            "login",
            &reg.host(),
            "--username",
            "pusher",
            "--password-stdin",
        ],
        "reg-pass\n",
    );
    assert!(login.status.success(), "{}", describe(&login));

    // Without the repository's credentials: unauthorized, naming the index URL.
    let out = migrate(&sb, &[&url, &prefix]);
    let line = error_line_of(&out, "migrate without repo credentials");
    assert!(line.contains(&format!("{url}index.yaml")), "{line}");

    a.clear_hits();
    let out = sb.run_stdin(
        &[
            "repo",
            "migrate",
            &url,
            &prefix,
            "--username",
            "reader",
            "--password-stdin",
        ],
        "repo-pass\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&summary("Migrated", 7, 0, 0, &url)),
        "{}",
        describe(&out)
    );
    for c in &repo.charts {
        check_migrated(&reg, "mirror", c);
    }
    // The repository's credentials went to its origin only.
    let want = basic("reader", "repo-pass");
    assert!(
        a.hits()
            .iter()
            .all(|h| h.authorization.as_deref() == Some(want.as_str())),
        "{:?}",
        a.hits()
    );
    let b_hits = b.hits();
    assert!(!b_hits.is_empty());
    assert!(
        b_hits.iter().all(|h| h.authorization.is_none()),
        "credentials sent to another origin: {b_hits:?}"
    );
}

#[test]
fn a_missing_prov_answered_403_is_not_a_failure() {
    let repo = mixed_repo();
    let server = FileServer::builder(repo.root()).missing_status(403).start();
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    let out = migrate(&sb, &[&url, &prefix]);
    assert!(out.status.success(), "{}", describe(&out));
    for c in &repo.charts {
        check_migrated(&reg, "mirror", c);
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input before anything is migrated
// ---------------------------------------------------------------------------------------------

/// A migrate that must fail with one `Error:` line naming every one of `mentions`, touching
/// neither the registry nor the cache.
fn migrate_fails(sb: &Sandbox, reg: &Registry, args: &[&str], mentions: &[&str]) {
    let before = storage_snapshot(reg);
    let cache_before = sb.snapshot();
    let out = migrate(sb, args);
    let line = error_line_of(&out, &args.join(" "));
    for m in mentions {
        assert!(
            line.contains(m),
            "the error should name {m:?}: {}",
            describe(&out)
        );
    }
    assert!(storage_snapshot(reg) == before, "the registry changed");
    assert_eq!(
        sb.snapshot().changes_since(&cache_before),
        Vec::<String>::new()
    );
}

#[test]
fn bad_repositories_fail_before_anything_is_pushed() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let prefix = format!("{}/mirror", reg.host());

    let dead = format!("http://127.0.0.1:{}/", classic::dead_port());
    migrate_fails(
        &sb,
        &reg,
        &[&dead, &prefix],
        &[&format!("{dead}index.yaml")],
    );

    let empty = RepoFixture::new();
    let server = FileServer::start(empty.root());
    let url = server.url();
    let index = format!("{url}index.yaml");
    migrate_fails(&sb, &reg, &[&url, &prefix], &[&index, "404"]);
    server.set_rule("/index.yaml", Rule::Status(500));
    migrate_fails(&sb, &reg, &[&url, &prefix], &[&index, "500"]);

    let repo = mixed_repo();
    let mut text = repo.index_yaml();
    text.push_str("  broken: [\n");
    repo.write_file("index.yaml", text.as_bytes());
    let server = FileServer::start(repo.root());
    let url = server.url();
    migrate_fails(
        &sb,
        &reg,
        &[&url, &prefix],
        &[&format!("{url}index.yaml"), "line"],
    );

    repo.write_index();
    migrate_fails(&sb, &reg, &[&url, &prefix, "--chart", "nope"], &["nope"]);
    // A destination with a tag is not a prefix.
    migrate_fails(&sb, &reg, &[&url, &format!("{prefix}:1.0")], &[&prefix]);
    assert!(server.tgz_requests().is_empty());
}

/// A migration goes through a scratch cache per version: the user's cache is left as it was,
/// charts it already held included, and no temporary directory is left behind.
#[test]
fn migrate_leaves_the_users_cache_as_it_was() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    sb.save(
        "other",
        "1.0.0",
        &format!("{}/mine/other:1.0.0", reg.host()),
    );
    let before = sb.snapshot();
    let tmp = sb.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let mut sb = sb;
    sb.set_env("TMPDIR", &tmp);
    migrate_ok(&sb, &[&server.url(), &format!("{}/mirror", reg.host())]);
    let changes = sb.snapshot().changes_since(&before);
    assert!(changes.is_empty(), "migrate changed the cache: {changes:?}");
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// A registry that wants no credentials is pinged (`GET /v2/`) once per command, not before
/// every request: `oci-client`, once it holds any auth for a registry that issues no tokens,
/// re-pings before each call, which doubled the requests of a migration.
#[test]
fn an_open_registry_is_pinged_once_per_command_not_per_request() {
    let repo = mixed_repo();
    let server = FileServer::start(repo.root());
    let reg = Registry::builder().log_level("info").start();
    let sb = Sandbox::new();
    let url = server.url();
    let prefix = format!("{}/mirror", reg.host());
    migrate_ok(&sb, &[&url, &prefix, "--jobs", "1"]);
    // Every version is pushed: 6 manifests and 13 blobs (config and chart, and beta's .prov).
    assert_eq!(wait_logged(&reg, "PUT", "/v2/mirror/", 19), 19);
    let pings = |reg: &Registry| {
        fault::logged_requests(reg)
            .iter()
            .filter(|(m, u)| m == "GET" && u == "/v2/")
            .count()
    };
    // The loopback probe (HTTPS and HTTP at once: only HTTP answers) is the one ping.
    assert!(
        pings(&reg) <= 2,
        "{} pings for one migrate: {:?}",
        pings(&reg),
        fault::logged_requests(&reg)
    );
    // A rerun checks every tag (a tag list per chart, a manifest per version), still one ping.
    let before = pings(&reg);
    migrate_ok(&sb, &[&url, &prefix]);
    assert!(
        pings(&reg) - before <= 2,
        "{} pings for a rerun",
        pings(&reg) - before
    );
    // And a pull into an empty cache: manifest, config, chart layer.
    let before = pings(&reg);
    Sandbox::new().ok(&["chart", "pull", &format!("{prefix}/alpha:1.1.0")]);
    assert_eq!(wait_logged(&reg, "GET", "/v2/mirror/alpha/blobs/", 2), 2);
    assert!(
        pings(&reg) - before <= 2,
        "{} pings for a pull",
        pings(&reg) - before
    );
}
