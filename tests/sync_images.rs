//! `sync --images`: a chart travels with the images it runs. Charts written here name their
//! images in every shape `chart images` reads (a Bitnami map, `{repository, tag}` whose tag is
//! the appVersion, a literal in a template, an Artifact Hub annotation) and point them at a
//! real registry (CNCF distribution on loopback), where the tests push multi-platform images
//! of random layers. Checked: where each image lands (skopeo's naming, `--scoped`), that it
//! arrives whole with the source's digests and its referrers (an SBOM), the exact places each
//! was found (`--why`) in the JSON report, the dry-run plan, reruns that copy nothing, failures
//! naming the image (and `--keep-going`), `--images-from`, `--platform`, `cache:`, and one
//! `oci-archive:` holding charts and images that skopeo reads and `sync` restores (with
//! `--images` too, the images' registry gone).

mod fault;
mod support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use fault::{
    OCI_INDEX, OCI_MANIFEST, Sandbox, error_line_of, push_random_image, served_digest, sha256_hex,
    upload_blob,
};
use serde_json::Value;
use support::{Registry, Skopeo, describe};

const PLATFORMS: [&str; 3] = ["linux/amd64", "linux/arm64/v8", "linux/s390x"];
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image pushed to the source registry.
struct Image {
    /// `HOST/REPO:TAG`.
    name: String,
    repo: String,
    tag: String,
    digest: String,
    index: Vec<u8>,
    children: Vec<String>,
}

fn push(reg: &Registry, repo: &str, tag: &str) -> Image {
    let (digest, index, children) = push_random_image(reg, repo, tag, &PLATFORMS, 32 * 1024);
    Image {
        name: format!("{}/{repo}:{tag}", reg.host()),
        repo: repo.to_string(),
        tag: tag.to_string(),
        digest,
        index,
        children,
    }
}

/// A chart `app` naming three images of `host` in three shapes, plus the annotation naming
/// the third again: `team/web:1.0` (a Bitnami map), `team/worker` (no tag: the appVersion,
/// 2.1), `tools/init:0.3` (a literal in a template, and the annotation).
fn chart_files(host: &str, version: &str, extra_values: &str) -> Vec<(String, String)> {
    vec![
        (
            "Chart.yaml".into(),
            format!(
                "apiVersion: v2\nname: app\nversion: {version}\nappVersion: \"2.1\"\nannotations:\n  artifacthub.io/images: |\n    - name: init\n      image: {host}/tools/init:0.3\n"
            ),
        ),
        (
            "values.yaml".into(),
            format!(
                "image:\n  registry: {host}\n  repository: team/web\n  tag: \"1.0\"\nworker:\n  image:\n    repository: {host}/team/worker\n    tag: \"\"\n{extra_values}"
            ),
        ),
        (
            "templates/deployment.yaml".into(),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ .Release.Name }}}}\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: \"{host}/tools/init:0.3\"\n      containers:\n        - name: web\n          image: \"{{{{ .Values.image.registry }}}}/{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"\n        - name: worker\n          image: \"{{{{ .Values.worker.image.repository }}}}:{{{{ .Values.worker.image.tag | default .Chart.AppVersion }}}}\"\n"
            ),
        ),
    ]
}

/// The source registry with the three images and the chart `charts/app:VERSION` pushed.
struct World {
    src: Registry,
    sb: Sandbox,
    web: Image,
    worker: Image,
    init: Image,
    chart: String,
    chart_digest: String,
}

impl World {
    fn new() -> World {
        let src = Registry::plain();
        let sb = Sandbox::new();
        let web = push(&src, "team/web", "1.0");
        let worker = push(&src, "team/worker", "2.1");
        let init = push(&src, "tools/init", "0.3");
        let chart = format!("{}/charts/app:1.0.0", src.host());
        let mut world = World {
            src,
            sb,
            web,
            worker,
            init,
            chart: chart.clone(),
            chart_digest: String::new(),
        };
        world.chart_digest = world.push_chart("1.0.0", "");
        world
    }

