//! `chart images`: the images a chart runs and where each was found, for charts written here in
//! every shape the command reads (Bitnami maps with `global.imageRegistry`, `{repository,
//! tag}` with the appVersion default, `{name, tag}`, strings with sibling tags, lists,
//! annotations, `Images.lock`, templates with helpers, ranges and conditions, subcharts in
//! directories and archives with aliases and conditions, the user's `--values` and `--set`), and
//! for the 18 real charts of the shared test data. Every expected list is written by hand,
//! with the exact places (`--why`) of each image. The binary runs in a temporary HOME with the
//! environment cleared.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const D: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

/// A temporary HOME and working directory.
struct Env {
    dir: tempfile::TempDir,
}

/// What a run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("chartcache-images-")
            .tempdir()
            .expect("tempdir");
        fs::create_dir_all(dir.path().join("home")).expect("mkdir home");
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a chart's files under `rel`.
    fn chart(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.path(rel);
        for (name, text) in files {
            let p = root.join(name);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, text).expect("write");
        }
        root
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_chartcache"))
            .env_clear()
            .env("HOME", self.path("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.dir.path())
            .arg("--home")
            .arg(self.path("helm"))
            .args(args)
            .output()
            .expect("run chartcache");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, Some(0), "{args:?}\n{}", run.describe());
        run
    }

    /// `chart images ARGS -o json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["chart", "images"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let run = self.ok(&all);
        assert_eq!(
            run.stderr,
            "",
            "JSON output keeps warnings in the JSON\n{}",
            run.describe()
        );
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.describe()))
    }
}

/// One place as the table shows it, rebuilt from the JSON: `file[:line]`, then `: path` (or
/// ` (path)` for templates), then the note.
fn place(f: &Value) -> String {
    let mut s = f["file"].as_str().expect("file").to_string();
    if let Some(l) = f.get("line") {
        s.push_str(&format!(":{l}"));
    }
    let path = f["path"].as_str().expect("path");
    if !path.is_empty() {
        if f["source"] == "template" {
            s.push_str(&format!(" ({path})"));
        } else {
            s.push_str(&format!(": {path}"));
        }
    }
    match f.get("note").and_then(Value::as_str) {
        Some("tag-from-app-version") => s.push_str(" (tag from appVersion)"),
        Some("latest-implied") => s.push_str(" (no tag: latest)"),
        Some("not-rendered") => s.push_str(" (not rendered with these values)"),
        Some(other) => panic!("unknown note {other}"),
        None => {}
    }
    s
}

/// Every image with its places, in order.
fn images(report: &Value) -> Vec<(String, Vec<String>)> {
    report["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            let found = i["found"]
                .as_array()
                .expect("found")
                .iter()
                .map(place)
                .collect();
            (i["image"].as_str().expect("image").to_string(), found)
        })
        .collect()
}

fn warnings(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            let mut s = w["file"].as_str().expect("file").to_string();
            match w.get("lines").and_then(Value::as_array).map(Vec::as_slice) {
                Some([l]) => s.push_str(&format!(":{l}")),
                Some(many) => {
                    let ls: Vec<String> = many.iter().map(ToString::to_string).collect();
                    s.push_str(&format!(": lines {}", ls.join(", ")));
                }
                None => {}
            }
            if let Some(p) = w.get("path").and_then(Value::as_str) {
                s.push_str(&format!(": {p}"));
            }
            format!("{s}: {}", w["message"].as_str().expect("message"))
        })
        .collect()
}

fn expect(report: &Value, want: &[(&str, &[&str])]) {
    let got = images(report);
    let want: Vec<(String, Vec<String>)> = want
        .iter()
        .map(|(i, f)| (i.to_string(), f.iter().map(ToString::to_string).collect()))
        .collect();
    assert_eq!(
        got,
        want,
        "\n{}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}

const CHART_YAML: &str = "apiVersion: v2\nname: app\nversion: 0.1.0\n";

const BITNAMI_HELPERS: &str = r#"{{- define "common.images.image" -}}
{{- $registryName := default .imageRoot.registry ((.global).imageRegistry) -}}
{{- $repositoryName := .imageRoot.repository -}}
{{- $separator := ":" -}}
{{- $termination := .imageRoot.tag | toString -}}
{{- if .imageRoot.digest }}
    {{- $separator = "@" -}}
    {{- $termination = .imageRoot.digest | toString -}}
{{- end -}}
{{- if $registryName }}
    {{- printf "%s/%s%s%s" $registryName $repositoryName $separator $termination -}}
{{- else -}}
    {{- printf "%s%s%s"  $repositoryName $separator $termination -}}
{{- end -}}
{{- end -}}
"#;

#[test]
fn bitnami_maps_with_global_image_registry() {
    let env = Env::new();
    let values = format!(
        "global:\n  imageRegistry: \"\"\nimage:\n  registry: docker.io\n  repository: bitnami/redis\n  tag: 7.0.5-debian-11-r0\n  digest: \"\"\nmetrics:\n  enabled: false\n  image:\n    registry: docker.io\n    repository: bitnami/redis-exporter\n    tag: 1.45.0\n    digest: \"{A}\"\n"
    );
    let deployment = r#"kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: redis
          image: {{ include "common.images.image" (dict "imageRoot" .Values.image "global" .Values.global) }}
        {{- if .Values.metrics.enabled }}
        - name: metrics
          image: {{ include "common.images.image" (dict "imageRoot" .Values.metrics.image "global" .Values.global) }}
        {{- end }}
"#;
    let dir = env.chart(
        "redis",
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: redis\nversion: 17.0.0\nappVersion: 7.0.5\n",
            ),
            ("values.yaml", &values),
            ("templates/_images.tpl", BITNAMI_HELPERS),
            ("templates/deployment.yaml", deployment),
        ],
    );
    let dir = dir.to_str().expect("utf-8 path");
    let report = env.json(&[dir]);
    // Sorted by repository, then tag: redis before redis-exporter.
    expect(
        &report,
        &[
            (
                "docker.io/bitnami/redis:7.0.5-debian-11-r0",
                &[
                    "values.yaml: image",
                    "templates/deployment.yaml:7 (.Values.image)",
                ],
            ),
            (
                &format!("docker.io/bitnami/redis-exporter:1.45.0@{A}"),
                &["values.yaml: metrics.image"],
            ),
        ],
    );
    assert_eq!(warnings(&report), Vec::<String>::new());

    // A mirror for every image, and the metrics container on: the template drops the tag of
    // a digest-pinned image, as Bitnami's helper does, and it is still the same image.
    let report = env.json(&[
        dir,
        "--set",
        "global.imageRegistry=mirror.local:5000,metrics.enabled=true",
    ]);
    expect(
        &report,
        &[
            (
                "mirror.local:5000/bitnami/redis:7.0.5-debian-11-r0",
                &[
                    "values.yaml: image",
                    "--set: global.imageRegistry",
                    "templates/deployment.yaml:7 (.Values.global.imageRegistry, .Values.image.repository, .Values.image.tag)",
                ],
            ),
            (
                &format!("mirror.local:5000/bitnami/redis-exporter:1.45.0@{A}"),
                &[
                    "values.yaml: metrics.image",
                    "--set: global.imageRegistry",
                    // What the helper read to build the line (the tag too, before the digest
                    // replaced it).
                    "templates/deployment.yaml:10 (.Values.global.imageRegistry, .Values.metrics.image.digest, .Values.metrics.image.repository, .Values.metrics.image.tag)",
                ],
            ),
        ],
    );
}

