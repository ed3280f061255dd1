//! Proves the integration-test harness (tests/support) against the real peers:
//! distribution 2.8 in each auth/TLS mode, skopeo, and a Helm v4 runtime.
//! Needs the peers from `.ci/install-peers`.

mod support;

use support::{
    Helm, OciLayoutChart, Registry, Skopeo, TokenIssuer, basic_auth, chart_tgz, describe, http_get,
    oci_layout_with_chart,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A chart `.tgz` and an OCI layout holding it, in a temp dir that lives as long as the value.
struct Fixture {
    _dir: tempfile::TempDir,
    tgz: std::path::PathBuf,
    layout: OciLayoutChart,
}

fn fixture(name: &str, version: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = chart_tgz(dir.path(), name, version);
    let layout = oci_layout_with_chart(&dir.path().join("layout"), &tgz, name, version, version);
    Fixture {
        _dir: dir,
        tgz,
        layout,
    }
}

/// `Bearer realm="…",service="…",scope="…"` → its parameters.
fn bearer_params(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {challenge}"));
    let mut params = Vec::new();
    let mut s = rest.trim();
    while let Some((key, after)) = s.split_once("=\"") {
        let (value, tail) = after.split_once('"').expect("closing quote");
        params.push((key.trim().to_string(), value.to_string()));
        s = tail.trim_start_matches(',').trim();
    }
    params
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {params:?}"))
}

#[test]
fn plain_registry_answers_v2_and_takes_a_skopeo_copy() {
    let reg = Registry::plain();
    let v2 = reg.get("/v2/", &[]);
    assert_eq!(v2.status, 200, "{}", v2.text());
    assert_eq!(
        v2.header("Docker-Distribution-Api-Version"),
        Some("registry/2.0")
    );

    let fx = fixture("mychart", "0.1.0");
    support::skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &fx.layout.reference,
        &reg.docker("charts/mychart:0.1.0"),
    ]);
    let manifest = reg.get(
        "/v2/charts/mychart/manifests/0.1.0",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(fx.layout.manifest_digest.as_str()),
        "skopeo should keep the manifest bytes"
    );
    assert_eq!(manifest.body, fx.layout.manifest);
    let blob = reg.get(
        &format!("/v2/charts/mychart/blobs/{}", fx.layout.chart_digest),
        &[],
    );
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, std::fs::read(&fx.tgz).unwrap());
    assert!(
        reg.storage_dir()
            .join("docker/registry/v2/repositories/charts/mychart")
            .is_dir()
    );
}

#[test]
fn htpasswd_registry_requires_basic_credentials() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let anonymous = reg.get("/v2/", &[]);
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("WWW-Authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let wrong = basic_auth("alice", "nope");
    assert_eq!(reg.get("/v2/", &[("Authorization", &wrong)]).status, 401);
    assert_eq!(reg.get_with_basic_auth("/v2/").status, 200);

    let fx = fixture("mychart", "0.1.0");
    let dest = reg.docker("charts/mychart:0.1.0");
    let denied = support::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:nope",
        &fx.layout.reference,
        &dest,
    ]);
    assert!(!denied.status.success(), "{}", describe(&denied));
    support::skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &reg.creds_arg(),
        &fx.layout.reference,
        &dest,
    ]);
    let tags = reg.get_with_basic_auth("/v2/charts/mychart/tags/list");
    assert_eq!(tags.json()["tags"], serde_json::json!(["0.1.0"]));
}

#[test]
fn tls_registry_is_trusted_only_with_the_test_ca() {
    let reg = Registry::tls();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    assert!(reg.ca_pem_path().is_file());
    assert!(reg.client_cert_path().is_file() && reg.client_key_path().is_file());

    let fx = fixture("mychart", "0.1.0");
    let dest = reg.docker("charts/mychart:0.1.0");
    let skopeo = Skopeo::new();
    let untrusted = skopeo.run(&["copy", &fx.layout.reference, &dest]);
    assert!(!untrusted.status.success(), "{}", describe(&untrusted));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    let cert_dir = reg.cert_dir();
    let cert_dir = cert_dir.to_str().unwrap();
    skopeo.run_ok(&[
        "copy",
        "--dest-cert-dir",
        cert_dir,
        &fx.layout.reference,
        &dest,
    ]);
    let raw = skopeo.run_ok(&["inspect", "--raw", "--cert-dir", cert_dir, &dest]);
    assert_eq!(raw.as_bytes(), fx.layout.manifest.as_slice());
    let refused = skopeo.run(&["inspect", "--raw", &dest]);
    assert!(!refused.status.success(), "{}", describe(&refused));
}