    /// Saves and pushes `charts/app:VERSION` (with `extra_values` in its values.yaml); returns
    /// its manifest digest.
    fn push_chart(&self, version: &str, extra_values: &str) -> String {
        let dir = self.sb.path().join("src").join(format!("app-{version}"));
        for (name, text) in chart_files(&self.src.host(), version, extra_values) {
            let path = dir.join(name);
            fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            fs::write(path, text).expect("write a chart file");
        }
        let reference = format!("{}/charts/app:{version}", self.src.host());
        self.sb
            .ok(&["chart", "save", dir.to_str().expect("utf-8"), &reference]);
        self.sb.ok(&["chart", "push", &reference]);
        served_digest(&self.src, "charts/app", version).expect("the chart was pushed")
    }

    fn images(&self) -> [&Image; 3] {
        [&self.init, &self.web, &self.worker]
    }

    /// `sync ARGS… -o json`, which must succeed; the report.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["sync"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.sb.run(&all);
        assert!(out.status.success(), "{all:?}: {}", describe(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
    }
}

/// One image of a JSON report item: its name, target, outcome, and places as the table of
/// `chart images --why` shows them.
fn images_of(item: &Value) -> Vec<(String, String, String, Vec<String>)> {
    item["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images in {item}"))
        .iter()
        .map(|i| {
            let found = i["found"]
                .as_array()
                .expect("found")
                .iter()
                .map(place)
                .collect();
            (
                i["image"].as_str().expect("image").to_string(),
                i["target"].as_str().unwrap_or("").to_string(),
                i["outcome"].as_str().expect("outcome").to_string(),
                found,
            )
        })
        .collect()
}

/// A place as `chart images --why` prints it, rebuilt from the JSON.
fn place(f: &Value) -> String {
    let mut s = f["file"].as_str().expect("file").to_string();
    if let Some(l) = f.get("line") {
        s.push_str(&format!(":{l}"));
    }
    let path = f.get("path").and_then(Value::as_str).unwrap_or("");
    match (f["source"].as_str(), path.is_empty()) {
        (_, true) => {}
        (Some("template"), false) => s.push_str(&format!(" ({path})")),
        _ => s.push_str(&format!(": {path}")),
    }
    match f.get("note").and_then(Value::as_str) {
        Some("tag-from-app-version") => s.push_str(" (tag from appVersion)"),
        Some(other) => s.push_str(&format!(" ({other})")),
        None => {}
    }
    if f["source"] == "list" {
        s.push_str(" (listed)");
    }
    s
}

/// The three images as `sync` reports them, each going to `target(image)` with `outcome`.
fn expected(
    w: &World,
    target: impl Fn(&Image) -> String,
    outcome: &str,
) -> Vec<(String, String, String, Vec<String>)> {
    let f = |i: &Image, found: &[&str]| {
        (
            i.name.clone(),
            target(i),
            outcome.to_string(),
            found.iter().map(|s| s.to_string()).collect(),
        )
    };
    vec![
        f(
            &w.web,
            &[
                "values.yaml: image",
                "templates/deployment.yaml:13 (.Values.image)",
            ],
        ),
        f(
            &w.worker,
            &[
                "values.yaml: worker.image (tag from appVersion)",
                "templates/deployment.yaml:15 (.Values.worker.image.repository)",
            ],
        ),
        f(
            &w.init,
            &[
                "templates/deployment.yaml:10",
                r#"Chart.yaml: annotations["artifacthub.io/images"][0]"#,
            ],
        ),
    ]
}

/// An SBOM of `image` (an OCI 1.1 artifact whose `subject` is its index), recorded in the
/// referrers tag schema as a registry without the referrers API needs; returns its digest.
fn push_sbom(reg: &Registry, image: &Image) -> String {
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    let config = upload_blob(reg, &image.repo, b"{}");
    let layer = upload_blob(reg, &image.repo, sbom);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": sbom.len()}],
        "subject": {"mediaType": OCI_INDEX, "digest": image.digest, "size": image.index.len()},
    })
    .to_string()
    .into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(), "artifactType": "application/spdx+json"},
    ]})
    .to_string()
    .into_bytes();
    for (reference, media_type, bytes) in [
        (digest.as_str(), OCI_MANIFEST, &manifest),
        (&image.digest.replace(':', "-"), OCI_INDEX, &index),
    ] {
        let resp = reg.request(
            "PUT",
            &format!("/v2/{}/manifests/{reference}", image.repo),
            &[("Content-Type", media_type)],
            bytes,
        );
        assert_eq!(resp.status, 201, "put {reference}: {}", resp.text());
    }
    digest
}

