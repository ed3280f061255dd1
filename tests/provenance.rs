//! Helm provenance, made and checked: `chart save --sign` writes what `helm package --sign`
//! writes (GnuPG verifies it), `chart verify REF`, `chart export --verify` and `chart pull
//! --verify` check provenance as `helm verify` does (GnuPG-made provenance included), and
//! each failed check is refused with its own message. Keys are made by GnuPG.

mod fault;
mod signing;
mod support;

use std::fs;
use std::path::Path;

use fault::{Sandbox, error_line_of, sha256_hex};
use signing::{Gpg, message_block};
use support::{Helm, Registry, chart_tgz, chart_tgz_with_files};

const REF: &str = "localhost:5000/charts/mychart:0.1.0";
const SIGNER: &str = "Chart Signer <signer@example.com>";

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The fingerprint of the only key in `gpg`'s home.
fn fingerprint(gpg: &Gpg) -> String {
    let listing = String::from_utf8(gpg.ok(&["--with-colons", "--list-keys"])).unwrap();
    listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|rest| rest.trim_matches(':').to_string())
        .expect("a fingerprint")
}

/// A signer with an unprotected Ed25519 key: its secret and public keyrings.
fn signer(sb: &Sandbox, user_id: &str) -> (Gpg, std::path::PathBuf, std::path::PathBuf) {
    let gpg = Gpg::new();
    gpg.gen_key(user_id, "ed25519", "never", "", None);
    let tag = sha256_hex(user_id.as_bytes());
    let secret = gpg.export_secret(&sb.path().join(format!("sec-{}.gpg", &tag[..8])), "");
    let public = gpg.export_public(&sb.path().join(format!("pub-{}.gpg", &tag[..8])));
    (gpg, secret, public)
}

/// A package `DIR/NAME-VERSION.tgz` in a directory of its own under the sandbox, with `prov`
/// beside it when given.
fn package(
    sb: &Sandbox,
    dir: &str,
    files: &[(&str, &[u8])],
    prov: Option<&[u8]>,
) -> std::path::PathBuf {
    let dir = sb.path().join(dir);
    fs::create_dir_all(&dir).unwrap();
    let tgz = chart_tgz_with_files(&dir, "mychart", "0.1.0", files);
    if let Some(prov) = prov {
        fs::write(format!("{}.prov", tgz.display()), prov).unwrap();
    }
    tgz
}