#[test]
fn repository_and_tag_default_to_the_app_version() {
    let env = Env::new();
    let dir = env.chart(
        "web",
        &[
            ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\nappVersion: 1.25.3\n"),
            ("values.yaml", "image:\n  repository: nginx\n  tag: \"\"\nsidecar:\n  image:\n    repository: ghcr.io/acme/sidecar\n"),
            (
                "templates/deployment.yaml",
                "spec:\n  containers:\n    - name: web\n      image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n",
            ),
        ],
    );
    let report = env.json(&[dir.to_str().expect("utf-8")]);
    expect(
        &report,
        &[
            (
                "docker.io/library/nginx:1.25.3",
                &[
                    "values.yaml: image (tag from appVersion)",
                    "templates/deployment.yaml:4 (.Values.image.repository)",
                ],
            ),
            (
                "ghcr.io/acme/sidecar:1.25.3",
                &["values.yaml: sidecar.image (tag from appVersion)"],
            ),
        ],
    );
}

#[test]
fn names_strings_sibling_tags_and_lists() {
    let env = Env::new();
    let values = format!(
        r#"image:
  name: acme/api
  tag: "2.1"
worker:
  image: "quay.io/acme/worker:3.0"
legacy:
  image: acme/legacy
  imageTag: "0.9"
tools:
  images:
    - alpine:3.19
    - "ghcr.io/acme/tool@{A}"
extraContainers:
  - name: shell
    image: busybox
initImage:
  repository: registry.k8s.io/pause
  tag: "3.9"
replicas: 3
imagePullPolicy: IfNotPresent
"#
    );
    let template = "spec:\n  containers:\n{{- range .Values.extraContainers }}\n    - name: {{ .name }}\n      image: {{ .image }}\n{{- end }}\n";
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            ("values.yaml", &values),
            ("templates/pod.yaml", template),
        ],
    );
    let report = env.json(&[dir.to_str().expect("utf-8")]);
    expect(
        &report,
        &[
            ("docker.io/acme/api:2.1", &["values.yaml: image"]),
            ("docker.io/acme/legacy:0.9", &["values.yaml: legacy.image"]),
            (
                "docker.io/library/alpine:3.19",
                &["values.yaml: tools.images[0]"],
            ),
            (
                "docker.io/library/busybox:latest",
                &[
                    "values.yaml: extraContainers[0].image (no tag: latest)",
                    "templates/pod.yaml:5 (.Values.extraContainers[0].image) (no tag: latest)",
                ],
            ),
            (
                &format!("ghcr.io/acme/tool@{A}"),
                &["values.yaml: tools.images[1]"],
            ),
            ("quay.io/acme/worker:3.0", &["values.yaml: worker.image"]),
            ("registry.k8s.io/pause:3.9", &["values.yaml: initImage"]),
        ],
    );
}

