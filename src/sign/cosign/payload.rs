//! cosign's simple-signing payload: the JSON a cosign signature is made over.
//!
//! ```json
//! {"critical":{"identity":{"docker-reference":"registry.example.com/charts/app"},
//!   "image":{"docker-manifest-digest":"sha256:…"},"type":"cosign container image signature"},
//!  "optional":null}
//! ```

use serde::Deserialize;

use crate::digest::Digest;

/// The largest payload read (cosign's are a few hundred bytes, with annotations a few KiB).
pub const MAX_PAYLOAD: u64 = 1 << 20;

/// The `critical.type` of a cosign image signature.
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// What a payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The manifest digest the signature vouches for.
    pub manifest: Digest,
    /// The repository the signer named (cosign does not require it to match).
    pub docker_reference: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(default)]
    identity: Option<Identity>,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference", default)]
    docker_reference: Option<String>,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl Payload {
    /// Reads a payload; the error says what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
        if bytes.len() as u64 > MAX_PAYLOAD {
            return Err(format!(
                "it is {} bytes, over the limit of {} KiB",
                bytes.len(),
                MAX_PAYLOAD >> 10
            ));
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if raw.critical.kind != SIGNATURE_TYPE {
            return Err(format!(
                "its type is {:?}, not {SIGNATURE_TYPE:?}",
                raw.critical.kind
            ));
        }
        let manifest = Digest::parse(&raw.critical.image.docker_manifest_digest)
            .map_err(|e| format!("its docker-manifest-digest: {e}"))?;
        Ok(Payload {
            manifest,
            docker_reference: raw.critical.identity.and_then(|i| i.docker_reference),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_cosigns_payload() {
        let d = Digest::of(b"manifest");
        let json = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r.example/charts/app"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":{{"creator":"x"}}}}"#
        );
        let p = Payload::parse(json.as_bytes()).unwrap();
        assert_eq!(p.manifest, d);
        assert_eq!(p.docker_reference.as_deref(), Some("r.example/charts/app"));
    }

    #[test]
    fn refuses_other_payloads() {
        let d = Digest::of(b"m");
        let other_type = format!(
            r#"{{"critical":{{"image":{{"docker-manifest-digest":"{d}"}},"type":"atomic container signature"}}}}"#
        );
        assert!(
            Payload::parse(other_type.as_bytes())
                .unwrap_err()
                .contains("type")
        );
        let bad_digest = r#"{"critical":{"image":{"docker-manifest-digest":"md5:00"},"type":"cosign container image signature"}}"#;
        assert!(
            Payload::parse(bad_digest.as_bytes())
                .unwrap_err()
                .contains("digest")
        );
        assert!(Payload::parse(b"[]").is_err());
        assert!(Payload::parse(&vec![b' '; (MAX_PAYLOAD + 1) as usize]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Payload::parse(&bytes);
        }
    }
}
