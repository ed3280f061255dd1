//! `chart save`: the seed's output, the on-disk layout, reproducible packaging, Helm's
//! `.helmignore` rules, packaged charts and provenance, and how the tag is chosen.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{
    HelmIgnore, Home, TgzBuilder, copy_dir, fixture, go_match, helm_admitted_files, human_size,
    is_hex64, read_tgz, sha256_hex, shared_testdata,
};

const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
const CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const PROV_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn oracles_agree_with_helm_examples() {
    assert_eq!(human_size(454), "454 B");
    assert_eq!(human_size(4403), "4.3 KiB");
    assert_eq!(human_size(28_774), "28.1 KiB");
    assert!(go_match("*.bak", "a.bak") && !go_match("*.bak", "a/b.bak"));
    assert!(go_match("*[^~]", "notes.txt") && !go_match("*[^~]", "notes.txt~"));
    assert!(go_match("templates/.?*", "templates/.hidden"));
    assert!(!go_match("templates/.?*", "templates/sub/.hidden"));
    let rules = HelmIgnore::parse("*.bak\n/secret.yaml\ntmp/\n!*[^~]\n");
    assert!(rules.ignored("a/b.bak", false));
    assert!(rules.ignored("secret.yaml", false) && !rules.ignored("docs/secret.yaml", false));
    assert!(rules.ignored("tmp", true) && !rules.ignored("docs/tmp", false));
    assert!(rules.ignored("x~", false) && !rules.ignored("x", false));
    assert!(rules.ignored("templates/.hidden", false));
}

#[test]
fn save_dir_prints_the_seed_summary() {
    let home = Home::new();
    let run = home.ok(&[
        "chart".as_ref(),
        "save".as_ref(),
        fixture("simple").as_os_str(),
        "localhost:5000/myrepo/simple:0.1.0".as_ref(),
    ]);
    let lines = run.lines();
    assert_eq!(lines.len(), 5, "{}", run.describe());
    assert_eq!(lines[0], "Name: simple");
    assert_eq!(lines[1], "Version: 0.1.0");
    for (line, key) in [(lines[2], "Meta: sha256:"), (lines[3], "Content: sha256:")] {
        let hex = line
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("{line:?} should start with {key:?}"));
        assert!(is_hex64(hex), "{line:?}: not 64 lowercase hex digits");
    }
    assert_eq!(lines[4], "0.1.0: saved");
    assert_eq!(run.stderr, "", "no warnings expected for a clean chart");
}

