//! `chartcache serve --upstream https://…`: a classic chart repository served through the OCI
//! pull API (the classic bridge). skopeo copies from it with the digests `repo migrate` pushes
//! to a real registry, Helm v4 pulls `oci://` from it, the index passes through byte for byte,
//! and each archive is downloaded from the repository once.

mod classic;
mod fault;
mod support;

use std::fs;

use classic::{FileServer, RepoFixture};
use fault::{Sandbox, ServeProcess as Server, get_manifest, sha256_hex};
use support::{Helm, HttpResponse, Registry, Skopeo, http_get};

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_get(&server.url(path), headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// alpha 1.0.0 and 1.1.0; beta 0.1.0 (signed) and 1.0.0+build.1.
fn repo() -> RepoFixture {
    let mut repo = RepoFixture::new();
    for (name, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.1.0"),
        ("beta", "0.1.0"),
        ("beta", "1.0.0+build.1"),
    ] {
        repo.add(name, version);
    }
    repo.add_prov("beta", "0.1.0");
    repo.write_index();
    repo
}

#[test]
fn a_classic_repository_is_pulled_as_oci_with_the_digests_repo_migrate_pushes() {
    let fixture = repo();
    let files = FileServer::start(fixture.root());
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--upstream", &files.url()]);
    let host = server.host();

    // The catalog and the tags come from the index.
    let catalog = get(&server, "/v2/_catalog", &[]);
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["alpha", "beta"])
    );
    let tags = get(&server, "/v2/beta/tags/list", &[]);
    assert_eq!(
        tags.json()["tags"],
        serde_json::json!(["0.1.0", "1.0.0_build.1"])
    );
    assert!(files.tgz_requests().is_empty(), "listing downloads nothing");

    // What repo migrate pushes to a real registry, for comparison.
    let reg = Registry::plain();
    let migrator = Sandbox::new();
    let out = migrator.run(&[
        "repo",
        "migrate",
        &files.url(),
        &format!("{}/charts", reg.host()),
    ]);
    assert!(out.status.success(), "{}", support::describe(&out));
    files.clear_hits();

    // skopeo copies every version from the bridge, with the same manifest digests.
    let skopeo = Skopeo::new();
    for c in &fixture.charts {
        let pushed = get_manifest(&reg, &format!("charts/{}", c.name), &c.tag());
        assert_eq!(pushed.status, 200);
        let want = pushed.header("Docker-Content-Digest").unwrap().to_string();
        let raw = skopeo.run_ok(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{}:{}", c.name, c.tag()),
        ]);
        assert_eq!(
            format!("sha256:{}", sha256_hex(raw.as_bytes())),
            want,
            "{}",
            c.name
        );
        let layout = tempfile::tempdir().unwrap();
        skopeo.run_ok(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{host}/{}:{}", c.name, c.tag()),
            &format!("oci:{}:x", layout.path().display()),
        ]);
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], want.as_str());
        // The chart layer is the archive the index lists.
        let layer = format!("sha256:{}", c.digest);
        let blob = get(&server, &format!("/v2/{}/blobs/{layer}", c.name), &[]);
        assert_eq!(blob.status, 200);
        assert_eq!(blob.body, c.bytes);
    }
    // The signed version carries its provenance layer, as migrate pushes it.
    let beta: serde_json::Value = serde_json::from_slice(
        &get(
            &server,
            "/v2/beta/manifests/0.1.0",
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        )
        .body,
    )
    .unwrap();
    assert_eq!(beta["layers"].as_array().unwrap().len(), 2);

    // Each archive was downloaded from the repository once, whatever asked for it after.
    for c in &fixture.charts {
        assert_eq!(files.count(&format!("/{}", c.file_name())), 1, "{}", c.name);
    }
    sb.ok(&["chart", "verify"]);

    // Helm v4 pulls oci:// from the bridge.
    let helm = Helm::require();
    let shown = helm
        .show_chart(&format!("oci://{host}/alpha:1.1.0"))
        .unwrap_or_else(|e| panic!("helm show oci:// through the classic bridge: {e}"));
    assert!(shown.contains("version: 1.1.0"), "{shown}");

    // Served from the cache with the repository gone.
    drop(files);
    let again = get(&server, "/v2/alpha/manifests/1.0.0", &[]);
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn the_index_passes_through_and_its_downloads_come_from_the_bridge() {
    let fixture = repo();
    let files = FileServer::start(fixture.root());
    let sb = Sandbox::new();
    let server = Server::start(
        &sb,
        &["--upstream", &files.url(), "--upstream-kind", "classic"],
    );
    let index = get(&server, "/index.yaml", &[]);
    assert_eq!(index.status, 200);
    assert_eq!(
        index.body,
        fixture.index_yaml().into_bytes(),
        "byte for byte"
    );
    let gz = get(&server, "/index.yaml", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    assert_eq!(get(&server, "/index.json", &[]).status, 404);

    // The relative URLs of the index resolve here: each download is the archive, checked
    // and cached, and its .prov.
    let alpha = fixture.chart("alpha", "1.1.0");
    let archive = get(&server, &format!("/{}", alpha.file_name()), &[]);
    assert_eq!(archive.status, 200);
    assert_eq!(archive.body, alpha.bytes);
    let beta = fixture.chart("beta", "0.1.0");
    let prov = get(&server, &format!("/{}.prov", beta.file_name()), &[]);
    assert_eq!(prov.status, 200);
    assert_eq!(Some(prov.body), beta.prov.clone());
    assert_eq!(get(&server, "/nope-1.0.0.tgz", &[]).status, 404);

    // Helm through the passed-through index.
    let helm = Helm::require();
    let shown = helm
        .show_chart_from_repo(&server.url(""), "alpha", None)
        .unwrap_or_else(|e| panic!("helm repo add + show through the bridge's index: {e}"));
    assert!(shown.contains("version: 1.1.0"), "{shown}");
    assert_eq!(files.count(&format!("/{}", alpha.file_name())), 1);
}

#[test]
fn an_archive_that_does_not_match_the_index_digest_is_not_served() {
    let mut fixture = repo();
    // The index says one digest, the file holds other bytes.
    let c = fixture.chart_mut("alpha", "1.0.0");
    c.digest = sha256_hex(b"something else");
    fixture.write_index();
    let files = FileServer::start(fixture.root());
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--upstream", &files.url()]);
    let resp = get(&server, "/v2/alpha/manifests/1.0.0", &[]);
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert!(resp.text().contains("digest"), "{}", resp.text());
    assert!(!sb.ok(&["chart", "list"]).contains("alpha"));
    // The others still come through.
    assert_eq!(get(&server, "/v2/alpha/manifests/1.1.0", &[]).status, 200);
}
