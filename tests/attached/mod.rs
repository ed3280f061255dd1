//! Artifacts attached to a chart on a real registry (distribution 2.8, no referrers API):
//! OCI 1.1 referrers pushed with the referrers tag schema as oras writes it for such
//! registries, and a cosign-style `sha256-<hex>.sig` tag. Shared by the referrers tests.
//!
//! Use with `mod support; mod fault; mod attached;`.
#![allow(dead_code)]

use serde_json::{Value, json};

use crate::fault::{Sandbox, sha256_hex, upload_blob};
use crate::support::Registry;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const SBOM: &str = "application/spdx+json";
pub const SIGNATURE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// When the SBOM of [`signed_chart`] says it was made.
pub const SBOM_CREATED: &str = "2026-12-01T10:00:00Z";
pub const COSIGN_PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A manifest as pushed: its digest and size.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

pub fn put(reg: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Pushed {
    let resp = reg.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        bytes,
    );
    assert_eq!(resp.status, 201, "put {repo}:{reference}: {}", resp.text());
    Pushed {
        digest: format!("sha256:{}", sha256_hex(bytes)),
        size: bytes.len(),
    }
}

pub fn get(reg: &Registry, repo: &str, reference: &str) -> Option<Vec<u8>> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    let resp = reg.request(
        "GET",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", &accept)],
        &[],
    );
    (resp.status == 200).then_some(resp.body)
}

/// An OCI 1.1 artifact of `artifact_type` with one layer, referring to `subject`.
pub fn push_referrer(
    reg: &Registry,
    repo: &str,
    artifact_type: &str,
    content: &[u8],
    subject: &Pushed,
) -> Pushed {
    push_referrer_created(reg, repo, artifact_type, content, subject, None)
}

/// [`push_referrer`], with the annotation `org.opencontainers.image.created` when given.
pub fn push_referrer_created(
    reg: &Registry,
    repo: &str,
    artifact_type: &str,
    content: &[u8],
    subject: &Pushed,
    created: Option<&str>,
) -> Pushed {
    let config = upload_blob(reg, repo, b"{}");
    let layer = upload_blob(reg, repo, content);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer, "size": content.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
    });
    if let Some(created) = created {
        manifest["annotations"] = json!({ "org.opencontainers.image.created": created });
    }
    let manifest = manifest.to_string().into_bytes();
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    let pushed = put(reg, repo, &digest, OCI_MANIFEST, &manifest);
    // Without the referrers API, the pusher keeps the tag schema's index (as oras does).
    let tag = fallback_tag(&subject.digest);
    let mut index: Value = get(reg, repo, &tag)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST, "digest": pushed.digest, "size": pushed.size,
        "artifactType": artifact_type,
    }));
    put(
        reg,
        repo,
        &tag,
        OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    );
    pushed
}

/// A cosign-style signature manifest under `sha256-<hex>.sig`.
pub fn push_cosign_signature(reg: &Registry, repo: &str, subject: &Pushed) -> Pushed {
    let payload = json!({"critical": {"identity": {"docker-reference": repo},
        "image": {"docker-manifest-digest": subject.digest}, "type": "cosign container image signature"},
        "optional": null})
    .to_string()
    .into_bytes();
    let config = upload_blob(reg, repo, b"{}");
    let layer = upload_blob(reg, repo, &payload);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": COSIGN_PAYLOAD, "digest": layer, "size": payload.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQ=="}}],
    })
    .to_string()
    .into_bytes();
    let tag = format!("{}.sig", fallback_tag(&subject.digest));
    put(reg, repo, &tag, OCI_MANIFEST, &manifest)
}

pub fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The digests the referrers tag schema index of `subject` lists at `repo`.
pub fn listed(reg: &Registry, repo: &str, subject: &Pushed) -> Vec<String> {
    let Some(bytes) = get(reg, repo, &fallback_tag(&subject.digest)) else {
        return Vec::new();
    };
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    let mut digests: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    digests.sort();
    digests
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A chart with an SBOM, a signature of the SBOM and a cosign signature, at
/// `reg/charts/app:1.0.0`.
pub struct Signed {
    pub chart: Pushed,
    pub sbom: Pushed,
    pub sbom_signature: Pushed,
    pub cosign: Pushed,
}

pub fn signed_chart(sb: &Sandbox, reg: &Registry) -> Signed {
    let name = format!("{}/charts/app:1.0.0", reg.host());
    let dir = sb.chart("app", "1.0.0");
    sb.ok(&["chart", "save", dir.to_str().unwrap(), &name]);
    sb.ok(&["chart", "push", &name]);
    let digest = sb.manifest_digest(&name);
    let size = get(reg, "charts/app", "1.0.0").unwrap().len();
    let chart = Pushed { digest, size };
    let sbom = push_referrer_created(
        reg,
        "charts/app",
        SBOM,
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
        &chart,
        Some(SBOM_CREATED),
    );
    let sbom_signature = push_referrer(
        reg,
        "charts/app",
        SIGNATURE,
        b"signature of the sbom",
        &sbom,
    );
    let cosign = push_cosign_signature(reg, "charts/app", &chart);
    Signed {
        chart,
        sbom,
        sbom_signature,
        cosign,
    }
}

/// Everything of `signed` is at `repo` of `reg`, with the same digests.
pub fn assert_all_there(reg: &Registry, repo: &str, signed: &Signed, what: &str) {
    assert_eq!(
        get(reg, repo, "1.0.0").map(|b| format!("sha256:{}", sha256_hex(&b))),
        Some(signed.chart.digest.clone()),
        "{what}: the chart"
    );
    assert_eq!(
        listed(reg, repo, &signed.chart),
        vec![signed.sbom.digest.clone()],
        "{what}: the chart's referrers"
    );
    assert_eq!(
        listed(reg, repo, &signed.sbom),
        vec![signed.sbom_signature.digest.clone()],
        "{what}: the SBOM's referrers"
    );
    for p in [&signed.sbom, &signed.sbom_signature] {
        assert!(get(reg, repo, &p.digest).is_some(), "{what}: {}", p.digest);
    }
    let sig_tag = format!("{}.sig", fallback_tag(&signed.chart.digest));
    assert_eq!(
        get(reg, repo, &sig_tag).map(|b| format!("sha256:{}", sha256_hex(&b))),
        Some(signed.cosign.digest.clone()),
        "{what}: cosign's signature tag"
    );
}