#[test]
fn annotations_and_images_lock() {
    let env = Env::new();
    let chart_yaml = r#"apiVersion: v2
name: app
version: 1.0.0
annotations:
  helm.sh/images: |
    - name: app
      image: ghcr.io/acme/app:1.0.0
  images: |
    - name: app
      image: ghcr.io/acme/app:1.0.0
    - name: db
      image: docker.io/bitnami/postgresql:16.1.0
  artifacthub.io/images: |
    - name: redis
      image: redis:7.2
      whitelisted: true
"#;
    let lock = format!(
        "apiVersion: v0\nkind: ImagesLock\nmetadata:\n  generatedBy: Distribution Tooling for Helm\nchart:\n  name: app\n  version: 1.0.0\nimages:\n  - name: app\n    image: ghcr.io/acme/app:1.0.0\n    chart: app\n    digests:\n      - digest: {A}\n        arch: linux/amd64\n      - digest: {B}\n        arch: linux/arm64\n  - name: db\n    image: docker.io/bitnami/postgresql:16.1.0\n    chart: app\n    digests:\n      - digest: {C}\n        arch: linux/amd64\n"
    );
    let values =
        format!("image:\n  repository: ghcr.io/acme/app\n  tag: 1.0.0\n  digest: \"{D}\"\n");
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", chart_yaml),
            ("Images.lock", &lock),
            ("values.yaml", &values),
        ],
    );
    let report = env.json(&[dir.to_str().expect("utf-8")]);
    expect(
        &report,
        &[
            (
                &format!("docker.io/bitnami/postgresql:16.1.0@{C}"),
                &[
                    "Chart.yaml: annotations[\"images\"][1]",
                    "Images.lock: images[1]",
                ],
            ),
            (
                "docker.io/library/redis:7.2",
                &["Chart.yaml: annotations[\"artifacthub.io/images\"][0]"],
            ),
            (
                "ghcr.io/acme/app:1.0.0",
                &[
                    "values.yaml: image",
                    "Chart.yaml: annotations[\"helm.sh/images\"][0]",
                    "Chart.yaml: annotations[\"images\"][0]",
                    "Images.lock: images[0]",
                ],
            ),
        ],
    );
    // The lock's digests, one per platform, are the image's.
    let app = &report["images"][2];
    assert_eq!(
        app["digests"],
        serde_json::json!([{"digest": A, "platform": "linux/amd64"}, {"digest": B, "platform": "linux/arm64"}])
    );
    assert_eq!(
        report["images"][0]["digests"],
        serde_json::json!([{"digest": C, "platform": "linux/amd64"}])
    );
    assert_eq!(
        warnings(&report),
        [format!(
            "Images.lock: images[0]: pins {A}, {B}, but values.yaml: image says {D}; the lock wins"
        )]
    );
}

#[test]
fn templates_literal_expressions_and_what_needs_rendering() {
    let env = Env::new();
    let deployment = r#"spec:
  containers:
    - name: app
      image: "ghcr.io/x/y:1.2"
    - name: release
      image: "registry.example.com/{{ .Release.Name }}:1.0"
    - name: tpl
      image: {{ tpl .Values.imageTemplate . }}
    - name: caps
      image: {{ if .Capabilities.APIVersions.Has "x/v1" }}a:1{{ else }}b:2{{ end }}
    - name: values
      image: {{ .Values.custom }}
"#;
    let job = "{{- range .Files.Lines \"images.txt\" }}\n- image: {{ . }}\n{{- end }}\n";
    let notes = "Run: kubectl run x --image: {{ .Values.custom }}\n";
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            (
                "values.yaml",
                "imageTemplate: \"{{ .Values.custom }}\"\ncustom: quay.io/acme/custom:5\n",
            ),
            ("templates/deployment.yaml", deployment),
            ("templates/job.yaml", job),
            ("templates/NOTES.txt", notes),
        ],
    );
    let dir = dir.to_str().expect("utf-8");
    let report = env.json(&[dir]);
    expect(
        &report,
        &[
            ("ghcr.io/x/y:1.2", &["templates/deployment.yaml:4"]),
            (
                "quay.io/acme/custom:5",
                &["templates/deployment.yaml:12 (.Values.custom)"],
            ),
        ],
    );
    assert_eq!(
        warnings(&report),
        [
            "templates/deployment.yaml: lines 6, 8, 10: an image is built by template logic that cannot be resolved without rendering; it is not listed from here",
            "templates/job.yaml:2: an image is built by template logic that cannot be resolved without rendering (- image: {{ . }}); it is not listed from here",
        ]
    );

    // In a table the warnings go to stderr, one line each, and the table to stdout.
    let run = env.ok(&["chart", "images", dir, "--why"]);
    assert_eq!(
        run.stdout,
        "IMAGE                \tFOUND IN\nghcr.io/x/y:1.2      \ttemplates/deployment.yaml:4\nquay.io/acme/custom:5\ttemplates/deployment.yaml:12 (.Values.custom)\n",
        "{}",
        run.describe()
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].starts_with("WARNING: templates/deployment.yaml: lines 6, 8, 10: "),
        "{}",
        run.describe()
    );
    assert!(
        lines[1].starts_with("WARNING: templates/job.yaml:2: "),
        "{}",
        run.describe()
    );
}

#[test]
fn conditions_choose_the_branch_and_skipped_literals_are_still_listed() {
    let env = Env::new();
    let pod = r#"spec:
  containers:
    {{- if .Values.image.sha }}
    - image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}@sha256:{{ .Values.image.sha }}"
    {{- else }}
    - image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
    {{- end }}
  {{- if .Values.debug }}
  initContainers:
    - name: debug
      image: busybox:1.36
  {{- end }}
"#;
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            (
                "values.yaml",
                "image:\n  repository: grafana/grafana\n  tag: 7.1.1\n  sha: \"\"\ndebug: false\n",
            ),
            ("templates/pod.yaml", pod),
        ],
    );
    let dir = dir.to_str().expect("utf-8");
    let report = env.json(&[dir]);
    expect(
        &report,
        &[
            (
                "docker.io/grafana/grafana:7.1.1",
                &["values.yaml: image", "templates/pod.yaml:6 (.Values.image)"],
            ),
            (
                "docker.io/library/busybox:1.36",
                &["templates/pod.yaml:11 (not rendered with these values)"],
            ),
        ],
    );
    assert_eq!(
        warnings(&report),
        Vec::<String>::new(),
        "the sha branch is not taken, so its empty digest is no warning"
    );

    let hex = &A["sha256:".len()..];
    let sha = format!("image.sha={hex}");
    let report = env.json(&[dir, "--set", &sha, "--set", "debug=true"]);
    expect(
        &report,
        &[
            (
                &format!("docker.io/grafana/grafana:7.1.1@{A}"),
                &[
                    "values.yaml: image",
                    "--set: image.sha",
                    "templates/pod.yaml:4 (.Values.image)",
                ],
            ),
            ("docker.io/library/busybox:1.36", &["templates/pod.yaml:11"]),
        ],
    );
}

