//! Checking a provenance file the way `helm verify` does: the OpenPGP signature over the
//! message block, its signer in the keyring (valid now: not expired, not revoked), then the
//! archive's SHA-256 against the digest the block gives for the archive's file name.

use std::io::Read;
use std::path::PathBuf;

use pgp::composed::CleartextSignedMessage;
use pgp::packet::{Signature, SignatureType};
use pgp::types::{Fingerprint, KeyDetails, KeyId, Timestamp};

use super::body;
use super::keyring::{Entity, Keyring};
use super::validity::{self, Validity, show_time};
use crate::chart::artifact::MAX_PROV;
use crate::digest::{Digest, digest_reader};
use crate::sign::Failure;

/// Who signed, as `helm verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The key's user IDs (`Name (Comment) <email>`).
    pub user_ids: Vec<String>,
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The key ID of the key that made the signature (the primary key or a subkey).
    pub key_id: String,
}

/// A provenance file that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub signer: Signer,
    /// The archive's digest, `sha256:<hex>`, as the provenance names it.
    pub file_hash: Digest,
    /// The file name the provenance vouches for (`NAME-VERSION.tgz`).
    pub file_name: String,
}

/// Why a chart's provenance does not verify. Every message starts with the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "unsigned: the chart has no provenance (sign it with `chart save --sign` or `helm package --sign`)"
    )]
    Unsigned,
    #[error("bad signature: not a provenance file: {0}")]
    Malformed(String),
    #[error("bad signature: the provenance does not verify with key {key_id} ({signer}): {reason}")]
    BadSignature {
        key_id: String,
        signer: String,
        reason: String,
    },
    #[error("unknown signer: the provenance is signed by key {key_id}, which is not in {}", keyring.display())]
    UnknownSigner { key_id: String, keyring: PathBuf },
    #[error(
        "expired key: the provenance is signed by key {key_id} ({signer}), which expired on {at}"
    )]
    ExpiredKey {
        key_id: String,
        signer: String,
        at: String,
    },
    #[error("expired key: the signature by key {key_id} ({signer}) expired on {at}")]
    SignatureExpired {
        key_id: String,
        signer: String,
        at: String,
    },
    #[error("revoked key: the provenance is signed by key {key_id} ({signer}), which is revoked")]
    RevokedKey { key_id: String, signer: String },
    #[error(
        "digest mismatch: the provenance vouches for {file_name} with {expected}, but the archive's digest is {actual}"
    )]
    DigestMismatch {
        file_name: String,
        expected: String,
        actual: Digest,
    },
    #[error(
        "digest mismatch: the provenance has no digest for a file named {file_name:?} (it names {})",
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    )]
    NotNamed {
        file_name: String,
        names: Vec<String>,
    },
    #[error("reading the archive: {0}")]
    Archive(std::io::Error),
}

impl VerifyError {
    /// The category of the refusal, for policies and reports.
    pub fn kind(&self) -> Failure {
        match self {
            VerifyError::Unsigned => Failure::Unsigned,
            VerifyError::Malformed(_) | VerifyError::BadSignature { .. } => Failure::BadSignature,
            VerifyError::Archive(_) => Failure::BadSignature,
            VerifyError::UnknownSigner { .. } => Failure::UnknownSigner,
            VerifyError::ExpiredKey { .. } | VerifyError::SignatureExpired { .. } => {
                Failure::ExpiredKey
            }
            VerifyError::RevokedKey { .. } => Failure::RevokedKey,
            VerifyError::DigestMismatch { .. } | VerifyError::NotNamed { .. } => {
                Failure::DigestMismatch
            }
        }
    }

    /// How sure the message is about what went wrong: with several signatures, the most
    /// telling refusal is reported.
    fn weight(&self) -> u8 {
        match self.kind() {
            Failure::UnknownSigner => 0,
            Failure::BadSignature => 1,
            _ => 2,
        }
    }
}

/// Checks `prov` (a clear-signed provenance file) for an archive named `file_name` (Helm:
/// the file's base name, `NAME-VERSION.tgz` as `helm package` names it) whose bytes `archive`
/// yields, against `keyring`: the signature, its signer, then the archive's digest, in
/// Helm's order.
pub fn verify_chart(
    prov: &[u8],
    archive: impl Read,
    file_name: &str,
    keyring: &Keyring,
) -> Result<Verified, VerifyError> {
    verify_chart_at(prov, archive, file_name, keyring, Timestamp::now())
}

