//! The cache at scale: a cache of 100,000 refs, where writing one ref must cost what it costs
//! in a small cache. `index.json` is edited in place (appended to, blanked), never rebuilt by
//! an ordinary write, and a listing by prefix reads only what it lists.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use common::{Home, fixture};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Refs in the cache before the test writes any: two saved for real, one tagged, the rest
/// generated.
const REFS: usize = 100_000;
const PER_REPO: usize = 1000;

const SEED: &str = "localhost:5000/seed/simple:0.1.0";
const OTHER: &str = "localhost:5000/other/with-helmignore:0.1.0";

/// The generated refs: `localhost:5000/scale/team-XX/chart-YYY:1.0.T`, ten repositories of a
/// thousand tags per team.
fn generated(i: usize) -> (String, String) {
    let repo = i / PER_REPO;
    (
        format!("scale/team-{:02}/chart-{repo:03}", repo / 10),
        format!("1.0.{}", i % PER_REPO),
    )
}

/// The entries of `index.json`, as any JSON reader sees them: (ref name, digest).
fn index_entries(home: &Home) -> Vec<(String, String)> {
    let bytes = fs::read(home.registry().join("index.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json parses");
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"][REF_NAME].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn named<'a>(entries: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| d.as_str())
        .collect()
}

fn inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

/// Writes the generated refs as the store writes refs (relative links to the seed's blobs and
/// chart marker) and an `index.json` as the store writes it, sorted by name. Direct, because
/// 100,000 `chart tag` processes would take minutes.
fn generate(home: &Home) {
    let reg = home.registry();
    let seed_dir = home.ref_dir(SEED);
    // Each link target relative to the cache root: the seed's, without its `../`s.
    let links: Vec<(String, String)> = fs::read_dir(&seed_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = fs::read_link(e.path()).unwrap();
            let target = target.to_str().unwrap().replace("../", "");
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect();
    // An entry as the store writes one (Go's field order, compact).
    let entry = |name: &str, hex: &str| {
        let size = fs::metadata(home.blob_path(hex)).unwrap().len();
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{hex}","size":{size},"annotations":{{"{REF_NAME}":"{name}"}}}}"#
        )
    };
    let seed_hex = home.link_hex(SEED, "manifest");
    let mut entries: Vec<(String, String)> = [SEED, OTHER]
        .iter()
        .map(|r| (r.to_string(), entry(r, &home.link_hex(r, "manifest"))))
        .collect();
    let written = fs::read_to_string(reg.join("index.json")).unwrap();
    for (_, e) in &entries {
        assert!(written.contains(e.as_str()), "{e} in {written}");
    }
    for i in 0..REFS - 3 {
        let (repo, tag) = generated(i);
        let dir = reg
            .join("refs/localhost_5000")
            .join(&repo)
            .join("tags")
            .join(&tag);
        fs::create_dir_all(&dir).unwrap();
        let up = "../".repeat(repo.split('/').count() + 4);
        for (name, target) in &links {
            std::os::unix::fs::symlink(format!("{up}{target}"), dir.join(name)).unwrap();
        }
        let name = format!("localhost:5000/{repo}:{tag}");
        entries.push((name.clone(), entry(&name, &seed_hex)));
    }
    entries.sort();
    let all: Vec<&str> = entries.iter().map(|(_, e)| e.as_str()).collect();
    let head = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json""#;
    fs::write(
        reg.join("index.json"),
        format!("{head},\"manifests\":[{}]}}", all.join(",")),
    )
    .unwrap();
}

/// A home on a memory file system when there is one: the test is about the cache's work, not
/// the disk's, and on a slow disk creating 500,000 directories and links alone takes minutes.
fn home() -> Home {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir() && tempfile::tempdir_in(shm).is_ok_and(|d| d.path().is_dir());
    match writable {
        true => Home::new_in(shm),
        false => Home::new(),
    }
}

#[test]
fn one_ref_in_a_cache_of_100_000_is_written_in_place() {
    let home = home();
    home.save(&fixture("simple"), Some(SEED));
    home.save(&fixture("with-helmignore"), Some(OTHER));
    let seed_manifest = format!("sha256:{}", home.link_hex(SEED, "manifest"));
    let other_manifest = format!("sha256:{}", home.link_hex(OTHER, "manifest"));
    let started = Instant::now();
    generate(&home);
    eprintln!("generated {REFS} refs in {:?}", started.elapsed());
    // The first write into an index this version did not write sorts it once (it has no record
    // of where its sorted run ends); the writes after it are edits in place.
    let warm = "localhost:5000/warm/simple:1";
    let started = Instant::now();
    home.ok(&["chart", "tag", SEED, warm]);
    eprintln!("first chart tag: {:?}", started.elapsed());
    let index = home.registry().join("index.json");
    let ino = inode(&index);
    assert_eq!(index_entries(&home).len(), REFS);

    // A new ref: appended, the file kept (no rebuild, which would rename a new one in).
    let new = "localhost:5000/scale/new/simple:1";
    let started = Instant::now();
    home.ok(&["chart", "tag", SEED, new]);
    eprintln!("chart tag (new ref): {:?}", started.elapsed());
    let entries = index_entries(&home);
    assert_eq!(entries.len(), REFS + 1);
    assert_eq!(named(&entries, new), [seed_manifest.as_str()]);
    assert_eq!(inode(&index), ino, "index.json was edited in place");

    // Retagged to another chart: the one entry of that name now names the other chart.
    let started = Instant::now();
    home.ok(&["chart", "tag", OTHER, new]);
    eprintln!("chart tag (retag): {:?}", started.elapsed());
    let entries = index_entries(&home);
    assert_eq!(entries.len(), REFS + 1);
    assert_eq!(named(&entries, new), [other_manifest.as_str()]);
    assert_eq!(inode(&index), ino);

    // And retagged back and forth again, in place or not, still one entry.
    home.ok(&["chart", "tag", SEED, new]);
    home.ok(&["chart", "tag", OTHER, new]);
    assert_eq!(named(&index_entries(&home), new), [other_manifest.as_str()]);

    // Removed: gone from the index, the rest untouched.
    let started = Instant::now();
    let run = home.ok(&["chart", "remove", new]);
    eprintln!("chart remove: {:?}", started.elapsed());
    assert_eq!(run.stdout, "1: removed\n");
    let entries = index_entries(&home);
    assert_eq!(entries.len(), REFS);
    assert!(named(&entries, new).is_empty());
    assert_eq!(named(&entries, SEED), [seed_manifest.as_str()]);
    assert_eq!(inode(&index), ino);

    // Listing a prefix shows that prefix's repositories, whole path components only.
    let list = |prefix: &str| -> Vec<String> {
        let run = home.ok(&["chart", "list", prefix, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["ref"].as_str().unwrap().to_string())
            .collect()
    };
    let started = Instant::now();
    let team = list("localhost:5000/scale/team-03");
    eprintln!("chart list of 10,000: {:?}", started.elapsed());
    assert_eq!(team.len(), 10 * PER_REPO);
    assert!(
        team.iter()
            .all(|r| r.starts_with("localhost:5000/scale/team-03/chart-03"))
    );
    let one = list("localhost:5000/scale/team-03/chart-031");
    assert_eq!(one.len(), PER_REPO);
    assert_eq!(one[0], "localhost:5000/scale/team-03/chart-031:1.0.0");
    assert!(list("localhost:5000/scale/team-0").is_empty());
    assert_eq!(list("localhost:5000/other"), [OTHER]);

    // By digest within one repository.
    let by_digest = format!("localhost:5000/other/with-helmignore@{other_manifest}");
    home.ok(&["chart", "show", &by_digest]);

    // The first and the last entry of the file (it is sorted by name, as generated).
    let first = entries.iter().map(|(n, _)| n).min().unwrap().clone();
    let last = entries.iter().map(|(n, _)| n).max().unwrap().clone();
    assert_eq!(
        (first.as_str(), last.as_str()),
        (OTHER, "localhost:5000/warm/simple:1")
    );
    home.ok(&["chart", "remove", &first, &last]);
    let entries = index_entries(&home);
    assert_eq!(entries.len(), REFS - 2);
    assert!(named(&entries, &first).is_empty() && named(&entries, &last).is_empty());
    assert_eq!(inode(&index), ino);
}
