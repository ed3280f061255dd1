//! `serve --upstream REGISTRY --require-signed`: the pull-through serves a chart only when its
//! signatures verify (cosign with `--cosign-key`, Helm provenance with `--keyring`); any other
//! is answered 403 `DENIED` saying why, through the registry API and the chart downloads
//! alike, and nothing of it is stored, not even a blob. A chart the cache held before the
//! policy was on is checked too. The upstream is a real registry.

mod fault;
mod signing;
mod support;

use fault::{Sandbox, ServeProcess, sha256_hex};
use signing::{CosignLayer, CosignSigner, Gpg, push_cosign_signature};
use support::{Registry, http_get};

const SIGNER: &str = "Chart Signer <signer@example.com>";
const ACCEPT: (&str, &str) = ("Accept", "application/vnd.oci.image.manifest.v1+json");

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Saves and pushes `app:version` from `publisher` (signed with `secret` when given);
/// returns the manifest digest and the chart archive's digest.
fn publish(
    publisher: &Sandbox,
    reg: &Registry,
    version: &str,
    secret: Option<&std::path::Path>,
) -> (String, String) {
    let name = format!("{}/charts/app:{version}", reg.host());
    let dir = publisher.chart("app", version);
    let mut args = vec!["chart", "save", path(&dir), &name];
    if let Some(secret) = secret {
        args.extend(["--sign", "--key", SIGNER, "--keyring", path(secret)]);
    }
    publisher.ok(&args);
    publisher.ok(&["chart", "push", &name]);
    let content = format!(
        "sha256:{}",
        sha256_hex(&publisher.ref_blob(&name, "content"))
    );
    (publisher.manifest_digest(&name), content)
}

fn cosign_sign(reg: &Registry, by: &CosignSigner, digest: &str) {
    let payload = CosignSigner::payload(digest, &format!("{}/charts/app", reg.host()));
    let signature = by.sign(&payload);
    push_cosign_signature(
        reg,
        "charts/app",
        digest,
        &[CosignLayer {
            payload,
            signature,
            certificate: None,
        }],
    );
}

/// Whether the cache of `sb` holds the blob `digest`.
fn holds(sb: &Sandbox, digest: &str) -> bool {
    sb.root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
        .exists()
}

#[test]
fn only_charts_with_a_good_cosign_signature_are_pulled_through() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let signer = CosignSigner::new();
    let key = signer.write_public_pem(&publisher.path().join("cosign.pub"));
    let (good, _) = publish(&publisher, &reg, "1.0.0", None);
    let (unsigned, unsigned_tgz) = publish(&publisher, &reg, "2.0.0", None);
    let (forged, forged_tgz) = publish(&publisher, &reg, "3.0.0", None);
    let (held, _) = publish(&publisher, &reg, "4.0.0", None);
    cosign_sign(&reg, &signer, &good);
    cosign_sign(&reg, &CosignSigner::new(), &forged);

    let sb = Sandbox::new();
    // 4.0.0 was pulled into the cache before the policy was on, unsigned.
    sb.ok(&["chart", "pull", &format!("{}/charts/app:4.0.0", reg.host())]);
    let upstream = format!("{}/charts", reg.host());
    let server = ServeProcess::start(
        &sb,
        &[
            "--upstream",
            &upstream,
            "--require-signed",
            "--cosign-key",
            path(&key),
        ],
    );
    let get = |p: &str| http_get(&server.url(p), &[ACCEPT]).expect("GET");

    let resp = get("/v2/app/manifests/1.0.0");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(format!("sha256:{}", sha256_hex(&resp.body)), good);
    // Its signature came along into the cache, and is served with it.
    let sig = format!("sha256-{}.sig", good.trim_start_matches("sha256:"));
    assert_eq!(get(&format!("/v2/app/manifests/{sig}")).status, 200);

    for (version, digest, why) in [
        ("2.0.0", &unsigned, "unsigned"),
        ("3.0.0", &forged, "bad signature"),
        ("4.0.0", &held, "unsigned"),
    ] {
        for p in [
            format!("/v2/app/manifests/{version}"),
            format!("/v2/app/manifests/{digest}"),
        ] {
            let resp = get(&p);
            assert_eq!(resp.status, 403, "{p}: {}", resp.text());
            let error = &resp.json()["errors"][0];
            assert_eq!(error["code"], "DENIED", "{p}");
            let message = error["message"].as_str().unwrap();
            assert!(
                message.contains("--require-signed") && message.contains(why),
                "{p}: {message}"
            );
        }
    }
    // The chart downloads of the index view are refused the same way.
    let resp = http_get(&server.url("/charts/app-2.0.0.tgz"), &[]).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = http_get(&server.url("/charts/app-4.0.0.tgz"), &[]).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());

    // Nothing of the refused charts was stored.
    for digest in [&unsigned, &unsigned_tgz, &forged, &forged_tgz] {
        assert!(!holds(&sb, digest), "{digest} was stored");
    }
    let tags = sb.ok(&["chart", "list"]);
    assert!(
        tags.contains("app:1.0.0") && !tags.contains("app:2.0.0") && !tags.contains("app:3.0.0"),
        "{tags}"
    );
    assert!(
        server.log().contains("refused by the signature policy"),
        "{}",
        server.log()
    );
}

#[test]
fn only_charts_whose_provenance_verifies_are_pulled_through() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let gpg = Gpg::new();
    gpg.gen_key(SIGNER, "ed25519", "never", "", None);
    let secret = gpg.export_secret(&publisher.path().join("secret.gpg"), "");
    let public = gpg.export_public(&publisher.path().join("public.gpg"));
    let (signed, _) = publish(&publisher, &reg, "1.0.0", Some(&secret));
    let (_, unsigned_tgz) = publish(&publisher, &reg, "1.1.0", None);

    let sb = Sandbox::new();
    let upstream = format!("{}/charts", reg.host());
    let server = ServeProcess::start(
        &sb,
        &[
            "--upstream",
            &upstream,
            "--require-signed",
            "--keyring",
            path(&public),
        ],
    );
    let resp = http_get(&server.url("/v2/app/manifests/1.0.0"), &[ACCEPT]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(format!("sha256:{}", sha256_hex(&resp.body)), signed);
    let resp = http_get(&server.url("/v2/app/manifests/1.1.0"), &[ACCEPT]).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(resp.text().contains("unsigned"), "{}", resp.text());
    assert!(!holds(&sb, &unsigned_tgz));
}

#[test]
fn require_signed_is_for_a_registry_upstream() {
    let sb = Sandbox::new();
    let out = sb.run(&["serve", "--listen", "127.0.0.1:0", "--require-signed"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--require-signed is for --upstream"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sb.run(&["serve", "--listen", "127.0.0.1:0", "--cosign-key", "k.pub"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("are for --require-signed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
