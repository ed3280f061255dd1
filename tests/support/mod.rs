//! Integration-test harness: real OCI peers on 127.0.0.1.
//!
//! - [`Registry`]: a CNCF distribution 2.8 registry (`/usr/bin/docker-registry`) in a temp
//!   dir — plain HTTP, htpasswd (Basic), TLS / mTLS with a test CA, or token auth with a
//!   small in-process token issuer ([`TokenIssuer`]).
//! - [`skopeo`] / [`Skopeo`]: `/usr/bin/skopeo` with an isolated `HOME` and auth file.
//! - [`Helm`]: a real Helm v4 runtime (PyPI `helm-sdkpy`) driven through small Python snippets.
//! - [`chart_tgz`], [`oci_layout_with_chart`]: tiny chart fixtures.
//! - [`http_get`] / [`http_request`]: a minimal HTTP/1.1 client for plain-HTTP checks.
//!
//! Peers are installed by `.ci/install-peers`. Use from an integration test with `mod support;`.
#![allow(dead_code, unused_imports)]

mod chart;
mod helm;
mod http;
mod pki;
mod registry;
mod skopeo;
mod token;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use chart::{
    HELM_CHART_LAYER_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, chart_tgz, chart_tgz_with_files,
};
pub use chart::{OciLayoutChart, oci_layout_with_chart};
pub use helm::Helm;
pub use http::{HttpResponse, basic_auth, http_get, http_request};
pub use pki::TestPki;
pub use registry::{Registry, RegistryBuilder};
pub use skopeo::{Skopeo, skopeo, skopeo_ok};
pub use token::{TokenIssuer, TokenRequest};

/// The message every "peer is missing" panic ends with.
pub const INSTALL_HINT: &str = "run .ci/install-peers (as root) to install the test peers";

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to :0, read it, close).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Runs `cmd` with piped stdout/stderr, killing it (and panicking with what it printed)
/// when it runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let program = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_thread.join().unwrap_or_default();
                let stderr = err_thread.join().unwrap_or_default();
                panic!(
                    "{program} timed out after {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Runs a command that must succeed (used for `openssl`, `htpasswd`); returns its stdout.
pub(crate) fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let program = format!("{cmd:?}");
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{program} failed ({})\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Panics with [`INSTALL_HINT`] when `path` (a peer binary) does not exist.
pub(crate) fn require_peer(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: {INSTALL_HINT}"
    );
}

/// Formats `output` for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
