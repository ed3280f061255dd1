//! cosign signatures checked: `chart pull --cosign-key` and `chart verify REF --cosign-key`
//! against cosign's format (the `sha256-<hex>.sig` tag, simple-signing payloads, base64 DER
//! ECDSA P-256 signatures) built here with p256, since there is no cosign binary, and pushed
//! to a real registry. A wrong key, a signature for another digest, an altered payload, a
//! keyless signature and no signature are each refused with their own message, and a pull
//! that is refused stores nothing.

mod fault;
mod signing;
mod support;

use std::path::Path;

use fault::{Sandbox, error_line_of};
use signing::{CosignLayer, CosignSigner, push_cosign_signature};
use support::Registry;

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A registry holding `charts/mychart:<version>` for each version, pushed from a sandbox;
/// returns the registry, the publisher and the manifest digests.
fn published(versions: &[&str]) -> (Registry, Sandbox, Vec<String>) {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let digests = versions
        .iter()
        .map(|v| {
            let reference = format!("{}/charts/mychart:{v}", reg.host());
            publisher.save("mychart", v, &reference);
            publisher.ok(&["chart", "push", &reference]);
            publisher.manifest_digest(&reference)
        })
        .collect();
    (reg, publisher, digests)
}

fn signed_layer(signer: &CosignSigner, manifest: &str, repository: &str) -> CosignLayer {
    let payload = CosignSigner::payload(manifest, repository);
    CosignLayer {
        signature: signer.sign(&payload),
        payload,
        certificate: None,
    }
}

#[test]
fn a_cosign_signed_chart_is_pulled_and_verified() {
    let (reg, publisher, digests) = published(&["0.1.0"]);
    let reference = format!("{}/charts/mychart:0.1.0", reg.host());
    let repository = format!("{}/charts/mychart", reg.host());
    let signer = CosignSigner::new();
    let stranger = CosignSigner::new();
    // cosign accepts any layer that verifies: one by another key comes first.
    push_cosign_signature(
        &reg,
        "charts/mychart",
        &digests[0],
        &[
            signed_layer(&stranger, &digests[0], &repository),
            signed_layer(&signer, &digests[0], &repository),
        ],
    );
    let key = signer.write_public_pem(&publisher.path().join("cosign.pub"));

    let sb = Sandbox::new();
    let out = sb.ok(&["chart", "pull", &reference, "--cosign-key", path(&key)]);
    assert!(
        out.contains(&format!(
            "Cosign Signature Verified: {} (key {})\n",
            digests[0],
            key.display()
        )),
        "{out}"
    );
    assert!(
        out.ends_with(&format!("Status: Downloaded newer chart for {reference}\n")),
        "{out}"
    );
    assert_eq!(sb.manifest_digest(&reference), digests[0]);

    // The cached chart's signature, read again from its registry.
    let out = sb.ok(&["chart", "verify", &reference, "--cosign-key", path(&key)]);
    assert_eq!(
        out,
        format!(
            "Cosign Signature Verified: {} (key {})\n",
            digests[0],
            key.display()
        )
    );
    // A pull by digest is checked the same way.
    let by_digest = format!("{repository}@{}", digests[0]);
    Sandbox::new().ok(&["chart", "pull", &by_digest, "--cosign-key", path(&key)]);
}

#[test]
fn each_bad_cosign_signature_is_refused_with_its_own_message() {
    let versions = ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"];
    let (reg, publisher, digests) = published(&versions);
    let host = reg.host();
    let repository = format!("{host}/charts/mychart");
    let signer = CosignSigner::new();
    let key = signer.write_public_pem(&publisher.path().join("cosign.pub"));
    let reference = |v: &str| format!("{repository}:{v}");

    // 1.0.0: signed with another key.
    let stranger = CosignSigner::new();
    push_cosign_signature(
        &reg,
        "charts/mychart",
        &digests[0],
        &[signed_layer(&stranger, &digests[0], &repository)],
    );
    // 2.0.0: a good signature by the right key, but of another manifest (1.0.0's).
    push_cosign_signature(
        &reg,
        "charts/mychart",
        &digests[1],
        &[signed_layer(&signer, &digests[0], &repository)],
    );
    // 3.0.0: the payload altered after signing.
    let mut altered = signed_layer(&signer, &digests[2], &repository);
    altered.payload = CosignSigner::payload(&digests[2], &format!("{host}/elsewhere/mychart"));
    push_cosign_signature(&reg, "charts/mychart", &digests[2], &[altered]);
    // 4.0.0: keyless (a Fulcio certificate, signed by a key we do not have).
    let mut keyless = signed_layer(&stranger, &digests[3], &repository);
    keyless.certificate =
        Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
    push_cosign_signature(&reg, "charts/mychart", &digests[3], &[keyless]);
    // 5.0.0: never signed.

    let cases = [
        ("1.0.0", "bad signature:", "does not verify with the key"),
        ("2.0.0", "digest mismatch:", digests[0].as_str()),
        ("3.0.0", "bad signature:", "does not verify with the key"),
        ("4.0.0", "unsupported:", "keyless"),
        ("5.0.0", "unsigned:", "no tag sha256-"),
    ];
    for (version, check, detail) in cases {
        let sb = Sandbox::new();
        let before = sb.snapshot();
        let out = sb.run(&[
            "chart",
            "pull",
            &reference(version),
            "--cosign-key",
            path(&key),
        ]);
        let line = error_line_of(&out, &format!("pull {version} --cosign-key"));
        assert!(
            line.contains(check) && line.contains(detail),
            "{version}: {line}"
        );
        assert!(line.contains(&repository), "{version}: {line}");
        let after = sb.snapshot();
        assert!(
            after.under("refs/").is_empty() && after.under("blobs/sha256/").is_empty(),
            "{version}: a refused pull stored {:?}",
            after.changes_since(&before)
        );
        // Pulled without the check, `chart verify REF --cosign-key` refuses it the same way.
        sb.ok(&["chart", "pull", &reference(version)]);
        let line = error_line_of(
            &sb.run(&[
                "chart",
                "verify",
                &reference(version),
                "--cosign-key",
                path(&key),
            ]),
            &format!("verify {version} --cosign-key"),
        );
        assert!(
            line.contains(check) && line.contains(detail),
            "{version}: {line}"
        );
    }
}

#[test]
fn cosign_keys_must_be_p256_public_keys() {
    let (reg, publisher, _) = published(&["0.1.0"]);
    let reference = format!("{}/charts/mychart:0.1.0", reg.host());
    let not_a_key = publisher.path().join("not-a-key.pem");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let sb = Sandbox::new();
    let line = error_line_of(
        &sb.run(&[
            "chart",
            "pull",
            &reference,
            "--cosign-key",
            path(&not_a_key),
        ]),
        "bad key",
    );
    assert!(
        line.contains("--cosign-key") && line.contains("P-256"),
        "{line}"
    );
    let missing = publisher.path().join("missing.pub");
    let line = error_line_of(
        &sb.run(&["chart", "pull", &reference, "--cosign-key", path(&missing)]),
        "no key",
    );
    assert!(line.contains("missing.pub"), "{line}");
    assert!(sb.snapshot().under("refs/").is_empty());
}