/// A `.tgz` of `files` under the top folder `top`.
fn tgz(top: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, text) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{top}/{path}"), text.as_bytes())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn subcharts_in_directories_and_archives_with_aliases_and_conditions() {
    let env = Env::new();
    let chart_yaml = r#"apiVersion: v2
name: shop
version: 1.0.0
appVersion: "1.0"
dependencies:
  - name: redis
    version: 1.x
    condition: redis.enabled
  - name: db
    version: 1.0.0
    alias: primary
  - name: db
    version: 1.0.0
    alias: replica
  - name: metrics
    version: 1.0.0
    condition: metrics.enabled
  - name: missing
    version: 1.0.0
"#;
    let values = "global:\n  imageRegistry: \"\"\nimage:\n  repository: acme/shop\n  tag: \"1.0\"\nredis:\n  enabled: true\n  master:\n    image:\n      tag: \"7.2.4\"\nreplica:\n  image:\n    tag: \"16.2\"\nmetrics:\n  enabled: false\n";
    let db = tgz(
        "db",
        &[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: db\nversion: 1.0.0\nappVersion: \"16.1\"\n",
            ),
            ("values.yaml", "image:\n  repository: postgres\n"),
            (
                "templates/db.yaml",
                "image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n",
            ),
        ],
    );
    let dir = env.chart(
        "shop",
        &[
            ("Chart.yaml", chart_yaml),
            ("values.yaml", values),
            ("charts/redis/Chart.yaml", "apiVersion: v2\nname: redis\nversion: 1.2.0\nappVersion: 7.2.0\n"),
            ("charts/redis/values.yaml", "master:\n  image:\n    registry: docker.io\n    repository: bitnami/redis\n    tag: \"7.2.0\"\n"),
            (
                "charts/redis/templates/master.yaml",
                "image: {{ .Values.master.image.registry }}/{{ .Values.master.image.repository }}:{{ .Values.master.image.tag }}\n",
            ),
            ("charts/metrics/Chart.yaml", "apiVersion: v2\nname: metrics\nversion: 1.0.0\n"),
            ("charts/metrics/values.yaml", "image:\n  repository: prom/exporter\n  tag: v1\n"),
        ],
    );
    fs::write(dir.join("charts/db-1.0.0.tgz"), &db).expect("write db");
    let dir = dir.to_str().expect("utf-8");
    let report = env.json(&[dir]);
    expect(
        &report,
        &[
            ("docker.io/acme/shop:1.0", &["values.yaml: image"]),
            (
                "docker.io/bitnami/redis:7.2.4",
                &[
                    "charts/redis/values.yaml: master.image",
                    "values.yaml: redis.master.image.tag",
                    "charts/redis/templates/master.yaml:1 (.Values.master.image)",
                ],
            ),
            (
                "docker.io/library/postgres:16.1",
                &[
                    "charts/db/values.yaml: image (tag from appVersion)",
                    "charts/db/templates/db.yaml:1 (.Values.image.repository)",
                ],
            ),
            (
                "docker.io/library/postgres:16.2",
                &[
                    "charts/db/values.yaml: image",
                    "values.yaml: replica.image.tag",
                    "charts/db/templates/db.yaml:1 (.Values.image)",
                ],
            ),
        ],
    );
    assert_eq!(
        warnings(&report),
        [
            "charts/metrics/: not listed: the dependency \"metrics\" is disabled by its condition metrics.enabled (false)",
            "Chart.yaml: the dependency \"missing\" is not in charts/, so its images are not listed (run helm dependency update)",
        ]
    );

    // Turned on, the subchart's images are listed; a parent global reaches every subchart.
    let report = env.json(&[
        dir,
        "--set",
        "metrics.enabled=true",
        "--set",
        "redis.enabled=false",
    ]);
    let listed: Vec<String> = images(&report).into_iter().map(|(i, _)| i).collect();
    assert_eq!(
        listed,
        [
            "docker.io/acme/shop:1.0",
            "docker.io/library/postgres:16.1",
            "docker.io/library/postgres:16.2",
            "docker.io/prom/exporter:v1"
        ]
    );
    assert!(warnings(&report)[0].starts_with("charts/redis/: not listed: the dependency \"redis\" is disabled by its condition redis.enabled (false)"));
}

#[test]
fn values_files_then_set_then_set_string_as_helm_applies_them() {
    let env = Env::new();
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            (
                "values.yaml",
                "image:\n  repository: acme/app\n  tag: \"1\"\n",
            ),
        ],
    );
    fs::write(env.path("a.yaml"), "image:\n  tag: 5.10\n").expect("write");
    fs::write(env.path("b.yaml"), "image:\n  repository: acme/other\n").expect("write");
    let dir = dir.to_str().expect("utf-8");
    // YAML numbers are floats, as in Helm: 5.10 renders as 5.1.
    let report = env.json(&[dir, "-f", "a.yaml", "--values", "b.yaml"]);
    expect(
        &report,
        &[(
            "docker.io/acme/other:5.1",
            &["b.yaml: image", "a.yaml: image.tag"],
        )],
    );
    // --set keeps 5.10 a string (only integers are typed), and --set-string comes last.
    let report = env.json(&[dir, "-f", "a.yaml", "--set", "image.tag=5.10"]);
    expect(
        &report,
        &[(
            "docker.io/acme/app:5.10",
            &["values.yaml: image", "--set: image.tag"],
        )],
    );
    let report = env.json(&[dir, "--set-string", "image.tag=010", "--set", "image.tag=9"]);
    expect(
        &report,
        &[(
            "docker.io/acme/app:010",
            &["values.yaml: image", "--set-string: image.tag"],
        )],
    );
    // null deletes the chart's key: the tag falls back (no appVersion here, so :latest).
    let report = env.json(&[dir, "--set", "image.tag=null"]);
    expect(
        &report,
        &[(
            "docker.io/acme/app:latest",
            &["values.yaml: image (no tag: latest)"],
        )],
    );
}

