//! cosign public keys: PEM `PUBLIC KEY` (SubjectPublicKeyInfo), ECDSA on P-256, as
//! `cosign generate-key-pair` writes `cosign.pub`.

use std::io::Read;
use std::path::{Path, PathBuf};

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;

/// The largest key file read (a P-256 PEM is under 200 bytes).
pub const MAX_KEY: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("--cosign-key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "--cosign-key {0}: not an ECDSA P-256 public key in PEM (cosign generate-key-pair writes cosign.pub; RSA, Ed25519 and other curves are not supported)"
    )]
    NotP256(String),
    #[error("--cosign-key {0}: the file is larger than 64 KiB, not a public key")]
    TooLarge(String),
}

/// A cosign public key, and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct CosignKey {
    key: VerifyingKey,
    source: String,
}

impl CosignKey {
    /// Reads the PEM public key at `path`.
    pub fn load(path: &Path) -> Result<CosignKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut pem = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_KEY + 1)
            .read_to_end(&mut pem)
            .map_err(io)?;
        let source = path.display().to_string();
        if pem.len() as u64 > MAX_KEY {
            return Err(KeyError::TooLarge(source));
        }
        Self::from_pem(&pem, source)
    }

    /// A key from PEM text; `source` names it in messages.
    pub fn from_pem(pem: &[u8], source: impl Into<String>) -> Result<CosignKey, KeyError> {
        let source = source.into();
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotP256(source.clone()))?;
        let key = VerifyingKey::from_public_key_pem(text.trim())
            .map_err(|_| KeyError::NotP256(source.clone()))?;
        Ok(CosignKey { key, source })
    }

    pub(super) fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Where the key came from (its path).
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    #[test]
    fn reads_spki_pem_and_refuses_others() {
        let signing = SigningKey::random(&mut rand::thread_rng());
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let key = CosignKey::from_pem(pem.as_bytes(), "cosign.pub").unwrap();
        assert_eq!(key.verifying_key(), signing.verifying_key());
        assert_eq!(key.source(), "cosign.pub");

        for junk in [
            &b""[..],
            b"hello",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            let err = CosignKey::from_pem(junk, "k.pub").unwrap_err();
            assert!(err.to_string().contains("P-256"), "{err}");
        }
    }
}
