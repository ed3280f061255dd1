//! Helm provenance files (`.prov`), made and checked as Helm makes and checks them.
//!
//! A provenance file is an OpenPGP clear-signed message whose text is the chart's Chart.yaml
//! (as YAML), a `...` line, and a `files:` map from the archive's file name
//! (`NAME-VERSION.tgz`) to its `sha256:` digest ([`body`]). `helm package --sign` writes one
//! beside the archive; in a registry it is the chart's provenance layer
//! (`application/vnd.cncf.helm.chart.provenance.v1.prov`).
//!
//! - [`Keyring`]: the keys of a keyring file (`gpg --export`, `gpg --export-secret-keys`,
//!   armored or not, or GnuPG's `pubring.kbx`).
//! - [`SigningKey`]: the key `--key NAME` selects, unlocked with a [`Passphrase`]; it signs.
//! - [`verify_chart`]: the signature, the signer and the archive digest, or a [`VerifyError`]
//!   saying which check failed (its [`VerifyError::kind`] sorts it into a
//!   [`Failure`](crate::sign::Failure)).

pub mod body;
mod keybox;
mod keyring;
mod passphrase;
mod sign;
mod validity;
mod verify;

pub use keyring::{Entity, KeySelectError, Keyring, KeyringError, MAX_KEYRING};
pub use passphrase::{Passphrase, PassphraseError};
pub use sign::{SignError, SigningKey};
pub use verify::{Signer, Verified, VerifyError, verify_chart, verify_chart_at};

/// The file name a provenance file vouches for: `NAME-VERSION.tgz`, as `helm package` names
/// the archive (and `helm pull` names a chart pulled from a registry by its version).
pub fn archive_file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.tgz")
}

#[cfg(test)]
mod tests;
