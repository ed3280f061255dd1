//! Every pair of places the copy engine knows, through `sync SRC DEST`: a registry, the cache,
//! an OCI layout directory, an OCI archive, and (as a source) a classic repository. One chart
//! goes from each source to each destination, and the manifest digest it arrives with is the
//! source's; a rerun into a place that can say what it holds copies nothing.

mod classic;
mod fault;
mod support;

use std::fs;
use std::io::Read;
use std::path::Path;

use fault::{Sandbox, sha256_hex};
use serde_json::Value;
use support::Registry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A kind of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Registry,
    Cache,
    Layout,
    Archive,
}

const KINDS: [Kind; 4] = [Kind::Registry, Kind::Cache, Kind::Layout, Kind::Archive];

/// The digest a registry serves for `repo:tag`.
fn served_digest(reg: &Registry, repo: &str, tag: &str) -> Option<String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}");
    let resp = reg.request(
        "HEAD",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Accept", &accept)],
        &[],
    );
    (resp.status == 200)
        .then(|| resp.header("Docker-Content-Digest").map(str::to_string))
        .flatten()
}

/// The digest an `index.json` names `name` with.
fn index_digest(index: &[u8], name: &str) -> Option<String> {
    let index: serde_json::Value = serde_json::from_slice(index).expect("index.json parses");
    index["manifests"]
        .as_array()?
        .iter()
        .find(|d| d["annotations"][REF_NAME] == name)
        .and_then(|d| d["digest"].as_str().map(str::to_string))
}

/// The `index.json` of an OCI archive, read from the tar.
fn archive_index(path: &Path) -> Vec<u8> {
    let mut archive = tar::Archive::new(fs::File::open(path).expect("open the archive"));
    for entry in archive.entries().expect("read the archive") {
        let mut entry = entry.expect("an archive entry");
        if entry.path().expect("an entry path").as_os_str() == "index.json" {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read index.json");
            return bytes;
        }
    }
    panic!("{}: no index.json", path.display());
}

/// One place of a kind, holding (or to hold) artifacts.
struct Place<'a> {
    kind: Kind,
    reg: &'a Registry,
    sb: Sandbox,
    /// The registry repository prefix of a registry place.
    prefix: String,
}

impl<'a> Place<'a> {
    fn new(kind: Kind, reg: &'a Registry, label: &str) -> Self {
        Place {
            kind,
            reg,
            sb: Sandbox::new(),
            prefix: format!("{}/{label}", reg.host()),
        }
    }

    fn layout(&self) -> std::path::PathBuf {
        self.sb.path().join("layout")
    }

    fn archive(&self) -> std::path::PathBuf {
        self.sb.path().join("bundle.tar")
    }

    /// The place as `sync` names it, as a destination.
    fn dest_arg(&self) -> String {
        match self.kind {
            Kind::Registry => self.prefix.clone(),
            Kind::Cache => "cache:".into(),
            Kind::Layout => format!("oci:{}", self.layout().display()),
            Kind::Archive => format!("oci-archive:{}", self.archive().display()),
        }
    }

    /// The place as `sync` names it, as a source of `name` (a full reference).
    fn source_arg(&self, name: &str) -> String {
        match self.kind {
            Kind::Registry => self.arrived_as(name),
            Kind::Cache => format!("cache:{name}"),
            Kind::Layout => format!("oci:{}", self.layout().display()),
            Kind::Archive => format!("oci-archive:{}", self.archive().display()),
        }
    }

    /// The name an artifact named `name` at the source has here: a registry takes the last
    /// path element under its prefix (as skopeo sync does); the others keep the full name.
    fn arrived_as(&self, name: &str) -> String {
        match self.kind {
            Kind::Registry => {
                let last = name.rsplit('/').next().unwrap_or(name);
                format!("{}/{last}", self.prefix)
            }
            _ => name.to_string(),
        }
    }

    /// The manifest digest held here under `name` (as [`Place::arrived_as`] gives it).
    fn digest(&self, name: &str) -> Option<String> {
        match self.kind {
            Kind::Registry => {
                let path = name.strip_prefix(&format!("{}/", self.reg.host()))?;
                let (repo, tag) = path.rsplit_once(':')?;
                served_digest(self.reg, repo, tag)
            }
            Kind::Cache => Some(self.sb.manifest_digest(name)),
            Kind::Layout => index_digest(&fs::read(self.layout().join("index.json")).ok()?, name),
            Kind::Archive => index_digest(&archive_index(&self.archive()), name),
        }
    }

    /// Syncs `name` from `from` into this place and checks it arrived with `digest`; a
    /// second run into a place that says what it holds copies nothing. The sync runs in the
    /// destination's sandbox when the destination is a cache (that cache is written), else
    /// in the source's (whose cache a `cache:` source reads).
    fn take(&self, from: &Place, name: &str, digest: &str) {
        let (src, dest) = (from.source_arg(name), self.dest_arg());
        let runner = match self.kind {
            Kind::Cache => &self.sb,
            _ => &from.sb,
        };
        let out = runner.ok(&["sync", &src, &dest]);
        let what = format!("{:?} -> {:?} ({src} -> {dest})", from.kind, self.kind);
        assert!(out.contains("Synced: 1"), "{what}: {out}");
        let arrived = self.arrived_as(name);
        assert_eq!(
            self.digest(&arrived).as_deref(),
            Some(digest),
            "{what}: {arrived} arrives with the source's digest"
        );
        if self.kind != Kind::Archive {
            let again = runner.ok(&["sync", &src, &dest]);
            assert!(again.contains("skipped: 1"), "{what}: a rerun: {again}");
        }
    }
}

