//! Small helpers around the real registry of `tests/support`: what it was asked (its log at
//! `info` level), and raw uploads of hand-made artifacts.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::{HttpResponse, Registry, basic_auth};

use super::server::OCI_MANIFEST;
use super::sha256_hex;

/// `(method, uri)` of every request the registry logged. Needs a registry started with
/// `Registry::builder().log_level("info")` (distribution logs one `response completed` line
/// per request at that level).
pub fn logged_requests(reg: &Registry) -> Vec<(String, String)> {
    reg.log()
        .lines()
        .filter(|l| l.contains("msg=\"response completed"))
        .filter_map(|l| {
            Some((
                field(l, "http.request.method")?,
                field(l, "http.request.uri")?,
            ))
        })
        .collect()
}

/// How many logged requests have `method` and a URI starting with `prefix`.
pub fn count_logged(reg: &Registry, method: &str, prefix: &str) -> usize {
    logged_requests(reg)
        .iter()
        .filter(|(m, u)| m == method && u.starts_with(prefix))
        .count()
}

/// Waits (up to 20 s) until the registry has logged at least `n` requests `method` with a URI
/// starting with `prefix`, and returns the count. distribution logs a request after answering
/// it, so a client may be done before the line is written.
pub fn wait_logged(reg: &Registry, method: &str, prefix: &str, n: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let count = count_logged(reg, method, prefix);
        if count >= n || std::time::Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The value of `key=value` or `key="value"` in a logrus line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().map(str::to_string)
    } else {
        rest.split(' ').next().map(str::to_string)
    }
}

/// Uploads `data` to `repo` on a plain-HTTP registry (POST, then PUT with the digest), the
/// way distribution 2.8 wants it; returns `sha256:…`.
pub fn upload_blob(reg: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let start = reg.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[]);
    assert_eq!(start.status, 202, "start upload: {}", start.text());
    let location = start
        .header("Location")
        .expect("upload Location")
        .to_string();
    let path = location
        .strip_prefix(&reg.url())
        .unwrap_or(&location)
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = reg.request(
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    assert_eq!(put.status, 201, "finish upload: {}", put.text());
    digest
}

/// PUTs `manifest` (an OCI image manifest) under `repo:reference`; returns the registry's answer.
pub fn put_manifest(reg: &Registry, repo: &str, reference: &str, manifest: &[u8]) -> HttpResponse {
    put_manifest_as(reg, repo, reference, OCI_MANIFEST, manifest)
}

/// PUTs a manifest of `media_type` (an image manifest, an index) under `repo:reference`,
/// asserting it was accepted; returns the registry's answer.
pub fn put_manifest_as(
    reg: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &[u8],
) -> HttpResponse {
    let resp = reg.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        manifest,
    );
    assert_eq!(resp.status, 201, "put {media_type}: {}", resp.text());
    resp
}

/// The manifest the registry serves for `repo:reference` (OCI Accept header; with Basic
/// credentials on an htpasswd registry).
pub fn get_manifest(reg: &Registry, repo: &str, reference: &str) -> HttpResponse {
    let auth = match (reg.credentials(), reg.token_issuer()) {
        (Some((u, p)), None) => Some(basic_auth(u, p)),
        _ => None,
    };
    let mut headers = vec![("Accept", OCI_MANIFEST)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let resp = reg.get(&format!("/v2/{repo}/manifests/{reference}"), &headers);
    assert_eq!(resp.status, 200, "get manifest: {}", resp.text());
    resp
}

/// `GET path` on a plain-HTTP registry, with its Basic credentials when it has some.
pub fn registry_get(reg: &Registry, path: &str) -> HttpResponse {
    match (reg.credentials(), reg.token_issuer()) {
        (Some(_), None) => reg.get_with_basic_auth(path),
        _ => reg.get(path, &[]),
    }
}

/// The tags of `repo` on the registry, sorted (empty when the repository does not exist).
pub fn repo_tags(reg: &Registry, repo: &str) -> Vec<String> {
    let resp = registry_get(reg, &format!("/v2/{repo}/tags/list"));
    if resp.status == 404 {
        return Vec::new();
    }
    assert_eq!(resp.status, 200, "tags of {repo}: {}", resp.text());
    let mut t: Vec<String> = resp.json()["tags"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// Every repository the registry holds, sorted.
pub fn catalog(reg: &Registry) -> Vec<String> {
    let resp = registry_get(reg, "/v2/_catalog?n=1000");
    assert_eq!(resp.status, 200, "catalog: {}", resp.text());
    let mut repos: Vec<String> = resp.json()["repositories"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    repos.sort();
    repos
}

/// Every file under the registry's storage with its size and mtime: any push changes it.
pub fn storage_snapshot(reg: &Registry) -> BTreeMap<String, (u64, i64, i64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, i64, i64)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, (m.len(), m.mtime(), m.mtime_nsec()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(reg.storage_dir(), reg.storage_dir(), &mut out);
    out
}
