//! Referrers travel with what they refer to: an SBOM (OCI 1.1 `subject`), a signature of
//! that SBOM, and a cosign signature tag (`sha256-<hex>.sig`) of a chart go with it through
//! `sync`, registry → registry and registry → `oci-archive:` → registry, byte for byte; the
//! referrers tag schema index at the destination is merged with what another tool put there,
//! never overwritten; `--no-referrers` and `--referrers-type` choose. The registry here
//! (distribution 2.8) has no referrers API, so this is the tag schema path, as oras and cosign
//! write it for such registries.

mod fault;
mod support;

use fault::{Sandbox, sha256_hex, upload_blob};
use serde_json::{Value, json};
use support::Registry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
const SBOM: &str = "application/spdx+json";
const SIGNATURE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const COSIGN_PAYLOAD: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// A manifest as pushed: its digest and size.
#[derive(Debug, Clone)]
struct Pushed {
    digest: String,
    size: usize,
}

fn put(reg: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Pushed {
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

fn get(reg: &Registry, repo: &str, reference: &str) -> Option<Vec<u8>> {
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
fn push_referrer(
    reg: &Registry,
    repo: &str,
    artifact_type: &str,
    content: &[u8],
    subject: &Pushed,
) -> Pushed {
    let config = upload_blob(reg, repo, b"{}");
    let layer = upload_blob(reg, repo, content);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer, "size": content.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
    })
    .to_string()
    .into_bytes();
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
fn push_cosign_signature(reg: &Registry, repo: &str, subject: &Pushed) -> Pushed {
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

fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The digests the referrers tag schema index of `subject` lists at `repo`.
fn listed(reg: &Registry, repo: &str, subject: &Pushed) -> Vec<String> {
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

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A chart with an SBOM, a signature of the SBOM and a cosign signature, at
/// `reg/charts/app:1.0.0`.
struct Signed {
    chart: Pushed,
    sbom: Pushed,
    sbom_signature: Pushed,
    cosign: Pushed,
}

fn signed_chart(sb: &Sandbox, reg: &Registry) -> Signed {
    let name = format!("{}/charts/app:1.0.0", reg.host());
    let dir = sb.chart("app", "1.0.0");
    sb.ok(&["chart", "save", dir.to_str().unwrap(), &name]);
    sb.ok(&["chart", "push", &name]);
    let digest = sb.manifest_digest(&name);
    let size = get(reg, "charts/app", "1.0.0").unwrap().len();
    let chart = Pushed { digest, size };
    let sbom = push_referrer(
        reg,
        "charts/app",
        SBOM,
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
        &chart,
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
fn assert_all_there(reg: &Registry, repo: &str, signed: &Signed, what: &str) {
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

#[test]
fn referrers_go_registry_to_registry_and_through_an_archive() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);

    let out = sb.ok(&[
        "sync",
        &format!("{}/charts/app", reg.host()),
        &format!("{}/mirror", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(&reg, "mirror/app", &signed, "registry → registry");

    let archive = sb.path().join("bundle.tar");
    sb.ok(&[
        "sync",
        &format!("{}/charts/app", reg.host()),
        &format!("oci-archive:{}", archive.display()),
    ]);
    let out = sb.ok(&[
        "sync",
        &format!("oci-archive:{}", archive.display()),
        &format!("{}/imported", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(
        &reg,
        "imported/app",
        &signed,
        "registry → archive → registry",
    );
}

#[test]
fn a_new_referrer_is_merged_with_what_another_tool_put_at_the_destination() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);
    let (src, dst) = (
        format!("{}/charts/app", reg.host()),
        format!("{}/mirror", reg.host()),
    );
    sb.ok(&["sync", &src, &dst]);
    // Another tool signs the copy at the destination; then the source gets a second SBOM.
    sb.ok(&["chart", "pull", &format!("{dst}/app:1.0.0")]);
    let theirs = push_referrer(
        &reg,
        "mirror/app",
        SIGNATURE,
        b"their signature",
        &signed.chart,
    );
    let second = push_referrer(
        &reg,
        "charts/app",
        SBOM,
        b"{\"second\":true}",
        &signed.chart,
    );

    // The chart is up to date; its new referrer still comes, next to theirs.
    let out = sb.ok(&["sync", &src, &dst]);
    assert!(
        out.contains("Synced: 1"),
        "the new referrer was copied: {out}"
    );
    assert_eq!(
        listed(&reg, "mirror/app", &signed.chart),
        sorted(vec![
            signed.sbom.digest.clone(),
            theirs.digest.clone(),
            second.digest.clone()
        ])
    );
    // And once there, nothing more to do.
    let out = sb.ok(&["sync", &src, &dst]);
    assert!(out.contains("skipped: 1"), "{out}");
}

#[test]
fn no_referrers_and_referrers_type_choose() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);
    let src = format!("{}/charts/app", reg.host());

    sb.ok(&[
        "sync",
        "--no-referrers",
        &src,
        &format!("{}/bare", reg.host()),
    ]);
    assert!(get(&reg, "bare/app", "1.0.0").is_some());
    assert!(listed(&reg, "bare/app", &signed.chart).is_empty());
    let sig_tag = format!("{}.sig", fallback_tag(&signed.chart.digest));
    assert!(get(&reg, "bare/app", &sig_tag).is_none(), "no cosign tag");

    sb.ok(&[
        "sync",
        "--referrers-type",
        SBOM,
        &src,
        &format!("{}/sboms", reg.host()),
    ]);
    assert_eq!(
        listed(&reg, "sboms/app", &signed.chart),
        vec![signed.sbom.digest.clone()]
    );
    // The SBOM's signature is of another type: left out.
    assert!(listed(&reg, "sboms/app", &signed.sbom).is_empty());
    assert!(get(&reg, "sboms/app", &sig_tag).is_none(), "no cosign tag");
    let both = sb.run(&[
        "sync",
        "--no-referrers",
        "--referrers-type",
        SBOM,
        &src,
        "x.example/y",
    ]);
    assert_eq!(both.status.code(), Some(2), "a usage error");
    let both = String::from_utf8_lossy(&both.stderr);
    assert!(both.contains("cannot be used with"), "{both}");
}

#[test]
fn a_pulled_chart_keeps_its_referrers_in_the_cache_and_pushes_them_on() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let signed = signed_chart(&publisher, &reg);

    let sb = Sandbox::new();
    sb.ok(&["chart", "pull", &format!("{}/charts/app:1.0.0", reg.host())]);
    // The cache lists the chart as a chart, and what refers to it among its other artifacts.
    let charts = sb.ok(&["chart", "list"]);
    assert!(charts.contains("charts/app:1.0.0"), "{charts}");
    let all = sb.ok(&["cache", "list", "-o", "json"]);
    assert!(all.contains(&fallback_tag(&signed.chart.digest)), "{all}");
    sb.ok(&["chart", "verify"]);
    // Out of the cache into another repository: everything arrives with its digests.
    let out = sb.ok(&[
        "sync",
        &format!("cache:{}/charts/app", reg.host()),
        &format!("{}/from-cache", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(
        &reg,
        "from-cache/app",
        &signed,
        "registry → cache → registry",
    );
}
