//! Whether a key may sign now: its self-signatures, expiry and revocation, read the way
//! OpenPGP implementations (Go's, which Helm uses, and GnuPG) read them.
//!
//! A primary key is valid while it has a valid self-signature (on a user ID, or directly on
//! the key), the newest of which has not set an expiry that has passed, and no valid
//! revocation. A subkey is valid for signing while its newest valid binding signature marks
//! it for signing (with the subkey's back-signature), has not expired, and neither it nor its
//! primary key is revoked.

use pgp::composed::SignedPublicKey;
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag, Timestamp};

/// What a key is worth at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    Valid,
    /// Expired at this time.
    Expired(Timestamp),
    Revoked,
    /// No valid self-signature or binding makes it usable (for signing).
    Unusable(&'static str),
}

/// The newest valid self-signature of the primary key (a user ID certification or a direct
/// key signature), preferring one that marks its user ID as primary.
pub fn primary_self_signature(key: &SignedPublicKey) -> Option<&Signature> {
    let primary = &key.primary_key;
    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |sig| {
            sig.is_certification()
                && sig.typ() != Some(SignatureType::CertRevocation)
                && sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
        })
    });
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|sig| sig.verify_key(primary).is_ok());
    certifications
        .chain(direct)
        .max_by_key(|sig| (sig.is_primary(), sig.created().map(Timestamp::as_secs)))
}

/// Whether the primary key is valid at `now`.
pub fn primary_validity(key: &SignedPublicKey, now: Timestamp) -> Validity {
    let primary = &key.primary_key;
    let revoked = key.details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    });
    if revoked {
        return Validity::Revoked;
    }
    let Some(self_sig) = primary_self_signature(key) else {
        return Validity::Unusable("it has no valid self-signature");
    };
    expiry(primary.created_at(), self_sig, now)
}

/// Whether the primary key may sign (its self-signature has no key flags, or says so).
pub fn primary_can_sign(key: &SignedPublicKey) -> bool {
    primary_self_signature(key).is_none_or(|sig| !has_key_flags(sig) || sig.key_flags().sign())
}

/// Whether `subkey` of `key` is valid for signing at `now`, given its signatures.
pub fn subkey_validity(
    primary: &PublicKey,
    subkey: &PublicSubkey,
    signatures: &[Signature],
    now: Timestamp,
) -> Validity {
    let revoked = signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::SubkeyRevocation)
            && sig.verify_subkey_binding(primary, subkey).is_ok()
    });
    if revoked {
        return Validity::Revoked;
    }
    let binding = signatures
        .iter()
        .filter(|sig| {
            sig.typ() == Some(SignatureType::SubkeyBinding)
                && sig.verify_subkey_binding(primary, subkey).is_ok()
        })
        .max_by_key(|sig| sig.created().map(Timestamp::as_secs));
    let Some(binding) = binding else {
        return Validity::Unusable("the subkey has no valid binding signature");
    };
    if !binding.key_flags().sign() {
        return Validity::Unusable("the subkey is not marked for signing");
    }
    let back_signed = binding
        .embedded_signature()
        .is_some_and(|back| back.verify_primary_key_binding(subkey, primary).is_ok());
    if !back_signed {
        return Validity::Unusable("the signing subkey has no valid back-signature");
    }
    expiry(subkey.created_at(), binding, now)
}

/// Expired when the signature sets a key lifetime that has passed by `now`.
fn expiry(created: Timestamp, sig: &Signature, now: Timestamp) -> Validity {
    match sig.key_expiration_time() {
        Some(lifetime) => {
            let secs = std::time::Duration::from(lifetime).as_secs();
            let end = u64::from(created.as_secs()).saturating_add(secs);
            if secs > 0 && u64::from(now.as_secs()) >= end {
                Validity::Expired(Timestamp::from_secs(u32::try_from(end).unwrap_or(u32::MAX)))
            } else {
                Validity::Valid
            }
        }
        None => Validity::Valid,
    }
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// A timestamp as an RFC 3339 date, for messages.
pub fn show_time(t: Timestamp) -> String {
    crate::output::rfc3339(t.into())
}