#[test]
fn invalid_references_are_warnings_naming_where_they_are() {
    let env = Env::new();
    let chart_yaml = "apiVersion: v2\nname: app\nversion: 0.1.0\nannotations:\n  artifacthub.io/images: |\n    - name: x\n      image: UPPER/x:1\n";
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", chart_yaml),
            (
                "values.yaml",
                "image: \"Bad Image:1\"\nok:\n  image: alpine:3\n",
            ),
            (
                "templates/pod.yaml",
                "spec:\n  containers:\n    - image: \"x:y:z\"\n",
            ),
        ],
    );
    let report = env.json(&[dir.to_str().expect("utf-8")]);
    expect(
        &report,
        &[("docker.io/library/alpine:3", &["values.yaml: ok.image"])],
    );
    assert_eq!(
        warnings(&report),
        [
            "Chart.yaml: annotations[\"artifacthub.io/images\"][0]: \"UPPER/x:1\" is not a valid image reference: bad repository path component \"UPPER\" (lowercase letters, digits and single . _ __ - separators)",
            "values.yaml: image: \"Bad Image:1\" is not a valid image reference: it contains whitespace or a control character",
            "templates/pod.yaml:3: \"x:y:z\" is not a valid image reference: bad repository path component \"x:y\" (lowercase letters, digits and single . _ __ - separators)",
        ]
    );
}

#[test]
fn a_cached_ref_a_directory_and_an_archive_give_the_same_report() {
    let env = Env::new();
    let files: &[(&str, &str)] = &[
        (
            "Chart.yaml",
            "apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: 2.0.0\n",
        ),
        ("values.yaml", "image:\n  repository: ghcr.io/acme/app\n"),
        (
            "templates/deploy.yaml",
            "image: \"{{ .Values.image.repository }}:{{ .Chart.AppVersion }}\"\n",
        ),
        (".helmignore", "ignored/\n"),
        ("ignored/templates/x.yaml", "image: never/listed:1\n"),
    ];
    let dir = env.chart("app", files);
    let dir = dir.to_str().expect("utf-8");
    let from_dir = env.json(&[dir]);
    expect(
        &from_dir,
        &[(
            "ghcr.io/acme/app:2.0.0",
            &[
                "values.yaml: image (tag from appVersion)",
                "templates/deploy.yaml:1 (.Values.image.repository)",
            ],
        )],
    );
    env.ok(&["chart", "save", dir, "localhost:5000/acme/app:0.1.0"]);
    assert_eq!(env.json(&["localhost:5000/acme/app:0.1.0"]), from_dir);
    let archive = tgz("app", &files[..3]);
    fs::write(env.path("app-0.1.0.tgz"), archive).expect("write");
    assert_eq!(env.json(&["app-0.1.0.tgz"]), from_dir);
}

#[test]
fn errors_name_what_is_wrong() {
    let env = Env::new();
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            ("values.yaml", "image: nginx:1\n"),
        ],
    );
    let dir = dir.to_str().expect("utf-8");
    let one_error = |args: &[&str], mentions: &[&str]| {
        let run = env.run(args);
        assert_eq!(run.code, Some(1), "{}", run.describe());
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", run.describe());
        assert!(lines[0].starts_with("Error: "), "{}", run.describe());
        for m in mentions {
            assert!(lines[0].contains(m), "{m:?} in {}", run.describe());
        }
        assert_eq!(run.stdout, "");
    };
    one_error(
        &["chart", "images", "no-such-dir"],
        &["no-such-dir", "no such chart directory"],
    );
    one_error(
        &["chart", "images", "localhost:5000/acme/none:1.0.0"],
        &["localhost:5000/acme/none:1.0.0"],
    );
    one_error(
        &["chart", "images", dir, "--set", "image"],
        &["\"image\"", "has no value"],
    );
    one_error(&["chart", "images", dir, "--set", "a[x]=1"], &["a[x]=1"]);
    fs::write(env.path("list.yaml"), "- a\n- b\n").expect("write");
    one_error(
        &["chart", "images", dir, "-f", "list.yaml"],
        &["list.yaml", "not a map"],
    );
    one_error(
        &["chart", "images", dir, "-f", "missing.yaml"],
        &["missing.yaml"],
    );
    fs::write(env.path("broken.tgz"), "not an archive").expect("write");
    one_error(&["chart", "images", "broken.tgz"], &["broken.tgz"]);
    let run = env.run(&["chart", "images"]);
    assert_eq!(run.code, Some(2), "{}", run.describe());
}

#[test]
fn control_characters_from_a_chart_never_reach_the_terminal() {
    let env = Env::new();
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            (
                "values.yaml",
                "\"evil\\e[31m\":\n  image: busybox:1\n\"x\\e]0;t\\a\":\n  image: \"a\\eb\"\n",
            ),
        ],
    );
    let run = env.ok(&["chart", "images", dir.to_str().expect("utf-8")]);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stderr.contains('\u{1b}'),
        "{}",
        run.describe()
    );
    // The key is shown as --set writes it ('[' escaped), its control character as an escape.
    assert!(
        run.stdout.contains("values.yaml: evil\\u{1b}\\[31m.image"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("\\u{1b}"), "{}", run.describe());
}