#[test]
fn signed_save_is_what_helm_writes_and_gpg_verifies() {
    let sb = Sandbox::new();
    // GnuPG's default kind of key (RSA), as most signing keys are.
    let gpg = Gpg::new();
    gpg.gen_key(SIGNER, "rsa3072", "never", "", None);
    let secring = gpg.export_secret(&sb.path().join("secring.gpg"), "");
    let pubring = gpg.export_public(&sb.path().join("pubring.gpg"));
    let dir = sb.chart("mychart", "0.1.0");

    let out = sb.ok(&[
        "chart",
        "save",
        path(&dir),
        REF,
        "--sign",
        "--key",
        "signer@example.com",
        "--keyring",
        path(&secring),
    ]);
    assert!(out.ends_with("0.1.0: saved\n"), "{out}");

    // The provenance layer: in the manifest, linked from the ref.
    let prov = sb.ref_blob(REF, "prov");
    let content = sb.ref_blob(REF, "content");
    let manifest: serde_json::Value =
        serde_json::from_slice(&sb.ref_blob(REF, "manifest")).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert!(
        layers.iter().any(|l| l["mediaType"]
            == "application/vnd.cncf.helm.chart.provenance.v1.prov"
            && l["digest"] == format!("sha256:{}", sha256_hex(&prov))),
        "{manifest}"
    );
    // Helm's shape: clear-signed Chart.yaml, `...`, the archive's digest under its file name.
    let text = String::from_utf8(prov.clone()).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"),
        "{text}"
    );
    assert!(text.contains("\nname: mychart\n"), "{text}");
    assert!(
        text.contains(&format!(
            "\n...\nfiles:\n  mychart-0.1.0.tgz: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n",
            sha256_hex(&content)
        )),
        "{text}"
    );

    // GnuPG, the reference implementation, accepts the signature.
    let prov_file = sb.path().join("stored.prov");
    fs::write(&prov_file, &prov).unwrap();
    let verdict = gpg.verify(&prov_file);
    let stderr = String::from_utf8_lossy(&verdict.stderr);
    assert!(verdict.status.success(), "gpg --verify: {stderr}");
    assert!(
        stderr.contains(&format!("Good signature from \"{SIGNER}\"")),
        "{stderr}"
    );

    // chartcache reports what `helm verify` reports.
    let expected = format!(
        "Signed by: {SIGNER}\nUsing Key With Fingerprint: {}\nChart Hash Verified: sha256:{}\n",
        fingerprint(&gpg),
        sha256_hex(&content)
    );
    assert_eq!(
        sb.ok(&["chart", "verify", REF, "--keyring", path(&pubring)]),
        expected
    );
    // An armored keyring, and the secret keyring, say the same.
    let armored = gpg.export_public_armored(&sb.path().join("pubring.asc"));
    assert_eq!(
        sb.ok(&["chart", "verify", REF, "--keyring", path(&armored)]),
        expected
    );
    assert_eq!(
        sb.ok(&["chart", "verify", REF, "--keyring", path(&secring)]),
        expected
    );

    // export --verify writes the archive and its .prov as `helm pull --verify` does.
    let out_dir = sb.path().join("exported");
    let out = sb.ok(&[
        "chart",
        "export",
        REF,
        "--verify",
        "--keyring",
        path(&pubring),
        "-d",
        path(&out_dir),
    ]);
    assert!(out.contains(&expected), "{out}");
    assert!(
        out.ends_with(&format!("Exported to {}/mychart/\n", out_dir.display())),
        "{out}"
    );
    let tgz = out_dir.join("mychart-0.1.0.tgz");
    assert_eq!(fs::read(&tgz).unwrap(), content);
    assert_eq!(
        fs::read(out_dir.join("mychart-0.1.0.tgz.prov")).unwrap(),
        prov
    );
    assert!(out_dir.join("mychart/Chart.yaml").is_file());
    assert!(
        gpg.verify(&out_dir.join("mychart-0.1.0.tgz.prov"))
            .status
            .success()
    );

    // The whole-cache check is unchanged.
    let out = sb.ok(&["chart", "verify"]);
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn a_protected_key_needs_its_passphrase_which_is_never_shown() {
    let sb = Sandbox::new();
    let passphrase = "correct-horse-battery";
    let gpg = Gpg::new();
    gpg.gen_key(SIGNER, "ed25519", "never", passphrase, None);
    let secring = gpg.export_secret(&sb.path().join("secring.gpg"), passphrase);
    let pubring = gpg.export_public(&sb.path().join("pubring.gpg"));
    let dir = sb.chart("mychart", "0.1.0");
    let save = |extra: &[&str], stdin: &str| {
        let mut args = vec![
            "chart",
            "save",
            path(&dir),
            REF,
            "--sign",
            "--key",
            "signer@",
            "--keyring",
            path(&secring),
        ];
        args.extend(extra);
        sb.run_stdin(&args, stdin)
    };
    let shown = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).contains(passphrase)
            || String::from_utf8_lossy(&out.stderr).contains(passphrase)
    };

    // No passphrase and no terminal to ask on: refused, not read from the pipe.
    let out = save(&[], &format!("{passphrase}\n"));
    let line = error_line_of(&out, "save --sign without a passphrase");
    assert!(
        line.contains("protected by a passphrase") && line.contains("--passphrase-file"),
        "{line}"
    );
    assert!(
        sb.snapshot().under("refs/").is_empty(),
        "nothing may be saved"
    );

    let wrong = sb.path().join("wrong.txt");
    fs::write(&wrong, "not-the-passphrase-42\n").unwrap();
    let out = save(&["--passphrase-file", path(&wrong)], "");
    let line = error_line_of(&out, "save --sign with a wrong passphrase");
    assert!(line.contains("wrong passphrase"), "{line}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-the-passphrase-42"));
    assert!(
        sb.snapshot().under("refs/").is_empty(),
        "nothing may be saved"
    );

    let right = sb.path().join("passphrase.txt");
    fs::write(&right, format!("{passphrase}\n")).unwrap();
    let out = save(&["--passphrase-file", path(&right)], "");
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(!shown(&out));
    sb.ok(&["chart", "verify", REF, "--keyring", path(&pubring)]);

    // `-` reads it from standard input.
    let out = save(
        &["--passphrase-file", "-", "--debug"],
        &format!("{passphrase}\r\n"),
    );
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(!shown(&out));
}

