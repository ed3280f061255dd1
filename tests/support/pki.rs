//! A throwaway PKI made with the `openssl` CLI: a CA, a server certificate for
//! 127.0.0.1 / localhost, and a client certificate (for mTLS), all ECDSA P-256.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_ok;

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = chartcache-test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Paths of the generated PEM files (keys are unencrypted PKCS#8).
#[derive(Debug, Clone)]
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    /// Generates everything into `dir` (created if needed). About 50 ms.
    pub fn generate(dir: &Path) -> TestPki {
        fs::create_dir_all(dir).expect("create pki dir");
        let pki = TestPki {
            dir: dir.to_path_buf(),
        };
        let cnf = openssl_cnf(dir);
        self_signed(
            &cnf,
            "ca",
            "/CN=chartcache test CA",
            &pki.ca_key_path(),
            &pki.ca_pem_path(),
        );
        pki.issue(&cnf, "server", "/CN=127.0.0.1");
        pki.issue(&cnf, "client", "/CN=chartcache-test-client");

        // skopeo/containers-image `--cert-dir` layouts: `*.crt` are CAs, `*.cert` + `*.key`
        // a client pair.
        fs::create_dir_all(pki.cert_dir()).expect("mkdir cert dir");
        fs::copy(pki.ca_pem_path(), pki.cert_dir().join("ca.crt")).expect("copy ca");
        fs::create_dir_all(pki.client_cert_dir()).expect("mkdir client cert dir");
        fs::copy(pki.ca_pem_path(), pki.client_cert_dir().join("ca.crt")).expect("copy ca");
        fs::copy(
            pki.client_cert_path(),
            pki.client_cert_dir().join("client.cert"),
        )
        .expect("copy client cert");
        fs::copy(
            pki.client_key_path(),
            pki.client_cert_dir().join("client.key"),
        )
        .expect("copy client key");
        pki
    }

    fn issue(&self, cnf: &Path, name: &str, subject: &str) {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        let pem = self.dir.join(format!("{name}.pem"));
        run_ok(
            Command::new("openssl")
                .args(["req", "-new", "-config"])
                .arg(cnf)
                .args([
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    subject,
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        run_ok(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "3", "-set_serial"])
                .arg(format!("{}", serial()))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(self.ca_pem_path())
                .arg("-CAkey")
                .arg(self.ca_key_path())
                .arg("-extfile")
                .arg(cnf)
                .args(["-extensions", name, "-out"])
                .arg(&pem),
        );
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The CA certificate (PEM): what clients must trust.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// Server certificate for `IP:127.0.0.1` and `DNS:localhost`, signed by the CA.
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// Client certificate (extendedKeyUsage clientAuth), signed by the same CA.
    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// A directory holding only `ca.crt` (for `skopeo --cert-dir` / Docker's certs.d).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.join("certs.d-ca")
    }
    /// A directory holding `ca.crt`, `client.cert`, `client.key` (skopeo `--cert-dir` for mTLS).
    pub fn client_cert_dir(&self) -> PathBuf {
        self.dir.join("certs.d-client")
    }
}

/// A self-signed certificate with a fresh P-256 key (`[ca]` extensions).
pub(crate) fn self_signed(cnf: &Path, section: &str, subject: &str, key: &Path, pem: &Path) {
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-config"])
            .arg(cnf)
            .args([
                "-extensions",
                section,
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "3",
                "-subj",
                subject,
                "-set_serial",
            ])
            .arg(format!("{}", serial()))
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(pem),
    );
}

/// A positive serial number unlikely to repeat across test runs.
fn serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    ((nanos ^ (u64::from(std::process::id()) << 32)) >> 2) + COUNTER.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn openssl_cnf(dir: &Path) -> PathBuf {
    let cnf = dir.join("openssl.cnf");
    if !cnf.exists() {
        fs::write(&cnf, OPENSSL_CNF).expect("write openssl.cnf");
    }
    cnf
}
