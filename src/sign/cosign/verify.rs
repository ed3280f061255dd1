//! Checking cosign signatures: the ECDSA signature over the payload bytes with the key, then
//! the payload's manifest digest against the chart's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;
use serde::Deserialize;

use super::key::CosignKey;
use super::payload::Payload;
use super::{CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::sign::Failure;

/// Why a chart's cosign signature does not verify. Every message starts with the check that
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("unsigned: there is no cosign signature (no tag {tag})")]
    Unsigned { tag: String },
    #[error("unsigned: {tag} holds no cosign simple-signing payload")]
    NoPayload { tag: String },
    #[error("bad signature: the cosign signature annotation is not base64 DER ECDSA: {0}")]
    MalformedSignature(String),
    #[error(
        "bad signature: the cosign signature does not verify with the key {key} (signed with another key, or the payload was altered)"
    )]
    BadSignature { key: String },
    #[error("bad signature: the signed payload is not a cosign simple-signing payload: {0}")]
    MalformedPayload(String),
    #[error(
        "digest mismatch: the cosign signature is for manifest {signed}, not this chart's manifest {manifest}"
    )]
    DigestMismatch { signed: Digest, manifest: Digest },
    #[error(
        "unsupported: the cosign signature is keyless (a Fulcio certificate); chartcache checks only signatures made with a key (--cosign-key), not keyless ones"
    )]
    Keyless,
    #[error("bad signature: the cosign signature manifest is not valid JSON: {0}")]
    MalformedManifest(String),
}

impl CosignError {
    /// The category of the refusal, for policies and reports.
    pub fn kind(&self) -> Failure {
        match self {
            CosignError::Unsigned { .. } | CosignError::NoPayload { .. } => Failure::Unsigned,
            CosignError::MalformedSignature(_)
            | CosignError::BadSignature { .. }
            | CosignError::MalformedPayload(_)
            | CosignError::MalformedManifest(_) => Failure::BadSignature,
            CosignError::DigestMismatch { .. } => Failure::DigestMismatch,
            CosignError::Keyless => Failure::Unsupported,
        }
    }

    /// With several signatures, the most telling refusal is reported.
    fn weight(&self) -> u8 {
        match self {
            CosignError::DigestMismatch { .. } => 3,
            CosignError::Keyless => 2,
            CosignError::BadSignature { .. } => 1,
            _ => 0,
        }
    }
}

/// A signature that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub payload: Payload,
    /// The payload layer whose signature verified.
    pub layer: Digest,
}

/// One signature of a signature manifest: its payload layer and the signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    pub payload: Descriptor,
    /// The base64 signature (empty when the layer has none).
    pub signature: String,
    /// The layer carries a Fulcio certificate: a keyless signature.
    pub keyless: bool,
}

#[derive(Deserialize)]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl SignatureLayer {
    /// The simple-signing layers of a signature manifest (what `sha256-<hex>.sig` holds);
    /// other layers are not signatures and are skipped.
    pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<SignatureLayer>, CosignError> {
        let manifest: SignatureManifest = serde_json::from_slice(bytes)
            .map_err(|e| CosignError::MalformedManifest(e.to_string()))?;
        Ok(manifest
            .layers
            .into_iter()
            .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
            .map(|l| SignatureLayer {
                signature: l
                    .annotations
                    .get(SIGNATURE_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                keyless: l.annotations.contains_key(CERTIFICATE_ANNOTATION),
                payload: l,
            })
            .collect())
    }
}

