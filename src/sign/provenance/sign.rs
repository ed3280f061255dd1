//! Making a provenance file, as `helm package --sign` does: the message block clear-signed
//! with the chosen secret key (SHA-512, as Helm signs), ASCII-armored.

use std::fmt;
use std::path::PathBuf;

use pgp::composed::{ArmorOptions, CleartextSignedMessage, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SecretSubkey, SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{KeyDetails, KeyVersion, Timestamp};

use super::body::message_block;
use super::keyring::{Entity, KeySelectError, Keyring};
use super::passphrase::Passphrase;
use super::validity::{self, Validity, show_time};
use crate::chart::Metadata;
use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Select(#[from] KeySelectError),
    #[error(
        "{keyring}: the key {user_id:?} has no secret key there: give a keyring with secret keys (gpg --export-secret-keys)"
    )]
    NoSecretKey { user_id: String, keyring: PathBuf },
    #[error("the key {user_id:?} cannot sign: {reason}")]
    CannotSign { user_id: String, reason: String },
    #[error("the key {user_id:?} expired on {at}; it cannot sign")]
    Expired { user_id: String, at: String },
    #[error("the key {user_id:?} is revoked; it cannot sign")]
    Revoked { user_id: String },
    #[error(
        "the key {user_id:?} is protected by a passphrase: give --passphrase-file FILE (or - to read it from standard input)"
    )]
    PassphraseNeeded { user_id: String },
    #[error("wrong passphrase for the key {user_id:?}")]
    WrongPassphrase { user_id: String },
    #[error("signing with the key {user_id:?} failed: {reason}")]
    Failed { user_id: String, reason: String },
}

/// Which secret key of an entity signs.
#[derive(Clone)]
enum Component {
    Primary,
    Subkey(Box<SecretSubkey>),
}

/// A secret key chosen to sign with, and its passphrase once given.
#[derive(Clone)]
pub struct SigningKey {
    secret: SignedSecretKey,
    component: Component,
    user_id: String,
    passphrase: Option<Passphrase>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("user_id", &self.user_id)
            .field("fingerprint", &self.fingerprint())
            .field("passphrase", &self.passphrase)
            .finish()
    }
}

impl Keyring {
    /// The key `--key NAME` selects, ready to sign once unlocked ([`SigningKey::unlock`]).
    /// Like Helm, the primary key signs when it may; else a signing subkey does.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey, SignError> {
        let entity = self.find(name)?;
        let user_id = entity
            .user_ids()
            .into_iter()
            .find(|u| u.contains(name))
            .unwrap_or_else(|| name.to_string());
        let secret = entity
            .secret
            .clone()
            .ok_or_else(|| SignError::NoSecretKey {
                user_id: user_id.clone(),
                keyring: self.path().to_path_buf(),
            })?;
        let now = Timestamp::now();
        match validity::primary_validity(&entity.public, now) {
            Validity::Valid => {}
            Validity::Expired(at) => {
                return Err(SignError::Expired {
                    user_id,
                    at: show_time(at),
                });
            }
            Validity::Revoked => return Err(SignError::Revoked { user_id }),
            Validity::Unusable(reason) => {
                return Err(SignError::CannotSign {
                    user_id,
                    reason: reason.into(),
                });
            }
        }
        let component =
            choose_component(entity, &secret, now).ok_or_else(|| SignError::CannotSign {
                user_id: user_id.clone(),
                reason: "neither the primary key nor a valid subkey is marked for signing".into(),
            })?;
        Ok(SigningKey {
            secret,
            component,
            user_id,
            passphrase: None,
        })
    }
}

fn choose_component(
    entity: &Entity,
    secret: &SignedSecretKey,
    now: Timestamp,
) -> Option<Component> {
    if validity::primary_can_sign(&entity.public) {
        return Some(Component::Primary);
    }
    let primary = secret.primary_key.public_key();
    secret
        .secret_subkeys
        .iter()
        .filter(|sub| {
            validity::subkey_validity(primary, sub.key.public_key(), &sub.signatures, now)
                == Validity::Valid
        })
        .max_by_key(|sub| sub.key.created_at().as_secs())
        .map(|sub| Component::Subkey(Box::new(sub.key.clone())))
}