#[test]
fn mtls_registry_requires_the_client_certificate() {
    let reg = Registry::builder().mtls().start();
    let fx = fixture("mychart", "0.1.0");
    let dest = reg.docker("charts/mychart:0.1.0");
    let skopeo = Skopeo::new();
    let ca_only = reg.cert_dir();
    let no_client_cert = skopeo.run(&[
        "copy",
        "--dest-cert-dir",
        ca_only.to_str().unwrap(),
        &fx.layout.reference,
        &dest,
    ]);
    assert!(
        String::from_utf8_lossy(&no_client_cert.stderr).contains("bad certificate"),
        "{}",
        describe(&no_client_cert)
    );
    let with_client = reg.client_cert_dir();
    skopeo.run_ok(&[
        "copy",
        "--dest-cert-dir",
        with_client.to_str().unwrap(),
        &fx.layout.reference,
        &dest,
    ]);
}

#[test]
fn token_registry_challenges_and_accepts_issued_tokens() {
    let reg = Registry::token("bob", "hunter2");
    let issuer: &TokenIssuer = reg.token_issuer().expect("token issuer");

    let v2 = reg.get("/v2/", &[]);
    assert_eq!(v2.status, 401, "{}", v2.text());
    let challenge = v2
        .header("WWW-Authenticate")
        .expect("challenge")
        .to_string();
    let params = bearer_params(&challenge);
    assert_eq!(param(&params, "realm"), issuer.realm());
    assert_eq!(param(&params, "service"), issuer.service());

    let token_url = format!(
        "{}?service={}&scope=repository%3Acharts%2Fmychart%3Apull%2Cpush",
        param(&params, "realm"),
        param(&params, "service")
    );
    let good = basic_auth("bob", "hunter2");
    let answer = http_get(&token_url, &[("Authorization", &good)]).expect("token request");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(body["access_token"].as_str(), Some(token.as_str()));
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let bearer = format!("Bearer {token}");
    let ok = reg.get("/v2/", &[("Authorization", &bearer)]);
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), reg.log());

    // The scope is honoured: tags/list of the granted repo is authorized (404: no such repo
    // yet), another repo is not.
    let granted = reg.get(
        "/v2/charts/mychart/tags/list",
        &[("Authorization", &bearer)],
    );
    assert_eq!(granted.status, 404, "{}", granted.text());
    let other = reg.get("/v2/charts/other/tags/list", &[("Authorization", &bearer)]);
    assert_eq!(other.status, 401);
    assert!(
        other
            .header("WWW-Authenticate")
            .unwrap_or_default()
            .contains("insufficient_scope"),
        "{:?}",
        other.headers
    );

    // Bad credentials, no credentials, and an expired token are refused.
    let bad = basic_auth("bob", "wrong");
    assert_eq!(
        http_get(&token_url, &[("Authorization", &bad)])
            .unwrap()
            .status,
        401
    );
    assert_eq!(http_get(&token_url, &[]).unwrap().status, 401);
    let expired = issuer.mint_with_lifetime("bob", &[], -120);
    let expired = format!("Bearer {expired}");
    assert_eq!(reg.get("/v2/", &[("Authorization", &expired)]).status, 401);
    let minted = format!("Bearer {}", issuer.mint("bob", &["registry:catalog:*"]));
    assert_eq!(
        reg.get("/v2/_catalog", &[("Authorization", &minted)])
            .status,
        200
    );

    let log = issuer.requests();
    assert_eq!(log[0].scopes, ["repository:charts/mychart:pull,push"]);
    assert_eq!(log[0].user.as_deref(), Some("bob"));
    assert_eq!(log[0].status, 200);
}