/// [`verify_chart`] as of `now` (expiry is judged at that time).
pub fn verify_chart_at(
    prov: &[u8],
    archive: impl Read,
    file_name: &str,
    keyring: &Keyring,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let (message, text) = read_message(prov)?;
    let signer = check_signatures(&message, &text, keyring, now)?;
    let sums = body::parse(&text.replace("\r\n", "\n"))
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let (actual, _) = digest_reader(archive).map_err(VerifyError::Archive)?;
    let Some(expected) = sums.files.get(file_name) else {
        return Err(VerifyError::NotNamed {
            file_name: file_name.to_string(),
            names: sums.files.keys().cloned().collect(),
        });
    };
    if *expected != actual.to_string() {
        return Err(VerifyError::DigestMismatch {
            file_name: file_name.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(Verified {
        signer,
        file_hash: actual,
        file_name: file_name.to_string(),
    })
}

/// Parses a clear-signed message; returns it and its signed text (CRLF line endings).
fn read_message(prov: &[u8]) -> Result<(CleartextSignedMessage, String), VerifyError> {
    if prov.len() as u64 > MAX_PROV {
        return Err(VerifyError::Malformed(format!(
            "it is {} bytes, over the limit of {} KiB",
            prov.len(),
            MAX_PROV >> 10
        )));
    }
    let (message, _headers) = CleartextSignedMessage::from_armor(prov).map_err(|e| {
        VerifyError::Malformed(format!("not an OpenPGP clear-signed message ({e})"))
    })?;
    if message.signatures().is_empty() {
        return Err(VerifyError::Malformed("it holds no signature".into()));
    }
    let text = message.signed_text();
    Ok((message, text))
}

/// The first signature that checks out, or the most telling refusal.
fn check_signatures(
    message: &CleartextSignedMessage,
    text: &str,
    keyring: &Keyring,
    now: Timestamp,
) -> Result<Signer, VerifyError> {
    let mut refusal: Option<VerifyError> = None;
    for sig in message.signatures() {
        match check_signature(sig, text, keyring, now) {
            Ok(signer) => return Ok(signer),
            Err(e) => {
                if refusal.as_ref().is_none_or(|r| e.weight() > r.weight()) {
                    refusal = Some(e);
                }
            }
        }
    }
    Err(refusal.unwrap_or_else(|| VerifyError::Malformed("it holds no signature".into())))
}

/// The key of an entity that made a signature.
enum Component<'a> {
    Primary,
    Subkey(&'a pgp::composed::SignedPublicSubKey),
}

fn check_signature(
    sig: &Signature,
    text: &str,
    keyring: &Keyring,
    now: Timestamp,
) -> Result<Signer, VerifyError> {
    let fingerprints = sig.issuer_fingerprint();
    let key_ids = sig.issuer_key_id();
    let named = fingerprints
        .first()
        .map(|f| format!("{f:X}"))
        .or_else(|| key_ids.first().map(|k| k.to_string().to_uppercase()));
    let Some(named) = named else {
        return Err(VerifyError::Malformed(
            "its signature does not name the key that made it".into(),
        ));
    };
    let Some((entity, component)) = find_signer(keyring, &fingerprints, &key_ids) else {
        return Err(VerifyError::UnknownSigner {
            key_id: named,
            keyring: keyring.path().to_path_buf(),
        });
    };
    let (signing_id, signing_created) = match component {
        Component::Primary => (
            entity.public.primary_key.legacy_key_id(),
            entity.public.primary_key.created_at(),
        ),
        Component::Subkey(sub) => (sub.key.legacy_key_id(), sub.key.created_at()),
    };
    let key_id = signing_id.to_string().to_uppercase();
    let who = entity.user_ids().first().cloned().unwrap_or_default();
    let bad = |reason: String| VerifyError::BadSignature {
        key_id: key_id.clone(),
        signer: who.clone(),
        reason,
    };
    if !matches!(
        sig.typ(),
        Some(SignatureType::Text) | Some(SignatureType::Binary)
    ) {
        return Err(bad("it is not a signature over a document".into()));
    }
    let verified = match component {
        Component::Primary => sig.verify(&entity.public.primary_key, text.as_bytes()),
        Component::Subkey(sub) => sig.verify(&sub.key, text.as_bytes()),
    };
    verified.map_err(|e| {
        bad(format!(
            "the signed text or the signature was altered ({e})"
        ))
    })?;

    // The signature is the key's; is the key good now?
    let primary = validity::primary_validity(&entity.public, now);
    let validity = match (primary, component) {
        (Validity::Valid, Component::Primary) => {
            if validity::primary_can_sign(&entity.public) {
                Validity::Valid
            } else {
                Validity::Unusable("the key is not marked for signing")
            }
        }
        (Validity::Valid, Component::Subkey(sub)) => {
            validity::subkey_validity(&entity.public.primary_key, &sub.key, &sub.signatures, now)
        }
        (other, _) => other,
    };
    match validity {
        Validity::Valid => {}
        Validity::Expired(at) => {
            return Err(VerifyError::ExpiredKey {
                key_id,
                signer: who,
                at: show_time(at),
            });
        }
        Validity::Revoked => {
            return Err(VerifyError::RevokedKey {
                key_id,
                signer: who,
            });
        }
        Validity::Unusable(reason) => return Err(bad(reason.into())),
    }
    let created = sig.created().map_or(0, Timestamp::as_secs);
    if created < signing_created.as_secs() {
        return Err(bad("the signature is older than its key".into()));
    }
    if let Some(lifetime) = sig.signature_expiration_time() {
        let secs = std::time::Duration::from(lifetime).as_secs();
        let end = u64::from(created).saturating_add(secs);
        if secs > 0 && u64::from(now.as_secs()) >= end {
            return Err(VerifyError::SignatureExpired {
                key_id,
                signer: who,
                at: show_time(Timestamp::from_secs(u32::try_from(end).unwrap_or(u32::MAX))),
            });
        }
    }
    Ok(Signer {
        user_ids: entity.user_ids(),
        fingerprint: entity.fingerprint(),
        key_id,
    })
}

/// The key (primary or subkey) a signature names, by fingerprint, else by key ID.
fn find_signer<'a>(
    keyring: &'a Keyring,
    fingerprints: &[&Fingerprint],
    key_ids: &[&KeyId],
) -> Option<(&'a Entity, Component<'a>)> {
    let matches = |fp: Fingerprint, id: KeyId| {
        fingerprints.iter().any(|f| **f == fp) || key_ids.iter().any(|k| **k == id)
    };
    keyring.entities().iter().find_map(|entity| {
        let primary = &entity.public.primary_key;
        if matches(primary.fingerprint(), primary.legacy_key_id()) {
            return Some((entity, Component::Primary));
        }
        entity
            .public
            .public_subkeys
            .iter()
            .find(|sub| matches(sub.key.fingerprint(), sub.key.legacy_key_id()))
            .map(|sub| (entity, Component::Subkey(sub)))
    })
}
