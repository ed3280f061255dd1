//! Multi-platform images in the real registry of `tests/support`: built from random layers and
//! pushed by hand, and asked about as any client would.

use serde_json::json;

use crate::support::Registry;

use super::peers::{put_manifest_as, upload_blob};
use super::server::OCI_MANIFEST;
use super::sha256_hex;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The digest a registry serves for `repo:reference` (any manifest type).
pub fn served_digest(reg: &Registry, repo: &str, reference: &str) -> Option<String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    let resp = reg.request(
        "HEAD",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", &accept)],
        &[],
    );
    (resp.status == 200)
        .then(|| resp.header("Docker-Content-Digest").map(str::to_string))
        .flatten()
}

/// A two-platform image: random layers and configs, two manifests and an index, pushed to
/// `repo:tag`; returns the index digest and the two manifest digests.
pub fn push_image_index(reg: &Registry, repo: &str, tag: &str) -> (String, Vec<String>) {
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let layer: Vec<u8> = (0..64 * 1024)
            .map(|n| ((n * 31 + i * 7 + tag.len()) % 251) as u8)
            .collect();
        let config = json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
        let platform = json!({"architecture": arch, "os": "linux"});
        manifests.push(push_manifest(reg, repo, &config, &[layer], platform));
    }
    let (digest, _, manifests) = push_index(reg, repo, tag, manifests);
    (digest, manifests)
}

/// One image manifest of `config` and `layers` (their blobs uploaded first), pushed by
/// digest; returns its index entry: digest, size, platform.
fn push_manifest(
    reg: &Registry,
    repo: &str,
    config: &serde_json::Value,
    layers: &[Vec<u8>],
    platform: serde_json::Value,
) -> (String, usize, serde_json::Value) {
    let config = config.to_string().into_bytes();
    let config_digest = upload_blob(reg, repo, &config);
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": upload_blob(reg, repo, l), "size": l.len()}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layer_descs,
    })
    .to_string()
    .into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    put_manifest_as(reg, repo, &digest, OCI_MANIFEST, &manifest);
    (digest, manifest.len(), platform)
}

/// An index of `manifests` pushed to `repo:tag`; returns its digest, its bytes, and the
/// manifest digests.
fn push_index(
    reg: &Registry,
    repo: &str,
    tag: &str,
    manifests: Vec<(String, usize, serde_json::Value)>,
) -> (String, Vec<u8>, Vec<String>) {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests.iter().map(|(d, size, p)| json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": size, "platform": p,
        })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    put_manifest_as(reg, repo, tag, OCI_INDEX, &index);
    (
        format!("sha256:{}", sha256_hex(&index)),
        index,
        manifests.into_iter().map(|(d, _, _)| d).collect(),
    )
}

/// `size` bytes no earlier run can have made: SHA-256 blocks chained from a random seed, so a
/// registry holds none of them before (nothing is mounted or skipped by accident).
pub fn random_bytes(size: usize) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    use std::hash::BuildHasher as _;
    let seed = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    let mut block: [u8; 32] = Sha256::digest(seed.to_le_bytes()).into();
    let mut out = Vec::with_capacity(size + 32);
    while out.len() < size {
        block = Sha256::digest(block).into();
        out.extend_from_slice(&block);
    }
    out.truncate(size);
    out
}

/// A multi-platform image: for each of `platforms` (`os/arch[/variant]`), a config and two
/// random layers of `layer_size` bytes, one manifest; an index naming them, pushed to
/// `repo:tag`. Returns the index digest, its bytes, and the manifest digests.
pub fn push_random_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    platforms: &[&str],
    layer_size: usize,
) -> (String, Vec<u8>, Vec<String>) {
    let mut manifests = Vec::new();
    for platform in platforms {
        let parts: Vec<&str> = platform.split('/').collect();
        let mut p = json!({"os": parts[0], "architecture": parts[1]});
        if let Some(v) = parts.get(2) {
            p["variant"] = json!(v);
        }
        let layers: Vec<Vec<u8>> = (0..2).map(|_| random_bytes(layer_size)).collect();
        let mut config = p.clone();
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
        manifests.push(push_manifest(reg, repo, &config, &layers, p));
    }
    push_index(reg, repo, tag, manifests)
}
