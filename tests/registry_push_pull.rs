//! `chart push`, `chart pull` and `registry tags` against a real registry (CNCF distribution
//! 2.8 on 127.0.0.1, plain HTTP): the seed's walkthrough, byte-identical manifests, skipped
//! re-uploads, tag listing order, skopeo copies, and artifacts of older Helm versions.

mod fault;
mod support;

use fault::{
    OCI_MANIFEST, Sandbox, count_logged, error_line_of, get_manifest, put_manifest, sha256_hex,
    upload_blob, wait_logged,
};
use support::{Registry, Skopeo, chart_tgz, oci_layout_with_chart};

/// Lines of `text`, for comparing whole outputs.
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

#[test]
fn seed_walkthrough_save_push_remove_pull() {
    let reg = Registry::builder().log_level("info").start();
    let host = reg.host();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:2.7.0");
    sb.save("mychart", "2.7.0", &reference);
    let meta = sb.ref_blob(&reference, "meta");
    let content = sb.ref_blob(&reference, "content");

    // push: the seed's five lines plus the summary.
    let out = sb.ok(&["chart", "push", &reference]);
    let total = meta.len() + content.len();
    let size = if total < 1024 {
        format!("{total} B")
    } else {
        format!("{:.1} KiB", total as f64 / 1024.0)
    };
    assert_eq!(
        lines(&out),
        [
            format!("The push refers to repository [{host}/myrepo/mychart]"),
            "Name: mychart".to_string(),
            "Version: 2.7.0".to_string(),
            format!("Meta: {}", sha256(&meta)),
            format!("Content: {}", sha256(&content)),
            format!("2.7.0: pushed to remote (2 layers, {size} total)"),
        ],
        "{out}"
    );

    // The registry holds exactly the cached bytes: remote digest == local digest.
    let cached_manifest = sb.ref_blob(&reference, "manifest");
    let remote = get_manifest(&reg, "myrepo/mychart", "2.7.0");
    assert_eq!(
        remote.text(),
        String::from_utf8_lossy(&cached_manifest),
        "the registry's manifest differs from the cache's"
    );
    assert_eq!(
        remote.header("Docker-Content-Digest"),
        Some(sb.manifest_digest(&reference).as_str())
    );
    for (blob, what) in [(&meta, "meta"), (&content, "content")] {
        let got = reg.get(&format!("/v2/myrepo/mychart/blobs/{}", sha256(blob)), &[]);
        assert_eq!(got.status, 200, "{what} blob missing on the registry");
        assert_eq!(&got.body, blob, "{what} blob differs on the registry");
    }
    let remote_manifest: serde_json::Value = remote.json();
    assert_eq!(remote_manifest["config"]["digest"], sha256(&meta));
    assert_eq!(remote_manifest["layers"][0]["digest"], sha256(&content));

    // remove + prune empties the cache; pull brings the chart back.
    assert_eq!(sb.ok(&["chart", "rm", &reference]).trim(), "2.7.0: removed");
    sb.ok(&["chart", "prune"]);
    assert!(
        sb.snapshot().under("blobs/sha256/").is_empty(),
        "prune left blobs: {:?}",
        sb.snapshot().under("blobs/sha256/")
    );
    let out = sb.ok(&["chart", "pull", &reference]);
    assert_eq!(
        lines(&out),
        [
            format!("2.7.0: Pulling from {host}/myrepo/mychart"),
            "Name: mychart".to_string(),
            "Version: 2.7.0".to_string(),
            format!("Meta: {}", sha256(&meta)),
            format!("Content: {}", sha256(&content)),
            format!("Status: Downloaded newer chart for {reference}"),
        ],
        "{out}"
    );
    assert_eq!(sb.ref_blob(&reference, "manifest"), cached_manifest);
    assert_eq!(sb.ref_blob(&reference, "meta"), meta);
    assert_eq!(sb.ref_blob(&reference, "content"), content);

    // A second pull finds the chart current and downloads no blob.
    let blob_gets = count_logged(&reg, "GET", "/v2/myrepo/mychart/blobs/");
    assert!(
        blob_gets >= 2,
        "the first pull fetched no blob?\n{}",
        reg.log()
    );
    let before = sb.snapshot();
    let out = sb.ok(&["chart", "pull", &reference]);
    assert_eq!(
        out.lines().last(),
        Some(format!("Status: Chart is up to date for {reference}").as_str()),
        "{out}"
    );
    assert_eq!(
        count_logged(&reg, "GET", "/v2/myrepo/mychart/blobs/"),
        blob_gets,
        "an up-to-date pull downloaded blobs"
    );
    let changed: Vec<String> = sb
        .snapshot()
        .changes_since(&before)
        .into_iter()
        .filter(|c| c.contains("blobs/") || c.contains("refs/"))
        .collect();
    assert!(
        changed.is_empty(),
        "an up-to-date pull changed the cache: {changed:?}"
    );

    // Pull by manifest digest, into an empty cache: the tag comes from the chart version.
    let digest = sb.manifest_digest(&reference);
    sb.ok(&["chart", "rm", &reference]);
    sb.ok(&["chart", "prune"]);
    let by_digest = format!("{host}/myrepo/mychart@{digest}");
    let out = sb.ok(&["chart", "pull", &by_digest]);
    assert_eq!(
        out.lines().next(),
        Some(format!("{digest}: Pulling from {host}/myrepo/mychart").as_str()),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer chart for {reference}")),
        "{out}"
    );
    assert_eq!(sb.ref_blob(&reference, "manifest"), cached_manifest);
    let verify = sb.ok(&["chart", "verify"]);
    assert!(verify.contains("OK"), "{verify}");
}

