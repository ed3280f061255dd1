//! The TLS configuration of every HTTP client: rustls with the ring provider, HTTP/1.1, and a
//! certificate verifier that reads the system's root certificates only when a server
//! certificate is first checked, and once per process. A command that talks plain HTTP (a
//! loopback registry, a plain-HTTP repository) never reads them; one that talks to several
//! HTTPS hosts reads them once.
//!
//! The verification itself is the platform's (`rustls-platform-verifier`, as reqwest does it),
//! with `--ca-file` certificates added to the system roots; `--insecure` skips it (handshake
//! signatures are still checked); a client certificate comes from `--cert-file` and
//! `--key-file`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::RegistryError;

/// What a client's TLS needs, read from the files the flags name.
#[derive(Debug, Default)]
pub struct TlsFiles<'a> {
    /// Skip certificate verification (`--insecure`).
    pub insecure: bool,
    /// More root certificates, PEM (`--ca-file`).
    pub ca_file: Option<&'a Path>,
    /// A client certificate chain and its key, PEM (`--cert-file`, `--key-file`).
    pub identity: Option<(&'a Path, &'a Path)>,
}

/// The rustls configuration for `files`. Reads the files named (not the system's roots).
pub fn client_config(files: &TlsFiles<'_>) -> Result<rustls::ClientConfig, RegistryError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if files.insecure {
        Arc::new(AcceptAny {
            provider: Arc::clone(&provider),
        })
    } else {
        let extra = match files.ca_file {
            Some(path) => ca_certificates(path)?,
            None => Vec::new(),
        };
        Arc::new(LazyRoots {
            provider: Arc::clone(&provider),
            extra,
            loaded: OnceLock::new(),
        })
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match files.identity {
        Some((cert, key)) => {
            let (chain, key) = identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad_identity(cert, key_path(files), &e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn key_path<'a>(files: &TlsFiles<'a>) -> &'a Path {
    files.identity.map_or(Path::new(""), |(_, k)| k)
}

/// The ring provider, made once.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

fn read_file(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))
}

/// The certificates of a PEM bundle; at least one.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            RegistryError::Config(format!(
                "{}: not a PEM certificate bundle: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(RegistryError::Config(format!(
            "{}: no PEM certificate in this CA file",
            path.display()
        )));
    }
    Ok(certs)
}

fn bad_identity(cert: &Path, key: &Path, why: &str) -> RegistryError {
    RegistryError::Config(format!(
        "{} / {}: not a PEM certificate and key: {why}",
        cert.display(),
        key.display()
    ))
}

/// A client certificate chain and its private key (PKCS#8, PKCS#1 or SEC1), both PEM.
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), RegistryError> {
    let cert_pem = read_file(cert)?;
    let key_pem = read_file(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_identity(cert, key, &e.to_string()))?;
    if chain.is_empty() {
        return Err(bad_identity(cert, key, "no certificate"));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad_identity(cert, key, &format!("no private key: {e}")))?;
    Ok((chain, private))
}

/// The platform verifier with the system roots (and `extra`), made on first use. Without
/// `extra`, one per process is shared by every client.
#[derive(Debug)]
struct LazyRoots {
    provider: Arc<CryptoProvider>,
    extra: Vec<CertificateDer<'static>>,
    loaded: OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl LazyRoots {
    fn verifier(&self) -> Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error> {
        if self.extra.is_empty() {
            static SYSTEM: OnceLock<
                Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>,
            > = OnceLock::new();
            return SYSTEM
                .get_or_init(|| rustls_platform_verifier::Verifier::new(provider()).map(Arc::new))
                .clone();
        }
        self.loaded
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new_with_extra_roots(
                    self.extra.iter().cloned(),
                    Arc::clone(&self.provider),
                )
                .map(Arc::new)
            })
            .clone()
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `--insecure`: any certificate is accepted (the handshake's signatures are still checked).
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_files_reads_nothing_yet() {
        let config = client_config(&TlsFiles::default()).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").expect("write");
        let err = client_config(&TlsFiles {
            ca_file: Some(&empty),
            ..TlsFiles::default()
        })
        .expect_err("no certificate");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = client_config(&TlsFiles {
            ca_file: Some(&missing),
            ..TlsFiles::default()
        })
        .expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