#[test]
fn save_dir_lays_out_the_cache() {
    let home = Home::new();
    let reference = "localhost:5000/myrepo/simple:0.1.0";
    let saved = home.save(&fixture("simple"), Some(reference));
    let reg = home.registry();

    // blobs/sha256/<hex>: only regular files, each named by its own hash.
    let blobs = home.blob_names();
    assert_eq!(blobs.len(), 3, "config, content and manifest: {blobs:?}");
    for name in &blobs {
        let path = home.blob_path(name);
        assert!(fs::symlink_metadata(&path).unwrap().is_file(), "{name}");
        assert_eq!(&sha256_hex(&fs::read(&path).unwrap()), name, "blob {name}");
    }
    assert!(blobs.contains(&saved.meta) && blobs.contains(&saved.content));

    // charts/<name>/versions/<version>
    assert!(reg.join("charts/simple/versions/0.1.0").is_file());

    // refs/localhost_5000/myrepo/simple/tags/0.1.0/{chart,content,meta,manifest}: relative
    // symlinks that resolve inside the cache.
    let dir = reg.join("refs/localhost_5000/myrepo/simple/tags/0.1.0");
    assert_eq!(dir, home.ref_dir(reference));
    let mut links: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    links.sort();
    assert_eq!(links, ["chart", "content", "manifest", "meta"]);
    let canonical_reg = fs::canonicalize(&reg).unwrap();
    for link in &links {
        let path = dir.join(link);
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{link} should be a symlink"
        );
        let target = fs::read_link(&path).unwrap();
        assert!(
            target.is_relative(),
            "{link} -> {} should be relative",
            target.display()
        );
        let resolved = fs::canonicalize(&path)
            .unwrap_or_else(|e| panic!("{link} -> {} does not resolve: {e}", target.display()));
        assert!(
            resolved.starts_with(&canonical_reg),
            "{link} leaves the cache"
        );
    }
    let resolved = |link: &str| fs::canonicalize(dir.join(link)).unwrap();
    assert_eq!(
        resolved("chart"),
        canonical_reg.join("charts/simple/versions/0.1.0")
    );
    assert_eq!(
        resolved("content"),
        canonical_reg.join("blobs/sha256").join(&saved.content)
    );
    assert_eq!(
        resolved("meta"),
        canonical_reg.join("blobs/sha256").join(&saved.meta)
    );
    let manifest_hex = home.link_hex(reference, "manifest");
    assert_eq!(
        resolved("manifest"),
        canonical_reg.join("blobs/sha256").join(&manifest_hex)
    );

    // oci-layout and index.json.
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout, serde_json::json!({"imageLayoutVersion": "1.0.0"}));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(reg.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let entry = &manifests[0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        reference
    );
    assert_eq!(entry["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(entry["digest"], format!("sha256:{manifest_hex}"));
    assert_eq!(
        entry["size"],
        home.read_blob(&manifest_hex).len() as u64,
        "index size"
    );

    // meta: the config blob, Chart.yaml as JSON with name and version.
    let meta: serde_json::Value = serde_json::from_slice(&home.read_blob(&saved.meta)).unwrap();
    assert_eq!(meta["name"], "simple");
    assert_eq!(meta["version"], "0.1.0");
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["appVersion"], "1.16.0");

    // manifest: Helm's shape.
    let raw = home.read_blob(&manifest_hex);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert!(
        manifest.get("mediaType").is_none(),
        "Helm's manifests have no top-level mediaType: {manifest}"
    );
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(
        manifest["config"]["digest"],
        format!("sha256:{}", saved.meta)
    );
    assert_eq!(
        manifest["config"]["size"],
        home.read_blob(&saved.meta).len() as u64
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], CHART_MEDIA_TYPE);
    assert_eq!(layers[0]["digest"], format!("sha256:{}", saved.content));
    assert_eq!(
        layers[0]["size"],
        home.read_blob(&saved.content).len() as u64
    );
    let ann = &manifest["annotations"];
    assert_eq!(ann["org.opencontainers.image.title"], "simple");
    assert_eq!(ann["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(
        ann["org.opencontainers.image.description"],
        "A small hand-written chart for chartcache's integration tests"
    );
    assert_eq!(
        ann["org.opencontainers.image.url"],
        "https://example.com/simple"
    );
    assert_eq!(
        ann["org.opencontainers.image.source"],
        "https://example.com/simple/src"
    );
    assert_eq!(
        ann["org.opencontainers.image.authors"],
        "Jane Doe (jane@example.com), John Roe"
    );
    assert_eq!(ann["example.com/team"], "charts");
    assert!(
        ann.get("org.opencontainers.image.created").is_none(),
        "no created annotation without SOURCE_DATE_EPOCH: {manifest}"
    );

    home.verify_ok();
}

/// Copies `src` to `dst` creating files in reverse order, with other modes and mtimes.
fn copy_scrambled(src: &Path, dst: &Path, mtime: SystemTime, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut files: Vec<_> = common::read_tree(src).into_iter().collect();
    files.reverse();
    for (rel, data) in files {
        let p = dst.join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    touch_all(dst, mtime);
}

/// Sets the mtime of every file and directory under `dir`.
fn touch_all(dir: &Path, mtime: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            touch_all(&path, mtime);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }
    fs::File::open(dir).unwrap().set_modified(mtime).unwrap();
}

#[test]
fn save_is_reproducible_whatever_the_mtimes_modes_and_creation_order() {
    let home = Home::new();
    let a = home.scratch("a").join("simple");
    let b = home.scratch("b").join("simple");
    copy_dir(&fixture("simple"), &a);
    touch_all(
        &a,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
    );
    copy_scrambled(
        &fixture("simple"),
        &b,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000),
        0o600,
    );

    let sa = home.save(&a, Some("localhost:5000/a/simple:0.1.0"));
    let sb = home.save(&b, Some("localhost:5000/b/simple:0.1.0"));
    let other = Home::new();
    let sf = other.save(&fixture("simple"), None);
    assert_eq!(
        sa.content, sb.content,
        "content digest depends on mtimes/order/modes"
    );
    assert_eq!(
        sa.content, sf.content,
        "content digest depends on the machine"
    );
    assert_eq!(sa.meta, sb.meta);
    assert_eq!(sa.meta, sf.meta);
    // Same chart, same digests: the manifests are shared too.
    assert_eq!(
        home.link_hex("localhost:5000/a/simple:0.1.0", "manifest"),
        home.link_hex("localhost:5000/b/simple:0.1.0", "manifest")
    );
    assert_eq!(home.blob_names().len(), 3);
}