#[test]
fn pushing_again_uploads_nothing_and_a_second_repository_gets_the_same_digest() {
    let reg = Registry::builder().log_level("info").start();
    let host = reg.host();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:1.0.0");
    sb.save("mychart", "1.0.0", &reference);
    let uploads = "/v2/myrepo/mychart/blobs/uploads/";
    let manifest_puts = "/v2/myrepo/mychart/manifests/";
    sb.ok(&["chart", "push", &reference]);
    // The manifest goes last: once its request is logged, the uploads' are too.
    assert_eq!(wait_logged(&reg, "PUT", manifest_puts, 1), 1);
    assert_eq!(
        count_logged(&reg, "POST", uploads),
        2,
        "first push: config and chart layer\n{}",
        reg.log()
    );

    let out = sb.ok(&["chart", "push", &reference]);
    assert!(
        out.contains("1.0.0: pushed to remote (2 layers,"),
        "a repeated push still reports success: {out}"
    );
    assert_eq!(wait_logged(&reg, "PUT", manifest_puts, 2), 2);
    assert_eq!(
        count_logged(&reg, "POST", uploads),
        2,
        "the second push uploaded blobs the registry already had"
    );
    assert_eq!(
        count_logged(&reg, "PUT", uploads),
        2,
        "the second push uploaded blobs the registry already had"
    );

    // The same chart under another repository of the same registry (mounted or uploaded).
    let other = format!("{host}/other/mychart:1.0.0");
    let tagged = sb.ok(&["chart", "tag", &reference, &other]);
    assert_eq!(tagged.trim(), "1.0.0: tagged");
    sb.ok(&["chart", "push", &other]);
    let first = get_manifest(&reg, "myrepo/mychart", "1.0.0");
    let second = get_manifest(&reg, "other/mychart", "1.0.0");
    assert_eq!(first.body, second.body);
    assert_eq!(
        second.header("Docker-Content-Digest"),
        Some(sb.manifest_digest(&reference).as_str())
    );
    for digest in [
        sha256(&sb.ref_blob(&other, "meta")),
        sha256(&sb.ref_blob(&other, "content")),
    ] {
        let head = reg.request(
            "HEAD",
            &format!("/v2/other/mychart/blobs/{digest}"),
            &[],
            &[],
        );
        assert_eq!(head.status, 200, "{digest} missing in other/mychart");
    }
}

/// Saves `mychart` at each version under `HOST/myrepo/mychart` (tag from the version) and
/// pushes it.
fn publish_versions(sb: &Sandbox, host: &str, versions: &[&str]) {
    for v in versions {
        let out = sb.save("mychart", v, &format!("{host}/myrepo/mychart"));
        let tag = v.replace('+', "_");
        assert!(out.contains(&format!("{tag}: saved")), "{out}");
        sb.ok(&["chart", "push", &format!("{host}/myrepo/mychart:{tag}")]);
    }
}