#[test]
fn token_registry_takes_a_skopeo_copy_with_creds() {
    let reg = Registry::token("bob", "hunter2");
    let fx = fixture("mychart", "0.1.0");
    let dest = reg.docker("charts/mychart:0.1.0");
    let skopeo = Skopeo::new();
    let anonymous = skopeo.run(&[
        "copy",
        "--dest-tls-verify=false",
        &fx.layout.reference,
        &dest,
    ]);
    assert!(!anonymous.status.success(), "{}", describe(&anonymous));
    skopeo.run_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &reg.creds_arg(),
        &fx.layout.reference,
        &dest,
    ]);
    let raw = skopeo.run_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &reg.creds_arg(),
        &dest,
    ]);
    assert_eq!(raw.as_bytes(), fx.layout.manifest.as_slice());
    let issuer = reg.token_issuer().unwrap();
    assert!(
        issuer.requests().iter().any(|r| r.status == 200
            && r.granted
                .contains(&"repository:charts/mychart:pull,push".to_string())),
        "{:?}",
        issuer.requests()
    );
}

#[test]
fn token_registry_with_anonymous_pull() {
    let reg = Registry::builder()
        .token("bob", "hunter2")
        .anonymous_pull(true)
        .start();
    let fx = fixture("mychart", "0.1.0");
    let dest = reg.docker("charts/mychart:0.1.0");
    let skopeo = Skopeo::new();
    let anonymous_push = skopeo.run(&[
        "copy",
        "--dest-tls-verify=false",
        &fx.layout.reference,
        &dest,
    ]);
    assert!(
        !anonymous_push.status.success(),
        "{}",
        describe(&anonymous_push)
    );
    skopeo.run_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &reg.creds_arg(),
        &fx.layout.reference,
        &dest,
    ]);
    let raw = skopeo.run_ok(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(raw.as_bytes(), fx.layout.manifest.as_slice());
}

#[test]
fn helm_pushes_and_shows_against_plain_registry() {
    let reg = Registry::plain();
    let helm = Helm::require();
    let fx = fixture("mychart", "0.1.0");
    let digest = helm
        .push(&fx.tgz, &reg.oci("charts"), true)
        .unwrap_or_else(|e| panic!("{e}\n--- registry log\n{}", reg.log()));
    assert!(digest.starts_with("sha256:"), "{digest}");
    let manifest = reg.get(
        "/v2/charts/mychart/manifests/0.1.0",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digest.as_str())
    );
    assert_eq!(
        manifest.json()["layers"][0]["digest"].as_str(),
        Some(fx.layout.chart_digest.as_str())
    );

    // A fresh Helm home, so Show really pulls from the registry.
    let other = Helm::require();
    let chart_yaml = other
        .show_chart(&reg.oci("charts/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(chart_yaml.contains("name: mychart"), "{chart_yaml}");
    assert!(chart_yaml.contains("version: 0.1.0"), "{chart_yaml}");
    assert!(other.cache_home().join("content").is_dir());
}

#[test]
fn helm_logs_in_to_htpasswd_and_token_registries() {
    for reg in [
        Registry::htpasswd("alice", "s3cret"),
        Registry::token("bob", "hunter2"),
    ] {
        let (user, pass) = reg.credentials().unwrap();
        let fx = fixture("mychart", "0.2.0");
        let helm = Helm::require();
        assert!(helm.push(&fx.tgz, &reg.oci("charts"), true).is_err());
        helm.login(&reg.host(), user, pass)
            .unwrap_or_else(|e| panic!("{e}"));
        let config = std::fs::read_to_string(helm.registry_config()).expect("registry config");
        assert!(config.contains(&reg.host()), "{config}");
        helm.push(&fx.tgz, &reg.oci("charts"), true)
            .unwrap_or_else(|e| panic!("{e}\n--- registry log\n{}", reg.log()));
        let chart_yaml = helm
            .show_chart(&reg.oci("charts/mychart:0.2.0"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(chart_yaml.contains("version: 0.2.0"), "{chart_yaml}");
    }
}

#[test]
fn helm_trusts_the_tls_registry_through_its_ca() {
    let reg = Registry::tls();
    let fx = fixture("mychart", "0.3.0");
    let untrusted = Helm::require().with_plain_http(false);
    assert!(untrusted.push(&fx.tgz, &reg.oci("charts"), false).is_err());
    let helm = Helm::for_registry(&reg).expect("run .ci/install-peers");
    helm.push(&fx.tgz, &reg.oci("charts"), false)
        .unwrap_or_else(|e| panic!("{e}\n--- registry log\n{}", reg.log()));
    let chart_yaml = helm
        .show_chart(&reg.oci("charts/mychart:0.3.0"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(chart_yaml.contains("version: 0.3.0"), "{chart_yaml}");
}