#[test]
fn source_date_epoch_sets_mtimes_and_the_created_annotation() {
    let home = Home::new();
    let plain = home.save(&fixture("simple"), Some("localhost/simple:plain"));
    let run = |tag: &str, epoch: &str| {
        let out = home
            .cmd()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["chart", "save"])
            .arg(fixture("simple"))
            .arg(format!("localhost/simple:{tag}"))
            .output()
            .unwrap();
        common::parse_saved(&common::Run::from_output(out))
    };
    let e1 = run("epoch1", "1700000000");
    let e1_again = run("epoch1-again", "1700000000");
    let e2 = run("epoch2", "1700000001");
    assert_ne!(
        plain.content, e1.content,
        "SOURCE_DATE_EPOCH should change the content digest"
    );
    assert_ne!(e1.content, e2.content);
    assert_eq!(
        e1.content, e1_again.content,
        "the same epoch should give the same digest"
    );
    assert_eq!(
        plain.meta, e1.meta,
        "the config blob does not depend on time"
    );

    let manifest = home.manifest("localhost/simple:epoch1");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    let entries = home.content_entries("localhost/simple:epoch1");
    assert!(!entries.is_empty());
    for e in &entries {
        assert_eq!(e.mtime, 1_700_000_000, "{}", e.path);
    }
    let plain_manifest = home.manifest("localhost/simple:plain");
    assert!(
        plain_manifest["annotations"]
            .get("org.opencontainers.image.created")
            .is_none()
    );
}

#[test]
fn content_tgz_is_normalized() {
    let home = Home::new();
    let saved = home.save(
        &fixture("simple"),
        Some("localhost:5000/myrepo/simple:0.1.0"),
    );
    let bytes = home.read_blob(&saved.content);
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8], "gzip, deflate");
    assert_eq!(
        &bytes[4..8],
        &[0, 0, 0, 0],
        "no timestamp in the gzip header"
    );

    let entries = read_tgz(&bytes);
    let source = common::read_tree(&fixture("simple"));
    let mut expected: Vec<String> = source
        .keys()
        .filter(|k| *k != "Chart.yaml")
        .cloned()
        .collect();
    expected.sort();
    expected.insert(0, "Chart.yaml".into());
    let expected: Vec<String> = expected.iter().map(|p| format!("simple/{p}")).collect();
    let got: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        got, expected,
        "entries: under simple/, Chart.yaml first, then byte order, no directories"
    );
    for e in &entries {
        assert_eq!(e.kind, tar::EntryType::Regular, "{}", e.path);
        assert_eq!(e.mode, 0o644, "{}: mode {:o}", e.path, e.mode);
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path);
        assert_eq!(e.mtime, 0, "{}", e.path);
        assert!(
            e.username.is_empty() && e.groupname.is_empty(),
            "{}",
            e.path
        );
        let rel = e.path.strip_prefix("simple/").unwrap();
        assert_eq!(e.data, source[rel], "{} differs from the source", e.path);
    }
}

#[test]
fn helmignore_follows_helms_rules() {
    let home = Home::new();
    let reference = "localhost:5000/charts/with-helmignore:0.3.0";
    home.save(&fixture("with-helmignore"), Some(reference));
    let got: BTreeSet<String> = home
        .content_entries(reference)
        .into_iter()
        .map(|e| {
            e.path
                .strip_prefix("with-helmignore/")
                .unwrap_or_else(|| panic!("{} is outside the chart folder", e.path))
                .to_string()
        })
        .collect();
    // Kept, and why.
    for kept in [
        "Chart.yaml",
        ".helmignore",              // Helm packages the .helmignore itself
        ".config",                  // dotfiles outside templates/ are kept
        "values.yaml",              //
        "notes.txt",                // matches the negated rule, so evaluation goes on
        "docs/guide.md",            // docs/*.draft does not match
        "docs/secret.yaml",         // /secret.yaml is anchored to the root
        "docs/tmp",                 // tmp/ only matches directories
        "templates/configmap.yaml", //
        "templates/sub/.hidden",    // the default templates/.?* is not recursive
    ] {
        assert!(got.contains(kept), "{kept} should be packaged: {got:?}");
    }
    // Left out, and why.
    for (gone, why) in [
        ("values.yaml.bak", "*.bak"),
        (
            "templates/configmap.yaml.bak",
            "*.bak matches base names at any depth",
        ),
        (
            "keep.bak",
            "a negation never re-includes what *.bak ignored",
        ),
        ("secret.yaml", "/secret.yaml"),
        ("tmp/scratch.yaml", "tmp/"),
        ("templates/tmp/scratch.yaml", "tmp/ matches at any depth"),
        ("docs/guide.draft", "docs/*.draft"),
        (
            "notes.txt~",
            "Helm's negation ignores what it does not match",
        ),
        ("templates/.hidden", "Helm's default rule templates/.?*"),
    ] {
        assert!(!got.contains(gone), "{gone} should be ignored ({why})");
    }
    assert_eq!(got.len(), 10, "{got:?}");
    // The independent model of Helm's rules agrees.
    let model: BTreeSet<String> = helm_admitted_files(&fixture("with-helmignore"))
        .into_keys()
        .collect();
    assert_eq!(got, model);
}