#[test]
fn registry_tags_lists_versions_newest_first() {
    let reg = Registry::plain();
    let host = reg.host();
    let sb = Sandbox::new();
    publish_versions(
        &sb,
        &host,
        &["1.0.0", "1.2.0", "2.0.0-rc.1", "1.10.0", "1.0.0+build.1"],
    );
    // A tag that is no version at all.
    let latest = format!("{host}/myrepo/mychart:latest");
    sb.ok(&[
        "chart",
        "tag",
        &format!("{host}/myrepo/mychart:1.2.0"),
        &latest,
    ]);
    sb.ok(&["chart", "push", &latest]);
    let remote_tags = reg.get("/v2/myrepo/mychart/tags/list", &[]).json();
    let remote_tags: Vec<&str> = remote_tags["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(remote_tags.contains(&"latest") && remote_tags.contains(&"1.0.0_build.1"));

    let repo = format!("{host}/myrepo/mychart");
    let out = sb.ok(&["registry", "tags", &repo]);
    let got = lines(&out);
    assert_eq!(got.len(), 4, "{out}");
    assert_eq!(got[..2], ["1.10.0", "1.2.0"], "{out}");
    // 1.0.0 and 1.0.0+build.1 have the same SemVer precedence: either order is newest-first.
    let mut tail = got[2..].to_vec();
    tail.sort_unstable();
    assert_eq!(tail, ["1.0.0", "1.0.0+build.1"], "{out}");

    let devel = sb.ok(&["registry", "tags", &repo, "--devel"]);
    assert_eq!(lines(&devel)[0], "2.0.0-rc.1", "{devel}");
    assert_eq!(lines(&devel).len(), 5, "{devel}");
    assert!(!devel.contains("latest"), "{devel}");

    let constrained = sb.ok(&["registry", "tags", &repo, "--constraint", ">=1.1 <2"]);
    assert_eq!(lines(&constrained), ["1.10.0", "1.2.0"], "{constrained}");

    let json = sb.ok(&["registry", "tags", &repo, "-o", "json"]);
    let parsed: Vec<String> = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(parsed, got, "json and table list differ");
}

#[test]
fn skopeo_copies_keep_the_digest_and_chartcache_pulls_what_skopeo_wrote() {
    let reg = Registry::plain();
    let host = reg.host();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);

    // registry → registry with skopeo: the manifest digest survives.
    let skopeo = Skopeo::new();
    skopeo.run_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &reg.docker("myrepo/mychart:0.1.0"),
        &reg.docker("other/mychart:0.1.0"),
    ]);
    let copied = get_manifest(&reg, "other/mychart", "0.1.0");
    assert_eq!(
        copied.header("Docker-Content-Digest"),
        Some(sb.manifest_digest(&reference).as_str()),
        "skopeo changed the manifest chartcache pushed"
    );
    let other = format!("{host}/other/mychart:0.1.0");
    let fresh = Sandbox::new();
    fresh.ok(&["chart", "pull", &other]);
    assert_eq!(
        fresh.ref_blob(&other, "manifest"),
        sb.ref_blob(&reference, "manifest")
    );

    // OCI layout → registry with skopeo, then chartcache pulls it.
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = chart_tgz(dir.path(), "layoutchart", "0.3.0");
    let layout = oci_layout_with_chart(
        &dir.path().join("layout"),
        &tgz,
        "layoutchart",
        "0.3.0",
        "0.3.0",
    );
    skopeo.run_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &layout.reference,
        &reg.docker("fromlayout/layoutchart:0.3.0"),
    ]);
    let pulled = format!("{host}/fromlayout/layoutchart:0.3.0");
    let out = fresh.ok(&["chart", "pull", &pulled]);
    assert!(out.contains("Name: layoutchart"), "{out}");
    assert_eq!(fresh.ref_blob(&pulled, "manifest"), layout.manifest);
    assert_eq!(
        fresh.ref_blob(&pulled, "content"),
        std::fs::read(&tgz).unwrap()
    );
    assert_eq!(
        fresh.manifest_digest(&pulled),
        layout.manifest_digest,
        "the cached digest is not the layout's"
    );
}