#[test]
fn each_failed_check_is_refused_with_its_own_message() {
    let sb = Sandbox::new();
    let (gpg, _, pubring) = signer(&sb, SIGNER);
    let (_other, _, other_pubring) = signer(&sb, "Someone Else <else@example.com>");
    let original = chart_tgz(&sb.path().join("src"), "mychart", "0.1.0");
    let archive = fs::read(&original).unwrap();
    let block = message_block("mychart", "0.1.0", "mychart-0.1.0.tgz", &archive);
    // Provenance made by GnuPG, as `helm package --sign` would have made it.
    let good = gpg.clearsign(&block, "signer@example.com", "", None);
    let verify = |reference: &str, keyring: &Path| {
        sb.run(&["chart", "verify", reference, "--keyring", path(keyring)])
    };
    let save = |tgz: &Path, reference: &str| sb.ok(&["chart", "save", path(tgz), reference]);

    // Good: chartcache verifies GnuPG's provenance.
    let good_tgz = package(&sb, "good", &[], Some(&good));
    assert_eq!(
        fs::read(&good_tgz).unwrap(),
        archive,
        "fixtures are reproducible"
    );
    save(&good_tgz, "localhost:5000/c/good/mychart:0.1.0");
    let out = verify("localhost:5000/c/good/mychart:0.1.0", &pubring);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Signed by: {SIGNER}")));

    // A tampered archive: another archive beside the same provenance.
    let tampered = package(
        &sb,
        "tampered",
        &[("templates/evil.yaml", b"kind: Secret\n")],
        Some(&good),
    );
    save(&tampered, "localhost:5000/c/tampered/mychart:0.1.0");
    let line = error_line_of(
        &verify("localhost:5000/c/tampered/mychart:0.1.0", &pubring),
        "tampered",
    );
    assert!(
        line.contains("digest mismatch:") && line.contains(&sha256_hex(&archive)),
        "{line}"
    );
    assert!(
        line.contains("localhost:5000/c/tampered/mychart:0.1.0"),
        "{line}"
    );

    // The wrong key: the signer is not in the keyring.
    let line = error_line_of(
        &verify("localhost:5000/c/good/mychart:0.1.0", &other_pubring),
        "wrong key",
    );
    assert!(
        line.contains("unknown signer:") && line.contains(path(&other_pubring)),
        "{line}"
    );

    // An expired key: made in 2020 to last a day, signed with the day after.
    let old = Gpg::new();
    old.gen_key(
        "Old Key <old@example.com>",
        "ed25519",
        "1d",
        "",
        Some("20200101T000000"),
    );
    let old_pub = old.export_public(&sb.path().join("old-pub.gpg"));
    let old_sec = old.export_secret(&sb.path().join("old-sec.gpg"), "");
    let stale = old.clearsign(&block, "old@example.com", "", Some("20200101T120000"));
    let expired = package(&sb, "expired", &[], Some(&stale));
    save(&expired, "localhost:5000/c/expired/mychart:0.1.0");
    let line = error_line_of(
        &verify("localhost:5000/c/expired/mychart:0.1.0", &old_pub),
        "expired key",
    );
    assert!(
        line.contains("expired key:") && line.contains("expired on 2020-01-02"),
        "{line}"
    );
    // ... and chartcache will not sign with it either.
    let dir = sb.chart("mychart", "0.1.0");
    let out = sb.run(&[
        "chart",
        "save",
        path(&dir),
        "localhost:5000/c/x/mychart:0.1.0",
        "--sign",
        "--key",
        "old@",
        "--keyring",
        path(&old_sec),
    ]);
    let line = error_line_of(&out, "signing with an expired key");
    assert!(line.contains("expired on 2020-01-02"), "{line}");

    // An altered provenance: the signed text changed after signing.
    let altered = String::from_utf8(good.clone())
        .unwrap()
        .replace("name: mychart", "name: mychurt");
    assert_ne!(altered.as_bytes(), &good[..]);
    let altered_tgz = package(&sb, "altered", &[], Some(altered.as_bytes()));
    save(&altered_tgz, "localhost:5000/c/altered/mychart:0.1.0");
    let line = error_line_of(
        &verify("localhost:5000/c/altered/mychart:0.1.0", &pubring),
        "altered",
    );
    assert!(line.contains("bad signature:"), "{line}");

    // A good signature for another file name.
    let renamed = gpg.clearsign(
        &message_block("mychart", "0.1.0", "other-9.9.9.tgz", &archive),
        "signer@example.com",
        "",
        None,
    );
    let renamed_tgz = package(&sb, "renamed", &[], Some(&renamed));
    save(&renamed_tgz, "localhost:5000/c/renamed/mychart:0.1.0");
    let line = error_line_of(
        &verify("localhost:5000/c/renamed/mychart:0.1.0", &pubring),
        "renamed",
    );
    assert!(
        line.contains("digest mismatch:")
            && line.contains("no digest for a file named \"mychart-0.1.0.tgz\"")
            && line.contains("other-9.9.9.tgz"),
        "{line}"
    );

    // No provenance at all.
    let unsigned = package(&sb, "unsigned", &[], None);
    save(&unsigned, "localhost:5000/c/unsigned/mychart:0.1.0");
    let line = error_line_of(
        &verify("localhost:5000/c/unsigned/mychart:0.1.0", &pubring),
        "unsigned",
    );
    assert!(line.contains("unsigned:"), "{line}");

    // export --verify of a chart that does not verify writes nothing.
    let out_dir = sb.path().join("out");
    let out = sb.run(&[
        "chart",
        "export",
        "localhost:5000/c/tampered/mychart:0.1.0",
        "--verify",
        "--keyring",
        path(&pubring),
        "-d",
        path(&out_dir),
    ]);
    let line = error_line_of(&out, "export --verify of a tampered chart");
    assert!(line.contains("digest mismatch:"), "{line}");
    let left: Vec<_> = fs::read_dir(&out_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "export --verify left {left:?}");
}

