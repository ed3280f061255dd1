//! The cache holds any OCI manifest, not only charts: a multi-platform image index synced from
//! a real registry is stored byte for byte (its platform manifests as blobs), listed by
//! `cache list` and not by `chart list`, kept whole by `chart prune`, checked by
//! `chart verify`, synced back out with the same digest, and read by skopeo through the
//! cache's `index.json`. A chart that `chart pull` refuses is still refused, not stored as
//! something else.

mod classic;
mod fault;
mod support;

use std::collections::BTreeSet;
use std::fs;

use fault::{
    OCI_INDEX, OCI_MANIFEST, Sandbox, push_image_index, put_manifest, served_digest, sha256_hex,
    upload_blob,
};
use serde_json::{Value, json};
use support::{Registry, Skopeo, describe};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn cache_list(sb: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["cache", "list", "-o", "json"];
    all.extend_from_slice(args);
    let out = sb.ok(&all);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().unwrap().clone()
}

fn chart_refs(sb: &Sandbox) -> Vec<String> {
    let v: Value = serde_json::from_str(&sb.ok(&["chart", "list", "-o", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["ref"].as_str().unwrap().to_string())
        .collect()
}

fn blobs(sb: &Sandbox) -> BTreeSet<String> {
    fs::read_dir(sb.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

/// The entries of the cache's `index.json` named `name`.
fn index_entries(sb: &Sandbox, name: &str) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&fs::read(sb.root().join("index.json")).unwrap())
        .expect("index.json parses");
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"][REF_NAME] == name)
        .cloned()
        .collect()
}

/// Every digest an image index pushed by `push_image_index` reaches: the index, its two
/// manifests, their configs and layers.
fn reached(sb: &Sandbox, index: &str) -> BTreeSet<String> {
    let read = |d: &str| -> Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(sb.root().join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let mut all = BTreeSet::from([index.to_string()]);
    for m in read(index)["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        all.insert(d.to_string());
        let manifest = read(d);
        all.insert(manifest["config"]["digest"].as_str().unwrap().to_string());
        for l in manifest["layers"].as_array().unwrap() {
            all.insert(l["digest"].as_str().unwrap().to_string());
        }
    }
    all
}

#[test]
fn a_multi_platform_image_moves_through_the_cache_byte_for_byte() {
    let source = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    let chart = "localhost:5000/charts/app:1.0.0";
    sb.save("app", "1.0.0", chart);
    let (index_digest, children) = push_image_index(&source, "images/web", "2.0");
    let name = format!("{}/images/web:2.0", source.host());

    let out = sb.ok(&["sync", &format!("{}/images/web", source.host()), "cache:"]);
    assert!(out.contains("Synced: 1"), "{out}");

    // Stored as it was: the ref links the index only, the index's manifests are blobs.
    let links: Vec<String> = fs::read_dir(sb.ref_dir(&name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(links, ["manifest"]);
    assert_eq!(sb.manifest_digest(&name), index_digest);
    let image_blobs = reached(&sb, &index_digest);
    assert_eq!(
        image_blobs.len(),
        7,
        "index, 2 manifests, 2 configs, 2 layers"
    );
    for child in &children {
        assert!(image_blobs.contains(child));
    }
    assert!(image_blobs.is_subset(&blobs(&sb)));

    // index.json lists it as what it is.
    let entries = index_entries(&sb, &name);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["mediaType"], OCI_INDEX);
    assert_eq!(entries[0]["digest"], index_digest.as_str());
    assert_eq!(index_entries(&sb, chart)[0]["mediaType"], OCI_MANIFEST);

    // `cache list` shows both, with their types; `chart list` the chart only.
    let listed = cache_list(&sb, &[]);
    let row = |r: &str| {
        listed
            .iter()
            .find(|e| e["ref"] == r)
            .unwrap_or_else(|| panic!("{r} in {listed:?}"))
            .clone()
    };
    let image = row(&name);
    assert_eq!(image["type"], "image index");
    assert_eq!(image["mediaType"], OCI_INDEX);
    assert_eq!(image["digest"], index_digest.as_str());
    let total: u64 = image_blobs
        .iter()
        .map(|d| {
            let hex = d.strip_prefix("sha256:").unwrap();
            fs::metadata(sb.root().join("blobs/sha256").join(hex))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(image["size"], total);
    assert_eq!(row(chart)["type"], "helm chart");
    assert_eq!(chart_refs(&sb), [chart]);
    let under = cache_list(&sb, &[&format!("{}/images", source.host())]);
    assert_eq!(under.len(), 1);
    let table = sb.ok(&["cache", "list"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["REF", "TYPE", "DIGEST", "SIZE"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("image index")),
        "{table}"
    );

    // prune keeps everything the index reaches; verify checks it all.
    let before = blobs(&sb);
    sb.ok(&["chart", "prune"]);
    assert_eq!(blobs(&sb), before);
    assert!(sb.ok(&["chart", "verify"]).contains(": OK"));

    // Out of the cache into another registry: the same index, every platform.
    let out = sb.ok(&[
        "sync",
        &format!("cache:{}/images", source.host()),
        &format!("{}/other", dest.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_eq!(
        served_digest(&dest, "other/web", "2.0").as_deref(),
        Some(index_digest.as_str())
    );
    for child in &children {
        assert_eq!(
            served_digest(&dest, "other/web", child).as_deref(),
            Some(child.as_str())
        );
    }
    // Again: nothing to do either way.
    let out = sb.ok(&["sync", &format!("{}/images/web", source.host()), "cache:"]);
    assert!(out.contains("skipped: 1"), "{out}");
    let out = sb.ok(&[
        "sync",
        &format!("cache:{}/images", source.host()),
        &format!("{}/other", dest.host()),
    ]);
    assert!(out.contains("skipped: 1"), "{out}");

    // skopeo reads the image out of the cache's index.json, and copies it whole.
    let layout = format!("oci:{}:{name}", sb.root().display());
    let skopeo = Skopeo::new();
    let raw = skopeo.run_ok(&["inspect", "--raw", &layout]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        index_digest
    );
    let copy = sb.path().join("copy");
    skopeo.run_ok(&[
        "copy",
        "--all",
        &layout,
        &format!("oci:{}:web", copy.display()),
    ]);
    // (skopeo 1.9 writes the index and manifests it copies anew, and compresses these
    // uncompressed layers, so its copy is checked for completeness, not digests: both
    // platforms, every blob they name.)
    let read = |d: &Value| -> Value {
        let hex = d
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        serde_json::from_slice(&fs::read(copy.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let top: Value = serde_json::from_slice(&fs::read(copy.join("index.json")).unwrap()).unwrap();
    let index = read(&top["manifests"][0]["digest"]);
    let platforms = index["manifests"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{index}");
    for p in platforms {
        let manifest = read(&p["digest"]);
        read(&manifest["config"]["digest"]);
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let hex = layer.strip_prefix("sha256:").unwrap();
        assert!(copy.join("blobs/sha256").join(hex).is_file(), "{layer}");
    }

    // Removed, its blobs go at the next prune; the chart's stay.
    sb.ok(&["chart", "remove", &name]);
    assert!(
        cache_list(&sb, &[])
            .iter()
            .all(|e| e["ref"] != name.as_str())
    );
    assert!(index_entries(&sb, &name).is_empty());
    sb.ok(&["chart", "prune"]);
    assert!(blobs(&sb).is_disjoint(&image_blobs));
    assert_eq!(chart_refs(&sb), [chart]);
    assert!(sb.ok(&["chart", "verify"]).contains(": OK"));
}

#[test]
fn a_chart_chart_pull_refuses_is_not_stored_as_an_artifact() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    // A Helm chart's manifest whose chart layer is not a chart archive.
    let config = br#"{"name":"bad","version":"1.0.0","apiVersion":"v2"}"#;
    let layer = b"not a gzip archive";
    let config_digest = upload_blob(&reg, "charts/bad", config);
    let layer_digest = upload_blob(&reg, "charts/bad", layer);
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    put_manifest(&reg, "charts/bad", "1.0.0", &manifest);
    sb.save("other", "1.0.0", "localhost:5000/x/other:1.0.0");
    let before = sb.snapshot();
    let out = sb.run(&["sync", &format!("{}/charts/bad", reg.host()), "cache:"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        sb.snapshot().changes_since(&before).is_empty(),
        "nothing stored"
    );
    assert_eq!(cache_list(&sb, &[]).len(), 1);
}