#[test]
fn templates_dotfiles_are_ignored_without_a_helmignore() {
    let home = Home::new();
    let dir = home.scratch("c").join("simple");
    copy_dir(&fixture("simple"), &dir);
    fs::write(dir.join("templates/.hidden"), "x").unwrap();
    fs::write(dir.join("templates/.a.yaml.swp"), "x").unwrap();
    fs::write(dir.join(".root-dotfile"), "x").unwrap();
    home.save(&dir, None);
    let got: Vec<String> = home
        .content_entries("localhost/simple:0.1.0")
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(
        !got.contains(&"simple/templates/.hidden".to_string()),
        "{got:?}"
    );
    assert!(
        !got.contains(&"simple/templates/.a.yaml.swp".to_string()),
        "{got:?}"
    );
    assert!(got.contains(&"simple/.root-dotfile".to_string()), "{got:?}");
}

#[test]
fn symlinks_inside_the_chart_are_followed_and_boms_stripped() {
    let home = Home::new();
    let dir = home.scratch("c").join("simple");
    copy_dir(&fixture("simple"), &dir);
    std::os::unix::fs::symlink("deployment.yaml", dir.join("templates/link.yaml")).unwrap();
    std::os::unix::fs::symlink("templates", dir.join("more")).unwrap();
    let values = fs::read(dir.join("values.yaml")).unwrap();
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(&values);
    fs::write(dir.join("values.yaml"), &with_bom).unwrap();
    let chart = fs::read(dir.join("Chart.yaml")).unwrap();
    let mut chart_bom = b"\xEF\xBB\xBF".to_vec();
    chart_bom.extend_from_slice(&chart);
    fs::write(dir.join("Chart.yaml"), &chart_bom).unwrap();

    let saved = home.save(&dir, Some("localhost/simple:links"));
    assert_eq!(saved.name, "simple");
    let entries = home.content_entries("localhost/simple:links");
    let by_path = |p: &str| {
        entries
            .iter()
            .find(|e| e.path == p)
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    let link = by_path("simple/templates/link.yaml");
    assert_eq!(link.kind, tar::EntryType::Regular);
    assert_eq!(
        link.data,
        fs::read(dir.join("templates/deployment.yaml")).unwrap()
    );
    assert_eq!(
        by_path("simple/more/service.yaml").data,
        fs::read(dir.join("templates/service.yaml")).unwrap()
    );
    assert_eq!(
        by_path("simple/values.yaml").data,
        values,
        "the BOM should be stripped"
    );
    assert_eq!(
        by_path("simple/Chart.yaml").data,
        chart,
        "the BOM should be stripped"
    );
    let got: BTreeSet<String> = entries
        .iter()
        .map(|e| e.path.trim_start_matches("simple/").to_string())
        .collect();
    let model: BTreeSet<String> = helm_admitted_files(&dir).into_keys().collect();
    assert_eq!(got, model);
}

#[test]
fn subcharts_are_packaged_and_a_missing_dependency_is_a_warning() {
    let home = Home::new();
    let run = home.ok(&[
        "chart".as_ref(),
        "save".as_ref(),
        fixture("with-subcharts").as_os_str(),
        "localhost:5000/charts/with-subcharts".as_ref(),
    ]);
    let saved = common::parse_saved(&run);
    assert_eq!(saved.tag, "1.0.0");
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", run.describe());
    assert!(
        warnings[0].starts_with("WARNING") && warnings[0].contains("missingdep"),
        "{}",
        run.describe()
    );
    assert!(
        !warnings[0].contains("\"subdir\"") && !warnings[0].contains("\"subtgz\""),
        "present subcharts are not missing: {}",
        run.describe()
    );
    let entries = home.content_entries("localhost:5000/charts/with-subcharts:1.0.0");
    let paths: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "with-subcharts/charts/subdir/Chart.yaml",
        "with-subcharts/charts/subdir/values.yaml",
        "with-subcharts/charts/subdir/templates/configmap.yaml",
        "with-subcharts/charts/subtgz-0.2.0.tgz",
    ] {
        assert!(paths.contains(p), "{p} missing from {paths:?}");
    }
    let tgz = entries
        .iter()
        .find(|e| e.path == "with-subcharts/charts/subtgz-0.2.0.tgz")
        .unwrap();
    assert_eq!(
        tgz.data,
        fs::read(fixture("with-subcharts/charts/subtgz-0.2.0.tgz")).unwrap(),
        "a packaged subchart is stored as is"
    );
}

