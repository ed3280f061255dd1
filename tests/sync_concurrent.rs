//! Two writers into one destination repository at once: two `chartcache sync` runs of the same
//! chart tags into one real registry (CNCF distribution 2.8), several rounds. Both must
//! succeed, and the destination must hold every tag with the source's digest.
//!
//! distribution can lose a repository's link to a blob when two uploads of it commit at the
//! same moment, and then refuses a manifest naming it (`MANIFEST_BLOB_UNKNOWN`); chartcache
//! checks the manifest's blobs again, re-sends the missing ones and retries the manifest.

mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;

use fault::{Sandbox, get_manifest, repo_tags};
use support::{Registry, describe};

const VERSIONS: [&str; 10] = [
    "0.1.0", "0.2.0", "0.3.0", "1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0", "3.1.0",
];

/// tag → manifest digest of every tag of `repo` on `reg`.
fn digests(reg: &Registry, repo: &str) -> BTreeMap<String, String> {
    repo_tags(reg, repo)
        .into_iter()
        .map(|t| {
            let d = get_manifest(reg, repo, &t)
                .header("Docker-Content-Digest")
                .expect("Docker-Content-Digest")
                .to_string();
            (t, d)
        })
        .collect()
}

#[test]
fn two_concurrent_syncs_into_one_repository_both_succeed() {
    let src = Registry::plain();
    let dest = Registry::plain();
    let publisher = Sandbox::new();
    for v in VERSIONS {
        let dir = publisher.chart("mychart", v);
        // Every version shares nothing but its name: distinct blobs, some shared configs.
        fs::write(dir.join("values.yaml"), format!("v: {v:?}\n")).expect("values");
        let reference = format!("{}/charts/mychart:{v}", src.host());
        publisher.ok(&["chart", "save", &dir.to_string_lossy(), &reference]);
        publisher.ok(&["chart", "push", &reference]);
    }
    let expected = digests(&src, "charts/mychart");
    assert_eq!(expected.len(), VERSIONS.len());

    let source = format!("{}/charts/mychart", src.host());
    for round in 0..4 {
        let prefix = format!("{}/round{round}", dest.host());
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let sb = Sandbox::new();
                let mut cmd = sb.std_command(Sandbox::bin());
                cmd.arg("--home")
                    .arg(sb.cache_home())
                    .args(["sync", &source, &prefix]);
                let child = cmd
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn sync");
                (sb, child)
            })
            .collect();
        for (_sb, child) in runs {
            let out = child.wait_with_output().expect("sync output");
            assert!(
                out.status.success(),
                "round {round}: a concurrent sync failed: {}",
                describe(&out)
            );
        }
        assert_eq!(
            digests(&dest, &format!("round{round}/mychart")),
            expected,
            "round {round}"
        );
    }
}
