//! OpenPGP keyrings as Helm takes them (`--keyring FILE`): what `gpg --export` (public keys)
//! or `gpg --export-secret-keys` (secret keys, with their public halves) writes, binary or
//! ASCII-armored, and GnuPG's keybox (`pubring.kbx`, the default public keyring of GnuPG 2.1+).
//!
//! The keyring is the user's own file (trusted), but it is still read within a size limit.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use pgp::composed::{PublicOrSecret, SignedPublicKey, SignedSecretKey};
use pgp::types::{KeyDetails, KeyId};

/// The largest keyring read: GnuPG keyrings of whole organisations stay far below this.
pub const MAX_KEYRING: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring {0}: larger than 64 MiB")]
    TooLarge(PathBuf),
    #[error("keyring {path}: not an OpenPGP keyring: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("keyring {0}: it holds no OpenPGP keys")]
    Empty(PathBuf),
}

/// One key of a keyring (an OpenPGP certificate, with its secret half when the keyring has it).
#[derive(Clone)]
pub struct Entity {
    pub public: SignedPublicKey,
    pub secret: Option<SignedSecretKey>,
}

impl Entity {
    /// The user IDs, as text (`Name (Comment) <email>`).
    pub fn user_ids(&self) -> Vec<String> {
        self.public
            .details
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect()
    }

    /// The primary key's fingerprint, upper-case hex (as `helm verify` prints it).
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.public.primary_key.fingerprint())
    }

    /// Whether the primary key or a subkey has this key ID.
    pub fn has_key_id(&self, id: &KeyId) -> bool {
        self.public.primary_key.legacy_key_id() == *id
            || self
                .public
                .public_subkeys
                .iter()
                .any(|s| s.key.legacy_key_id() == *id)
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("fingerprint", &self.fingerprint())
            .field("user_ids", &self.user_ids())
            .field("secret", &self.secret.is_some())
            .finish()
    }
}

/// The keys of one keyring file.
#[derive(Debug, Clone)]
pub struct Keyring {
    path: PathBuf,
    entities: Vec<Entity>,
}

impl Keyring {
    /// Reads the keyring at `path`.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEYRING + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_KEYRING {
            return Err(KeyringError::TooLarge(path.to_path_buf()));
        }
        Self::from_bytes(path, &bytes)
    }

    /// Reads a keyring from `bytes`; `path` names it in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Keyring, KeyringError> {
        let invalid = |reason: String| KeyringError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut entities: Vec<Entity> = Vec::new();
        let mut first_error = None;
        let mut add = |item: pgp::errors::Result<PublicOrSecret>| match item {
            Ok(PublicOrSecret::Public(public)) => merge(&mut entities, public, None),
            Ok(PublicOrSecret::Secret(secret)) => {
                merge(&mut entities, secret.to_public_key(), Some(secret))
            }
            // Like Go's ReadKeyRing, a key of a kind this library cannot read is skipped,
            // as long as the keyring holds others.
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        };
        if let Some(blocks) = super::keybox::keyblocks(bytes) {
            for block in blocks.map_err(|e| invalid(e.to_string()))? {
                let keys =
                    PublicOrSecret::from_bytes_many(block).map_err(|e| invalid(e.to_string()))?;
                keys.for_each(&mut add);
            }
        } else {
            let (keys, _) =
                PublicOrSecret::from_reader_many(bytes).map_err(|e| invalid(e.to_string()))?;
            keys.for_each(&mut add);
        }
        if entities.is_empty() {
            return Err(match first_error {
                Some(reason) => invalid(reason),
                None => KeyringError::Empty(path.to_path_buf()),
            });
        }
        Ok(Keyring {
            path: path.to_path_buf(),
            entities,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entities(&self) -> &[Entity] {
        &self.entities
    }

    /// The key whose primary key or subkey has this key ID.
    pub fn by_key_id(&self, id: &KeyId) -> Option<&Entity> {
        self.entities.iter().find(|e| e.has_key_id(id))
    }

    /// The key `name` selects, as Helm's `--key` does: a user ID equal to `name`, else the one
    /// key with a user ID containing it.
    pub fn find(&self, name: &str) -> Result<&Entity, KeySelectError> {
        if let Some(exact) = self
            .entities
            .iter()
            .find(|e| e.user_ids().iter().any(|u| u == name))
        {
            return Ok(exact);
        }
        let matching: Vec<&Entity> = self
            .entities
            .iter()
            .filter(|e| e.user_ids().iter().any(|u| u.contains(name)))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(KeySelectError::NotFound {
                name: name.to_string(),
                keyring: self.path.clone(),
            }),
            several => Err(KeySelectError::Ambiguous {
                name: name.to_string(),
                keyring: self.path.clone(),
                user_ids: several
                    .iter()
                    .filter_map(|e| e.user_ids().into_iter().find(|u| u.contains(name)))
                    .collect(),
            }),
        }
    }
}

/// Why `--key NAME` selects no key.
#[derive(Debug, thiserror::Error)]
pub enum KeySelectError {
    #[error("{keyring}: no key has a user ID containing {name:?}")]
    NotFound { name: String, keyring: PathBuf },
    #[error("{keyring}: more than one key has a user ID containing {name:?} ({}); give more of it", user_ids.join(", "))]
    Ambiguous {
        name: String,
        keyring: PathBuf,
        user_ids: Vec<String>,
    },
}

/// Adds a key, or its secret half to the same key already read (a keyring may hold both).
fn merge(entities: &mut Vec<Entity>, public: SignedPublicKey, secret: Option<SignedSecretKey>) {
    let fingerprint = public.primary_key.fingerprint();
    match entities
        .iter_mut()
        .find(|e| e.public.primary_key.fingerprint() == fingerprint)
    {
        Some(existing) => {
            if existing.secret.is_none() {
                existing.secret = secret;
            }
        }
        None => entities.push(Entity { public, secret }),
    }
}
