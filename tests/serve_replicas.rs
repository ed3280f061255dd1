//! Several `chartcache serve` processes: two over one cache directory (a shared volume) pulling
//! through from one registry at the same time, and two with caches of their own in front of the
//! same registry. They serve the same bytes under the same ETags, and the shared cache is whole
//! afterwards (`chart verify`).

mod fault;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use fault::{Sandbox, ServeProcess as Server};
use support::{HttpResponse, Registry, http_get};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_get(&server.url(path), headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Pushes `web` and `api` in a few versions to `reg` under `charts/`; returns name:tag →
/// manifest digest.
fn publish(reg: &Registry) -> BTreeMap<String, String> {
    let sb = Sandbox::new();
    let mut digests = BTreeMap::new();
    for name in ["web", "api"] {
        for version in ["1.0.0", "1.1.0", "2.0.0"] {
            let reference = format!("{}/charts/{name}:{version}", reg.host());
            sb.save(name, version, &reference);
            sb.ok(&["chart", "push", &reference]);
            digests.insert(format!("{name}:{version}"), sb.manifest_digest(&reference));
        }
    }
    digests
}

#[test]
fn two_servers_over_one_cache_pull_through_at_once_and_leave_it_whole() {
    let reg = Registry::plain();
    let digests = publish(&reg);
    let sb = Sandbox::new();
    let upstream = format!("{}/charts", reg.host());
    let servers = Arc::new([
        Server::start(&sb, &["--upstream", &upstream]),
        Server::start(&sb, &["--upstream", &upstream]),
    ]);

    // Eight clients, four per server, each asking for every chart (manifest, then its
    // layers) at once, none cached yet.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let servers = Arc::clone(&servers);
            let digests = digests.clone();
            std::thread::spawn(move || {
                let server = &servers[i % 2];
                let mut seen = BTreeMap::new();
                for key in digests.keys() {
                    let (name, tag) = key.split_once(':').unwrap();
                    let m = get(
                        server,
                        &format!("/v2/{name}/manifests/{tag}"),
                        &[("Accept", OCI_MANIFEST)],
                    );
                    assert_eq!(m.status, 200, "{key}: {}", m.text());
                    for layer in m.json()["layers"].as_array().unwrap() {
                        let d = layer["digest"].as_str().unwrap();
                        let blob = get(server, &format!("/v2/{name}/blobs/{d}"), &[]);
                        assert_eq!(blob.status, 200, "{key} {d}");
                        assert_eq!(
                            fault::sha256_hex(&blob.body),
                            d.trim_start_matches("sha256:")
                        );
                    }
                    seen.insert(
                        key.clone(),
                        m.header("Docker-Content-Digest").unwrap().to_string(),
                    );
                }
                seen
            })
        })
        .collect();
    for c in clients {
        let seen = c.join().expect("a client failed");
        assert_eq!(seen, digests, "every server served the upstream's digests");
    }

    // The same index, bytes and ETag, from both (plain and compressed).
    for headers in [&[][..], &[("Accept-Encoding", "gzip")][..]] {
        let a = get(&servers[0], "/index.yaml", headers);
        let b = get(&servers[1], "/index.yaml", headers);
        assert_eq!(a.status, 200);
        assert_eq!(a.body, b.body);
        assert_eq!(a.header("ETag"), b.header("ETag"));
    }
    // And the same chart downloads under the same ETags.
    let a = get(&servers[0], "/charts/web-1.1.0.tgz", &[]);
    let b = get(&servers[1], "/charts/web-1.1.0.tgz", &[]);
    assert_eq!(
        (a.status, &a.body, a.header("ETag")),
        (200, &b.body, b.header("ETag"))
    );

    // The shared cache holds every chart once and verifies clean.
    let out = sb.ok(&["chart", "verify"]);
    assert!(!out.to_lowercase().contains("error"), "{out}");
    let listed = sb.ok(&["chart", "list"]);
    for key in digests.keys() {
        let (name, tag) = key.split_once(':').unwrap();
        assert!(
            listed.contains(&format!("{}/charts/{name}:{tag}", reg.host())),
            "{key} not cached:\n{listed}"
        );
    }
}

#[test]
fn servers_with_caches_of_their_own_agree_on_bytes_and_etags() {
    let reg = Registry::plain();
    publish(&reg);
    let upstream = format!("{}/charts", reg.host());
    let (sa, sb) = (Sandbox::new(), Sandbox::new());
    let a = Server::start(&sa, &["--upstream", &upstream]);
    let b = Server::start(&sb, &["--upstream", &upstream]);
    for path in [
        "/index.yaml",
        "/index.json",
        "/v2/web/manifests/2.0.0",
        "/charts/api-1.0.0.tgz",
    ] {
        let (x, y) = (get(&a, path, &[]), get(&b, path, &[]));
        assert_eq!(x.status, 200, "{path}: {}", x.text());
        assert_eq!(x.body, y.body, "{path}");
        assert_eq!(x.header("ETag"), y.header("ETag"), "{path}");
    }
}