/// A manifest with `config_type` for the config and `layer_type` for one layer, both uploaded.
fn upload_artifact(
    reg: &Registry,
    repo: &str,
    tag: &str,
    config: &[u8],
    config_type: &str,
    layer: &[u8],
    layer_type: &str,
) -> Vec<u8> {
    let config_digest = upload_blob(reg, repo, config);
    let layer_digest = upload_blob(reg, repo, layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    put_manifest(reg, repo, tag, &manifest);
    manifest
}

#[test]
fn legacy_helm_3_0_artifacts_pull_with_a_warning() {
    let reg = Registry::plain();
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = std::fs::read(chart_tgz(dir.path(), "oldchart", "0.5.0")).unwrap();
    let config = br#"{"name":"oldchart","version":"0.5.0","apiVersion":"v2"}"#;
    // As Helm 3.0-3.6 (oras-go v0.x) wrote it: no top-level mediaType, a titled legacy layer.
    let config_digest = upload_blob(&reg, "legacy/oldchart", config);
    let layer_digest = upload_blob(&reg, "legacy/oldchart", &tgz);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/tar+gzip", "digest": layer_digest,
                    "size": tgz.len(),
                    "annotations": {"org.opencontainers.image.title": "oldchart-0.5.0.tgz"}}],
    })
    .to_string()
    .into_bytes();
    put_manifest(&reg, "legacy/oldchart", "0.5.0", &manifest);

    let sb = Sandbox::new();
    let reference = format!("{host}/legacy/oldchart:0.5.0");
    let out = sb.run(&["chart", "pull", &reference]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "Warning: chart media type application/tar+gzip is deprecated"),
        "{stderr}"
    );
    assert_eq!(sb.ref_blob(&reference, "content"), tgz);
    assert_eq!(sb.ref_blob(&reference, "manifest"), manifest);
    let export = sb.path().join("export");
    sb.ok(&[
        "chart",
        "export",
        &reference,
        "-d",
        export.to_str().unwrap(),
    ]);
    let chart_yaml = std::fs::read_to_string(export.join("oldchart/Chart.yaml")).unwrap();
    assert!(chart_yaml.contains("version: 0.5.0"), "{chart_yaml}");
}

#[test]
fn a_container_image_is_refused_and_nothing_is_stored() {
    let reg = Registry::plain();
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let layer = std::fs::read(chart_tgz(dir.path(), "notachart", "1.0.0")).unwrap();
    upload_artifact(
        &reg,
        "images/app",
        "1.0.0",
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        "application/vnd.oci.image.config.v1+json",
        &layer,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );

    let sb = Sandbox::new();
    // Something in the cache already, so "nothing stored" is checked against a real state.
    sb.save("mychart", "0.1.0", &format!("{host}/myrepo/mychart:0.1.0"));
    let before = sb.snapshot();
    let reference = format!("{host}/images/app:1.0.0");
    let out = sb.run(&["chart", "pull", &reference]);
    let line = error_line_of(&out, "chart pull (image)");
    assert!(
        line.contains(&reference) && line.contains("chart"),
        "the error should name the ref and say it is not a chart: {line}"
    );
    let changed: Vec<String> = sb
        .snapshot()
        .changes_since(&before)
        .into_iter()
        .filter(|c| !c.contains(".tmp"))
        .collect();
    assert!(
        changed.is_empty(),
        "a refused pull changed the cache: {changed:?}"
    );
}

/// A gzipped tar whose only entries are `entries` (names written raw, unchecked).
fn raw_tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, *data).expect("tar append");
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .expect("finish tgz")
}

#[test]
fn a_chart_whose_archive_escapes_its_directory_is_refused() {
    let reg = Registry::plain();
    let host = reg.host();
    let tgz = raw_tgz(&[
        (
            "evil/Chart.yaml",
            b"apiVersion: v2\nname: evil\nversion: 0.1.0\n",
        ),
        ("evil/../../escaped.txt", b"gotcha\n"),
    ]);
    upload_artifact(
        &reg,
        "myrepo/evil",
        "0.1.0",
        br#"{"apiVersion":"v2","name":"evil","version":"0.1.0"}"#,
        "application/vnd.cncf.helm.config.v1+json",
        &tgz,
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    );
    let sb = Sandbox::new();
    sb.save("mychart", "0.1.0", &format!("{host}/myrepo/mychart:0.1.0"));
    let before = sb.snapshot();
    let reference = format!("{host}/myrepo/evil:0.1.0");
    let out = sb.run(&["chart", "pull", &reference]);
    let line = error_line_of(&out, "chart pull (escaping archive)");
    assert!(line.contains(&reference), "{line}");
    assert!(
        line.contains(".."),
        "the error should show the bad path: {line}"
    );
    let changed: Vec<String> = sb
        .snapshot()
        .changes_since(&before)
        .into_iter()
        .filter(|c| !c.contains(".tmp"))
        .collect();
    assert!(
        changed.is_empty(),
        "a refused pull changed the cache: {changed:?}"
    );
    assert!(!sb.path().join("escaped.txt").exists());
}

#[test]
fn localhost_names_a_loopback_registry_too() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let reference = format!("localhost:{}/myrepo/mychart:0.1.0", reg.port());
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);
    let remote = get_manifest(&reg, "myrepo/mychart", "0.1.0");
    assert_eq!(remote.body, sb.ref_blob(&reference, "manifest"));
    let other = Sandbox::new();
    other.ok(&["chart", "pull", &reference]);
    assert!(
        other
            .root()
            .join(format!(
                "refs/localhost_{}/myrepo/mychart/tags/0.1.0",
                reg.port()
            ))
            .is_dir()
    );
}
