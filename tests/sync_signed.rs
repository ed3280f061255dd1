//! `sync --require-signed`: only references whose signatures verify are copied (Helm
//! provenance with `--keyring`, cosign signatures with `--cosign-key`); the rest are reported
//! with why (unsigned, bad signature, unknown signer) and the exit code is 1. Keys are made by
//! GnuPG and, for cosign, by the test harness.

mod fault;
mod signing;
mod support;

use fault::Sandbox;
use signing::{CosignLayer, CosignSigner, Gpg, push_cosign_signature};
use support::Registry;

const SIGNER: &str = "Chart Signer <signer@example.com>";

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Saves chart `app` at `version` into the sandbox's cache under `reg/charts/app`, signed
/// with `secret` when given, and pushes it; returns the manifest digest.
fn publish(
    sb: &Sandbox,
    reg: &Registry,
    version: &str,
    secret: Option<&std::path::Path>,
) -> String {
    let name = format!("{}/charts/app:{version}", reg.host());
    let dir = sb.chart("app", version);
    let mut args = vec!["chart", "save", path(&dir), &name];
    if let Some(secret) = secret {
        args.extend(["--sign", "--key", SIGNER, "--keyring", path(secret)]);
    }
    sb.ok(&args);
    sb.ok(&["chart", "push", &name]);
    sb.manifest_digest(&name)
}

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let resp = reg.request("GET", &format!("/v2/{repo}/tags/list"), &[], &[]);
    if resp.status != 200 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let mut tags: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.retain(|t| !t.starts_with("sha256-"));
    tags.sort();
    tags
}

#[test]
fn only_charts_whose_provenance_verifies_are_copied() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let gpg = Gpg::new();
    gpg.gen_key(SIGNER, "ed25519", "never", "", None);
    let secret = gpg.export_secret(&sb.path().join("secret.gpg"), "");
    let public = gpg.export_public(&sb.path().join("public.gpg"));
    let stranger = Gpg::new();
    stranger.gen_key(
        "Someone Else <else@example.com>",
        "ed25519",
        "never",
        "",
        None,
    );
    let strangers = stranger.export_public(&sb.path().join("strangers.gpg"));

    publish(&sb, &reg, "1.0.0", Some(&secret));
    publish(&sb, &reg, "1.1.0", None);
    let src = format!("{}/charts/app", reg.host());

    let out = sb.run(&[
        "sync",
        "--require-signed",
        "--keyring",
        path(&public),
        &src,
        &format!("{}/trusted", reg.host()),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("Synced: 1, skipped: 0, refused: 1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("app:1.1.0") && stderr.contains("refused: unsigned"),
        "{stderr}"
    );
    assert_eq!(tags(&reg, "trusted/app"), ["1.0.0"]);

    // A keyring without the signer: nothing is copied, each refusal says why.
    let out = sb.run(&[
        "sync",
        "--require-signed",
        "--keyring",
        path(&strangers),
        &src,
        &format!("{}/strangers", reg.host()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("refused: unknown signer"), "{stderr}");
    assert!(tags(&reg, "strangers/app").is_empty());

    // Without the policy, both go.
    sb.ok(&["sync", &src, &format!("{}/all", reg.host())]);
    assert_eq!(tags(&reg, "all/app"), ["1.0.0", "1.1.0"]);
}

#[test]
fn cosign_key_requires_a_good_cosign_signature() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signer = CosignSigner::new();
    let key = signer.write_public_pem(&sb.path().join("cosign.pub"));
    let other = CosignSigner::new();

    let good = publish(&sb, &reg, "1.0.0", None);
    let forged = publish(&sb, &reg, "2.0.0", None);
    publish(&sb, &reg, "3.0.0", None);
    let repo = format!("{}/charts/app", reg.host());
    for (digest, by) in [(&good, &signer), (&forged, &other)] {
        let payload = CosignSigner::payload(digest, &repo);
        let signature = by.sign(&payload);
        push_cosign_signature(
            &reg,
            "charts/app",
            digest,
            &[CosignLayer {
                payload,
                signature,
                certificate: None,
            }],
        );
    }

    let out = sb.run(&[
        "sync",
        "-o",
        "json",
        "--require-signed",
        "--cosign-key",
        path(&key),
        &repo,
        &format!("{}/signed", reg.host()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["done"], 1);
    assert_eq!(report["refused"], 2);
    let why = |tag: &str| -> String {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["source"].as_str().unwrap().ends_with(tag))
            .map(|i| format!("{} {}", i["outcome"], i["error"]))
            .unwrap()
    };
    assert!(
        why(":2.0.0").starts_with("\"refused\" \"bad signature"),
        "{}",
        why(":2.0.0")
    );
    assert!(
        why(":3.0.0").starts_with("\"refused\" \"unsigned"),
        "{}",
        why(":3.0.0")
    );
    assert_eq!(tags(&reg, "signed/app"), ["1.0.0"]);
    // The signature travelled with the chart.
    let sig = format!("sha256-{}.sig", good.trim_start_matches("sha256:"));
    let resp = reg.request(
        "HEAD",
        &format!("/v2/signed/app/manifests/{sig}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        &[],
    );
    assert_eq!(resp.status, 200, "the cosign signature was copied along");
}

#[test]
fn what_the_check_downloads_is_not_downloaded_again() {
    let reg = Registry::builder().log_level("info").start();
    let dst = Registry::plain();
    let sb = Sandbox::new();
    let gpg = Gpg::new();
    gpg.gen_key(SIGNER, "ed25519", "never", "", None);
    let secret = gpg.export_secret(&sb.path().join("secret.gpg"), "");
    let public = gpg.export_public(&sb.path().join("public.gpg"));
    let signer = CosignSigner::new();
    let key = signer.write_public_pem(&sb.path().join("cosign.pub"));
    let digest = publish(&sb, &reg, "1.0.0", Some(&secret));
    let repo = format!("{}/charts/app", reg.host());
    let payload = CosignSigner::payload(&digest, &repo);
    let signature = signer.sign(&payload);
    push_cosign_signature(
        &reg,
        "charts/app",
        &digest,
        &[CosignLayer {
            payload,
            signature,
            certificate: None,
        }],
    );

    let out = sb.ok(&[
        "sync",
        "--require-signed",
        "--keyring",
        path(&public),
        "--cosign-key",
        path(&key),
        &repo,
        &format!("{}/signed", dst.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    // config, archive and provenance of the chart; config and payload of the signature.
    let blobs = "/v2/charts/app/blobs/";
    fault::wait_logged(&reg, "GET", blobs, 5);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut asked: Vec<String> = fault::logged_requests(&reg)
        .into_iter()
        .filter(|(m, u)| m == "GET" && u.starts_with(blobs))
        .map(|(_, u)| u)
        .collect();
    asked.sort();
    let mut once = asked.clone();
    once.dedup();
    assert_eq!(asked, once, "a blob was downloaded twice");
    assert_eq!(once.len(), 5, "{once:?}");
    let manifests = fault::count_logged(&reg, "GET", "/v2/charts/app/manifests/1.0.0");
    assert_eq!(manifests, 1, "the chart's manifest was read once");
}
