//! Content digests (`sha256:<64 hex>`) and the hashing adapters that compute them while bytes
//! stream through, so no blob is ever read twice or held whole in memory to be checked.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// Why a digest string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("unsupported digest algorithm in {0:?} (only sha256 is supported)")]
    Algorithm(String),
    #[error("malformed digest {0:?}: expected sha256: and 64 lowercase hex digits")]
    Malformed(String),
}

/// A sha256 content digest. Stored as its 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_string()))?;
        if algo != "sha256" {
            return Err(DigestError::Algorithm(s.to_string()));
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Malformed(s.to_string()))
    }

    /// Accepts the bare 64 hex digits, as blob file names are.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestError::Malformed(hex.to_string()))
        }
    }

    /// The digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Self {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 7 hex digits, as `chart list` shows them.
    pub fn short(&self) -> &str {
        &self.hex[..7]
    }
}

/// A digest in its 32 bytes, for tables that hold many (a server's refs): a third of the
/// memory of a [`Digest`], and no allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Packed([u8; 32]);

impl Packed {
    pub fn digest(&self) -> Digest {
        Digest {
            hex: hex::encode(self.0),
        }
    }
}

impl From<&Digest> for Packed {
    fn from(d: &Digest) -> Self {
        let mut bytes = [0u8; 32];
        // A Digest holds 64 lowercase hex digits by construction.
        let _ = hex::decode_to_slice(&d.hex, &mut bytes);
        Packed(bytes)
    }
}

impl PartialEq<Digest> for Packed {
    fn eq(&self, other: &Digest) -> bool {
        *self == Packed::from(other)
    }
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.digest(), f)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, the digest and the byte count of what went through.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// The digest and size of everything a reader yields.
pub fn digest_reader(r: impl Read) -> io::Result<(Digest, u64)> {
    let mut hr = HashingReader::new(r);
    io::copy(&mut hr, &mut io::sink())?;
    Ok(hr.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(&format!("sha256:{EMPTY}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d.short(), "e3b0c44");
        assert_eq!(Digest::of(b""), d);
    }

    #[test]
    fn a_packed_digest_is_the_same_digest() {
        let d = Digest::of(b"packed");
        let p = Packed::from(&d);
        assert_eq!(p.digest(), d);
        assert!(p == d);
        assert!(p != Digest::of(b"other"));
        assert_eq!(format!("{p:?}"), format!("{d:?}"));
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", EMPTY.to_uppercase()),
            &format!("sha512:{EMPTY}"),
            EMPTY,
            &format!("sha256:{EMPTY}0"),
            &format!("sha256:../{}", &EMPTY[3..]),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn streaming_adapters_agree_with_one_shot() {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d, n) = w.finish();
        assert_eq!((d.clone(), n), (Digest::of(&data), 100_000));
        assert_eq!(out, data);
        assert_eq!(digest_reader(&data[..]).unwrap(), (d, 100_000));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn is_lower_hex_64(s: &str) -> bool {
            s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn parse_accepts_exactly_sha256_and_64_lowercase_hex(
                text in prop_oneof![
                    prop::collection::vec(any::<char>(), 0..80).prop_map(String::from_iter),
                    "(sha256|sha512|SHA256|sha256 |)(:|)[0-9a-fA-F./:\\x00\u{e9}]{60,68}",
                    "sha256:[0-9a-f]{64}",
                ],
            ) {
                let want = text.strip_prefix("sha256:").is_some_and(is_lower_hex_64);
                let got = Digest::parse(&text);
                prop_assert_eq!(got.is_ok(), want, "{:?}", text);
                if let Ok(d) = got {
                    prop_assert!(is_lower_hex_64(d.hex()));
                    prop_assert_eq!(d.to_string(), text.as_str());
                }
                if let Ok(d) = Digest::from_hex(&text) {
                    prop_assert_eq!(d.hex(), text.as_str());
                }
            }

            #[test]
            fn computed_digests_are_file_name_safe(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let d = Digest::of(&bytes);
                prop_assert!(is_lower_hex_64(d.hex()));
                prop_assert_eq!(Digest::parse(&d.to_string()), Ok(d.clone()));
                prop_assert_eq!(Digest::from_hex(d.hex()), Ok(d.clone()));
                prop_assert_eq!(digest_reader(&bytes[..]).unwrap(), (d, bytes.len() as u64));
            }
        }
    }
}
