//! `sync` through OCI image layouts (`oci:DIR`) and OCI archives (`oci-archive:FILE`), the
//! copy engine's places: charts and multi-platform image indexes go registry → archive →
//! registry and registry → layout → registry with every digest kept, the archive reads in
//! skopeo and skopeo's archives read in chartcache, and a rerun copies nothing.

mod classic;
mod fault;
mod support;

use std::collections::BTreeMap;
use std::fs;

use fault::{OCI_INDEX, Sandbox, error_line_of, push_image_index, served_digest, sha256_hex};
use support::{Registry, Skopeo, describe};

/// Saves and pushes chart `name` at each of `versions` to `reg`'s `repo`; returns tag → digest.
fn publish(
    sb: &Sandbox,
    reg: &Registry,
    repo: &str,
    versions: &[&str],
) -> BTreeMap<String, String> {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    versions
        .iter()
        .map(|v| {
            let dir = sb.chart(name, v);
            let reference = format!("{}/{repo}:{v}", reg.host());
            sb.ok(&["chart", "save", dir.to_str().unwrap(), &reference]);
            sb.ok(&["chart", "push", &reference]);
            (v.to_string(), sb.manifest_digest(&reference))
        })
        .collect()
}

#[test]
fn charts_cross_an_air_gap_as_one_archive_with_their_digests() {
    let outside = Registry::plain();
    let inside = Registry::plain();
    let mut sb = Sandbox::new();
    let published = publish(&sb, &outside, "charts/app", &["1.0.0", "1.1.0"]);
    let archive = sb.path().join("app.tar");
    let archive_arg = format!("oci-archive:{}", archive.display());

    let out = sb.ok(&[
        "sync",
        &format!("{}/charts/app", outside.host()),
        &archive_arg,
    ]);
    assert!(out.contains("Synced: 2"), "{out}");
    assert!(archive.is_file());
    // No temporary file is left beside it.
    let leftovers: Vec<_> = fs::read_dir(sb.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // skopeo reads the archive, under the names chartcache gave.
    for (tag, digest) in &published {
        let name = format!("{}/charts/app:{tag}", outside.host());
        let raw = Skopeo::new().run_ok(&["inspect", "--raw", &format!("{archive_arg}:{name}")]);
        assert_eq!(&format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    }

    // Read where it is: not one blob is unpacked, not even into a temporary directory.
    sb.set_env("TMPDIR", sb.path().join("no-such-directory"));
    let out = sb.ok(&["sync", &archive_arg, &format!("{}/vendor", inside.host())]);
    assert!(out.contains("Synced: 2"), "{out}");
    sb.set_env("TMPDIR", std::env::temp_dir());
    for (tag, digest) in &published {
        assert_eq!(
            served_digest(&inside, "vendor/app", tag).as_deref(),
            Some(digest.as_str()),
            "vendor/app:{tag}"
        );
    }
    // Helm's format went through whole: chartcache pulls it back.
    sb.ok(&[
        "chart",
        "pull",
        &format!("{}/vendor/app:1.1.0", inside.host()),
    ]);
}

#[test]
fn image_indexes_move_whole_through_a_layout_directory() {
    let source = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    let (index_digest, children) = push_image_index(&source, "images/web", "2.0");
    let layout = sb.path().join("layout");
    let layout_arg = format!("oci:{}", layout.display());

    sb.ok(&[
        "sync",
        &format!("{}/images/web:2.0", source.host()),
        &layout_arg,
    ]);
    let out = sb.ok(&["sync", &layout_arg, &format!("{}/mirror", dest.host())]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_eq!(
        served_digest(&dest, "mirror/web", "2.0").as_deref(),
        Some(index_digest.as_str())
    );
    for child in &children {
        assert_eq!(
            served_digest(&dest, "mirror/web", child).as_deref(),
            Some(child.as_str()),
            "every platform came along"
        );
    }
    // A rerun finds everything there.
    let out = sb.ok(&[
        "sync",
        &format!("{}/images/web:2.0", source.host()),
        &layout_arg,
    ]);
    assert!(out.contains("skipped: 1"), "{out}");

    // skopeo reads the same index out of the layout. (skopeo 1.9 re-serialises an index it
    // copies out of a layout, so its copies are compared by what it reads, not what it writes.)
    let name = format!("{}/images/web:2.0", source.host());
    let raw = Skopeo::new().run_ok(&["inspect", "--raw", &format!("{layout_arg}:{name}")]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        index_digest
    );
}

#[test]
fn archives_skopeo_writes_sync_into_a_registry() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let (index_digest, _) = push_image_index(&reg, "images/api", "1.0");
    assert!(!index_digest.is_empty());
    // skopeo's ref `v1` names the artifact after the archive (`api:v1`); an archive without
    // a ref name holds its one image as skopeo reads it, as `latest`. skopeo 1.9 takes every
    // platform with --all, and only the one it runs on without it.
    for (file, archive_ref, all, arrives) in [
        ("api.tar", ":v1", true, "imported/api:v1"),
        ("bare.tar", "", false, "imported/bare:latest"),
    ] {
        let archive = format!(
            "oci-archive:{}{archive_ref}",
            sb.path().join(file).display()
        );
        let from = format!("docker://{}/images/api:1.0", reg.host());
        let mut copy = vec!["copy", "--insecure-policy", "--src-tls-verify=false"];
        if all {
            copy.push("--all");
        }
        Skopeo::new().run_ok(&[copy, vec![from.as_str(), archive.as_str()]].concat());
        let whole = format!("oci-archive:{}", sb.path().join(file).display());
        let out = sb.ok(&["sync", &whole, &format!("{}/imported", reg.host())]);
        assert!(out.contains("Synced: 1"), "{out}");
        // What skopeo wrote (it re-serialises the index on the way) arrives byte for byte.
        let raw = Skopeo::new().run_ok(&["inspect", "--raw", &archive]);
        let written = format!("sha256:{}", sha256_hex(raw.as_bytes()));
        let (repo, tag) = arrives.split_once(':').unwrap();
        assert_eq!(served_digest(&reg, repo, tag), Some(written), "{arrives}");
    }
}

/// A blob changed inside an archive after it was written: refused in one line naming it once,
/// and nothing of the artifact arrives.
#[test]
fn a_blob_tampered_in_an_archive_is_refused() {
    let reg = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    publish(&sb, &reg, "charts/app", &["1.0.0"]);
    let archive = sb.path().join("app.tar");
    let archive_arg = format!("oci-archive:{}", archive.display());
    sb.ok(&[
        "sync",
        &format!("{}/charts/app:1.0.0", reg.host()),
        &archive_arg,
    ]);
    let pristine = fs::read(&archive).unwrap();
    // Each blob's name, its bytes and where they are in the archive.
    let blobs: Vec<(String, &[u8], usize)> = tar::Archive::new(&pristine[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let at = e.raw_file_position() as usize;
            (name, &pristine[at..at + e.size() as usize], at)
        })
        .filter(|(name, _, _)| name.starts_with("blobs/"))
        .collect();
    let find = |what: &dyn Fn(&[u8]) -> bool| {
        let (name, _, at) = blobs.iter().find(|(_, bytes, _)| what(bytes)).unwrap();
        (name.clone(), *at)
    };
    let is_manifest = |b: &[u8]| b.windows(13).any(|w| w == b"schemaVersion");
    // The manifest, the config and the chart layer: one bit flipped in place in each, in
    // turn, the size unchanged.
    let manifest = find(&is_manifest);
    let config = find(&|b| b.starts_with(b"{") && !is_manifest(b));
    let layer = find(&|b| b.starts_with(&[0x1f, 0x8b]));
    for (name, at) in [manifest, config, layer] {
        let mut bytes = pristine.clone();
        bytes[at + 10] ^= 1;
        fs::write(&archive, &bytes).unwrap();
        let out = sb.run(&["sync", &archive_arg, &format!("{}/vendor", dest.host())]);
        let line = error_line_of(&out, "sync out of a tampered archive");
        assert!(line.contains("content does not match"), "{line}");
        assert_eq!(line.matches(name.as_str()).count(), 1, "{line}");
        assert_eq!(served_digest(&dest, "vendor/app", "1.0.0"), None);
    }
}

#[test]
fn layout_arguments_are_checked_before_anything_is_written() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    publish(&sb, &reg, "charts/app", &["1.0.0", "1.1.0"]);
    let archive = sb.path().join("one.tar");
    // `:REF` names one artifact; the repository has two.
    let out = sb.run(&[
        "sync",
        &format!("{}/charts/app", reg.host()),
        &format!("oci-archive:{}:only", archive.display()),
    ]);
    let line = error_line_of(&out, "sync into oci-archive:…:only");
    assert!(line.contains("names one artifact"), "{line}");
    assert!(!archive.exists());
    // Not a layout.
    let out = sb.run(&[
        "sync",
        &format!("oci:{}", sb.path().join("missing").display()),
        &format!("{}/x", reg.host()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // A path that cannot be the place: said before anything is copied.
    let from = format!("{}/charts/app:1.0.0", reg.host());
    let file = sb.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    for (place, says) in [
        (
            format!("oci-archive:{}", sb.path().display()),
            "a directory, not an archive",
        ),
        (
            format!("oci:{}", file.display()),
            "a file, not a layout directory",
        ),
        ("oci:".to_string(), "no path given"),
    ] {
        let out = sb.run(&["sync", &from, &place]);
        let line = error_line_of(&out, &format!("sync into {place}"));
        assert!(line.contains(says), "{line}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("synced"), "{stdout}");
    }
    // --dry-run writes no archive.
    let out = sb.ok(&[
        "sync",
        "--dry-run",
        &format!("{}/charts/app", reg.host()),
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert!(
        out.contains("would sync") || out.contains("To sync: 2"),
        "{out}"
    );
    assert!(!archive.exists());
}

/// Ref names other tools write (a Helm version with build metadata, a reference without a
/// host): each entry is read under a name, `:REF` takes exactly the one it names, and a ref
/// name no artifact could stand for is refused, never skipped or taken for "all".
#[test]
fn every_ref_name_of_a_layout_is_read_or_refused() {
    let reg = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    let published = publish(&sb, &reg, "charts/app", &["1.0.0", "1.1.0", "1.2.0"]);
    let layout = sb.path().join("mixed");
    for (version, name) in [
        ("1.0.0", "good"),
        ("1.1.0", "1.1.0+build.7"),
        ("1.2.0", "team/app:1.2.0"),
    ] {
        let from = format!("{}/charts/app:{version}", reg.host());
        sb.ok(&["sync", &from, &format!("oci:{}:{name}", layout.display())]);
    }
    let oci = |reference: &str| format!("oci:{}:{reference}", layout.display());

    // `:REF` takes that one only.
    let out = sb.ok(&[
        "sync",
        &oci("team/app:1.2.0"),
        &format!("{}/one", dest.host()),
    ]);
    assert!(out.contains("Synced: 1, skipped: 0"), "{out}");
    assert_eq!(
        served_digest(&dest, "one/app", "1.2.0"),
        Some(published["1.2.0"].clone())
    );
    assert_eq!(served_digest(&dest, "one/mixed", "good"), None);

    // The whole layout: all three, the build metadata written `_` as Helm writes it in tags.
    let out = sb.ok(&[
        "sync",
        &format!("oci:{}", layout.display()),
        &format!("{}/all", dest.host()),
    ]);
    assert!(out.contains("Synced: 3"), "{out}");
    assert_eq!(
        served_digest(&dest, "all/mixed", "1.1.0_build.7"),
        Some(published["1.1.0"].clone())
    );
    assert_eq!(
        served_digest(&dest, "all/mixed", "good"),
        Some(published["1.0.0"].clone())
    );

    // A ref name nothing can stand for: refused as a source, and as a target before anything
    // is copied.
    let out = sb.run(&["sync", &oci("x@y"), &format!("{}/bad", dest.host())]);
    let line = error_line_of(&out, "sync oci:…:x@y");
    assert!(line.contains("not a tag or an image reference"), "{line}");
    let archive = sb.path().join("bad.tar");
    let out = sb.run(&[
        "sync",
        &format!("{}/charts/app:1.0.0", reg.host()),
        &format!("oci-archive:{}:has space", archive.display()),
    ]);
    let line = error_line_of(&out, "sync into oci-archive:…:has space");
    assert!(line.contains("not a tag or an image reference"), "{line}");
    assert!(!out.status.success() && !archive.exists());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("synced"), "{stdout}");
}

#[test]
fn the_cache_goes_into_an_archive_and_back_out_into_another_cache() {
    let outside = Sandbox::new();
    outside.save("app", "1.0.0", "registry.example.com/charts/app:1.0.0");
    outside.save("app", "1.1.0", "registry.example.com/charts/app:1.1.0");
    let archive = outside.path().join("charts.tar");
    let archive_arg = format!("oci-archive:{}", archive.display());
    let out = outside.ok(&["sync", "cache:", &archive_arg]);
    assert!(out.contains("Synced: 2"), "{out}");

    let inside = Sandbox::new();
    let out = inside.ok(&["sync", &archive_arg, "cache:"]);
    assert!(out.contains("Synced: 2"), "{out}");
    for tag in ["1.0.0", "1.1.0"] {
        let name = format!("registry.example.com/charts/app:{tag}");
        assert_eq!(
            inside.manifest_digest(&name),
            outside.manifest_digest(&name)
        );
    }
    inside.ok(&["chart", "verify"]);
    // Again: nothing to do.
    let out = inside.ok(&["sync", &archive_arg, "cache:"]);
    assert!(out.contains("skipped: 2"), "{out}");
}

#[test]
fn an_image_index_goes_from_a_layout_into_the_cache_and_back() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    sb.save("other", "1.0.0", "localhost:5000/x/other:1.0.0");
    let (index_digest, children) = push_image_index(&reg, "images/web", "2.0");
    let layout = sb.path().join("layout");
    let layout_arg = format!("oci:{}", layout.display());
    sb.ok(&[
        "sync",
        &format!("{}/images/web:2.0", reg.host()),
        &layout_arg,
    ]);
    let out = sb.ok(&["sync", &layout_arg, "cache:"]);
    assert!(out.contains("Synced: 1"), "{out}");
    let name = format!("{}/images/web:2.0", reg.host());
    assert_eq!(sb.manifest_digest(&name), index_digest);
    let listed = sb.ok(&["cache", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&name) && l.contains("image index")),
        "{listed}"
    );
    sb.ok(&["chart", "verify"]);
    // Back out into another layout: the same index and every platform.
    let again = sb.path().join("again");
    sb.ok(&[
        "sync",
        &format!("cache:{name}"),
        &format!("oci:{}", again.display()),
    ]);
    for d in children.iter().chain([&index_digest]) {
        let hex = d.strip_prefix("sha256:").unwrap();
        assert!(again.join("blobs/sha256").join(hex).is_file(), "{d}");
    }
}

/// A sync of a chart from a registry whose chart layer stops half-way with the connection
/// left open, into `archive`: stuck in the middle of writing it. Returns once the layer's
/// download has begun (and, with `temp`, once a file is in that temporary directory).
fn stuck_archive_sync(
    sb: &Sandbox,
    archive: &std::path::Path,
    temp: Option<&std::path::Path>,
) -> (fault::FakeRegistry, fault::Artifact, std::process::Child) {
    use fault::{Artifact, FakeRegistry, Response};
    let dir = tempfile::tempdir().unwrap();
    let tgz = fs::read(support::chart_tgz(dir.path(), "app", "1.0.0")).unwrap();
    let art = Artifact::chart("charts/app", "1.0.0", "app", "1.0.0", &tgz);
    let (served, layer_path) = (art.clone(), art.blob_path(&art.chart_digest));
    let half = tgz[..tgz.len() / 2].to_vec();
    let declared = tgz.len();
    let reg = FakeRegistry::start(move |req| {
        if req.path == layer_path && req.method == "GET" {
            return Some(Response::Stall {
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body: half.clone(),
                declared,
            });
        }
        served.serve(req)
    });
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let child = sb
        .std_command(Sandbox::bin())
        .arg("--home")
        .arg(sb.cache_home())
        .args(["sync", &format!("{}/charts/app:1.0.0", reg.host())])
        .arg(format!("oci-archive:{}", archive.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let layer = format!("/v2/charts/app/blobs/{}", sha256_prefixed(&tgz));
    while reg.count("GET", &layer) == 0 || temp.is_some_and(|t| files(t).is_empty()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            reg.requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (reg, art, child)
}

/// Makes `path` look untouched for a minute, as a file a killed writer left is.
fn settle(path: &std::path::Path) {
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(minute_ago).unwrap();
}

/// The names of the files in `dir`.
fn files(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_archive_killed_mid_way_leaves_nothing_at_its_path() {
    let sb = Sandbox::new();
    let archive = sb.path().join("out").join("app.tar");
    let (_stuck, art, mut child) = stuck_archive_sync(&sb, &archive, None);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !archive.exists(),
        "a half archive was left at {}",
        archive.display()
    );
    // It was being written: beside the target, in a temporary file of its own.
    let dir = archive.parent().unwrap();
    let partials = || -> Vec<String> {
        files(dir)
            .into_iter()
            .filter(|n| n.contains("partial"))
            .collect()
    };
    assert_eq!(partials().len(), 1, "{:?}", partials());
    for name in partials() {
        settle(&dir.join(name));
    }

    // The next sync into the same archive finishes it and clears what the killed one left.
    let honest = fault::FakeRegistry::start(move |req| art.serve(req));
    sb.ok(&[
        "sync",
        &format!("{}/charts/app:1.0.0", honest.host()),
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert!(archive.is_file());
    assert!(partials().is_empty(), "{:?}", partials());
}

/// Ctrl-C in the middle of a sync into an archive: the command stops with 130 and leaves no
/// file behind, beside the archive or in the temporary directory (the layer being downloaded).
#[test]
fn an_archive_interrupted_by_ctrl_c_leaves_no_file_anywhere() {
    let mut sb = Sandbox::new();
    let temp = sb.path().join("tmp");
    fs::create_dir_all(&temp).unwrap();
    sb.set_env("TMPDIR", &temp);
    let out_dir = sb.path().join("out");
    let (_stuck, _, child) = stuck_archive_sync(&sb, &out_dir.join("app.tar"), Some(&temp));
    assert!(!files(&out_dir).is_empty(), "the archive was being written");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(files(&out_dir), Vec::<String>::new());
    assert_eq!(files(&temp), Vec::<String>::new());
}

/// A layout directory keeps no temp file a killed writer left: the next writer removes it,
/// and leaves alone the one a live writer holds.
#[test]
fn temp_files_killed_writers_left_in_a_layout_are_removed() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    publish(&sb, &reg, "charts/app", &["1.0.0", "1.1.0"]);
    let layout = sb.path().join("layout");
    let into = format!("oci:{}", layout.display());
    sb.ok(&["sync", &format!("{}/charts/app:1.0.0", reg.host()), &into]);
    let blobs = layout.join("blobs").join("sha256");
    let dead = [
        blobs.join(".partial-dead01"),
        layout.join(".partial-dead02"),
    ];
    for path in &dead {
        fs::write(path, b"half a blob").unwrap();
        settle(path);
    }
    let live = blobs.join(".partial-live01");
    let held = fs::File::create(&live).unwrap();
    held.lock().unwrap();
    settle(&live);
    // Just made, not locked yet (its writer is between the two): left alone too.
    let young = blobs.join(".partial-young1");
    fs::write(&young, b"").unwrap();

    sb.ok(&["sync", &format!("{}/charts/app:1.1.0", reg.host()), &into]);
    for path in &dead {
        assert!(!path.exists(), "{} was left", path.display());
    }
    assert!(live.exists(), "a live writer's file was removed");
    assert!(young.exists(), "a file made a moment ago was removed");
    drop(held);
}

fn sha256_prefixed(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

#[test]
fn image_indexes_move_whole_between_registries() {
    let source = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    let (index_digest, children) = push_image_index(&source, "images/web", "2.0");
    let out = sb.ok(&[
        "sync",
        &format!("{}/images/web", source.host()),
        &format!("{}/mirror", dest.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_eq!(
        served_digest(&dest, "mirror/web", "2.0").as_deref(),
        Some(index_digest.as_str())
    );
    for child in &children {
        assert_eq!(
            served_digest(&dest, "mirror/web", child).as_deref(),
            Some(child.as_str())
        );
    }
    let out = sb.ok(&[
        "sync",
        &format!("{}/images/web", source.host()),
        &format!("{}/mirror", dest.host()),
    ]);
    assert!(out.contains("skipped: 1"), "{out}");
}

#[test]
fn a_classic_repository_syncs_as_repo_migrate_would_push_it() {
    let mut repo = classic::RepoFixture::new();
    for (name, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.1.0+build.1"),
        ("beta", "0.1.0"),
    ] {
        repo.add(name, version);
    }
    repo.add_prov("alpha", "1.0.0");
    repo.write_index();
    let server = classic::FileServer::start(repo.root());
    let reg = Registry::plain();
    let sb = Sandbox::new();

    sb.ok(&[
        "repo",
        "migrate",
        &server.url(),
        &format!("{}/migrated", reg.host()),
    ]);
    let out = sb.ok(&["sync", &server.url(), &format!("{}/synced", reg.host())]);
    assert!(out.contains("Synced: 3"), "{out}");
    for (name, tag) in [
        ("alpha", "1.0.0"),
        ("alpha", "1.1.0_build.1"),
        ("beta", "0.1.0"),
    ] {
        let migrated = served_digest(&reg, &format!("migrated/{name}"), tag);
        assert!(migrated.is_some(), "{name}:{tag}");
        assert_eq!(
            served_digest(&reg, &format!("synced/{name}"), tag),
            migrated,
            "{name}:{tag}: the same manifest as repo migrate pushes"
        );
    }
    // Into an archive too, and a rerun into the registry has nothing to do.
    let archive = sb.path().join("classic.tar");
    let out = sb.ok(&[
        "sync",
        "--constraint",
        "<1.1",
        &server.url(),
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert!(out.contains("Synced: 2"), "{out}");
    let out = sb.ok(&["sync", &server.url(), &format!("{}/synced", reg.host())]);
    assert!(out.contains("skipped: 3"), "{out}");
}

#[test]
fn platform_picks_some_platforms_of_an_index() {
    let source = Registry::plain();
    let dest = Registry::plain();
    let sb = Sandbox::new();
    let (index_digest, children) = push_image_index(&source, "images/web", "2.0");
    let from = format!("{}/images/web:2.0", source.host());

    // One platform: a rewritten index with only that one, and only its manifest copied.
    sb.ok(&[
        "sync",
        "--platform",
        "linux/arm64",
        &from,
        &format!("{}/arm", dest.host()),
    ]);
    let resp = dest.request(
        "GET",
        "/v2/arm/web/manifests/2.0",
        &[("Accept", OCI_INDEX)],
        &[],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let index: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let kept: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [children[1].as_str()]);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    assert_eq!(served_digest(&dest, "arm/web", &children[0]), None);
    // A rerun finds the selection there already: nothing is written again.
    let out = sb.ok(&[
        "sync",
        "--platform",
        "linux/arm64",
        &from,
        &format!("{}/arm", dest.host()),
    ]);
    assert!(out.contains("Synced: 0, skipped: 1"), "{out}");

    // Every platform it has: the index is copied as it is, digest kept.
    sb.ok(&[
        "sync",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &from,
        &format!("{}/both", dest.host()),
    ]);
    assert_eq!(
        served_digest(&dest, "both/web", "2.0").as_deref(),
        Some(index_digest.as_str())
    );

    // A platform it does not have fails that item; a malformed one is refused up front.
    let out = sb.run(&[
        "sync",
        "--platform",
        "windows/amd64",
        &from,
        &format!("{}/none", dest.host()),
    ]);
    let line = error_line_of(&out, "sync --platform windows/amd64");
    assert!(line.contains("no platform"), "{line}");
    let out = sb.run(&["sync", "--platform", "amd64", &from, &dest.host()]);
    let line = error_line_of(&out, "sync --platform amd64");
    assert!(line.contains("OS/ARCH"), "{line}");
}