#[test]
fn a_chart_moves_between_every_pair_of_places_with_its_digest() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let name = format!("{}/src/app:1.0.0", reg.host());
    let dir = publisher.chart("app", "1.0.0");
    publisher.ok(&["chart", "save", dir.to_str().unwrap(), &name]);
    publisher.ok(&["chart", "push", &name]);
    let digest = publisher.manifest_digest(&name);

    for from_kind in KINDS {
        // A source of this kind holding the chart under `name` (a registry source is the
        // publisher's repository itself).
        let from = Place::new(from_kind, &reg, "src");
        if from_kind != Kind::Registry {
            from.sb.ok(&["sync", &name, &from.dest_arg()]);
            assert_eq!(from.digest(&name).as_deref(), Some(digest.as_str()));
        }
        for to_kind in KINDS {
            if (from_kind, to_kind) == (Kind::Cache, Kind::Cache) {
                // One cache into itself is `chart tag`; sync refuses it (tested in sync.rs).
                continue;
            }
            let label = format!("to-{from_kind:?}-{to_kind:?}").to_lowercase();
            let to = Place::new(to_kind, &reg, &label);
            to.take(&from, &name, &digest);
        }
    }
}

#[test]
fn a_classic_repository_goes_to_every_place_as_repo_migrate_pushes_it() {
    let mut repo = classic::RepoFixture::new();
    repo.add("app", "1.0.0");
    repo.add_prov("app", "1.0.0");
    repo.write_index();
    let server = classic::FileServer::start(repo.root());
    let reg = Registry::plain();

    let migrator = Sandbox::new();
    migrator.ok(&[
        "repo",
        "migrate",
        &server.url(),
        &format!("{}/migrated", reg.host()),
    ]);
    let migrated = served_digest(&reg, "migrated/app", "1.0.0").expect("migrated");
    let url = reqwest_like_host(&server.url());
    let name = format!("{url}/app:1.0.0");
    for to_kind in KINDS {
        let to = Place::new(
            to_kind,
            &reg,
            &format!("classic-{to_kind:?}").to_lowercase(),
        );
        let out = to.sb.ok(&["sync", &server.url(), &to.dest_arg()]);
        assert!(out.contains("Synced: 1"), "classic -> {to_kind:?}: {out}");
        assert_eq!(
            to.digest(&to.arrived_as(&name)).as_deref(),
            Some(migrated.as_str()),
            "classic -> {to_kind:?}: the manifest repo migrate pushes"
        );
        if to_kind != Kind::Archive {
            // A rerun compares what is there with the index: nothing is downloaded.
            server.clear_hits();
            let again = to.sb.ok(&["sync", &server.url(), &to.dest_arg()]);
            assert!(
                again.contains("skipped: 1"),
                "classic -> {to_kind:?}: {again}"
            );
            assert!(
                server.tgz_requests().is_empty(),
                "classic -> {to_kind:?}: a rerun downloaded {:?}",
                server.tgz_requests()
            );
        }
    }
    // The digest is a real sha256 of what was served.
    assert_eq!(migrated.len(), "sha256:".len() + sha256_hex(b"").len());
}

/// `host:port/path` of a URL, as the classic place names its artifacts.
fn reqwest_like_host(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn bulk_jobs_report_in_json() {
    let mut repo = classic::RepoFixture::new();
    repo.add("app", "1.0.0");
    repo.add("app", "1.1.0");
    repo.write_index();
    let server = classic::FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let dest = format!("{}/charts", reg.host());

    let report = |out: String| -> Value { serde_json::from_str(&out).expect("one JSON document") };
    let first = report(sb.ok(&["repo", "migrate", "-o", "json", &server.url(), &dest]));
    assert_eq!(
        (first["done"].as_u64(), first["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    let mut targets: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["outcome"], "done", "{i}");
            i["target"].as_str().unwrap()
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [format!("{dest}/app:1.0.0"), format!("{dest}/app:1.1.0")]
    );
    // The same job as a sync: everything there, each item with its source.
    let again = report(sb.ok(&["sync", "-o", "json", &server.url(), &dest]));
    assert_eq!(
        (again["done"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(2))
    );
    for item in again["items"].as_array().unwrap() {
        assert_eq!(item["outcome"], "skipped", "{item}");
        assert!(
            item["source"]
                .as_str()
                .unwrap()
                .ends_with(item["target"].as_str().unwrap().rsplit('/').next().unwrap())
        );
    }
    // A failure is an item too, and the exit code says so.
    let out = sb.run(&["sync", "-o", "json", &server.url(), "127.0.0.1:1/nowhere"]);
    assert_eq!(out.status.code(), Some(1));
}
