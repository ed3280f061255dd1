//! Shared by the `registry_*` integration tests: a sandbox that runs the built `chartcache`
//! binary with its own HOME, cache and credentials file ([`Sandbox`]), and a small in-process
//! registry that misbehaves on purpose ([`FakeRegistry`]) for the faults a real registry never
//! makes (wrong digests, truncated bodies, 429/5xx).
//!
//! Use with `mod support; mod fault;` (the harness in `tests/support` starts the real peers).
#![allow(dead_code, unused_imports)]

mod images;
mod peers;
mod sandbox;
mod serve;
mod server;

pub use images::{OCI_INDEX, push_image_index, push_random_image, random_bytes, served_digest};
pub use peers::{
    catalog, count_logged, get_manifest, logged_requests, put_manifest, registry_get, repo_tags,
    storage_snapshot, upload_blob, wait_logged,
};
pub use sandbox::{Entry, Sandbox, Snapshot, chart_dir, error_line_of, sha256_hex};
pub use serve::Server as ServeProcess;
pub use server::{Artifact, FakeRegistry, OCI_MANIFEST, Request, Response};
