//! Whole jobs composed from the store, the chart format and (later) the registry client.
//! Commands call one task each; tasks never parse flags or print.

pub mod export;
pub mod fetch;
pub mod migrate;
pub mod save;
pub mod transfer;