/// Checks one cosign signature: `signature` (base64 DER ECDSA, as in the layer annotation)
/// over `payload` with `key`, and that the payload names `manifest`.
pub fn verify_cosign(
    manifest: &Digest,
    payload: &[u8],
    signature: &str,
    key: &CosignKey,
) -> Result<Payload, CosignError> {
    let der = BASE64
        .decode(signature.trim())
        .map_err(|e| CosignError::MalformedSignature(e.to_string()))?;
    // cosign writes ASN.1 DER; the fixed 64-byte form is taken too.
    let sig = Signature::from_der(&der)
        .or_else(|_| Signature::from_slice(&der))
        .map_err(|_| {
            CosignError::MalformedSignature(format!(
                "{} bytes that are no ECDSA signature",
                der.len()
            ))
        })?;
    key.verifying_key()
        .verify(payload, &sig)
        .map_err(|_| CosignError::BadSignature {
            key: key.source().to_string(),
        })?;
    let signed = Payload::parse(payload).map_err(CosignError::MalformedPayload)?;
    if signed.manifest != *manifest {
        return Err(CosignError::DigestMismatch {
            signed: signed.manifest,
            manifest: manifest.clone(),
        });
    }
    Ok(signed)
}

/// The first of `signatures` (each layer with its payload's bytes) that verifies for
/// `manifest` with `key`, as cosign accepts any; else the most telling refusal. `tag` names
/// the signature manifest in messages.
pub fn verify_any(
    manifest: &Digest,
    signatures: &[(SignatureLayer, Vec<u8>)],
    key: &CosignKey,
    tag: &str,
) -> Result<Verified, CosignError> {
    let mut refusal: Option<CosignError> = None;
    for (layer, payload) in signatures {
        let result = if layer.signature.is_empty() {
            Err(CosignError::MalformedSignature(format!(
                "the layer has no {SIGNATURE_ANNOTATION} annotation"
            )))
        } else {
            verify_cosign(manifest, payload, &layer.signature, key)
        };
        match result {
            Ok(payload) => {
                return Ok(Verified {
                    payload,
                    layer: layer.payload.digest.clone(),
                });
            }
            // A keyless signature never verifies with a key: say why.
            Err(CosignError::BadSignature { .. } | CosignError::MalformedSignature(_))
                if layer.keyless =>
            {
                refusal = pick(refusal, CosignError::Keyless);
            }
            Err(e) => refusal = pick(refusal, e),
        }
    }
    Err(refusal.unwrap_or_else(|| CosignError::NoPayload {
        tag: tag.to_string(),
    }))
}

