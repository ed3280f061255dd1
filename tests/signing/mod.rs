//! Peers and fixtures of the signature tests: GnuPG (Debian's `gnupg`) with a home of its own
//! ([`Gpg`]), and cosign's signature format built with a standard crypto library (p256), since
//! there is no cosign binary here ([`CosignSigner`], [`push_cosign_signature`]).
//!
//! Use with `mod support; mod fault; mod signing;`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;
use tempfile::TempDir;

use crate::fault::{put_manifest, sha256_hex, upload_blob};
use crate::support::{Registry, describe, run_with_timeout};

const GPG: &str = "/usr/bin/gpg";

/// GnuPG with its own home (`GNUPGHOME`), deleted on drop.
pub struct Gpg {
    home: TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        assert!(
            Path::new(GPG).exists(),
            "{GPG} is missing: apt-get install gnupg ({})",
            crate::support::INSTALL_HINT
        );
        let home = tempfile::Builder::new()
            .prefix("chartcache-gpg-")
            .tempdir()
            .expect("gnupg home");
        let mut perms = fs::metadata(home.path()).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        fs::set_permissions(home.path(), perms).expect("chmod gnupg home");
        Gpg { home }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `gpg ARGS…` in this home, batch mode; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(GPG);
        cmd.env("GNUPGHOME", self.home())
            .env_remove("GPG_AGENT_INFO")
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args);
        run_with_timeout(&mut cmd, Duration::from_secs(60))
    }

    /// `gpg ARGS…`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gpg {} failed: {}",
            args.join(" "),
            describe(&out)
        );
        out.stdout
    }

    /// Makes a key for `user_id`: `algo` like `ed25519` or `rsa3072`, `expire` like `never`
    /// or `1d`, protected by `passphrase` (empty: none). With `at`, GnuPG believes it is
    /// that time (`20200101T000000`), so the key can be made already expired.
    pub fn gen_key(
        &self,
        user_id: &str,
        algo: &str,
        expire: &str,
        passphrase: &str,
        at: Option<&str>,
    ) {
        let mut args = vec!["--passphrase", passphrase];
        if let Some(at) = at {
            args.extend(["--faked-system-time", at]);
        }
        args.extend(["--quick-gen-key", user_id, algo, "sign", expire]);
        self.ok(&args);
    }

    /// `gpg --export` (a binary public keyring) written to `path`.
    pub fn export_public(&self, path: &Path) -> PathBuf {
        fs::write(path, self.ok(&["--export"])).expect("write public keyring");
        path.to_path_buf()
    }

    /// `gpg --export --armor` written to `path`.
    pub fn export_public_armored(&self, path: &Path) -> PathBuf {
        fs::write(path, self.ok(&["--export", "--armor"])).expect("write armored keyring");
        path.to_path_buf()
    }

    /// `gpg --export-secret-keys` (a binary secret keyring) written to `path`.
    pub fn export_secret(&self, path: &Path, passphrase: &str) -> PathBuf {
        let bytes = self.ok(&["--passphrase", passphrase, "--export-secret-keys"]);
        fs::write(path, bytes).expect("write secret keyring");
        path.to_path_buf()
    }

    /// `gpg --clearsign` of `text` by `user_id` (at the faked time `at`, if given).
    pub fn clearsign(
        &self,
        text: &str,
        user_id: &str,
        passphrase: &str,
        at: Option<&str>,
    ) -> Vec<u8> {
        let input = self.home().join("clearsign-input.txt");
        let output = self.home().join("clearsign-output.asc");
        fs::write(&input, text).expect("write clearsign input");
        let _ = fs::remove_file(&output);
        let mut args = vec!["--passphrase", passphrase, "--digest-algo", "SHA512"];
        if let Some(at) = at {
            args.extend(["--faked-system-time", at]);
        }
        let (i, o) = (input.to_string_lossy(), output.to_string_lossy());
        args.extend(["--local-user", user_id, "--output", &o, "--clearsign", &i]);
        self.ok(&args);
        fs::read(&output).expect("read clearsigned output")
    }

    /// `gpg --verify FILE`: the output (GnuPG writes its verdict to stderr).
    pub fn verify(&self, file: &Path) -> Output {
        self.run(&["--verify", &file.to_string_lossy()])
    }
}

impl Drop for Gpg {
    /// Stops the agent GnuPG started for this home.
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/gpgconf")
            .env("GNUPGHOME", self.home())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Helm's message block for an archive: Chart.yaml's fields, `...`, the file digest.
pub fn message_block(name: &str, version: &str, file_name: &str, archive: &[u8]) -> String {
    format!(
        "apiVersion: v2\nname: {name}\nversion: {version}\n\n...\nfiles:\n  {file_name}: sha256:{}\n",
        sha256_hex(archive)
    )
}

/// A cosign key pair (`cosign generate-key-pair` makes ECDSA P-256).
pub struct CosignSigner {
    key: SigningKey,
}

impl CosignSigner {
    pub fn new() -> CosignSigner {
        CosignSigner {
            key: SigningKey::random(&mut rand::thread_rng()),
        }
    }

    /// The public key as `cosign.pub` holds it (PEM `PUBLIC KEY`), written to `path`.
    pub fn write_public_pem(&self, path: &Path) -> PathBuf {
        let pem = self
            .key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public key PEM");
        fs::write(path, pem).expect("write cosign.pub");
        path.to_path_buf()
    }

    /// cosign's simple-signing payload for `manifest_digest` (`sha256:…`) of `repository`.
    pub fn payload(manifest_digest: &str, repository: &str) -> Vec<u8> {
        json!({
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": manifest_digest},
                "type": "cosign container image signature",
            },
            "optional": null,
        })
        .to_string()
        .into_bytes()
    }

    /// The base64 DER ECDSA signature over `payload`, as cosign puts it in the annotation.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: Signature = self.key.sign(payload);
        BASE64.encode(sig.to_der().as_bytes())
    }
}

/// One layer of a cosign signature manifest.
pub struct CosignLayer {
    pub payload: Vec<u8>,
    pub signature: String,
    /// A Fulcio certificate annotation: what a keyless signature carries.
    pub certificate: Option<String>,
}

/// Pushes a cosign signature manifest for `manifest_digest` to `repo` (`sha256-<hex>.sig`),
/// as `cosign sign` does: an empty config, one simple-signing layer per signature.
pub fn push_cosign_signature(
    reg: &Registry,
    repo: &str,
    manifest_digest: &str,
    layers: &[CosignLayer],
) {
    let config = b"{}";
    let config_digest = upload_blob(reg, repo, config);
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let digest = upload_blob(reg, repo, &l.payload);
            let mut annotations = json!({"dev.cosignproject.cosign/signature": l.signature});
            if let Some(cert) = &l.certificate {
                annotations["dev.sigstore.cosign/certificate"] = json!(cert);
            }
            json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": digest,
                "size": l.payload.len(),
                "annotations": annotations,
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    })
    .to_string();
    let hex = manifest_digest
        .strip_prefix("sha256:")
        .expect("a sha256 digest");
    put_manifest(reg, repo, &format!("sha256-{hex}.sig"), manifest.as_bytes());
}
