//! Registries that speak TLS: a private CA (`--ca-file`), `--insecure`, client certificates
//! (mTLS), and the loopback rule (plain HTTP only when the server does not speak TLS; a TLS
//! server on 127.0.0.1 is verified, never silently downgraded).

mod fault;
mod support;

use fault::Sandbox;
use support::{Registry, Skopeo};

fn assert_tls_error(line: &str, host: &str) {
    assert!(
        line.contains(host),
        "the error should name the host: {line}"
    );
    assert!(
        line.contains("TLS") || line.contains("certificate"),
        "the error should say TLS/certificate failed: {line}"
    );
    assert!(
        line.contains("--ca-file"),
        "the error should suggest --ca-file: {line}"
    );
    assert!(
        !line.contains("HTTP request to an HTTPS server"),
        "the client fell back to plain HTTP: {line}"
    );
}

#[test]
fn tls_registry_works_with_its_ca_and_fails_clearly_without() {
    let reg = Registry::tls();
    let host = reg.host();
    let ca = reg.ca_pem_path();
    let ca = ca.to_str().unwrap();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);

    // No CA, no flag: a TLS server on 127.0.0.1 is verified, and the failure says what to do.
    let line = sb.fails(&["chart", "push", &reference]);
    assert_tls_error(&line, &host);
    let line = sb.fails(&["registry", "tags", &format!("{host}/myrepo/mychart")]);
    assert_tls_error(&line, &host);

    // With the CA: push, tags, pull.
    let out = sb.ok(&["chart", "push", &reference, "--ca-file", ca]);
    assert!(out.contains("0.1.0: pushed to remote"), "{out}");
    let cert_dir = reg.cert_dir();
    let raw = Skopeo::new().run_ok(&[
        "inspect",
        "--raw",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        &reg.docker("myrepo/mychart:0.1.0"),
    ]);
    assert_eq!(raw.as_bytes(), sb.ref_blob(&reference, "manifest"));
    let tags = sb.ok(&[
        "registry",
        "tags",
        &format!("{host}/myrepo/mychart"),
        "--ca-file",
        ca,
    ]);
    assert_eq!(tags.trim(), "0.1.0");
    sb.ok(&["chart", "rm", &reference]);
    sb.ok(&["chart", "prune"]);
    let line = sb.fails(&["chart", "pull", &reference]);
    assert_tls_error(&line, &host);
    let out = sb.ok(&["chart", "pull", &reference, "--ca-file", ca]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");

    // --insecure: no CA needed.
    let other = Sandbox::new();
    let out = other.ok(&["chart", "pull", &reference, "--insecure"]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    assert_eq!(
        other.ref_blob(&reference, "manifest"),
        sb.ref_blob(&reference, "manifest")
    );

    // The server certificate also names localhost.
    let by_name = format!("localhost:{}/myrepo/mychart:0.1.0", reg.port());
    let out = other.ok(&["chart", "pull", &by_name, "--ca-file", ca]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
}

#[test]
fn a_missing_ca_file_is_a_clear_error() {
    let reg = Registry::tls();
    let sb = Sandbox::new();
    let missing = sb.path().join("missing.pem");
    let reference = format!("{}/myrepo/mychart:0.1.0", reg.host());
    let line = sb.fails(&[
        "chart",
        "pull",
        &reference,
        "--ca-file",
        missing.to_str().unwrap(),
    ]);
    assert!(line.contains("missing.pem"), "{line}");
}

/// A CA file holding no certificate (here: the CA's private key, an easy mix-up) is
/// silently ignored, and the TLS error then suggests the very `--ca-file` the user gave.
#[test]
fn a_ca_file_without_a_certificate_is_a_clear_error() {
    let reg = Registry::tls();
    let sb = Sandbox::new();
    let reference = format!("{}/myrepo/mychart:0.1.0", reg.host());
    let key = reg.pki().expect("pki").ca_key_path();
    let bogus = sb.path().join("not-a-cert.pem");
    std::fs::copy(&key, &bogus).unwrap();
    let line = sb.fails(&[
        "chart",
        "pull",
        &reference,
        "--ca-file",
        bogus.to_str().unwrap(),
    ]);
    assert!(
        line.contains("not-a-cert.pem"),
        "the error should name the CA file that holds no certificate: {line}"
    );
}

#[test]
fn tls_registry_with_htpasswd_login_over_https() {
    let reg = Registry::builder()
        .tls()
        .htpasswd("alice", "s3cret")
        .start();
    let host = reg.host();
    let ca = reg.ca_pem_path();
    let ca = ca.to_str().unwrap();
    let sb = Sandbox::new();
    let out = sb.run_stdin(
        &[
            "registry",
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
        ],
        "s3cret\n",
    );
    let line = fault::error_line_of(&out, "registry login (TLS, no CA)");
    assert!(line.contains("--ca-file"), "{line}");
    assert!(!sb.registry_config().exists());
    let out = sb.run_stdin(
        &[
            "registry",
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
            "--ca-file",
            ca,
        ],
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", support::describe(&out));
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference, "--ca-file", ca]);
}

#[test]
fn mtls_registry_needs_the_client_certificate() {
    let reg = Registry::builder().mtls().start();
    let host = reg.host();
    let ca = reg.ca_pem_path();
    let cert = reg.client_cert_path();
    let key = reg.client_key_path();
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);

    let line = sb.fails(&["chart", "push", &reference, "--ca-file", ca]);
    assert!(line.contains(&host), "{line}");
    let out = sb.ok(&[
        "chart",
        "push",
        &reference,
        "--ca-file",
        ca,
        "--cert-file",
        cert,
        "--key-file",
        key,
    ]);
    assert!(out.contains("0.1.0: pushed to remote"), "{out}");
    let tags = sb.ok(&[
        "registry",
        "tags",
        &format!("{host}/myrepo/mychart"),
        "--ca-file",
        ca,
        "--cert-file",
        cert,
        "--key-file",
        key,
    ]);
    assert_eq!(tags.trim(), "0.1.0");
    let other = Sandbox::new();
    other.ok(&[
        "chart",
        "pull",
        &reference,
        "--ca-file",
        ca,
        "--cert-file",
        cert,
        "--key-file",
        key,
    ]);
    assert_eq!(
        other.ref_blob(&reference, "manifest"),
        sb.ref_blob(&reference, "manifest")
    );
}
