//! Whole jobs composed from the store, the chart format and the registry client (the server
//! is a subsystem of its own, [`crate::serve`]).
//! Commands call one task each; tasks never parse flags or print.

pub mod export;
pub mod fetch;
pub mod recall;
pub mod referrers;
pub mod save;
pub mod sync;
pub mod transfer;
pub mod verify;

/// What happened to one item of a bulk job (`repo migrate`, `sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied.
    Done,
    /// Already there.
    Skipped,
    /// `--dry-run`: it would be copied.
    Planned,
    Failed(String),
    /// Not copied: its signatures do not pass `--require-signed` (why, starting with the
    /// kind of refusal: `unsigned`, `bad signature`, `unknown signer`…).
    Refused(String),
    /// Not tried, because an earlier item failed and `--keep-going` was not given.
    NotAttempted,
}