#[test]
fn signing_a_package_replaces_the_prov_beside_it() {
    let sb = Sandbox::new();
    let (_gpg, secring, pubring) = signer(&sb, SIGNER);
    let (other, _, _) = signer(&sb, "Someone Else <else@example.com>");
    let tgz = package(&sb, "pkg", &[], None);
    let archive = fs::read(&tgz).unwrap();
    let theirs = other.clearsign(
        &message_block("mychart", "0.1.0", "mychart-0.1.0.tgz", &archive),
        "else@example.com",
        "",
        None,
    );
    fs::write(format!("{}.prov", tgz.display()), &theirs).unwrap();
    let out = sb.run(&[
        "chart",
        "save",
        path(&tgz),
        REF,
        "--sign",
        "--key",
        "signer@",
        "--keyring",
        path(&secring),
    ]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mychart-0.1.0.tgz.prov is not stored: the chart is signed anew"),
        "{stderr}"
    );
    // The archive is stored byte for byte, with the new signature.
    assert_eq!(sb.ref_blob(REF, "content"), archive);
    assert_ne!(sb.ref_blob(REF, "prov"), theirs);
    let out = sb.ok(&["chart", "verify", REF, "--keyring", path(&pubring)]);
    assert!(out.starts_with(&format!("Signed by: {SIGNER}\n")), "{out}");
}

#[test]
fn a_tampered_cache_is_refused() {
    let sb = Sandbox::new();
    let (_gpg, secring, pubring) = signer(&sb, SIGNER);
    let dir = sb.chart("mychart", "0.1.0");
    sb.ok(&[
        "chart",
        "save",
        path(&dir),
        REF,
        "--sign",
        "--key",
        "signer@",
        "--keyring",
        path(&secring),
    ]);
    sb.ok(&["chart", "verify", REF, "--keyring", path(&pubring)]);
    // Someone rewrites the archive in a cache copied from elsewhere.
    let blob = fs::canonicalize(sb.ref_dir(REF).join("content")).unwrap();
    let mut perms = fs::metadata(&blob).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&blob, perms).unwrap();
    let tampered = chart_tgz_with_files(
        &sb.path().join("src"),
        "mychart",
        "0.1.0",
        &[("templates/x.yaml", b"x: 1\n")],
    );
    fs::copy(&tampered, &blob).unwrap();
    let line = error_line_of(
        &sb.run(&["chart", "verify", REF, "--keyring", path(&pubring)]),
        "tampered cache",
    );
    assert!(line.contains("digest mismatch:"), "{line}");
}

