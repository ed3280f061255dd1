//! Signatures on charts: Helm's provenance files ([`provenance`]: OpenPGP clear-signed
//! `.prov`, made by `chart save --sign` and checked as `helm verify` checks them) and cosign's
//! signatures ([`cosign`]: ECDSA P-256 over a simple-signing payload that names the chart's
//! manifest digest).
//!
//! Both checks are pure functions of bytes and keys: no network, no cache. The tasks fetch
//! what they need and call them, so a copy policy (`sync --require-signed`) can call them too,
//! and sort every refusal into one [`Failure`] whatever the kind of signature.

pub mod cosign;
pub mod provenance;

use std::fmt;

/// Why a signature check refused a chart, in the categories a policy acts on and a user
/// understands. Each error of [`provenance`] and [`cosign`] maps to one (`kind()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// There is no signature at all (no provenance layer, no `.sig` tag).
    Unsigned,
    /// A signature is there but does not verify: altered, malformed, or made by another key
    /// (cosign keys carry no identity, so a wrong key shows as this).
    BadSignature,
    /// The signature names a key that is not in the keyring.
    UnknownSigner,
    /// The signing key (or the signature itself) has expired.
    ExpiredKey,
    /// The signing key has been revoked.
    RevokedKey,
    /// The signature is good but vouches for other bytes: another archive digest, or another
    /// manifest digest.
    DigestMismatch,
    /// A kind of signature chartcache does not check (cosign keyless signatures).
    Unsupported,
}

impl Failure {
    /// A short name for reports and JSON (`bad signature`, `unknown signer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Unsigned => "unsigned",
            Failure::BadSignature => "bad signature",
            Failure::UnknownSigner => "unknown signer",
            Failure::ExpiredKey => "expired key",
            Failure::RevokedKey => "revoked key",
            Failure::DigestMismatch => "digest mismatch",
            Failure::Unsupported => "unsupported signature",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