#[test]
fn quiet_prints_only_the_references() {
    let env = Env::new();
    let dir = env.chart(
        "app",
        &[
            ("Chart.yaml", CHART_YAML),
            ("values.yaml", "a:\n  image: nginx:1\nb:\n  image: Bad\n"),
        ],
    );
    let run = env.ok(&["-q", "chart", "images", dir.to_str().expect("utf-8")]);
    assert_eq!(run.stdout, "docker.io/library/nginx:1\n");
    assert!(
        run.stderr.starts_with("WARNING: values.yaml: b.image: "),
        "{}",
        run.describe()
    );
}

/// The shared real charts: old helm/charts charts, each with what its values.yaml and
/// templates say it runs (read by hand), and the dependencies it declares but does not carry.
#[test]
fn real_charts() {
    // The shared test data sits beside the repository, or beside the directory of worktrees.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(root) = manifest
        .ancestors()
        .map(|a| a.join("shared/testdata/real-charts"))
        .find(|p| p.is_dir())
    else {
        if std::env::var_os("CHARTCACHE_NO_SHARED_TESTDATA").is_some() {
            eprintln!(
                "note: skipping: no shared/testdata/real-charts above {}",
                manifest.display()
            );
            return;
        }
        panic!(
            "no shared/testdata/real-charts above {} (set CHARTCACHE_NO_SHARED_TESTDATA=1 to skip)",
            manifest.display()
        );
    };
    type Want = (
        &'static str,
        &'static [(&'static str, &'static [&'static str])],
        &'static [&'static str],
    );
    let missing = |dep: &str| {
        format!(
            "requirements.yaml: the dependency {dep:?} is not in charts/, so its images are not listed (run helm dependency update)"
        )
    };
    let charts: &[Want] = &[
        (
            "incubator/cassandra",
            &[
                (
                    "docker.io/criteord/cassandra_exporter:2.0.2",
                    &["values.yaml: exporter.image"],
                ),
                // An init container written literally, rendered only with configOverrides.
                (
                    "docker.io/library/busybox:latest",
                    &["templates/statefulset.yaml:56 (not rendered with these values)"],
                ),
                (
                    "docker.io/library/cassandra:3.11.6",
                    &[
                        "values.yaml: image",
                        "templates/statefulset.yaml:98 (.Values.image)",
                    ],
                ),
                (
                    "docker.io/maorfr/cain:0.6.0",
                    &["values.yaml: backup.image"],
                ),
            ],
            &[],
        ),
        (
            "incubator/etcd",
            &[(
                "k8s.gcr.io/etcd-amd64:3.2.26",
                &[
                    "values.yaml: image",
                    "templates/statefulset.yaml:45 (.Values.image)",
                ],
            )],
            &[],
        ),
        (
            "incubator/kafka",
            &[
                (
                    "docker.io/confluentinc/cp-kafka:5.0.1",
                    &[
                        "values.yaml: image",
                        "templates/statefulset.yaml:88 (.Values.image, .Values.imageTag)",
                        "templates/tests/test_topic_create_consume_produce.yaml:11 (.Values.image, .Values.imageTag)",
                    ],
                ),
                (
                    "docker.io/danielqsj/kafka-exporter:v1.2.0",
                    &["values.yaml: prometheus.kafka.image"],
                ),
                (
                    "docker.io/lwolf/kubectl_deployer:0.4",
                    &["values.yaml: external.init.image"],
                ),
                (
                    "docker.io/solsson/kafka-prometheus-jmx-exporter@sha256:a23062396cd5af1acdf76512632c20ea6be76885dfc20cd9ff40fb23846557e8",
                    &["values.yaml: prometheus.jmx.image"],
                ),
            ],
            &["zookeeper"],
        ),
        (
            "stable/airflow",
            &[
                (
                    "docker.io/alpine/git:latest",
                    &[
                        "values.yaml: dags.git.gitSync.image",
                        "values.yaml: dags.initContainer.image",
                    ],
                ),
                (
                    "docker.io/apache/airflow:1.10.12-python3.6",
                    &[
                        "values.yaml: airflow.image",
                        "templates/flower/flower-deployment.yaml:75 (.Values.airflow.image)",
                        "templates/scheduler/scheduler-deployment.yaml:172 (.Values.airflow.image)",
                        "templates/webserver/webserver-deployment.yaml:144 (.Values.airflow.image)",
                        "templates/worker/worker-statefulset.yaml:151 (.Values.airflow.image)",
                    ],
                ),
            ],
            &["postgresql", "redis"],
        ),
        (
            "stable/cert-manager",
            &[(
                "quay.io/jetstack/cert-manager-controller:v0.6.2",
                &[
                    "values.yaml: image",
                    "templates/deployment.yaml:45 (.Values.image)",
                ],
            )],
            &["webhook"],
        ),
        (
            "stable/elasticsearch",
            &[
                (
                    "docker.elastic.co/elasticsearch/elasticsearch-oss:6.8.6",
                    &[
                        "values.yaml: image",
                        "templates/client-deployment.yaml:131 (.Values.image)",
                        "templates/data-statefulset.yaml:99 (.Values.image)",
                        "templates/data-statefulset.yaml:146 (.Values.image)",
                        "templates/master-statefulset.yaml:102 (.Values.image)",
                        "templates/master-statefulset.yaml:157 (.Values.image)",
                    ],
                ),
                (
                    "docker.io/byrnedo/alpine-curl:latest",
                    &["templates/job.yaml:27 (not rendered with these values)"],
                ),
                (
                    "docker.io/dduportal/bats:0.4.0",
                    &[
                        "values.yaml: testFramework.image",
                        "templates/tests/test.yaml:21 (.Values.testFramework)",
                        "templates/tests/test.yaml:34 (.Values.testFramework)",
                    ],
                ),
                (
                    "docker.io/library/busybox:latest",
                    &[
                        "values.yaml: initImage",
                        "templates/client-deployment.yaml:81 (.Values.initImage)",
                        "templates/data-statefulset.yaml:89 (.Values.initImage)",
                        "templates/master-statefulset.yaml:92 (.Values.initImage)",
                    ],
                ),
            ],
            &[],
        ),
        (
            "stable/grafana",
            &[
                (
                    "docker.io/bats/bats:v1.1.0",
                    &[
                        "values.yaml: testFramework.image",
                        "templates/tests/test.yaml:36 (.Values.testFramework)",
                    ],
                ),
                (
                    "docker.io/curlimages/curl:7.70.0",
                    &["values.yaml: downloadDashboardsImage"],
                ),
                // The pod spec is a define in _pod.tpl, included by the deployment; its sha is
                // empty, so the line without a digest is the one rendered.
                (
                    "docker.io/grafana/grafana:7.1.1",
                    &[
                        "values.yaml: image",
                        "templates/_pod.tpl:192 (.Values.image)",
                    ],
                ),
                (
                    "docker.io/kiwigrid/k8s-sidecar:0.1.151",
                    &["values.yaml: sidecar.image"],
                ),
                (
                    "docker.io/library/busybox:1.31.1",
                    &["values.yaml: initChownData.image"],
                ),
            ],
            &[],
        ),
        (
            "stable/jenkins",
            &[
                (
                    "docker.io/dduportal/bats:0.4.0",
                    &["templates/tests/jenkins-test.yaml:20"],
                ),
                (
                    "docker.io/jenkins/inbound-agent:4.3-4",
                    &[
                        "values.yaml: agent.image",
                        "templates/_helpers.tpl:188 (.Values.agent)",
                    ],
                ),
                (
                    "docker.io/jenkins/jenkins:lts",
                    &[
                        "values.yaml: master.image",
                        "templates/jenkins-master-deployment.yaml:98 (.Values.master)",
                        "templates/jenkins-master-deployment.yaml:162 (.Values.master)",
                        "templates/tests/jenkins-test.yaml:36 (.Values.master)",
                    ],
                ),
                (
                    "docker.io/kiwigrid/k8s-sidecar:0.1.144",
                    &[
                        "values.yaml: master.sidecars.configAutoReload.image",
                        "templates/jenkins-master-deployment.yaml:311 (.Values.master.sidecars.configAutoReload.image)",
                    ],
                ),
                (
                    "docker.io/maorfr/kube-tasks:0.2.0",
                    &["values.yaml: backup.image"],
                ),
            ],
            &[],
        ),
        (
            "stable/kube-state-metrics",
            &[(
                "quay.io/coreos/kube-state-metrics:v1.9.7",
                &[
                    "values.yaml: image",
                    "templates/deployment.yaml:166 (.Values.image)",
                ],
            )],
            &[],
        ),
        (
            "stable/minio",
            &[
                (
                    "docker.io/bskim45/helm-kubectl-jq:3.1.0",
                    &["values.yaml: helmKubectlJqImage"],
                ),
                (
                    "docker.io/minio/mc:RELEASE.2020-05-28T23-43-36Z",
                    &["values.yaml: mcImage"],
                ),
                (
                    "docker.io/minio/minio:RELEASE.2020-06-14T18-32-17Z",
                    &[
                        "values.yaml: image",
                        "templates/deployment.yaml:70 (.Values.image)",
                    ],
                ),
            ],
            &[],
        ),
        (
            "stable/mysql",
            &[
                (
                    "docker.io/bats/bats:1.2.1",
                    &[
                        "values.yaml: testFramework.image",
                        "templates/tests/test.yaml:38 (.Values.testFramework)",
                    ],
                ),
                (
                    "docker.io/library/busybox:1.32",
                    &[
                        "values.yaml: busybox.image",
                        "templates/deployment.yaml:54 (.Values.busybox)",
                    ],
                ),
                (
                    "docker.io/library/mysql:5.7.30",
                    &[
                        "values.yaml: image",
                        "templates/deployment.yaml:82 (.Values.image, .Values.imageTag)",
                    ],
                ),
                (
                    "docker.io/prom/mysqld-exporter:v0.10.0",
                    &["values.yaml: metrics.image"],
                ),
            ],
            &[],
        ),
        (
            "stable/nginx-ingress",
            &[
                (
                    "docker.io/jettech/kube-webhook-certgen:v1.0.0",
                    &["values.yaml: controller.admissionWebhooks.patch.image"],
                ),
                (
                    "k8s.gcr.io/defaultbackend-amd64:1.5",
                    &[
                        "values.yaml: defaultBackend.image",
                        "templates/default-backend-deployment.yaml:57 (.Values.defaultBackend.image)",
                    ],
                ),
                // Built inside `with .Values.controller.image`, registry and tag by `if`s.
                (
                    "us.gcr.io/k8s-artifacts-prod/ingress-nginx/controller:v0.34.1",
                    &[
                        "values.yaml: controller.image",
                        "templates/controller-deployment.yaml:72 (.Values.controller.image)",
                    ],
                ),
            ],
            &[],
        ),
        (
            "stable/postgresql",
            &[
                (
                    "docker.io/bitnami/minideb:buster",
                    &["values.yaml: volumePermissions.image"],
                ),
                (
                    "docker.io/bitnami/postgres-exporter:0.8.0-debian-10-r28",
                    &["values.yaml: metrics.image"],
                ),
                // Built by the helper postgresql.image (printf of registry, repository and tag).
                (
                    "docker.io/bitnami/postgresql:11.7.0-debian-10-r9",
                    &[
                        "values.yaml: image",
                        "templates/statefulset.yaml:125 (.Values.image)",
                    ],
                ),
            ],
            &[],
        ),
        (
            "stable/prometheus-operator",
            &[
                (
                    "docker.io/jettech/kube-webhook-certgen:v1.2.1",
                    &[
                        "values.yaml: prometheusOperator.admissionWebhooks.patch.image",
                        "templates/prometheus-operator/admission-webhooks/job-patch/job-createSecret.yaml:37 (.Values.prometheusOperator.admissionWebhooks.patch.image)",
                        "templates/prometheus-operator/admission-webhooks/job-patch/job-patchWebhook.yaml:37 (.Values.prometheusOperator.admissionWebhooks.patch.image)",
                    ],
                ),
                (
                    "docker.io/jimmidyson/configmap-reload:v0.3.0",
                    &["values.yaml: prometheusOperator.configmapReloadImage"],
                ),
                (
                    "docker.io/squareup/ghostunnel:v1.5.2",
                    &[
                        "values.yaml: prometheusOperator.tlsProxy.image",
                        "templates/prometheus-operator/deployment.yaml:91 (.Values.prometheusOperator.tlsProxy.image)",
                    ],
                ),
                (
                    "k8s.gcr.io/hyperkube:v1.16.12",
                    &["values.yaml: prometheusOperator.hyperkubeImage"],
                ),
                (
                    "quay.io/coreos/prometheus-config-reloader:v0.38.1",
                    &["values.yaml: prometheusOperator.prometheusConfigReloaderImage"],
                ),
                (
                    "quay.io/coreos/prometheus-operator:v0.38.1",
                    &[
                        "values.yaml: prometheusOperator.image",
                        "templates/prometheus-operator/deployment.yaml:38 (.Values.prometheusOperator.image)",
                    ],
                ),
                (
                    "quay.io/prometheus/alertmanager:v0.21.0",
                    &["values.yaml: alertmanager.alertmanagerSpec.image"],
                ),
                (
                    "quay.io/prometheus/prometheus:v2.18.2",
                    &["values.yaml: prometheus.prometheusSpec.image"],
                ),
            ],
            &["kube-state-metrics", "prometheus-node-exporter", "grafana"],
        ),
        (
            "stable/redis",
            &[
                (
                    "docker.io/bitnami/minideb:buster",
                    &[
                        "values.yaml: sysctlImage",
                        "values.yaml: volumePermissions.image",
                    ],
                ),
                (
                    "docker.io/bitnami/redis:5.0.7-debian-10-r32",
                    &[
                        "values.yaml: image",
                        "templates/redis-master-statefulset.yaml:71 (.Values.image)",
                        "templates/redis-slave-statefulset.yaml:77 (.Values.image)",
                    ],
                ),
                (
                    "docker.io/bitnami/redis-exporter:1.4.0-debian-10-r3",
                    &["values.yaml: metrics.image"],
                ),
                (
                    "docker.io/bitnami/redis-sentinel:5.0.7-debian-10-r27",
                    &["values.yaml: sentinel.image"],
                ),
            ],
            &[],
        ),
        (
            "stable/spinnaker",
            &[(
                "gcr.io/spinnaker-marketplace/halyard:1.32.0",
                &[
                    "values.yaml: halyard.image",
                    "templates/hooks/cleanup.yaml:35 (.Values.halyard.image)",
                    "templates/hooks/install-using-hal.yaml:99 (.Values.halyard.image)",
                    "templates/statefulsets/halyard.yaml:43 (.Values.halyard.image)",
                    "templates/statefulsets/halyard.yaml:161 (.Values.halyard.image)",
                ],
            )],
            &["redis", "minio"],
        ),
        (
            "stable/traefik",
            &[
                (
                    "docker.io/dduportal/bats:0.4.0",
                    &["values.yaml: testFramework.image"],
                ),
                (
                    "docker.io/library/traefik:1.7.26",
                    &[
                        "values.yaml: image",
                        "templates/deployment.yaml:80 (.Values.image, .Values.imageTag)",
                    ],
                ),
            ],
            &[],
        ),
        (
            "stable/wordpress",
            &[
                (
                    "docker.io/bitnami/apache-exporter:0.7.0-debian-10-r32",
                    &["values.yaml: metrics.image"],
                ),
                (
                    "docker.io/bitnami/wordpress:5.3.2-debian-10-r32",
                    &[
                        "values.yaml: image",
                        "templates/deployment.yaml:50 (.Values.image)",
                        "templates/tests/test-mariadb-connection.yaml:11 (.Values.image)",
                    ],
                ),
            ],
            &["mariadb"],
        ),
    ];
    assert_eq!(charts.len(), 18);
    let env = Env::new();
    for (chart, want, deps) in charts {
        let dir = root.join(chart);
        let report = env.json(&[dir.to_str().expect("utf-8")]);
        let got = images(&report);
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(i, f)| (i.to_string(), f.iter().map(ToString::to_string).collect()))
            .collect();
        assert_eq!(got, want, "{chart}");
        let want_warnings: Vec<String> = deps.iter().map(|d| missing(d)).collect();
        assert_eq!(warnings(&report), want_warnings, "{chart}");
    }
}
