//! Signing and verifying together, with keys made by the OpenPGP library (the integration
//! tests use keys made by GnuPG).

use std::path::Path;

use pgp::composed::{ArmorOptions, KeyType, SecretKeyParamsBuilder, SignedSecretKey};

use super::*;
use crate::chart::Metadata;
use crate::digest::Digest;
use crate::sign::Failure;

fn key(user_id: &str, passphrase: Option<&str>) -> SignedSecretKey {
    SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(user_id.into())
        .passphrase(passphrase.map(str::to_string))
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap()
}

fn secret_ring(keys: &[&SignedSecretKey]) -> Keyring {
    // Several keys in one keyring, as `gpg --export-secret-keys` writes them.
    let mut binary = Vec::new();
    for k in keys {
        pgp::ser::Serialize::to_writer(*k, &mut binary).unwrap();
    }
    Keyring::from_bytes(Path::new("secring.gpg"), &binary).unwrap()
}

fn public_ring(keys: &[&SignedSecretKey]) -> Keyring {
    let mut binary = Vec::new();
    for k in keys {
        pgp::ser::Serialize::to_writer(&k.to_public_key(), &mut binary).unwrap();
    }
    Keyring::from_bytes(Path::new("pubring.gpg"), &binary).unwrap()
}

fn metadata() -> Metadata {
    Metadata::from_yaml(b"apiVersion: v2\nname: mychart\nversion: 0.1.0\nkeywords: [-dash]\n")
        .unwrap()
}

const ARCHIVE: &[u8] = b"the archive's bytes";
const FILE: &str = "mychart-0.1.0.tgz";

fn signed(by: &SignedSecretKey) -> Vec<u8> {
    let ring = secret_ring(&[by]);
    let key = ring.signing_key("Ann").unwrap();
    key.sign_chart(&metadata(), FILE, &Digest::of(ARCHIVE))
        .unwrap()
}

#[test]
fn what_is_signed_verifies() {
    let ann = key("Ann Example <ann@example.com>", None);
    let prov = signed(&ann);
    let text = String::from_utf8(prov.clone()).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"),
        "{text}"
    );
    // A line starting with a dash is dash-escaped in the clear text.
    assert!(text.contains("\n- - -dash\n"), "{text}");
    assert!(
        text.contains(&format!(
            "\n...\nfiles:\n  {FILE}: {}\n-----BEGIN PGP SIGNATURE-----\n",
            Digest::of(ARCHIVE)
        )),
        "{text}"
    );

    let verified = verify_chart(&prov, ARCHIVE, FILE, &public_ring(&[&ann])).unwrap();
    assert_eq!(
        verified.signer.user_ids,
        vec!["Ann Example <ann@example.com>"]
    );
    assert_eq!(verified.file_hash, Digest::of(ARCHIVE));
    assert_eq!(verified.file_name, FILE);
    assert_eq!(verified.signer.fingerprint.len(), 40);
    // The secret keyring verifies too (it holds the public halves).
    verify_chart(&prov, ARCHIVE, FILE, &secret_ring(&[&ann])).unwrap();
}

#[test]
fn each_failed_check_says_which() {
    let ann = key("Ann <ann@example.com>", None);
    let bob = key("Bob <bob@example.com>", None);
    let prov = signed(&ann);
    let ring = public_ring(&[&ann]);

    let tampered_archive = verify_chart(&prov, &b"other bytes"[..], FILE, &ring).unwrap_err();
    assert_eq!(tampered_archive.kind(), Failure::DigestMismatch);
    assert!(
        tampered_archive
            .to_string()
            .starts_with("digest mismatch: "),
        "{tampered_archive}"
    );

    let other_name = verify_chart(&prov, ARCHIVE, "other-1.0.0.tgz", &ring).unwrap_err();
    assert_eq!(other_name.kind(), Failure::DigestMismatch);
    assert!(other_name.to_string().contains(FILE), "{other_name}");

    let wrong_key = verify_chart(&prov, ARCHIVE, FILE, &public_ring(&[&bob])).unwrap_err();
    assert_eq!(wrong_key.kind(), Failure::UnknownSigner);
    assert!(
        wrong_key.to_string().starts_with("unknown signer: "),
        "{wrong_key}"
    );

    let text = String::from_utf8(prov.clone()).unwrap();
    let altered = text.replace("name: mychart", "name: evil").into_bytes();
    let bad = verify_chart(&altered, ARCHIVE, FILE, &ring).unwrap_err();
    assert_eq!(bad.kind(), Failure::BadSignature, "{bad}");
    assert!(bad.to_string().starts_with("bad signature: "), "{bad}");

    let garbage = verify_chart(b"not a provenance file", ARCHIVE, FILE, &ring).unwrap_err();
    assert_eq!(garbage.kind(), Failure::BadSignature);

    // Both keys in the ring: still Ann's signature, and only hers.
    let both = public_ring(&[&bob, &ann]);
    let verified = verify_chart(&prov, ARCHIVE, FILE, &both).unwrap();
    assert_eq!(verified.signer.user_ids, vec!["Ann <ann@example.com>"]);
}

