//! cosign signatures on a chart's manifest, checked with a public key (`--cosign-key`, the
//! PEM `cosign generate-key-pair` writes: ECDSA P-256).
//!
//! cosign keeps the signatures of the manifest `sha256:<hex>` under the tag
//! `sha256-<hex>.sig` ([`signature_tag`]) of the same repository: an OCI manifest whose layers
//! are simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`, JSON that
//! names the signed manifest digest), each with its signature, base64 DER ECDSA over the
//! payload bytes, in the annotation `dev.cosignproject.cosign/signature`
//! ([`SignatureLayer::parse_manifest`]). A chart is signed when one layer's signature verifies
//! with the key and its payload names the chart's manifest digest ([`verify_cosign`],
//! [`verify_any`]).
//!
//! Keyless signatures (a Fulcio certificate and a Rekor bundle instead of a key) are not
//! checked: [`CosignError::Keyless`] says so.

mod key;
mod payload;
mod verify;

pub use key::{CosignKey, KeyError, MAX_KEY};
pub use payload::{MAX_PAYLOAD, Payload};
pub use verify::{CosignError, SignatureLayer, Verified, verify_any, verify_cosign};

use crate::digest::Digest;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation of keyless signatures: the Fulcio certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The layer annotation of keyless signatures (and of keyed ones uploaded to Rekor).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// The tag cosign stores the signatures of `manifest` under: `sha256-<hex>.sig`.
pub fn signature_tag(manifest: &Digest) -> String {
    format!("sha256-{}.sig", manifest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_cosigns() {
        let d = Digest::of(b"m");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
    }
}