fn pick(current: Option<CosignError>, new: CosignError) -> Option<CosignError> {
    match current {
        Some(c) if c.weight() >= new.weight() => Some(c),
        _ => Some(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use proptest::prelude::*;

    fn keypair() -> (SigningKey, CosignKey) {
        let signing = SigningKey::random(&mut rand::thread_rng());
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = CosignKey::from_pem(pem.as_bytes(), "cosign.pub").unwrap();
        (signing, key)
    }

    fn payload(manifest: &Digest) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/charts/app"}},"image":{{"docker-manifest-digest":"{manifest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes()
    }

    fn sign(key: &SigningKey, payload: &[u8]) -> String {
        let sig: Signature = key.sign(payload);
        BASE64.encode(sig.to_der().as_bytes())
    }

    #[test]
    fn a_good_signature_verifies() {
        let (signing, key) = keypair();
        let manifest = Digest::of(b"the manifest");
        let p = payload(&manifest);
        let signed = verify_cosign(&manifest, &p, &sign(&signing, &p), &key).unwrap();
        assert_eq!(signed.manifest, manifest);
    }

    #[test]
    fn a_high_s_signature_verifies_as_go_makes_them() {
        // Go's crypto/ecdsa does not normalize s; cosign signatures may carry the high one.
        let (signing, key) = keypair();
        let manifest = Digest::of(b"m");
        let p = payload(&manifest);
        let sig: Signature = signing.sign(&p);
        // Low-S first (p256 does not normalize), then its high twin.
        let sig = sig.normalize_s().unwrap_or(sig);
        let (r, s) = sig.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        assert!(
            high.normalize_s().is_some(),
            "the test signature should be high-S"
        );
        let b64 = BASE64.encode(high.to_der().as_bytes());
        verify_cosign(&manifest, &p, &b64, &key).unwrap();
    }

    #[test]
    fn each_refusal_has_its_own_message() {
        let (signing, key) = keypair();
        let (other, _) = keypair();
        let manifest = Digest::of(b"m");
        let p = payload(&manifest);

        let wrong_key = verify_cosign(&manifest, &p, &sign(&other, &p), &key).unwrap_err();
        assert_eq!(wrong_key.kind(), Failure::BadSignature);
        assert!(
            wrong_key
                .to_string()
                .contains("does not verify with the key cosign.pub")
        );

        let mut altered = p.clone();
        altered[5] ^= 1;
        let e = verify_cosign(&manifest, &altered, &sign(&signing, &p), &key).unwrap_err();
        assert_eq!(e.kind(), Failure::BadSignature);

        let elsewhere = Digest::of(b"another manifest");
        let q = payload(&elsewhere);
        let e = verify_cosign(&manifest, &q, &sign(&signing, &q), &key).unwrap_err();
        assert_eq!(e.kind(), Failure::DigestMismatch);
        assert!(e.to_string().contains(&elsewhere.to_string()), "{e}");

        let e = verify_cosign(&manifest, &p, "!!not base64", &key).unwrap_err();
        assert!(matches!(e, CosignError::MalformedSignature(_)), "{e}");

        let junk = b"{}";
        let e = verify_cosign(&manifest, junk, &sign(&signing, junk), &key).unwrap_err();
        assert!(matches!(e, CosignError::MalformedPayload(_)), "{e}");
    }

    fn layer(payload: &[u8], signature: &str, keyless: bool) -> SignatureLayer {
        let mut d = Descriptor::new(
            SIMPLE_SIGNING_MEDIA_TYPE,
            Digest::of(payload),
            payload.len() as u64,
        );
        d.annotations
            .insert(SIGNATURE_ANNOTATION.into(), signature.into());
        if keyless {
            d.annotations.insert(
                CERTIFICATE_ANNOTATION.into(),
                "-----BEGIN CERTIFICATE-----".into(),
            );
        }
        SignatureLayer {
            signature: signature.into(),
            keyless,
            payload: d,
        }
    }

    #[test]
    fn any_good_layer_will_do_and_keyless_is_named() {
        let (signing, key) = keypair();
        let (other, _) = keypair();
        let manifest = Digest::of(b"m");
        let p = payload(&manifest);
        let good = (layer(&p, &sign(&signing, &p), false), p.clone());
        let foreign = (layer(&p, &sign(&other, &p), false), p.clone());
        let keyless = (layer(&p, &sign(&other, &p), true), p.clone());

        let v = verify_any(&manifest, &[foreign.clone(), good.clone()], &key, "t").unwrap();
        assert_eq!(v.layer, Digest::of(&p));

        let e = verify_any(&manifest, &[foreign.clone(), keyless], &key, "t").unwrap_err();
        assert_eq!(e.kind(), Failure::Unsupported);
        assert!(e.to_string().contains("keyless"), "{e}");

        let e = verify_any(&manifest, &[], &key, "sha256-x.sig").unwrap_err();
        assert_eq!(e.kind(), Failure::Unsigned);
    }

    #[test]
    fn signature_manifests_are_read_for_their_payload_layers() {
        let p = payload(&Digest::of(b"m"));
        let l = layer(&p, "c2ln", true);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(b"{}"), "size": 2},
            "layers": [l.payload, {"mediaType": "application/octet-stream", "digest": Digest::of(b"x"), "size": 1}],
        });
        let layers = SignatureLayer::parse_manifest(manifest.to_string().as_bytes()).unwrap();
        assert_eq!(layers, vec![l]);
        assert!(SignatureLayer::parse_manifest(b"not json").is_err());
    }

    proptest! {
        #[test]
        fn junk_signatures_never_panic(sig in "\\PC{0,120}", bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let (_, key) = keypair();
            let manifest = Digest::of(b"m");
            prop_assert!(verify_cosign(&manifest, &bytes, &sig, &key).is_err());
            let _ = SignatureLayer::parse_manifest(&bytes);
        }
    }
}