#[test]
fn pull_verify_keeps_only_what_verifies() {
    let reg = Registry::plain();
    let host = reg.host();
    let publisher = Sandbox::new();
    let (_gpg, secring, pubring) = signer(&publisher, SIGNER);
    let (_other, _, other_pubring) = signer(&publisher, "Someone Else <else@example.com>");
    let signed = format!("{host}/charts/mychart:0.1.0");
    let unsigned = format!("{host}/charts/mychart:0.2.0");
    let dir = publisher.chart("mychart", "0.1.0");
    publisher.ok(&[
        "chart",
        "save",
        path(&dir),
        &signed,
        "--sign",
        "--key",
        "signer@",
        "--keyring",
        path(&secring),
    ]);
    publisher.ok(&["chart", "push", &signed]);
    publisher.save("mychart", "0.2.0", &unsigned);
    publisher.ok(&["chart", "push", &unsigned]);

    // The right keyring: pulled, verified, stored with its provenance.
    let sb = Sandbox::new();
    let out = sb.ok(&[
        "chart",
        "pull",
        &signed,
        "--verify",
        "--keyring",
        path(&pubring),
    ]);
    assert!(out.contains(&format!("Signed by: {SIGNER}\n")), "{out}");
    assert!(out.contains("Chart Hash Verified: sha256:"), "{out}");
    assert!(
        out.ends_with(&format!("Status: Downloaded newer chart for {signed}\n")),
        "{out}"
    );
    assert_eq!(
        sb.ref_blob(&signed, "prov"),
        publisher.ref_blob(&signed, "prov")
    );
    assert_eq!(
        sb.manifest_digest(&signed),
        publisher.manifest_digest(&signed)
    );
    let out = sb.ok(&[
        "chart",
        "pull",
        &signed,
        "--verify",
        "--keyring",
        path(&pubring),
    ]);
    assert!(
        out.ends_with(&format!("Status: Chart is up to date for {signed}\n")),
        "{out}"
    );
    sb.ok(&["chart", "verify"]);

    // The wrong keyring, or no signature: refused, and nothing is stored.
    for (reference, keyring, expected) in [
        (&signed, &other_pubring, "unknown signer:"),
        (&unsigned, &pubring, "unsigned:"),
    ] {
        let sb = Sandbox::new();
        let before = sb.snapshot();
        let out = sb.run(&[
            "chart",
            "pull",
            reference,
            "--verify",
            "--keyring",
            path(keyring),
        ]);
        let line = error_line_of(&out, "pull --verify");
        assert!(
            line.contains(expected) && line.contains(reference.as_str()),
            "{line}"
        );
        let after = sb.snapshot();
        assert!(
            after.under("refs/").is_empty() && after.under("blobs/sha256/").is_empty(),
            "a refused pull stored {:?}",
            after.changes_since(&before)
        );
    }
    // The default keyring is Helm's: $GNUPGHOME/pubring.gpg.
    let mut sb = Sandbox::new();
    let gnupg = sb.path().join("gnupg");
    fs::create_dir_all(&gnupg).unwrap();
    fs::copy(&pubring, gnupg.join("pubring.gpg")).unwrap();
    sb.set_env("GNUPGHOME", &gnupg);
    sb.ok(&["chart", "pull", &signed, "--verify"]);
    sb.ok(&["chart", "verify", &signed]);
}

#[test]
fn helm_and_chartcache_read_each_others_signed_charts() {
    let Some(helm) = Helm::new() else {
        panic!(
            "Helm v4 peer missing at {}: {}",
            Helm::venv_dir().display(),
            support::INSTALL_HINT
        );
    };
    let reg = Registry::plain();
    let host = reg.host();
    let sb = Sandbox::new();
    let (gpg, secring, pubring) = signer(&sb, SIGNER);

    // Helm v4 pulls a chart chartcache signed (its provenance layer included).
    let ours = format!("{host}/charts/mychart:0.1.0");
    let dir = sb.chart("mychart", "0.1.0");
    sb.ok(&[
        "chart",
        "save",
        path(&dir),
        &ours,
        "--sign",
        "--key",
        "signer@",
        "--keyring",
        path(&secring),
    ]);
    sb.ok(&["chart", "push", &ours]);
    let chart_yaml = helm
        .show_chart(&reg.oci("charts/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("helm cannot pull a chart signed by chartcache: {e}"));
    assert!(chart_yaml.contains("name: mychart"), "{chart_yaml}");

    // Helm pushes a package with its .prov beside it (GnuPG-made, as helm package --sign
    // makes it); chartcache pulls and verifies it.
    let src = sb.path().join("helm-src");
    fs::create_dir_all(&src).unwrap();
    let tgz = chart_tgz(&src, "theirs", "1.0.0");
    let block = message_block(
        "theirs",
        "1.0.0",
        "theirs-1.0.0.tgz",
        &fs::read(&tgz).unwrap(),
    );
    fs::write(
        format!("{}.prov", tgz.display()),
        gpg.clearsign(&block, "signer@", "", None),
    )
    .unwrap();
    helm.push(&tgz, &reg.oci("charts"), true)
        .unwrap_or_else(|e| panic!("helm push: {e}"));
    let theirs = format!("{host}/charts/theirs:1.0.0");
    let puller = Sandbox::new();
    let out = puller.ok(&[
        "chart",
        "pull",
        &theirs,
        "--verify",
        "--keyring",
        path(&pubring),
    ]);
    assert!(out.contains(&format!("Signed by: {SIGNER}\n")), "{out}");
}