#[test]
fn protected_keys_need_their_passphrase() {
    let ann = key("Ann <ann@example.com>", Some("correct horse"));
    let ring = secret_ring(&[&ann]);
    let key = ring.signing_key("ann@example.com").unwrap();
    assert!(key.needs_passphrase());
    let refused = key
        .sign_chart(&metadata(), FILE, &Digest::of(ARCHIVE))
        .unwrap_err();
    assert!(
        matches!(refused, SignError::PassphraseNeeded { .. }),
        "{refused}"
    );
    let wrong = key
        .clone()
        .unlock(Passphrase::new("battery staple"))
        .unwrap_err();
    assert!(
        matches!(wrong, SignError::WrongPassphrase { .. }),
        "{wrong}"
    );
    assert!(!wrong.to_string().contains("battery"), "{wrong}");
    let key = key.unlock(Passphrase::new("correct horse")).unwrap();
    assert!(!key.needs_passphrase());
    assert!(!format!("{key:?}").contains("correct horse"));
    let prov = key
        .sign_chart(&metadata(), FILE, &Digest::of(ARCHIVE))
        .unwrap();
    verify_chart(&prov, ARCHIVE, FILE, &public_ring(&[&ann])).unwrap();
}

#[test]
fn keys_are_chosen_as_helm_chooses_them() {
    let ann = key("Ann <ann@example.com>", None);
    let anna = key("Anna <anna@example.com>", None);
    let ring = secret_ring(&[&ann, &anna]);
    // An exact user ID wins over substrings.
    assert_eq!(
        ring.signing_key("Ann <ann@example.com>").unwrap().user_id(),
        "Ann <ann@example.com>"
    );
    assert_eq!(
        ring.signing_key("anna@").unwrap().user_id(),
        "Anna <anna@example.com>"
    );
    let vague = ring.signing_key("Ann").unwrap_err();
    assert!(vague.to_string().contains("more than one key"), "{vague}");
    let none = ring.signing_key("carol").unwrap_err();
    assert!(
        none.to_string()
            .contains("no key has a user ID containing \"carol\""),
        "{none}"
    );
    // A public keyring cannot sign.
    let public = public_ring(&[&ann]).signing_key("ann@").unwrap_err();
    assert!(matches!(public, SignError::NoSecretKey { .. }), "{public}");
}

#[test]
fn keyrings_read_armored_and_refuse_junk() {
    let ann = key("Ann <ann@example.com>", None);
    let armored = ann
        .to_public_key()
        .to_armored_bytes(ArmorOptions::default())
        .unwrap();
    let ring = Keyring::from_bytes(Path::new("ann.asc"), &armored).unwrap();
    assert_eq!(ring.entities().len(), 1);
    assert!(Keyring::from_bytes(Path::new("x"), b"").is_err());
    assert!(Keyring::from_bytes(Path::new("x"), b"hello, not keys").is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn fixture() -> &'static (Keyring, Vec<u8>) {
        static FIXTURE: OnceLock<(Keyring, Vec<u8>)> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let ann = key("Ann <ann@example.com>", None);
            (public_ring(&[&ann]), signed(&ann))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary bytes as a provenance file: a refusal, never a panic.
        #[test]
        fn junk_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (ring, _) = fixture();
            prop_assert!(verify_chart(&bytes, ARCHIVE, FILE, ring).is_err());
        }

        /// A good provenance file with one byte changed or cut short: never a panic, and a
        /// letter or digit of the signed text changed into another is always refused.
        #[test]
        fn damage_is_refused(at in 0usize..2000, byte in any::<u8>(), cut in any::<bool>()) {
            let (ring, prov) = fixture();
            let at = at % prov.len();
            let mut damaged = prov.clone();
            if cut {
                damaged.truncate(at);
            } else {
                damaged[at] = byte;
            }
            let result = verify_chart(&damaged, ARCHIVE, FILE, ring);
            let text = String::from_utf8_lossy(prov);
            let start = text.find("\n\n").unwrap() + 2;
            let end = text.find("\n-----BEGIN PGP SIGNATURE").unwrap();
            let in_text = (start..end).contains(&at);
            if !cut && in_text && prov[at].is_ascii_alphanumeric() && byte.is_ascii_alphanumeric()
                && byte != prov[at]
            {
                let err = result.unwrap_err();
                prop_assert!(
                    matches!(err.kind(), Failure::BadSignature | Failure::DigestMismatch),
                    "{}", err
                );
            }
        }
    }
}
