//! The passphrase of a secret key: never printed, wiped from memory when dropped.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The longest passphrase read (the first line of a file or of standard input).
const MAX_PASSPHRASE: u64 = 64 << 10;

/// A passphrase. Its `Debug` prints `****` and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(text: impl Into<String>) -> Self {
        Passphrase(Zeroizing::new(text.into()))
    }

    /// The passphrase, for the one place that unlocks the key.
    pub(super) fn password(&self) -> pgp::types::Password {
        pgp::types::Password::from(self.0.as_bytes())
    }

    /// Reads the first line of `path` (`-`: standard input), as Helm's `--passphrase-file`
    /// does; the line ending is not part of it.
    pub fn from_file(path: &Path) -> Result<Passphrase, PassphraseError> {
        let io = |source| PassphraseError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path == Path::new("-") {
            Self::first_line(std::io::stdin().lock(), path)
        } else {
            let file = std::fs::File::open(path).map_err(io)?;
            Self::first_line(BufReader::new(file), path)
        }
    }

    fn first_line(reader: impl BufRead, path: &Path) -> Result<Passphrase, PassphraseError> {
        let mut line = Zeroizing::new(Vec::new());
        reader
            .take(MAX_PASSPHRASE)
            .read_until(b'\n', &mut line)
            .map_err(|source| PassphraseError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        let text = std::str::from_utf8(&line).map_err(|_| PassphraseError::NotUtf8(path.into()))?;
        Ok(Passphrase::new(text))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("--passphrase-file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--passphrase-file {0}: the passphrase is not UTF-8 text")]
    NotUtf8(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_it() {
        let p = Passphrase::new("hunter2");
        assert_eq!(format!("{p:?}"), "****");
        assert!(!format!("{:?}", Some(&p)).contains("hunter2"));
    }

    #[test]
    fn first_line_without_its_ending() {
        let p = Passphrase::first_line(&b"s3cret\r\nnext line\n"[..], Path::new("f")).unwrap();
        assert_eq!(p, Passphrase::new("s3cret"));
        let p = Passphrase::first_line(&b"no newline"[..], Path::new("f")).unwrap();
        assert_eq!(p, Passphrase::new("no newline"));
        let p = Passphrase::first_line(&b""[..], Path::new("f")).unwrap();
        assert_eq!(p, Passphrase::new(""));
        assert!(Passphrase::first_line(&b"\xff\n"[..], Path::new("f")).is_err());
    }
}
