//! GnuPG's keybox (`pubring.kbx`): the public keyring GnuPG 2.1 and later keep by default.
//! It is a list of blobs; each OpenPGP blob holds one key as the packets `gpg --export` would
//! write for it. Only the framing is read here; the packets go to the OpenPGP parser.
//!
//! Blob layout (GnuPG `kbx/keybox-blob.c`): a 4-byte big-endian length of the whole blob, a
//! type byte (1: the header blob, magic `KBXf` at offset 8; 2: OpenPGP; 3: X.509), a version
//! byte, 2 bytes of flags, then for OpenPGP blobs the offset and length (4 bytes each) of the
//! key block within the blob.

/// Why a keybox cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt GnuPG keybox: {0}")]
pub struct KeyboxError(&'static str);

const HEADER_BLOB: u8 = 1;
const OPENPGP_BLOB: u8 = 2;

/// `None` when `bytes` is not a keybox; else the key blocks of its OpenPGP blobs.
pub fn keyblocks(bytes: &[u8]) -> Option<Result<Vec<&[u8]>, KeyboxError>> {
    let is_keybox = bytes.len() >= 12 && bytes[4] == HEADER_BLOB && &bytes[8..12] == b"KBXf";
    is_keybox.then(|| read_blobs(bytes))
}

fn read_blobs(mut rest: &[u8]) -> Result<Vec<&[u8]>, KeyboxError> {
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        let len = be32(rest, 0).ok_or(KeyboxError("a blob is cut short"))?;
        if len < 6 || len > rest.len() {
            return Err(KeyboxError("a blob's length runs past the end of the file"));
        }
        let (blob, tail) = rest.split_at(len);
        rest = tail;
        if blob[4] != OPENPGP_BLOB {
            continue;
        }
        let offset = be32(blob, 8).ok_or(KeyboxError("an OpenPGP blob is cut short"))?;
        let size = be32(blob, 12).ok_or(KeyboxError("an OpenPGP blob is cut short"))?;
        let block = offset
            .checked_add(size)
            .and_then(|end| blob.get(offset..end))
            .ok_or(KeyboxError("a key block lies outside its blob"))?;
        blocks.push(block);
    }
    Ok(blocks)
}

fn be32(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(b)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(kind: u8, block: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20];
        b[4] = kind;
        b[5] = 1;
        b[8..12].copy_from_slice(&20u32.to_be_bytes());
        b[12..16].copy_from_slice(&(block.len() as u32).to_be_bytes());
        b.extend_from_slice(block);
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_be_bytes());
        b
    }

    fn header() -> Vec<u8> {
        let mut h = vec![0u8; 32];
        h[0..4].copy_from_slice(&32u32.to_be_bytes());
        h[4] = HEADER_BLOB;
        h[8..12].copy_from_slice(b"KBXf");
        h
    }

    #[test]
    fn finds_openpgp_blocks_and_skips_others() {
        let mut kbx = header();
        kbx.extend(blob(OPENPGP_BLOB, b"first"));
        kbx.extend(blob(3, b"x509"));
        kbx.extend(blob(OPENPGP_BLOB, b"second"));
        let blocks = keyblocks(&kbx).unwrap().unwrap();
        assert_eq!(blocks, vec![&b"first"[..], &b"second"[..]]);
    }

    #[test]
    fn other_files_are_not_keyboxes() {
        assert!(keyblocks(b"\x99\x01\x0d...").is_none());
        assert!(keyblocks(b"-----BEGIN PGP PUBLIC KEY BLOCK-----").is_none());
    }

    #[test]
    fn lying_lengths_are_refused() {
        let mut kbx = header();
        let mut b = blob(OPENPGP_BLOB, b"key");
        b[12..16].copy_from_slice(&1000u32.to_be_bytes());
        kbx.extend(b);
        assert!(keyblocks(&kbx).unwrap().is_err());
        let mut kbx = header();
        kbx.extend(&u32::MAX.to_be_bytes());
        assert!(keyblocks(&kbx).unwrap().is_err());
    }

    proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut kbx = header();
            kbx.extend(tail);
            let _ = keyblocks(&kbx);
        }
    }
}