/// `name`'s image arrived at `reg` as `repo:tag` whole: the index with the source's digest,
/// and every platform's manifest.
fn arrived(reg: &Registry, repo: &str, tag: &str, image: &Image) {
    assert_eq!(
        served_digest(reg, repo, tag).as_deref(),
        Some(image.digest.as_str()),
        "{repo}:{tag} at {}",
        reg.host()
    );
    for child in &image.children {
        assert!(
            served_digest(reg, repo, child).is_some(),
            "{repo}@{child} at {}",
            reg.host()
        );
    }
}

#[test]
fn a_chart_and_its_multi_platform_images_sync_registry_to_registry() {
    let w = World::new();
    let sbom = push_sbom(&w.src, &w.web);
    let dest = Registry::plain();
    let src_repo = format!("{}/charts/app", w.src.host());
    let mirror = format!("{}/mirror", dest.host());
    let report = w.json(&["--images", &src_repo, &mirror]);
    assert_eq!(report["done"], 1, "{report:#}");
    assert_eq!(
        report["images"],
        serde_json::json!({"copied": 3, "up_to_date": 0, "failed": 0})
    );
    let item = &report["items"][0];
    assert_eq!(item["outcome"], "done", "{item:#}");
    assert_eq!(item["source"], w.chart.as_str());
    let target = |i: &Image| {
        let last = i.repo.rsplit('/').next().expect("a name");
        format!("{mirror}/{last}:{}", i.tag)
    };
    assert_eq!(images_of(item), expected(&w, target, "copied"));
    assert!(item.get("image_warnings").is_none(), "{item:#}");

    // skopeo's naming: the last path element, under DEST.
    arrived(&dest, "mirror/web", "1.0", &w.web);
    arrived(&dest, "mirror/worker", "2.1", &w.worker);
    arrived(&dest, "mirror/init", "0.3", &w.init);
    assert_eq!(
        served_digest(&dest, "mirror/app", "1.0.0").as_deref(),
        Some(w.chart_digest.as_str())
    );
    // The image's SBOM came along, and the referrers tag schema names it there.
    assert!(served_digest(&dest, "mirror/web", &sbom).is_some());
    let listed = dest.request(
        "GET",
        &format!(
            "/v2/mirror/web/manifests/{}",
            w.web.digest.replace(':', "-")
        ),
        &[("Accept", OCI_INDEX)],
        &[],
    );
    assert!(listed.text().contains(&sbom), "{}", listed.text());

    // Again: nothing to copy, and the table says so per chart.
    let out = w.sb.ok(&["sync", "--images", &src_repo, &mirror]);
    assert!(
        out.contains(&format!(
            "{} -> {mirror}/app:1.0.0: up to date, skipped (images: 0 copied, 3 up to date)",
            w.chart
        )),
        "{out}"
    );
    assert!(
        out.contains("images: 0 copied, 3 up to date, 0 failed"),
        "{out}"
    );

    // A chart already there without its images: the images come, the chart stays.
    let other = format!("{}/other", dest.host());
    w.sb.ok(&["sync", &src_repo, &other]);
    let out = w.sb.ok(&["sync", "--images", &src_repo, &other]);
    assert!(
        out.contains(&format!(
            "{} -> {other}/app:1.0.0: up to date, skipped (images: 3 copied, 0 up to date)",
            w.chart
        )),
        "{out}"
    );
    arrived(&dest, "other/web", "1.0", &w.web);
}

#[test]
fn dry_run_prints_the_image_plan_and_copies_nothing() {
    let w = World::new();
    let dest = Registry::plain();
    let mirror = format!("{}/m", dest.host());
    // One image there already.
    w.sb.ok(&["sync", &w.web.name, &mirror]);
    let out = w.sb.ok(&[
        "sync",
        "--images",
        "--dry-run",
        &format!("{}/charts/app", w.src.host()),
        &mirror,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{} -> {mirror}/app:1.0.0: would sync (images: 2 to copy, 1 up to date)",
                w.chart
            )
            .as_str(),
            &format!("  image {} -> {mirror}/web:1.0: up to date", w.web.name),
            &format!(
                "  image {} -> {mirror}/worker:2.1: would copy",
                w.worker.name
            ),
            &format!("  image {} -> {mirror}/init:0.3: would copy", w.init.name),
            &format!(
                "To sync: 1, skipped: 0, failed: 0 (of 1 references from {}/charts/app); images: 2 to copy, 1 up to date, 0 failed",
                w.src.host()
            ),
        ],
        "{out}"
    );
    assert_eq!(served_digest(&dest, "m/worker", "2.1"), None);
    assert_eq!(served_digest(&dest, "m/app", "1.0.0"), None);

    // The same plan as JSON.
    let report = w.json(&[
        "--images",
        "--dry-run",
        &format!("{}/charts/app", w.src.host()),
        &mirror,
    ]);
    let item = &report["items"][0];
    assert_eq!(item["outcome"], "planned");
    let outcomes: Vec<(String, String)> = images_of(item)
        .into_iter()
        .map(|(i, _, o, _)| (i, o))
        .collect();
    assert_eq!(
        outcomes,
        [
            (w.web.name.clone(), "up-to-date".to_string()),
            (w.worker.name.clone(), "planned".to_string()),
            (w.init.name.clone(), "planned".to_string()),
        ]
    );
}