#[test]
fn tag_defaults_to_the_chart_version() {
    let home = Home::new();
    // A ref without a tag.
    let s = home.save(&fixture("simple"), Some("localhost:5000/charts/simple"));
    assert_eq!(s.tag, "0.1.0");
    // The oci:// scheme is accepted, an explicit tag wins.
    let s = home.save(
        &fixture("simple"),
        Some("oci://localhost:5000/charts/simple:stable"),
    );
    assert_eq!(s.tag, "stable");
    // No ref at all: localhost/<name>:<version>.
    let s = home.save(&fixture("simple"), None);
    assert_eq!(s.tag, "0.1.0");
    // `+` in the version becomes `_` in the tag; the version itself is kept.
    let run = home.ok(&[
        "chart".as_ref(),
        "save".as_ref(),
        fixture("v1-requirements").as_os_str(),
        "localhost:5000/charts/v1-requirements".as_ref(),
    ]);
    let s = common::parse_saved(&run);
    assert_eq!(s.version, "2.0.1+build.7");
    assert_eq!(s.tag, "2.0.1_build.7");
    // requirements.yaml dependencies count too (apiVersion v1).
    assert!(
        run.stderr.starts_with("WARNING") && run.stderr.contains("postgresql"),
        "{}",
        run.describe()
    );

    let list = home.list_json();
    let refs: Vec<&str> = list.iter().map(|e| e["ref"].as_str().unwrap()).collect();
    assert_eq!(
        refs,
        [
            "localhost/simple:0.1.0",
            "localhost:5000/charts/simple:0.1.0",
            "localhost:5000/charts/simple:stable",
            "localhost:5000/charts/v1-requirements:2.0.1_build.7",
        ]
    );
    let v1 = &list[3];
    assert_eq!(v1["version"], "2.0.1+build.7");
    assert_eq!(v1["name"], "v1-requirements");
    assert!(
        home.registry()
            .join("charts/v1-requirements/versions/2.0.1+build.7")
            .is_file()
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&home.read_blob(&s.meta)).expect("meta JSON");
    assert_eq!(meta["apiVersion"], "v1");
    assert_eq!(meta["version"], "2.0.1+build.7");
}

#[test]
fn a_repository_named_unlike_the_chart_is_a_warning() {
    let home = Home::new();
    let run = home.ok(&[
        "chart".as_ref(),
        "save".as_ref(),
        fixture("simple").as_os_str(),
        "localhost:5000/charts/other:1".as_ref(),
    ]);
    let saved = common::parse_saved(&run);
    assert_eq!(saved.tag, "1");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert!(
        lines[0].starts_with("WARNING")
            && lines[0].contains("other")
            && lines[0].contains("simple"),
        "{}",
        run.describe()
    );
    assert_eq!(home.list_refs(), ["localhost:5000/charts/other:1"]);
}

#[test]
fn saving_again_replaces_the_tag() {
    let home = Home::new();
    let dir = home.scratch("c").join("simple");
    copy_dir(&fixture("simple"), &dir);
    let first = home.save(&dir, Some("localhost/simple:dev"));
    fs::write(dir.join("README.md"), "changed\n").unwrap();
    let second = home.save(&dir, Some("localhost/simple:dev"));
    assert_ne!(first.content, second.content);
    let list = home.list_json();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], format!("sha256:{}", second.content));
    assert_eq!(
        home.link_hex("localhost/simple:dev", "content"),
        second.content
    );
    home.verify_ok();
}

