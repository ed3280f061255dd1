//! Basic authentication for `serve --htpasswd FILE`: bcrypt entries only, like the CNCF
//! distribution registry (`htpasswd -B`).
//!
//! A bcrypt check costs tens of milliseconds by design, and clients send the same credentials
//! with every request, so a successful check is remembered (as a SHA-256 of user and password,
//! never the password itself) for the life of the server.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest as _, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a `user:hash` line")]
    Malformed { path: String, line: usize },
    #[error("{path}:{line}: only bcrypt entries are supported (create them with `htpasswd -B`)")]
    NotBcrypt { path: String, line: usize },
    #[error("{path}: no users in this file")]
    Empty { path: String },
}

/// The users of an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, HtpasswdError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || (path.to_string(), i + 1);
            let (user, hash) = line.split_once(':').ok_or_else(|| {
                let (path, line) = at();
                HtpasswdError::Malformed { path, line }
            })?;
            if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                let (path, line) = at();
                return Err(HtpasswdError::NotBcrypt { path, line });
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty {
                path: path.to_string(),
            });
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The user an `Authorization: Basic …` header proves, if it proves one. Blocking (bcrypt):
    /// call it off the async threads.
    pub fn check(&self, authorization: Option<&str>) -> Option<String> {
        let encoded = authorization?.strip_prefix("Basic ")?.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        let hash = self.users.get(user)?;
        let key: [u8; 32] = Sha256::new()
            .chain_update(user)
            .chain_update([0])
            .chain_update(pass)
            .chain_update([0])
            .chain_update(hash)
            .finalize()
            .into();
        if let Ok(seen) = self.verified.lock()
            && seen.contains(&key)
        {
            return Some(user.to_string());
        }
        if bcrypt::verify(pass, hash).unwrap_or(false) {
            if let Ok(mut seen) = self.verified.lock() {
                seen.insert(key);
            }
            return Some(user.to_string());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn bcrypt_users_are_checked() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let file = Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "f").unwrap();
        assert_eq!(
            file.check(Some(&basic("alice", "s3cret"))).as_deref(),
            Some("alice")
        );
        // Remembered, and still right the second time.
        assert_eq!(
            file.check(Some(&basic("alice", "s3cret"))).as_deref(),
            Some("alice")
        );
        assert_eq!(file.check(Some(&basic("alice", "wrong"))), None);
        assert_eq!(file.check(Some(&basic("bob", "s3cret"))), None);
        assert_eq!(file.check(Some("Bearer x")), None);
        assert_eq!(file.check(Some("Basic !!!")), None);
        assert_eq!(file.check(None), None);
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = Htpasswd::parse("alice:$apr1$abc$def\n", "h").unwrap_err();
        assert_eq!(
            e.to_string(),
            "h:1: only bcrypt entries are supported (create them with `htpasswd -B`)"
        );
        let e = Htpasswd::parse("\nnonsense\n", "h").unwrap_err();
        assert_eq!(e.to_string(), "h:2: not a `user:hash` line");
        assert!(Htpasswd::parse("# nobody\n", "h").is_err());
    }
}