#[test]
fn an_image_that_cannot_be_copied_fails_its_chart_and_keep_going_goes_on() {
    let w = World::new();
    let dest = Registry::plain();
    let mirror = format!("{}/m", dest.host());
    let host = w.src.host();
    // 2.0.0 runs an image nobody pushed.
    w.push_chart(
        "2.0.0",
        &format!("sidecar:\n  image: {host}/team/missing:9.9\n"),
    );
    let src_repo = format!("{host}/charts/app");

    // Newest first, one at a time: 2.0.0 fails, naming the image and why, and 1.0.0 is not
    // attempted.
    let args = ["sync", "--images", "--jobs", "1", &src_repo, &mirror];
    let line = error_line_of(&w.sb.run(&args), "sync --images");
    assert_eq!(
        line,
        format!(
            "Error: {host}/charts/app:2.0.0 -> {mirror}/app:2.0.0: image {host}/team/missing:9.9: not found at {host}"
        )
    );
    assert_eq!(
        served_digest(&dest, "m/app", "2.0.0"),
        None,
        "no chart without its images"
    );
    assert_eq!(served_digest(&dest, "m/app", "1.0.0"), None);

    // With --keep-going the rest go on; the chart that failed is still not there, its images
    // that could be copied are.
    let out = w.sb.run(&[
        "sync",
        "--images",
        "--keep-going",
        "--jobs",
        "1",
        &src_repo,
        &mirror,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(
        (report["done"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let failed = &report["items"][0];
    assert_eq!(failed["source"], format!("{src_repo}:2.0.0"));
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(
        failed["error"],
        format!("image {host}/team/missing:9.9: not found at {host}")
    );
    let missing = failed["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["image"] == format!("{host}/team/missing:9.9"))
        .expect("the missing image is listed");
    assert_eq!(missing["outcome"], "failed");
    assert_eq!(missing["error"], format!("not found at {host}"));
    assert_eq!(place(&missing["found"][0]), "values.yaml: sidecar.image");
    assert_eq!(report["items"][1]["outcome"], "done");
    assert_eq!(served_digest(&dest, "m/app", "2.0.0"), None);
    arrived(&dest, "m/web", "1.0", &w.web);
    assert_eq!(
        served_digest(&dest, "m/app", "1.0.0").as_deref(),
        Some(w.chart_digest.as_str())
    );
}

#[test]
fn two_images_on_one_name_fail_rather_than_overwrite() {
    let w = World::new();
    let dest = Registry::plain();
    let host = w.src.host();
    let other = push(&w.src, "other/web", "1.0");
    let list = w.sb.path().join("images.txt");
    fs::write(&list, format!("{}\n", other.name)).expect("write the list");
    let mirror = format!("{}/m", dest.host());
    let out = w.sb.run(&[
        "sync",
        "--images",
        "--images-from",
        list.to_str().expect("utf-8"),
        &format!("{host}/charts/app"),
        &mirror,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let error = report["items"][0]["error"].as_str().expect("an error");
    let (first, second) = (&w.web.name, &other.name);
    assert!(
        error
            == format!(
                "image {second}: {first} would be written to {mirror}/web:1.0 too; sync them apart or use --scoped"
            )
            || error
                == format!(
                    "image {first}: {second} would be written to {mirror}/web:1.0 too; sync them apart or use --scoped"
                ),
        "{error}"
    );

    // --scoped keeps them apart: the whole path, host included, `:` written `_`.
    let scoped_host = host.replace(':', "_");
    let report = w.json(&[
        "--images",
        "--scoped",
        "--images-from",
        list.to_str().expect("utf-8"),
        &format!("{host}/charts/app"),
        &mirror,
    ]);
    let item = &report["items"][0];
    assert_eq!(item["outcome"], "done", "{item:#}");
    assert_eq!(
        item["target"],
        format!("{mirror}/{scoped_host}/charts/app:1.0.0")
    );
    let mut got = images_of(item);
    let listed = got.pop().expect("the listed image comes last");
    assert_eq!(
        listed,
        (
            other.name.clone(),
            format!("{mirror}/{scoped_host}/other/web:1.0"),
            "copied".to_string(),
            vec![format!("{}:1 (listed)", list.display())],
        )
    );
    let target = |i: &Image| format!("{mirror}/{scoped_host}/{}:{}", i.repo, i.tag);
    assert_eq!(got, expected(&w, target, "copied"));
    arrived(&dest, &format!("m/{scoped_host}/team/web"), "1.0", &w.web);
    arrived(&dest, &format!("m/{scoped_host}/other/web"), "1.0", &other);
}

#[test]
fn platform_keeps_only_the_platforms_asked_for() {
    let w = World::new();
    let dest = Registry::plain();
    let mirror = format!("{}/m", dest.host());
    let chart = format!("{}/charts/app", w.src.host());
    let arm64 = [
        "sync",
        "--images",
        "--platform",
        "linux/arm64",
        &chart,
        &mirror,
    ];
    w.sb.ok(&arm64);
    for image in w.images() {
        let last = image.repo.rsplit('/').next().expect("a name");
        let repo = format!("m/{last}");
        let digest = served_digest(&dest, &repo, &image.tag).expect("the image arrived");
        assert_ne!(digest, image.digest, "the index was rewritten");
        // The arm64 manifest only (the second one pushed).
        assert!(served_digest(&dest, &repo, &image.children[1]).is_some());
        assert_eq!(served_digest(&dest, &repo, &image.children[0]), None);
        assert_eq!(served_digest(&dest, &repo, &image.children[2]), None);
    }
    // A rerun finds every selection there already.
    let out = w.sb.ok(&[&arm64[..], &["-o", "json"]].concat());
    let report: Value = serde_json::from_slice(out.as_bytes()).expect("a JSON report");
    assert_eq!(
        report["images"],
        serde_json::json!({"copied": 0, "up_to_date": 3, "failed": 0}),
        "{report:#}"
    );
}

#[test]
fn images_go_to_the_cache_under_their_own_names() {
    let w = World::new();
    // A cache that does not hold the chart yet (the world's saved it).
    let sb = Sandbox::new();
    let out = sb.run(&[
        "sync",
        "--images",
        &format!("{}/charts/app", w.src.host()),
        "cache:",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let item = &report["items"][0];
    assert_eq!(item["outcome"], "done", "{item:#}");
    assert_eq!(images_of(item), expected(&w, |i| i.name.clone(), "copied"));
    for image in w.images() {
        assert_eq!(sb.manifest_digest(&image.name), image.digest);
    }
    assert_eq!(sb.manifest_digest(&w.chart), w.chart_digest);
    // `cache list` shows the images beside the chart.
    let listed = sb.ok(&["cache", "list", "-o", "json"]);
    for image in w.images() {
        assert!(listed.contains(&image.name), "{listed}");
    }
}

/// The `index.json` of an OCI archive, read from the tar.
fn archive_index(path: &Path) -> Value {
    let mut archive = tar::Archive::new(fs::File::open(path).expect("open the archive"));
    for entry in archive.entries().expect("read the archive") {
        let mut entry = entry.expect("an archive entry");
        if entry.path().expect("an entry path").as_os_str() == "index.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read index.json");
            return serde_json::from_slice(&bytes).expect("index.json parses");
        }
    }
    panic!("{}: no index.json", path.display());
}

#[test]
fn one_oci_archive_holds_charts_and_images_for_the_air_gap() {
    let w = World::new();
    let host = w.src.host();
    // An image pinned by digest only, listed by hand.
    let pinned = push(&w.src, "team/pinned", "x");
    let pinned_name = format!("{host}/team/pinned@{}", pinned.digest);
    let list = w.sb.path().join("images.txt");
    fs::write(&list, format!("# by hand\n{pinned_name}\n")).expect("write the list");
    let bundle: PathBuf = w.sb.path().join("bundle.tar");
    let report = w.json(&[
        "--images",
        "--images-from",
        list.to_str().expect("utf-8"),
        &format!("{host}/charts/app"),
        &format!("oci-archive:{}", bundle.display()),
    ]);
    let item = &report["items"][0];
    assert_eq!(item["outcome"], "done", "{item:#}");
    assert_eq!(report["images"]["copied"], 4, "{report:#}");

    // One file: every chart and image named by its full reference.
    let index = archive_index(&bundle);
    let mut names: Vec<(String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| {
            (
                d["annotations"][REF_NAME]
                    .as_str()
                    .expect("a ref name")
                    .to_string(),
                d["digest"].as_str().expect("a digest").to_string(),
            )
        })
        .collect();
    names.sort();
    let mut want = vec![
        (w.chart.clone(), w.chart_digest.clone()),
        (pinned_name.clone(), pinned.digest.clone()),
    ];
    want.extend(
        w.images()
            .iter()
            .map(|i| (i.name.clone(), i.digest.clone())),
    );
    want.sort();
    assert_eq!(names, want);

    // skopeo reads the images out of it, byte for byte, every platform.
    let skopeo = Skopeo::new();
    for image in w.images() {
        let raw = skopeo.run_ok(&[
            "inspect",
            "--raw",
            &format!("oci-archive:{}:{}", bundle.display(), image.name),
        ]);
        assert_eq!(raw.as_bytes(), image.index.as_slice(), "{}", image.name);
    }
    let out = w.sb.path().join("skopeo-out");
    // (skopeo would gzip the test's uncompressed layers on the way into a layout.)
    skopeo.run_ok(&[
        "copy",
        "--all",
        "--dest-oci-accept-uncompressed-layers",
        &format!("oci-archive:{}:{}", bundle.display(), w.web.name),
        &format!("oci:{}:web", out.display()),
    ]);
    for child in &w.web.children {
        let hex = child.strip_prefix("sha256:").expect("sha256");
        assert!(out.join("blobs/sha256").join(hex).exists(), "{child}");
    }

    // Inside the air gap: one sync restores charts and images, digests kept.
    let inside = Registry::plain();
    let vendor = format!("{}/vendor", inside.host());
    let report = w.json(&[&format!("oci-archive:{}", bundle.display()), &vendor]);
    assert_eq!(report["done"], 5, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    arrived(&inside, "vendor/web", "1.0", &w.web);
    arrived(&inside, "vendor/worker", "2.1", &w.worker);
    arrived(&inside, "vendor/init", "0.3", &w.init);
    arrived(&inside, "vendor/pinned", &pinned.digest, &pinned);
    assert_eq!(
        served_digest(&inside, "vendor/app", "1.0.0").as_deref(),
        Some(w.chart_digest.as_str())
    );

    // With --images too, and the images' own registry gone: they are read from the archive.
    let web = (w.web.name.clone(), w.web.digest.clone());
    let chart = w.chart.clone();
    let World { src, sb, .. } = w;
    drop(src);
    let out = sb.run(&[
        "sync",
        "--images",
        &format!("oci-archive:{}", bundle.display()),
        &format!("{}/again", inside.host()),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let item = report["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["source"] == chart.as_str())
        .expect("the chart is an item");
    assert_eq!(item["outcome"], "done", "{item:#}");
    assert_eq!(item["images"].as_array().map(Vec::len), Some(3), "{item:#}");
    assert_eq!(
        served_digest(&inside, "again/web", "1.0").as_deref(),
        Some(web.1.as_str()),
        "{}",
        web.0
    );
}

#[test]
fn bad_image_lists_are_refused_before_anything_moves() {
    let sb = Sandbox::new();
    let list = sb.path().join("images.txt");
    fs::write(&list, "ok.example.com/a:1\nNot An Image\n").expect("write the list");
    let line = sb.fails(&[
        "sync",
        "--images",
        "--images-from",
        list.to_str().expect("utf-8"),
        "127.0.0.1:9/charts/app",
        "127.0.0.1:9/m",
    ]);
    assert!(
        line.starts_with(&format!(
            "Error: {}:2: \"Not An Image\" is not an image reference",
            list.display()
        )),
        "{line}"
    );
    // --images-from needs --images.
    let out = sb.run(&[
        "sync",
        "--images-from",
        "x.txt",
        "a.example.com/r",
        "b.example.com/m",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}
