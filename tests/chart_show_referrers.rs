//! `chart show REF --referrers`: a chart pulled from a real registry with an SBOM (an OCI 1.1
//! referrer naming it as its subject), a signature of that SBOM (a referrer of a referrer)
//! and a cosign `sha256-<hex>.sig` tag lists all three, the SBOM's signature under the SBOM,
//! as a table and as JSON, digests and sizes exact.

mod attached;
mod fault;
mod support;

use attached::{
    COSIGN_PAYLOAD, OCI_MANIFEST, SBOM, SBOM_CREATED, SIGNATURE, Signed, fallback_tag, signed_chart,
};
use fault::Sandbox;
use serde_json::json;
use support::Registry;

/// What cosign's signature manifests say of themselves: no artifact type, so the referrers
/// API (and `chart show`) name them by their config's media type.
const COSIGN_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The table `chart show --referrers` prints for `signed`.
fn expected_table(signed: &Signed) -> String {
    let rows = [
        [
            signed.sbom.digest.clone(),
            SBOM.to_string(),
            format!("{} B", signed.sbom.size),
            "subject".to_string(),
            SBOM_CREATED.to_string(),
        ],
        [
            format!("  {}", signed.sbom_signature.digest),
            SIGNATURE.to_string(),
            format!("{} B", signed.sbom_signature.size),
            "subject".to_string(),
            "-".to_string(),
        ],
        [
            signed.cosign.digest.clone(),
            COSIGN_CONFIG.to_string(),
            format!("{} B", signed.cosign.size),
            "cosign .sig".to_string(),
            "-".to_string(),
        ],
    ];
    let header = ["DIGEST", "ARTIFACT TYPE", "SIZE", "VIA", "CREATED"].map(String::from);
    let all: Vec<&[String; 5]> = std::iter::once(&header).chain(rows.iter()).collect();
    let width = |i: usize| all.iter().map(|r| r[i].len()).max().unwrap();
    all.iter()
        .map(|r| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = width(0),
                w1 = width(1),
                w2 = width(2),
                w3 = width(3)
            )
        })
        .collect()
}

#[test]
fn chart_show_lists_the_referrers_a_pull_brought_along() {
    assert!(
        COSIGN_PAYLOAD.contains("cosign"),
        "the cosign tag holds a simple-signing payload"
    );
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let signed = signed_chart(&publisher, &reg);
    // A chart 100 B or more: sizes print as bytes below 1 KiB.
    assert!(signed.sbom.size < 1024 && signed.cosign.size < 1024);

    let sb = Sandbox::new();
    let name = format!("{}/charts/app:1.0.0", reg.host());
    sb.ok(&["chart", "pull", &name]);

    let table = sb.ok(&["chart", "show", &name, "--referrers"]);
    assert_eq!(table, expected_table(&signed));

    let shown: serde_json::Value =
        serde_json::from_str(&sb.ok(&["chart", "show", &name, "--referrers", "-o", "json"]))
            .expect("JSON");
    let sig_tag = format!("{}.sig", fallback_tag(&signed.chart.digest));
    assert_eq!(
        shown,
        json!({
            "ref": name,
            "digest": signed.chart.digest,
            "referrers": [
                {
                    "digest": signed.sbom.digest,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": SBOM,
                    "size": signed.sbom.size,
                    "via": "subject",
                    "annotations": {"org.opencontainers.image.created": SBOM_CREATED},
                    "referrers": [{
                        "digest": signed.sbom_signature.digest,
                        "mediaType": OCI_MANIFEST,
                        "artifactType": SIGNATURE,
                        "size": signed.sbom_signature.size,
                        "via": "subject",
                        "annotations": {},
                        "referrers": [],
                    }],
                },
                {
                    "digest": signed.cosign.digest,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": COSIGN_CONFIG,
                    "size": signed.cosign.size,
                    "via": "cosign-tag",
                    "tag": sig_tag,
                    "annotations": {},
                    "referrers": [],
                },
            ],
        })
    );
}

#[test]
fn a_chart_without_referrers_says_so_and_the_flags_are_checked() {
    let sb = Sandbox::new();
    let name = "localhost:5000/charts/plain:0.1.0";
    sb.save("plain", "0.1.0", name);
    let digest = sb.manifest_digest(name);
    assert_eq!(
        sb.ok(&["chart", "show", name, "--referrers"]),
        format!("No referrers of {name} ({digest}) in the cache\n")
    );
    let shown: serde_json::Value =
        serde_json::from_str(&sb.ok(&["chart", "show", name, "--referrers", "-o", "json"]))
            .expect("JSON");
    assert_eq!(
        shown,
        json!({"ref": name, "digest": digest, "referrers": []})
    );
    for args in [
        vec!["chart", "show", name, "values", "--referrers"],
        vec!["chart", "show", name, "-o", "json"],
    ] {
        let out = sb.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
    }
    let line = sb.fails(&[
        "chart",
        "show",
        "localhost:5000/charts/none:1.0.0",
        "--referrers",
    ]);
    assert!(line.contains("charts/none:1.0.0"), "{line}");
}
