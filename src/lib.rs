//! chartcache: a Helm-compatible local chart cache for OCI registries.
//!
//! The modules are the architecture, and dependencies point one way, down this list:
//!
//! - [`cli`] (flags as data) and [`commands`] (one file per command group: flags in, one call,
//!   output out);
//! - [`serve`]: the server, a subsystem of its own (listener and TLS, routing, the classic
//!   repository and registry views, the pull-through through the copy engine);
//! - [`tasks`]: whole jobs (save, export; push, pull, sync and migrate build on the same
//!   pieces), each a composition of what follows;
//! - [`store`]: the on-disk cache (its docs draw the tree);
//! - [`chart`] (Chart.yaml, .helmignore, packaging, safe archive reading) and [`oci`] (Helm's
//!   media types and manifests), both free of I/O beyond the files they are given;
//! - [`sign`]: Helm provenance (OpenPGP) made and checked, cosign signatures checked; bytes
//!   and keys in, a verdict out, no network and no cache;
//! - [`reference`], [`digest`], [`version`], [`constraint`], [`gojson`], [`output`], [`env`],
//!   [`fsx`]:
//!   small leaves with no dependencies inside the crate beyond each other.

pub mod chart;
pub mod classic;
pub mod cli;
pub mod commands;
pub mod constraint;
pub mod credentials;
pub mod digest;
pub mod engine;
pub mod env;
pub mod fsx;
pub mod gojson;
pub mod layout;
pub mod manifest;
pub mod oci;
pub mod output;
pub mod reference;
pub mod registry;
pub mod serve;
pub mod sign;
pub mod store;
pub mod tasks;
pub mod version;
pub mod yaml;

/// Renders an error and its causes as one line, leaving out causes whose text the message
/// before them already contains (most of our messages embed their cause).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    // One line, and nothing a server or an archive put in a message may drive the terminal.
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    output::terminal_safe(&line).into_owned()
}

/// Whether an error comes from writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            // JSON written straight to stdout fails inside serde_json.
            .or_else(|| c.downcast_ref::<serde_json::Error>()?.io_error_kind())
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}