/// A small chart package that is not normalized (directory entries, mode 0755, an mtime).
fn foreign_tgz(path: &Path) -> Vec<u8> {
    let bytes = TgzBuilder::new()
        .dir("mychart/")
        .file(
            "mychart/Chart.yaml",
            b"apiVersion: v2\nname: mychart\nversion: 0.4.2\ndescription: packaged elsewhere\n",
        )
        .file("mychart/values.yaml", b"a: 1\n")
        .dir("mychart/templates/")
        .file("mychart/templates/cm.yaml", b"kind: ConfigMap\n")
        .finish();
    fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn save_tgz_stores_the_package_byte_for_byte() {
    let home = Home::new();
    let tgz = home.scratch("pkg").join("mychart-0.4.2.tgz");
    let bytes = foreign_tgz(&tgz);
    let saved = home.save(&tgz, None);
    assert_eq!(saved.name, "mychart");
    assert_eq!(saved.version, "0.4.2");
    assert_eq!(saved.tag, "0.4.2");
    assert_eq!(saved.content, sha256_hex(&bytes));
    assert_eq!(home.read_blob(&saved.content), bytes);
    assert_eq!(home.list_refs(), ["localhost/mychart:0.4.2"]);
    let manifest = home.manifest("localhost/mychart:0.4.2");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert!(
        !home
            .ref_dir("localhost/mychart:0.4.2")
            .join("prov")
            .exists()
    );

    // The checked-in subchart package too.
    let sub = fixture("with-subcharts/charts/subtgz-0.2.0.tgz");
    let saved = home.save(&sub, Some("localhost:5000/charts/subtgz"));
    assert_eq!(
        (saved.name.as_str(), saved.tag.as_str()),
        ("subtgz", "0.2.0")
    );
    assert_eq!(saved.content, sha256_hex(&fs::read(&sub).unwrap()));
    home.verify_ok();
}

#[test]
fn a_prov_file_beside_the_package_becomes_a_layer() {
    let home = Home::new();
    let dir = home.scratch("pkg");
    let tgz = dir.join("mychart-0.4.2.tgz");
    let bytes = foreign_tgz(&tgz);
    let prov = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nname: mychart\n...\nfiles:\n  mychart-0.4.2.tgz: sha256:x\n-----BEGIN PGP SIGNATURE-----\n\nwsBcBAEBCgAQ\n-----END PGP SIGNATURE-----\n";
    fs::write(dir.join("mychart-0.4.2.tgz.prov"), prov).unwrap();
    let reference = "localhost:5000/signed/mychart:0.4.2";
    let saved = home.save(&tgz, Some(reference));
    assert_eq!(saved.content, sha256_hex(&bytes));

    let prov_hex = sha256_hex(prov);
    assert_eq!(home.link_hex(reference, "prov"), prov_hex);
    assert_eq!(home.read_blob(&prov_hex), prov);
    let prov_target = fs::read_link(home.ref_dir(reference).join("prov")).unwrap();
    assert!(prov_target.is_relative());

    let manifest = home.manifest(reference);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    let digests: Vec<&str> = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let mut sorted = digests.clone();
    sorted.sort();
    assert_eq!(digests, sorted, "layers are sorted by digest, as Helm does");
    let prov_layer = layers
        .iter()
        .find(|l| l["mediaType"] == PROV_MEDIA_TYPE)
        .expect("a provenance layer");
    assert_eq!(prov_layer["digest"], format!("sha256:{prov_hex}"));
    assert_eq!(prov_layer["size"], prov.len());
    let chart_layer = layers
        .iter()
        .find(|l| l["mediaType"] == CHART_MEDIA_TYPE)
        .expect("a chart layer");
    assert_eq!(chart_layer["digest"], format!("sha256:{}", saved.content));
    home.verify_ok();
}

#[test]
fn links_leaving_the_chart_are_followed_like_helm_package() {
    let home = Home::new();
    let base = home.scratch("c");
    let dir = base.join("simple");
    copy_dir(&fixture("simple"), &dir);
    fs::write(base.join("LICENSE"), "shared licence\n").unwrap();
    fs::create_dir_all(base.join("shared/templates")).unwrap();
    fs::write(
        base.join("shared/templates/common.yaml"),
        "kind: ConfigMap\n",
    )
    .unwrap();
    // Relative and absolute links to a file, and a link to a directory, all outside the chart.
    std::os::unix::fs::symlink("../LICENSE", dir.join("LICENSE")).unwrap();
    std::os::unix::fs::symlink(base.join("LICENSE"), dir.join("NOTICE")).unwrap();
    std::os::unix::fs::symlink("../shared", dir.join("shared")).unwrap();

    let run = home.ok(&[
        "chart".as_ref(),
        "save".as_ref(),
        dir.as_os_str(),
        "localhost/simple:out".as_ref(),
    ]);
    for link in ["LICENSE", "NOTICE", "shared"] {
        let shown = dir.join(link).display().to_string();
        assert!(
            run.stderr.contains(&shown) && run.stderr.contains("outside the chart"),
            "a warning should name {shown}\n{}",
            run.describe()
        );
    }
    let entries = home.content_entries("localhost/simple:out");
    let data = |p: &str| {
        entries
            .iter()
            .find(|e| e.path == p)
            .map(|e| e.data.clone())
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    assert_eq!(data("simple/LICENSE"), b"shared licence\n");
    assert_eq!(data("simple/NOTICE"), b"shared licence\n");
    assert_eq!(
        data("simple/shared/templates/common.yaml"),
        b"kind: ConfigMap\n"
    );
    let got: BTreeSet<String> = entries
        .iter()
        .map(|e| e.path.trim_start_matches("simple/").to_string())
        .collect();
    let model: BTreeSet<String> = helm_admitted_files(&dir).into_keys().collect();
    assert_eq!(got, model);
    home.verify_ok();
}

/// Every chart directory of Helm's own loader and action test data saves, holding exactly the
/// files Helm's loader reads from it, with the links Helm's tests create put back (the shared
/// copy has none): `frobnitz_with_symlink/LICENSE -> ../LICENSE`, which Helm loads, and
/// `frobnitz_with_dev_null/null -> /dev/null`, which Helm refuses.
#[test]
fn helms_loader_test_directories_save_as_helm_loads_them() {
    let Some(loader) = shared_testdata("helm-testdata/pkg/chart/v2/loader/testdata") else {
        return;
    };
    let Some(charts) = shared_testdata("helm-testdata/pkg/action/testdata/charts") else {
        return;
    };
    let home = Home::new();
    let work = home.scratch("helm");
    let mut dirs = Vec::new();
    for parent in [&loader, &charts] {
        let mut found: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("Chart.yaml").is_file())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    assert_eq!(
        dirs.len(),
        19,
        "the shared test data has 9 + 10 chart directories: {dirs:?}"
    );
    fs::copy(loader.join("LICENSE"), work.join("LICENSE")).unwrap();
    for (i, src) in dirs.iter().enumerate() {
        let base = src.file_name().unwrap().to_string_lossy().into_owned();
        let dir = work.join(&base);
        copy_dir(src, &dir);
        if base == "frobnitz_with_symlink" {
            std::os::unix::fs::symlink("../LICENSE", dir.join("LICENSE")).unwrap();
        }
        if base == "frobnitz_with_dev_null" {
            fs::remove_file(dir.join("null")).unwrap();
            std::os::unix::fs::symlink("/dev/null", dir.join("null")).unwrap();
            let before = home.snapshot();
            let run = home.run(&["chart".as_ref(), "save".as_ref(), dir.as_os_str()]);
            run.assert_error(&[&dir.join("null").display().to_string(), "irregular"]);
            common::assert_same_snapshot(&before, &home.snapshot(), &base);
            continue;
        }
        let reference = format!("localhost:5000/helm{i}/{base}");
        let saved = home.save(&dir, Some(&reference));
        let full = format!("{reference}:{}", saved.tag);
        let prefix = format!("{}/", saved.name);
        let got: BTreeSet<String> = home
            .content_entries(&full)
            .iter()
            .map(|e| {
                e.path
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("{base}: {} not under {prefix}", e.path))
                    .to_string()
            })
            .collect();
        let model: BTreeSet<String> = helm_admitted_files(&dir).into_keys().collect();
        assert_eq!(got, model, "{base}");
        if base == "frobnitz_with_symlink" {
            assert!(got.contains("LICENSE"), "{got:?}");
        }
    }
    home.verify_ok();
}

#[test]
fn helms_own_test_packages_save() {
    let Some(charts) = shared_testdata("helm-testdata/pkg/action/testdata/charts") else {
        return;
    };
    let Some(loader) = shared_testdata("helm-testdata/pkg/chart/v2/loader/testdata") else {
        return;
    };
    let home = Home::new();
    let cases = [
        (
            charts.join("compressedchart-0.1.0.tgz"),
            "compressedchart",
            "0.1.0",
        ),
        (
            charts.join("compressedchart-0.2.0.tgz"),
            "compressedchart",
            "0.2.0",
        ),
        (
            charts.join("compressedchart-0.3.0.tgz"),
            "compressedchart",
            "0.3.0",
        ),
        (
            charts.join("compressedchart-with-hyphens-0.1.0.tgz"),
            "compressedchart-with-hyphens",
            "0.1.0",
        ),
        (
            charts.join("pre-release-chart-0.1.0-alpha.tgz"),
            "pre-release-chart",
            "0.1.0-alpha",
        ),
        (
            charts.join("chart-with-compressed-dependencies-2.1.8.tgz"),
            "chart-with-compressed-dependencies",
            "2.1.8",
        ),
        (
            charts.join("chart-with-uncompressed-dependencies-2.1.8.tgz"),
            "chart-with-uncompressed-dependencies",
            "2.1.8",
        ),
        (loader.join("frobnitz-1.2.3.tgz"), "frobnitz", "1.2.3"),
        (loader.join("frobnitz.v1.tgz"), "frobnitz", "1.2.3"),
        (loader.join("frobnitz_with_bom.tgz"), "frobnitz", "1.2.3"),
    ];
    for (i, (path, name, version)) in cases.iter().enumerate() {
        let reference = format!("localhost:5000/helm{i}/{name}");
        let saved = home.save(path, Some(&reference));
        assert_eq!(&saved.name, name, "{}", path.display());
        assert_eq!(&saved.version, version, "{}", path.display());
        assert_eq!(saved.tag, *version);
        assert_eq!(
            saved.content,
            sha256_hex(&fs::read(path).unwrap()),
            "{}: stored byte for byte",
            path.display()
        );
    }
    assert_eq!(home.list_json().len(), cases.len());
    home.verify_ok();
}

#[test]
fn helms_corrupted_package_is_refused() {
    let Some(charts) = shared_testdata("helm-testdata/pkg/action/testdata/charts") else {
        return;
    };
    let home = Home::new();
    home.save(&fixture("simple"), None);
    let before = home.snapshot();
    let path = charts.join("corrupted-compressed-chart.tgz");
    let run = home.run(&["chart".as_ref(), "save".as_ref(), path.as_os_str()]);
    run.assert_error(&[&path.display().to_string()]);
    common::assert_same_snapshot(&before, &home.snapshot(), "corrupted package");
}

#[test]
fn refs_keep_every_legal_repository_name() {
    let home = Home::new();
    let mut refs = vec![
        "[::1]:5000/my_repo/simple:1",
        "localhost:5000/my__repo/a_b/simple:1_2",
        "127.0.0.1:5000/simple:1",
        "registry.example.com:443/simple:V1",
        "localhost:5000/tags/simple:1",
        "localhost:5000/x/tags/tags/simple:tags",
        "localhost/a/tags/b/tags/simple:2",
    ];
    for r in &refs {
        home.save(&fixture("simple"), Some(r));
    }
    refs.sort();
    assert_eq!(home.list_refs(), refs);
    assert!(
        home.registry()
            .join("refs/[__1]_5000/my_repo/simple/tags/1/chart")
            .is_file()
    );
    assert!(
        home.registry()
            .join("refs/localhost_5000/my__repo/a_b/simple/tags/1_2/chart")
            .is_file()
    );
    let out = home.scratch("out");
    for r in &refs {
        let show = home.ok(&["chart", "show", r]);
        assert!(show.stdout.starts_with("apiVersion: v2"), "{r}");
        home.ok(&[
            "chart".as_ref(),
            "export".as_ref(),
            r.as_ref(),
            "-d".as_ref(),
            out.as_os_str(),
            "--force".as_ref(),
        ]);
    }
    home.verify_ok();
}

#[test]
fn refs_whose_directories_nest_do_not_clobber_each_other() {
    let home = Home::new();
    let nested = "localhost/x/tags/simple:1";
    let outer = "localhost/x:simple";
    home.save(&fixture("simple"), Some(nested));
    home.save(&fixture("simple"), Some(outer));
    assert_eq!(
        home.list_refs(),
        [outer, nested],
        "saving {outer} lost {nested}"
    );
    home.verify_ok();
    home.save(&fixture("with-helmignore"), Some(outer));
    assert_eq!(
        home.list_refs(),
        [outer, nested],
        "re-saving {outer} lost {nested}"
    );
    home.ok(&["chart", "rm", outer]);
    assert_eq!(home.list_refs(), [nested], "removing {outer} lost {nested}");
    home.verify_ok();
}

#[test]
fn long_paths_survive_and_other_tars_read_them() {
    let home = Home::new();
    let dir = home.scratch("c").join("simple");
    copy_dir(&fixture("simple"), &dir);
    let long_name = format!("templates/{}.yaml", "a".repeat(120));
    let deep = format!(
        "templates/{}/{}/{}.txt",
        "d".repeat(90),
        "e".repeat(90),
        "f".repeat(120)
    );
    for (rel, data) in [(&long_name, "long\n"), (&deep, "deep\n")] {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    let saved = home.save(&dir, None);
    let paths: BTreeSet<String> = home
        .content_entries("localhost/simple:0.1.0")
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(paths.contains(&format!("simple/{long_name}")), "{paths:?}");
    assert!(paths.contains(&format!("simple/{deep}")), "{paths:?}");
    // GNU tar agrees on the names.
    if Path::new("/usr/bin/tar").is_file() {
        let out = std::process::Command::new("/usr/bin/tar")
            .arg("-tzf")
            .arg(home.blob_path(&saved.content))
            .output()
            .unwrap();
        assert!(out.status.success());
        let listed: BTreeSet<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(listed, paths, "GNU tar reads other names");
    } else {
        eprintln!("note: /usr/bin/tar is missing; skipping the GNU tar cross-check");
    }
    let out = home.scratch("out");
    home.ok(&[
        "chart".as_ref(),
        "export".as_ref(),
        "localhost/simple:0.1.0".as_ref(),
        "-d".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        common::read_tree(&out.join("simple")),
        common::read_tree(&dir)
    );
}

#[test]
fn a_file_of_exactly_5_mib_is_allowed() {
    let home = Home::new();
    let dir = home.scratch("c").join("simple");
    copy_dir(&fixture("simple"), &dir);
    fs::write(dir.join("limit.bin"), vec![b'x'; 5 * 1024 * 1024]).unwrap();
    home.save(&dir, Some("localhost/simple:dir"));
    let tgz = home.scratch("pkg").join("limit-0.1.0.tgz");
    TgzBuilder::new()
        .file(
            "limit/Chart.yaml",
            b"apiVersion: v2\nname: limit\nversion: 0.1.0\n",
        )
        .zeros("limit/limit.bin", 5 * 1024 * 1024)
        .write(&tgz);
    home.save(&tgz, None);
    home.verify_ok();
}
