//! Basic authentication for `serve --htpasswd FILE`: bcrypt entries only, like the CNCF
//! distribution registry (`htpasswd -B`).
//!
//! A bcrypt check costs tens of milliseconds by design, and clients send the same credentials
//! with every request, so a successful check is remembered (as a SHA-256 of user and password,
//! never the password itself) for the life of the server. Failures are never remembered.
//!
//! Every check of a login costs one bcrypt verification, whether or not the user exists: a
//! name not in the file is verified against a dummy hash of the file's highest cost (made once
//! at load), so how long a 401 takes does not tell which user names exist.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

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
    #[error("{path}: cannot make a bcrypt hash of cost {cost}: {message}")]
    Cost {
        path: String,
        cost: u32,
        message: String,
    },
}

/// The users of an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    /// A bcrypt hash of a password nobody sends, at the highest cost of `users`: what a user
    /// name that is not in the file is checked against.
    dummy: String,
    /// How many times `dummy` was verified (for the tests, and cheap enough to keep).
    dummy_checks: AtomicU64,
}

/// How a login was decided: every variant but [`Check::Malformed`] and [`Check::Remembered`]
/// ran exactly one bcrypt verification.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// No `Basic user:password` header to check (no user name was looked up).
    Malformed,
    /// A login that was verified before.
    Remembered(String),
    /// The password matches the user's hash.
    Verified(String),
    /// A known user with a wrong password.
    WrongPassword,
    /// A user name not in the file, verified against the dummy hash all the same.
    UnknownUser,
}

/// The cost of a bcrypt hash (`$2b$12$…` is 12), if it is one bcrypt accepts.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))?;
    let (cost, _) = rest.split_once('$')?;
    let cost: u32 = cost.parse().ok()?;
    (4..=31).contains(&cost).then_some(cost)
}

/// The salt of the dummy hash. Fixed: the hash needs only to cost what the real ones do.
const DUMMY_SALT: [u8; 16] = *b"chartcache-dummy";

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
        let mut max_cost = 4;
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
            let Some(cost) = bcrypt_cost(hash) else {
                let (path, line) = at();
                return Err(HtpasswdError::NotBcrypt { path, line });
            };
            max_cost = max_cost.max(cost);
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err(HtpasswdError::Empty {
                path: path.to_string(),
            });
        }
        // One hash at start-up, at the cost of the most expensive entry: an unknown user then
        // costs at least what any known user does.
        let dummy = bcrypt::hash_with_salt("chartcache: no such user", max_cost, DUMMY_SALT)
            .map_err(|e| HtpasswdError::Cost {
                path: path.to_string(),
                cost: max_cost,
                message: e.to_string(),
            })?
            .format_for_version(bcrypt::Version::TwoB);
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
            dummy,
            dummy_checks: AtomicU64::new(0),
        })
    }

    /// The user an `Authorization: Basic …` header proves, if it proves one. Blocking (bcrypt):
    /// call it off the async threads.
    pub fn check(&self, authorization: Option<&str>) -> Option<String> {
        match self.decide(authorization) {
            Check::Remembered(user) | Check::Verified(user) => Some(user),
            Check::Malformed | Check::WrongPassword | Check::UnknownUser => None,
        }
    }

    /// How many times a user name not in the file was checked against the dummy hash.
    pub fn dummy_checks(&self) -> u64 {
        self.dummy_checks.load(Ordering::Relaxed)
    }

    /// [`Htpasswd::check`], saying which way the decision went.
    pub fn decide(&self, authorization: Option<&str>) -> Check {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return Check::Malformed;
        };
        let Some(hash) = self.users.get(&user) else {
            self.dummy_checks.fetch_add(1, Ordering::Relaxed);
            // The answer is no either way; the work is what matters.
            let _ = bcrypt::verify(&pass, &self.dummy);
            return Check::UnknownUser;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(&user)
            .chain_update([0])
            .chain_update(&pass)
            .chain_update([0])
            .chain_update(hash)
            .finalize()
            .into();
        if let Ok(seen) = self.verified.lock()
            && seen.contains(&key)
        {
            return Check::Remembered(user);
        }
        if bcrypt::verify(&pass, hash).unwrap_or(false) {
            if let Ok(mut seen) = self.verified.lock() {
                seen.insert(key);
            }
            return Check::Verified(user);
        }
        Check::WrongPassword
    }
}

/// User and password of an `Authorization: Basic …` value.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let encoded = authorization.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
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
    fn an_unknown_user_costs_a_bcrypt_check_like_a_wrong_password() {
        let low = bcrypt::hash("a", 4).unwrap();
        let high = bcrypt::hash("b", 6).unwrap();
        let file = Htpasswd::parse(&format!("alice:{low}\nbob:{high}\n"), "f").unwrap();
        // The dummy is as expensive as the most expensive entry.
        assert_eq!(bcrypt_cost(&file.dummy), Some(6));
        assert!(bcrypt::verify("chartcache: no such user", &file.dummy).unwrap());

        assert_eq!(
            file.decide(Some(&basic("alice", "nope"))),
            Check::WrongPassword
        );
        assert_eq!(file.dummy_checks(), 0);
        assert_eq!(
            file.decide(Some(&basic("carol", "nope"))),
            Check::UnknownUser
        );
        assert_eq!(file.dummy_checks(), 1);
        // Failures are not remembered: the same wrong login costs the same again.
        assert_eq!(
            file.decide(Some(&basic("carol", "nope"))),
            Check::UnknownUser
        );
        assert_eq!(file.dummy_checks(), 2);
        assert_eq!(
            file.decide(Some(&basic("alice", "nope"))),
            Check::WrongPassword
        );
        // Not even the dummy's own password lets anyone in.
        assert_eq!(
            file.check(Some(&basic("carol", "chartcache: no such user"))),
            None
        );
        assert_eq!(file.decide(Some("Basic !!!")), Check::Malformed);
        assert_eq!(file.dummy_checks(), 3);

        assert_eq!(
            file.decide(Some(&basic("alice", "a"))),
            Check::Verified("alice".into())
        );
        assert_eq!(
            file.decide(Some(&basic("alice", "a"))),
            Check::Remembered("alice".into())
        );
    }

    #[test]
    fn costs_are_read_from_the_hash() {
        assert_eq!(bcrypt_cost("$2y$05$abc"), Some(5));
        assert_eq!(bcrypt_cost("$2b$12$abc"), Some(12));
        assert_eq!(bcrypt_cost("$2a$3$abc"), None);
        assert_eq!(bcrypt_cost("$2a$xx$abc"), None);
        assert_eq!(bcrypt_cost("$2a$40$abc"), None);
        assert_eq!(bcrypt_cost("$2a$"), None);
        assert!(Htpasswd::parse("a:$2y$zz$abc\n", "h").is_err());
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
