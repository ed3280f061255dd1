//! The signature flags of `chart save`, `chart pull`, `chart export` and `chart verify REF`:
//! keyrings, keys and passphrases in, what verified out (in `helm verify`'s words).

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{Result, bail};

use super::Context;
use crate::cli::{SignArgs, TransportArgs};
use crate::engine::places::RegistryPlace;
use crate::reference::Reference;
use crate::sign::cosign::CosignKey;
use crate::sign::provenance::{Keyring, Passphrase, SignError, SigningKey, Verified};
use crate::tasks::verify::{Checked, Policy};

/// The keyring `--keyring` names, or Helm's default.
pub fn keyring(path: Option<&Path>) -> Result<Keyring> {
    let path = path.map_or_else(crate::env::default_keyring, Path::to_path_buf);
    Ok(Keyring::load(&path)?)
}

/// The unlocked signing key of `chart save --sign`, or `None` without `--sign`.
pub fn signing_key(args: &SignArgs) -> Result<Option<SigningKey>> {
    if !args.sign {
        return Ok(None);
    }
    let Some(name) = &args.key else {
        bail!("--sign needs --key NAME (a user ID of the signing key)");
    };
    let key = keyring(args.keyring.as_deref())?.signing_key(name)?;
    if !key.needs_passphrase() {
        return Ok(Some(key));
    }
    let passphrase = match &args.passphrase_file {
        Some(file) => Passphrase::from_file(file)?,
        // Asked for only where someone can answer: never read silently from a pipe.
        None if std::io::stdin().is_terminal() => Passphrase::new(rpassword::prompt_password(
            format!("Password for key {:?} >  ", key.user_id()),
        )?),
        None => {
            return Err(SignError::PassphraseNeeded {
                user_id: key.user_id().to_string(),
            }
            .into());
        }
    };
    Ok(Some(key.unlock(passphrase)?))
}

/// The policy of `--verify [--keyring F]` and `--cosign-key F`.
pub fn policy(
    verify: bool,
    keyring_path: Option<&Path>,
    cosign_key: Option<&Path>,
) -> Result<Policy> {
    Ok(Policy {
        keyring: verify.then(|| keyring(keyring_path)).transpose()?,
        cosign_key: cosign_key.map(CosignKey::load).transpose()?,
    })
}

/// The policy of `--require-signed [--keyring F] [--cosign-key F]` (`sync`, `serve`), read
/// before anything is contacted: provenance is checked unless only a cosign key was given.
pub fn required(
    require_signed: bool,
    keyring_path: Option<&Path>,
    cosign_key: Option<&Path>,
) -> Result<Policy> {
    if !require_signed {
        return Ok(Policy::default());
    }
    policy(
        keyring_path.is_some() || cosign_key.is_none(),
        keyring_path,
        cosign_key,
    )
}

/// `helm verify`'s report of a provenance that verified.
pub fn print_provenance(ctx: &Context, verified: &Verified) {
    for user_id in &verified.signer.user_ids {
        ctx.say(format_args!("Signed by: {user_id}"));
    }
    ctx.say(format_args!(
        "Using Key With Fingerprint: {}",
        verified.signer.fingerprint
    ));
    ctx.say(format_args!("Chart Hash Verified: {}", verified.file_hash));
}

/// The report of every signature that verified.
pub fn print_checked(ctx: &Context, checked: &Checked, cosign_key: Option<&Path>) {
    if let Some(v) = &checked.provenance {
        print_provenance(ctx, v);
    }
    if let Some(v) = &checked.cosign {
        ctx.say(format_args!(
            "Cosign Signature Verified: {} (key {})",
            v.payload.manifest,
            cosign_key
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
}

/// `chart verify REF [--keyring F] [--cosign-key F]`: the provenance (unless only
/// `--cosign-key` is given) and the cosign signature of a cached chart.
pub async fn verify_ref(
    ctx: &Context,
    reference: &str,
    keyring_path: Option<&Path>,
    cosign_key: Option<&Path>,
    transport: &TransportArgs,
) -> Result<()> {
    let r = Reference::parse(reference)?;
    let entry = {
        let guard = ctx.store.read()?;
        ctx.store.resolve(&guard, &r)?
    };
    let check_provenance = keyring_path.is_some() || cosign_key.is_none();
    let policy = policy(check_provenance, keyring_path, cosign_key)?;
    let registry = match &policy.cosign_key {
        Some(_) => Some(RegistryPlace::new(
            super::registry::connect(ctx, r.host(), transport).await?,
        )),
        None => None,
    };
    let checked = crate::tasks::verify::check(
        &ctx.store,
        &entry,
        registry.as_ref().map(|r| r as &dyn crate::engine::Source),
        &policy,
    )
    .await?;
    print_checked(ctx, &checked, cosign_key);
    Ok(())
}
