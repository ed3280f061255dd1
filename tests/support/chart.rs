//! Tiny chart fixtures: a chart `.tgz`, and an OCI image layout holding it as a Helm chart
//! artifact (for `skopeo copy oci:DIR:TAG docker://…` without needing Helm).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Writes `dir/{name}-{version}.tgz` holding `{name}/Chart.yaml` (apiVersion v2) and an
/// empty `{name}/values.yaml`. Byte-for-byte deterministic for the same inputs.
pub fn chart_tgz(dir: &Path, name: &str, version: &str) -> PathBuf {
    chart_tgz_with_files(dir, name, version, &[])
}

/// Like [`chart_tgz`], plus `files` (paths relative to the chart dir, e.g.
/// `templates/cm.yaml`); a `Chart.yaml` or `values.yaml` in `files` replaces the default.
pub fn chart_tgz_with_files(
    dir: &Path,
    name: &str,
    version: &str,
    files: &[(&str, &[u8])],
) -> PathBuf {
    let chart_yaml = format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\ndescription: chartcache test chart\ntype: application\n"
    );
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("Chart.yaml".into(), chart_yaml.into_bytes()),
        ("values.yaml".into(), b"{}\n".to_vec()),
    ];
    for (path, data) in files {
        entries.retain(|(p, _)| p != path);
        entries.push((path.to_string(), data.to_vec()));
    }

    let path = dir.join(format!("{name}-{version}.tgz"));
    let gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (rel, data) in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{name}/{rel}"), data.as_slice())
            .expect("tar append");
    }
    let bytes = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .expect("finish tgz");
    fs::write(&path, bytes).expect("write chart tgz");
    path
}

/// An OCI image layout made by [`oci_layout_with_chart`].
#[derive(Debug, Clone)]
pub struct OciLayoutChart {
    pub dir: PathBuf,
    pub tag: String,
    /// `oci:DIR:TAG`, a skopeo source reference.
    pub reference: String,
    pub manifest: Vec<u8>,
    /// `sha256:…` of `manifest`.
    pub manifest_digest: String,
    pub config_digest: String,
    /// `sha256:…` of the chart `.tgz` (the single layer).
    pub chart_digest: String,
}

/// Writes an OCI image layout at `layout_dir` holding `tgz` as a Helm chart artifact tagged
/// `tag` (config: chart metadata JSON; one layer: the `.tgz`), like `helm push` makes it.
pub fn oci_layout_with_chart(
    layout_dir: &Path,
    tgz: &Path,
    name: &str,
    version: &str,
    tag: &str,
) -> OciLayoutChart {
    let blobs = layout_dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let put = |data: &[u8]| -> String {
        let hex = format!("{:x}", Sha256::digest(data));
        let mut f = fs::File::create(blobs.join(&hex)).expect("create blob");
        f.write_all(data).expect("write blob");
        format!("sha256:{hex}")
    };
    let chart = fs::read(tgz).expect("read chart tgz");
    let config = json!({"apiVersion": "v2", "name": name, "version": version}).to_string();
    let chart_digest = put(&chart);
    let config_digest = put(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": HELM_CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "digest": chart_digest, "size": chart.len()}],
        "annotations": {
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        },
    })
    .to_string()
    .into_bytes();
    let manifest_digest = put(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(
        layout_dir.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
    fs::write(layout_dir.join("index.json"), index.to_string()).expect("write index.json");
    OciLayoutChart {
        dir: layout_dir.to_path_buf(),
        tag: tag.to_string(),
        reference: format!("oci:{}:{tag}", layout_dir.display()),
        manifest,
        manifest_digest,
        config_digest,
        chart_digest,
    }
}