impl SigningKey {
    /// The user ID `--key` matched, for prompts and messages.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The signing key's fingerprint, upper-case hex.
    pub fn fingerprint(&self) -> String {
        match &self.component {
            Component::Primary => format!("{:X}", self.secret.primary_key.fingerprint()),
            Component::Subkey(sub) => format!("{:X}", sub.fingerprint()),
        }
    }

    fn is_encrypted(&self) -> bool {
        match &self.component {
            Component::Primary => self.secret.primary_key.secret_params().is_encrypted(),
            Component::Subkey(sub) => sub.secret_params().is_encrypted(),
        }
    }

    /// Whether a passphrase must be given before signing.
    pub fn needs_passphrase(&self) -> bool {
        self.is_encrypted() && self.passphrase.is_none()
    }

    /// Checks `passphrase` against the key and keeps it for signing. An unprotected key
    /// takes any passphrase (Helm asks for none).
    pub fn unlock(mut self, passphrase: Passphrase) -> Result<SigningKey, SignError> {
        if self.is_encrypted() {
            let password = passphrase.password();
            let unlocked = match &self.component {
                Component::Primary => self.secret.primary_key.unlock(&password, |_, _| Ok(())),
                Component::Subkey(sub) => sub.unlock(&password, |_, _| Ok(())),
            };
            if !matches!(unlocked, Ok(Ok(()))) {
                return Err(SignError::WrongPassphrase {
                    user_id: self.user_id,
                });
            }
        }
        self.passphrase = Some(passphrase);
        Ok(self)
    }

    /// The provenance file for an archive named `file_name` with digest `archive`, whose
    /// Chart.yaml is `metadata`.
    pub fn sign_chart(
        &self,
        metadata: &Metadata,
        file_name: &str,
        archive: &Digest,
    ) -> Result<Vec<u8>, SignError> {
        if self.needs_passphrase() {
            return Err(SignError::PassphraseNeeded {
                user_id: self.user_id.clone(),
            });
        }
        let block = message_block(metadata, file_name, archive);
        // The newline ending the block is the one before the signature's armor, as in Helm's.
        let text = block.strip_suffix('\n').unwrap_or(&block);
        let password = self
            .passphrase
            .as_ref()
            .map(Passphrase::password)
            .unwrap_or_default();
        let failed = |e: pgp::errors::Error| SignError::Failed {
            user_id: self.user_id.clone(),
            reason: e.to_string(),
        };
        let message = match &self.component {
            Component::Primary => clear_sign(text, &self.secret.primary_key, &password),
            Component::Subkey(sub) => clear_sign(text, sub.as_ref(), &password),
        }
        .map_err(failed)?;
        let mut armored = message
            .to_armored_bytes(ArmorOptions::default())
            .map_err(failed)?;
        if !armored.ends_with(b"\n") {
            armored.push(b'\n');
        }
        Ok(armored)
    }
}

/// A text signature over `text` by `key`, with the subpackets GnuPG and Go write: creation
/// time and issuer fingerprint (hashed), issuer key ID (unhashed, v4 keys).
fn clear_sign(
    text: &str,
    key: &impl pgp::types::SigningKey,
    password: &pgp::types::Password,
) -> pgp::errors::Result<CleartextSignedMessage> {
    let mut config = match key.version() {
        // Helm signs with SHA-512.
        KeyVersion::V4 => {
            SignatureConfig::v4(SignatureType::Text, key.algorithm(), HashAlgorithm::Sha512)
        }
        _ => SignatureConfig::from_key(rand::thread_rng(), key, SignatureType::Text)?,
    };
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now()))?,
        Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint()))?,
    ];
    if key.version() <= KeyVersion::V4 {
        config.unhashed_subpackets = vec![Subpacket::regular(SubpacketData::IssuerKeyId(
            key.legacy_key_id(),
        ))?];
    }
    CleartextSignedMessage::new(text, config, key, password)
}
