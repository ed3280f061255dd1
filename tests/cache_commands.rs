//! The commands that work on what is already cached: list (ls), export, remove (rm), tag,
//! show, prune and verify; plus shell completion and `--help` for every subcommand.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{
    Home, Lcg, Run, assert_same_snapshot, fixture, helm_admitted_files, human_size, read_tree,
    uitable, write_chart,
};

const HEADER: [&str; 6] = ["REF", "NAME", "VERSION", "DIGEST", "SIZE", "CREATED"];

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Splits a uitable rendering back into trimmed cells.
fn table_cells(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|l| l.split('\t').map(|c| c.trim_end().to_string()).collect())
        .collect()
}

/// A chart whose README is barely compressible, so that its package is a few KiB.
fn text_chart(home: &Home) -> std::path::PathBuf {
    let dir = home.scratch("text").join("textchart");
    let readme = Lcg::new(7).text(6000);
    write_chart(&dir, "textchart", "1.0.0", &[("README.md", &readme)]);
    dir
}

#[test]
fn list_renders_helms_table() {
    let home = Home::new();
    let simple = home.save(
        &fixture("simple"),
        Some("localhost:5000/myrepo/simple:0.1.0"),
    );
    home.ok(&[
        "chart",
        "tag",
        "localhost:5000/myrepo/simple:0.1.0",
        "localhost:5000/a/simple:prod",
    ]);
    let text = home.save(&text_chart(&home), Some("localhost:5000/b/textchart:1.0.0"));
    let v1 = home.save(&fixture("v1-requirements"), None);

    // CREATED is the age of the content blob: pin it.
    let now = SystemTime::now();
    let hours = |h: u64| now - Duration::from_secs(h * 3600);
    set_mtime(
        &home.blob_path(&simple.content),
        hours(3) - Duration::from_secs(600),
    );
    set_mtime(&home.blob_path(&text.content), hours(49));
    set_mtime(&home.blob_path(&v1.content), hours(24 * 21));

    let run = home.ok(&["chart", "list"]);
    let rows = table_cells(&run.stdout);
    assert_eq!(rows[0], HEADER, "{}", run.stdout);
    assert_eq!(
        uitable(&rows),
        run.stdout,
        "cells padded to the column width, tab-separated, as uitable does"
    );
    let refs: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        refs,
        [
            "localhost/v1-requirements:2.0.1_build.7",
            "localhost:5000/a/simple:prod",
            "localhost:5000/b/textchart:1.0.0",
            "localhost:5000/myrepo/simple:0.1.0",
        ],
        "rows sorted by ref"
    );
    let size = |hex: &str| human_size(fs::metadata(home.blob_path(hex)).unwrap().len());
    let expect = |r: &[String], name: &str, version: &str, content: &str, created: &str| {
        assert_eq!(r[1], name);
        assert_eq!(r[2], version);
        assert_eq!(r[3], &content[..7], "DIGEST: 7 hex of the content blob");
        assert_eq!(r[4], size(content));
        assert_eq!(r[5], created);
    };
    expect(
        &rows[1],
        "v1-requirements",
        "2.0.1+build.7",
        &v1.content,
        "3 weeks",
    );
    expect(&rows[2], "simple", "0.1.0", &simple.content, "3 hours");
    expect(&rows[3], "textchart", "1.0.0", &text.content, "2 days");
    expect(&rows[4], "simple", "0.1.0", &simple.content, "3 hours");
    assert!(
        rows[2][4].ends_with(" B"),
        "a small chart is sized in B: {}",
        rows[2][4]
    );
    assert!(
        rows[3][4].ends_with(" KiB"),
        "a bigger one in KiB: {}",
        rows[3][4]
    );

    let ls = home.ok(&["chart", "ls"]);
    assert_eq!(ls.stdout, run.stdout, "ls is list");
}

#[test]
fn list_truncates_long_refs_like_uitable() {
    let home = Home::new();
    let long =
        "localhost:5000/a-very-long-organisation-name/with/many/levels/of/nesting/simple:0.1.0";
    let short = "localhost/simple:0.1.0";
    let saved = home.save(&fixture("simple"), Some(long));
    home.ok(&["chart", "tag", long, short]);
    set_mtime(
        &home.blob_path(&saved.content),
        SystemTime::now() - Duration::from_secs(5 * 3600),
    );
    let size = human_size(home.read_blob(&saved.content).len() as u64);
    let row = |r: &str| -> Vec<String> {
        vec![
            r.to_string(),
            "simple".into(),
            "0.1.0".into(),
            saved.content[..7].to_string(),
            size.clone(),
            "5 hours".into(),
        ]
    };
    let expected = uitable(&[HEADER.map(String::from).to_vec(), row(short), row(long)]);
    let run = home.ok(&["chart", "list"]);
    assert_eq!(run.stdout, expected);
    let first_line = run.stdout.lines().next().unwrap();
    assert_eq!(first_line.split('\t').next().unwrap().len(), 60);
    assert!(run.stdout.contains("/le...\t"), "{}", run.stdout);
}

#[test]
fn list_json_has_full_digests() {
    let home = Home::new();
    let reference = "localhost:5000/myrepo/simple:0.1.0";
    let saved = home.save(&fixture("simple"), Some(reference));
    set_mtime(
        &home.blob_path(&saved.content),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let list = home.list_json();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e["ref"], reference);
    assert_eq!(e["name"], "simple");
    assert_eq!(e["version"], "0.1.0");
    assert_eq!(e["digest"], format!("sha256:{}", saved.content));
    assert_eq!(e["meta"], format!("sha256:{}", saved.meta));
    assert_eq!(
        e["manifest"],
        format!("sha256:{}", home.link_hex(reference, "manifest"))
    );
    assert_eq!(e["size"], home.read_blob(&saved.content).len());
    assert_eq!(e["created"], "2023-11-14T22:13:20Z");
    let ls = home.ok(&["chart", "ls", "--output", "json"]);
    let again: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(again, serde_json::Value::Array(list));
}

#[test]
fn an_empty_cache_lists_only_the_header() {
    let home = Home::new();
    let run = home.ok(&["chart", "list"]);
    assert_eq!(run.stdout, "REF\tNAME\tVERSION\tDIGEST\tSIZE\tCREATED\n");
    assert_eq!(run.stderr, "");
    assert!(home.list_json().is_empty());
}

/// `chart export REF -d DIR`, asserted successful, with the seed's output.
fn export(home: &Home, reference: &str, dest: &Path, name: &str) -> Run {
    let run = home.ok(&[
        "chart".as_ref(),
        "export".as_ref(),
        reference.as_ref(),
        "-d".as_ref(),
        dest.as_os_str(),
    ]);
    let lines = run.lines();
    assert_eq!(lines.len(), 5, "{}", run.describe());
    assert_eq!(lines[0], format!("Name: {name}"));
    assert!(lines[1].starts_with("Version: "));
    assert!(lines[2].starts_with("Meta: sha256:"));
    assert!(lines[3].starts_with("Content: sha256:"));
    assert_eq!(
        lines[4],
        format!("Exported to {}/{name}/", dest.display()),
        "{}",
        run.describe()
    );
    run
}

#[test]
fn export_writes_the_files_helm_would_package() {
    let home = Home::new();
    let out = home.scratch("out");
    for (name, reference) in [
        ("simple", "localhost:5000/myrepo/simple:0.1.0"),
        (
            "with-helmignore",
            "localhost:5000/myrepo/with-helmignore:0.3.0",
        ),
        (
            "with-subcharts",
            "localhost:5000/myrepo/with-subcharts:1.0.0",
        ),
        (
            "v1-requirements",
            "localhost:5000/myrepo/v1-requirements:2.0.1_build.7",
        ),
    ] {
        let saved = home.save(&fixture(name), Some(reference));
        let run = export(&home, reference, &out, name);
        assert!(run.stdout.contains(&saved.content));
        let exported = read_tree(&out.join(name));
        let expected = helm_admitted_files(&fixture(name));
        assert_eq!(
            exported.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{name}: file list"
        );
        for (rel, data) in &expected {
            assert!(exported[rel] == *data, "{name}/{rel} differs");
        }
    }
    // Only DIR/<name> is written: no staging leftovers.
    let tops: BTreeSet<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        tops,
        [
            "simple",
            "v1-requirements",
            "with-helmignore",
            "with-subcharts"
        ]
        .map(String::from)
        .into()
    );
    // The fixture's expectations, spelled out.
    let got: BTreeSet<String> = read_tree(&out.join("with-helmignore"))
        .into_keys()
        .collect();
    assert!(got.contains("docs/secret.yaml") && !got.contains("secret.yaml"));
    assert!(!got.contains("templates/.hidden") && got.contains("templates/sub/.hidden"));
}

#[test]
fn export_creates_the_destination_and_uses_the_chart_name() {
    let home = Home::new();
    // A package whose top folder is not the chart name: Helm strips it whatever it is.
    let tgz = home.scratch("pkg").join("odd.tgz");
    common::TgzBuilder::new()
        .file(
            "folder/Chart.yaml",
            b"apiVersion: v2\nname: realname\nversion: 1.2.3\n",
        )
        .file("folder/templates/a.yaml", b"kind: A\n")
        .write(&tgz);
    home.save(&tgz, Some("localhost:5000/x/realname:1.2.3"));
    let dest = home.root().join("not/yet/there");
    export(&home, "localhost:5000/x/realname:1.2.3", &dest, "realname");
    let tree = read_tree(&dest.join("realname"));
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        ["Chart.yaml", "templates/a.yaml"]
    );
    // A chart directory named unlike the chart.
    let dir = home.scratch("src").join("some-other-dir");
    common::copy_dir(&fixture("simple"), &dir);
    home.save(&dir, Some("localhost:5000/x/simple:0.1.0"));
    export(&home, "localhost:5000/x/simple:0.1.0", &dest, "simple");
    assert_eq!(
        read_tree(&dest.join("simple")),
        read_tree(&fixture("simple"))
    );
}

#[test]
fn export_defaults_to_the_current_directory() {
    let home = Home::new();
    home.save(
        &fixture("simple"),
        Some("localhost:5000/myrepo/simple:0.1.0"),
    );
    let cwd = home.scratch("cwd");
    let out = home
        .cmd()
        .current_dir(&cwd)
        .args(["chart", "export", "localhost:5000/myrepo/simple:0.1.0"])
        .output()
        .unwrap();
    let run = Run::from_output(out);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.lines().last(),
        Some(&"Exported to simple/"),
        "{}",
        run.describe()
    );
    assert_eq!(
        read_tree(&cwd.join("simple")),
        read_tree(&fixture("simple"))
    );
}

#[test]
fn export_refuses_a_non_empty_target_unless_forced() {
    let home = Home::new();
    let reference = "localhost:5000/myrepo/simple:0.1.0";
    home.save(&fixture("simple"), Some(reference));
    let out = home.scratch("out");
    let target = out.join("simple");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("keep.txt"), "mine\n").unwrap();
    let before = common::snapshot(&out);
    let cache_before = home.snapshot();
    let run = home.run(&[
        "chart".as_ref(),
        "export".as_ref(),
        reference.as_ref(),
        "-d".as_ref(),
        out.as_os_str(),
    ]);
    run.assert_error(&[&target.display().to_string()]);
    assert_same_snapshot(&before, &common::snapshot(&out), "refused export target");
    assert_same_snapshot(&cache_before, &home.snapshot(), "refused export cache");

    // A file in the way counts too.
    let file_out = home.scratch("file-out");
    fs::write(file_out.join("simple"), "a file\n").unwrap();
    let run = home.run(&[
        "chart".as_ref(),
        "export".as_ref(),
        reference.as_ref(),
        "-d".as_ref(),
        file_out.as_os_str(),
    ]);
    run.assert_error(&["simple"]);
    assert_eq!(fs::read(file_out.join("simple")).unwrap(), b"a file\n");

    // A destination that is a file is named as such, --force or not.
    let not_dir = file_out.join("simple");
    for force in [false, true] {
        let mut args = vec![
            "chart".as_ref(),
            "export".as_ref(),
            reference.as_ref(),
            "-d".as_ref(),
            not_dir.as_os_str(),
        ];
        if force {
            args.push("--force".as_ref());
        }
        let run = home.run(&args);
        run.assert_error(&[&not_dir.display().to_string(), "not a directory"]);
        assert_eq!(fs::read(&not_dir).unwrap(), b"a file\n");
    }

    // --force replaces it, keeping nothing of the old one.
    let run = home.ok(&[
        "chart".as_ref(),
        "export".as_ref(),
        reference.as_ref(),
        "-d".as_ref(),
        out.as_os_str(),
        "--force".as_ref(),
    ]);
    assert!(run.stdout.contains("Exported to"));
    assert_eq!(read_tree(&target), read_tree(&fixture("simple")));
    let run = home.ok(&[
        "chart".as_ref(),
        "export".as_ref(),
        reference.as_ref(),
        "-d".as_ref(),
        file_out.as_os_str(),
        "-f".as_ref(),
    ]);
    assert!(run.stdout.contains("Exported to"));
    assert_eq!(
        read_tree(&file_out.join("simple")),
        read_tree(&fixture("simple"))
    );

    // An empty directory is not in the way.
    let empty_out = home.scratch("empty-out");
    fs::create_dir_all(empty_out.join("simple")).unwrap();
    export(&home, reference, &empty_out, "simple");
    assert_eq!(
        read_tree(&empty_out.join("simple")),
        read_tree(&fixture("simple"))
    );
}

#[test]
fn export_and_show_by_manifest_digest() {
    let home = Home::new();
    let reference = "localhost:5000/myrepo/simple:0.1.0";
    home.save(&fixture("simple"), Some(reference));
    home.save(
        &fixture("with-helmignore"),
        Some("localhost:5000/myrepo/with-helmignore:0.3.0"),
    );
    let manifest = home.link_hex(reference, "manifest");
    let by_digest = format!("localhost:5000/myrepo/simple@sha256:{manifest}");
    let out = home.scratch("out");
    export(&home, &by_digest, &out, "simple");
    assert_eq!(
        read_tree(&out.join("simple")),
        read_tree(&fixture("simple"))
    );
    let show = home.ok(&["chart", "show", &by_digest]);
    assert_eq!(
        show.stdout.as_bytes(),
        fs::read(fixture("simple/Chart.yaml")).unwrap()
    );
    // The digest belongs to another repository: not found there.
    let elsewhere = format!("localhost:5000/myrepo/with-helmignore@sha256:{manifest}");
    home.run(&["chart", "export", &elsewhere])
        .assert_error(&[&elsewhere]);
}

#[test]
fn remove_prints_each_tag_and_takes_several_refs() {
    let home = Home::new();
    for tag in ["a", "b", "c"] {
        home.save(
            &fixture("simple"),
            Some(&format!("localhost:5000/myrepo/simple:{tag}")),
        );
    }
    let run = home.ok(&[
        "chart",
        "remove",
        "localhost:5000/myrepo/simple:a",
        "localhost:5000/myrepo/simple:b",
    ]);
    assert_eq!(run.stdout, "a: removed\nb: removed\n");
    assert_eq!(run.stderr, "");
    assert_eq!(home.list_refs(), ["localhost:5000/myrepo/simple:c"]);
    assert!(!home.ref_dir("localhost:5000/myrepo/simple:a").exists());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(home.registry().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["localhost:5000/myrepo/simple:c"]);

    let run = home.ok(&["chart", "rm", "localhost:5000/myrepo/simple:c"]);
    assert_eq!(run.stdout, "c: removed\n");
    assert!(home.list_refs().is_empty());
    let leftovers: Vec<_> = fs::read_dir(home.registry().join("refs"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "empty repository dirs are tidied: {leftovers:?}"
    );
    // Blobs stay until prune.
    assert_eq!(home.blob_names().len(), 3);
    home.verify_ok();
}

#[test]
fn remove_reports_an_unknown_ref_and_still_removes_the_others() {
    let home = Home::new();
    for tag in ["x", "y", "z"] {
        home.save(
            &fixture("simple"),
            Some(&format!("localhost:5000/myrepo/simple:{tag}")),
        );
    }
    let unknown = "localhost:5000/myrepo/simple:nope";
    let run = home.run(&[
        "chart",
        "rm",
        "localhost:5000/myrepo/simple:x",
        unknown,
        "localhost:5000/myrepo/simple:y",
    ]);
    assert_eq!(run.stdout, "x: removed\ny: removed\n", "{}", run.describe());
    run.assert_error(&[unknown]);
    assert_eq!(home.list_refs(), ["localhost:5000/myrepo/simple:z"]);
    home.verify_ok();
}

#[test]
fn tag_adds_a_ref_with_the_same_digests() {
    let home = Home::new();
    let src = "localhost:5000/myrepo/simple:0.1.0";
    home.save(&fixture("simple"), Some(src));
    let run = home.ok(&["chart", "tag", src, "localhost:6000/other/simple:prod"]);
    assert_eq!(run.stdout, "prod: tagged\n");
    // Without a tag, the new ref takes the chart version.
    let run = home.ok(&["chart", "tag", src, "localhost:6000/other/simple"]);
    assert_eq!(run.stdout, "0.1.0: tagged\n");
    // By digest.
    let manifest = home.link_hex(src, "manifest");
    let run = home.ok(&[
        "chart",
        "tag",
        &format!("localhost:5000/myrepo/simple@sha256:{manifest}"),
        "localhost/simple:by-digest",
    ]);
    assert_eq!(run.stdout, "by-digest: tagged\n");

    let list = home.list_json();
    assert_eq!(list.len(), 4);
    for e in &list {
        for key in ["name", "version", "digest", "manifest", "meta", "size"] {
            assert_eq!(e[key], list[0][key], "{key} of {}", e["ref"]);
        }
    }
    for r in [
        "localhost:6000/other/simple:prod",
        "localhost:6000/other/simple:0.1.0",
        "localhost/simple:by-digest",
    ] {
        assert!(home.ref_dir(r).join("chart").is_file(), "{r}");
    }
    assert_eq!(home.blob_names().len(), 3, "tag stores no new blobs");
    home.verify_ok();

    // Tagging over an existing tag moves it.
    let other = home.save(
        &fixture("with-helmignore"),
        Some("localhost/with-helmignore:0.3.0"),
    );
    home.ok(&[
        "chart",
        "tag",
        "localhost/with-helmignore:0.3.0",
        "localhost:6000/other/simple:prod",
    ]);
    assert_eq!(
        home.link_hex("localhost:6000/other/simple:prod", "content"),
        other.content
    );
    home.verify_ok();
}

#[test]
fn show_prints_chart_values_readme_and_all() {
    let home = Home::new();
    let r = "localhost:5000/myrepo/simple:0.1.0";
    home.save(&fixture("simple"), Some(r));
    let read = |f: &str| String::from_utf8(fs::read(fixture("simple").join(f)).unwrap()).unwrap();
    let (chart, values, readme) = (read("Chart.yaml"), read("values.yaml"), read("README.md"));
    assert_eq!(home.ok(&["chart", "show", r]).stdout, chart);
    assert_eq!(home.ok(&["chart", "show", r, "chart"]).stdout, chart);
    assert_eq!(home.ok(&["chart", "show", r, "values"]).stdout, values);
    assert_eq!(home.ok(&["chart", "show", r, "readme"]).stdout, readme);
    assert_eq!(
        home.ok(&["chart", "show", r, "all"]).stdout,
        format!("{chart}---\n{values}---\n{readme}")
    );
}

#[test]
fn prune_deletes_only_what_no_ref_uses() {
    let home = Home::new();
    let keep = home.save(&fixture("simple"), Some("localhost/simple:0.1.0"));
    home.save(&fixture("simple"), Some("localhost/simple:other"));
    let gone = home.save(
        &fixture("with-helmignore"),
        Some("localhost/with-helmignore:0.3.0"),
    );
    let gone_manifest = home.link_hex("localhost/with-helmignore:0.3.0", "manifest");
    let kept_blobs = {
        let mut b = vec![
            keep.meta.clone(),
            keep.content.clone(),
            home.link_hex("localhost/simple:0.1.0", "manifest"),
        ];
        b.sort();
        b
    };
    let freed: u64 = [&gone.meta, &gone.content, &gone_manifest]
        .iter()
        .map(|h| fs::metadata(home.blob_path(h)).unwrap().len())
        .sum();
    assert_eq!(home.blob_names().len(), 6);

    home.ok(&[
        "chart",
        "rm",
        "localhost/with-helmignore:0.3.0",
        "localhost/simple:other",
    ]);
    let run = home.ok(&["chart", "prune"]);
    assert!(
        run.stdout.contains("3 blobs") && run.stdout.contains(&human_size(freed)),
        "prune should say it deleted 3 blobs and freed {}\n{}",
        human_size(freed),
        run.describe()
    );
    assert_eq!(home.blob_names(), kept_blobs);
    assert!(!home.registry().join("charts/with-helmignore").exists());
    assert!(
        home.registry()
            .join("charts/simple/versions/0.1.0")
            .is_file()
    );
    assert_eq!(home.list_refs(), ["localhost/simple:0.1.0"]);
    home.verify_ok();
    let out = home.scratch("out");
    export(&home, "localhost/simple:0.1.0", &out, "simple");

    // Nothing left to do.
    let before = home.snapshot();
    let run = home.ok(&["chart", "prune"]);
    assert!(!run.stdout.contains("freed"), "{}", run.describe());
    assert_same_snapshot(&before, &home.snapshot(), "second prune");
}

#[test]
fn prune_clears_what_crashed_writers_left() {
    let home = Home::new();
    let saved = home.save(&fixture("simple"), Some("localhost/simple:0.1.0"));
    let tags = home.registry().join("refs/localhost/simple/tags");
    let staging = tags.join(".new-0.1.0-crashed");
    fs::create_dir_all(&staging).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../blobs/sha256/{}", saved.content),
        staging.join("content"),
    )
    .unwrap();
    let stale = home.registry().join(".tmp/blob-crashed");
    fs::write(&stale, vec![b'x'; 4096]).unwrap();
    set_mtime(&stale, SystemTime::now() - Duration::from_secs(3600));

    home.ok(&["chart", "prune"]);
    assert!(
        !staging.exists(),
        "prune should remove {}",
        staging.display()
    );
    assert!(!stale.exists(), "prune should remove {}", stale.display());
    assert_eq!(home.list_refs(), ["localhost/simple:0.1.0"]);
    home.verify_ok();
}

#[test]
fn a_save_clears_stale_temp_files() {
    let home = Home::new();
    home.save(&fixture("simple"), None);
    let stale = home.registry().join(".tmp/blob-crashed");
    fs::write(&stale, b"half a blob").unwrap();
    set_mtime(&stale, SystemTime::now() - Duration::from_secs(3600));
    home.save(&fixture("with-helmignore"), None);
    assert!(
        !stale.exists(),
        "the next write should clean {}",
        stale.display()
    );
}

#[test]
fn verify_passes_on_sound_caches() {
    let empty = Home::new();
    empty.verify_ok();
    let home = Home::new();
    home.save(
        &fixture("simple"),
        Some("localhost:5000/myrepo/simple:0.1.0"),
    );
    home.save(&fixture("with-subcharts"), None);
    let run = home.verify_ok();
    assert_eq!(run.stderr, "");
}

/// Asserts verify fails: exit 1, one `Error:` line, and the output names `mention`.
fn verify_fails(home: &Home, mention: &str) {
    let run = home.run(&["chart", "verify"]);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    assert!(
        run.stdout.contains(mention) || run.stderr.contains(mention),
        "verify should name {mention}\n{}",
        run.describe()
    );
}

#[test]
fn verify_finds_a_corrupt_blob() {
    let home = Home::new();
    let saved = home.save(&fixture("simple"), None);
    let path = home.blob_path(&saved.content);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"!").unwrap();
    drop(f);
    verify_fails(&home, &saved.content);
}

#[test]
fn verify_finds_a_stray_file_among_the_blobs() {
    let home = Home::new();
    home.save(&fixture("simple"), None);
    fs::write(home.registry().join("blobs/sha256/not-a-digest"), b"x").unwrap();
    verify_fails(&home, "not-a-digest");
}

#[test]
fn verify_finds_dangling_links() {
    for link in ["manifest", "content", "meta", "chart"] {
        let home = Home::new();
        home.save(&fixture("simple"), None);
        if link == "chart" {
            fs::remove_file(home.registry().join("charts/simple/versions/0.1.0")).unwrap();
        } else {
            let hex = home.link_hex("localhost/simple:0.1.0", link);
            fs::remove_file(home.blob_path(&hex)).unwrap();
        }
        verify_fails(&home, "localhost/simple:0.1.0");
        verify_fails(&home, link);
    }
}

#[test]
fn index_json_is_edited_in_place_and_prune_compacts_it() {
    let home = Home::new();
    let names: Vec<String> = ["c", "a", "d", "b", "e"]
        .iter()
        .map(|t| format!("localhost:5000/edit/simple:{t}"))
        .collect();
    home.save(&fixture("simple"), Some(&names[0]));
    let index = home.registry().join("index.json");
    let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&index).unwrap());
    let listed = || -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let ino = inode();
    for n in &names[1..] {
        home.ok(&["chart", "tag", &names[0], n]);
    }
    // Appended in the order written, in the same file.
    assert_eq!(listed(), names);
    assert_eq!(inode(), ino);
    home.ok(&["chart", "remove", &names[0], &names[2], &names[4]]);
    assert_eq!(listed(), [names[1].clone(), names[3].clone()]);
    assert_eq!(inode(), ino);
    let blanked = fs::read(&index).unwrap();
    assert!(
        blanked.windows(2).any(|w| w == b"  "),
        "removed entries are blanks"
    );
    home.verify_ok();

    // prune writes it anew: sorted, without blanks, what a rebuild writes.
    home.ok(&["chart", "prune"]);
    let compact = fs::read(&index).unwrap();
    assert!(!compact.windows(2).any(|w| w == b"  "));
    assert_eq!(
        listed(),
        [
            "localhost:5000/edit/simple:a",
            "localhost:5000/edit/simple:b"
        ]
    );
    assert!(compact.len() < blanked.len());
    home.verify_ok();
    // Once compact, prune leaves it be.
    let ino = inode();
    home.ok(&["chart", "prune"]);
    assert_eq!(inode(), ino);
}

#[test]
fn verify_finds_a_missing_index_and_the_next_write_rebuilds_it() {
    let home = Home::new();
    home.save(&fixture("simple"), Some("localhost/simple:0.1.0"));
    fs::remove_file(home.registry().join("index.json")).unwrap();
    verify_fails(&home, "index.json");
    home.save(&fixture("with-helmignore"), None);
    home.verify_ok();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(home.registry().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn a_copied_cache_still_works() {
    let home = Home::new();
    let reference = "localhost:5000/myrepo/simple:0.1.0";
    home.save(&fixture("simple"), Some(reference));
    let copy = Home::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(home.helm_home())
        .arg(copy.helm_home())
        .status()
        .unwrap();
    assert!(status.success());
    drop(home);
    copy.verify_ok();
    assert_eq!(copy.list_refs(), [reference]);
    let out = copy.scratch("out");
    export(&copy, reference, &out, "simple");
    assert_eq!(
        read_tree(&out.join("simple")),
        read_tree(&fixture("simple"))
    );
}

#[test]
fn the_cache_lives_under_home_then_helm_home_then_tilde_helm() {
    let home = Home::new();
    let user = home.root().join("user");
    let env_home = home.root().join("env-home");
    let flag_home = home.root().join("flag-home");
    let save = |args: &[&std::ffi::OsStr], helm_home: Option<&Path>| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.env_clear().env("HOME", &user);
        if let Some(h) = helm_home {
            cmd.env("HELM_HOME", h);
        }
        let out = cmd
            .args(args)
            .args([
                "chart".as_ref(),
                "save".as_ref(),
                fixture("simple").as_os_str(),
            ])
            .output()
            .unwrap();
        let run = Run::from_output(out);
        assert_eq!(run.code, Some(0), "{}", run.describe());
    };
    save(&[], None);
    assert!(
        user.join(".helm/registry/refs/localhost/simple/tags/0.1.0")
            .is_dir()
    );
    save(&[], Some(&env_home));
    assert!(
        env_home
            .join("registry/refs/localhost/simple/tags/0.1.0")
            .is_dir()
    );
    save(&["--home".as_ref(), flag_home.as_os_str()], Some(&env_home));
    assert!(
        flag_home
            .join("registry/refs/localhost/simple/tags/0.1.0")
            .is_dir()
    );
}

#[test]
fn quiet_silences_normal_output_but_not_data() {
    let home = Home::new();
    let run = home.ok(&[
        "-q".as_ref(),
        "chart".as_ref(),
        "save".as_ref(),
        fixture("simple").as_os_str(),
    ]);
    assert_eq!(run.stdout, "");
    let run = home.ok(&["chart", "list", "--quiet"]);
    assert!(run.stdout.contains("localhost/simple:0.1.0"));
}

#[test]
fn completion_prints_scripts() {
    let home = Home::new();
    let bash = home.ok(&["completion", "bash"]);
    assert!(bash.stdout.contains("_chartcache()"), "{}", bash.stdout);
    assert!(bash.stdout.contains("complete -F _chartcache"));
    assert!(bash.stdout.contains("export") && bash.stdout.contains("prune"));
    assert!(
        bash.stdout
            .contains("chartcache__subcmd__cache__subcmd__list")
    );
    let zsh = home.ok(&["completion", "zsh"]);
    assert!(zsh.stdout.starts_with("#compdef chartcache"));
    let fish = home.ok(&["completion", "fish"]);
    assert!(fish.stdout.contains("complete -c chartcache"));
    let run = home.run(&["completion", "no-such-shell"]);
    assert_eq!(run.code, Some(2));
}

/// The subcommands a `--help` lists under `Commands:` (aliases and `help` left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_subcommand_has_help() {
    let home = Home::new();
    let mut seen = Vec::new();
    let mut queue = vec![Vec::<String>::new()];
    while let Some(path) = queue.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let run = home.ok(&args);
        let usage = format!("Usage: chartcache {}", path.join(" "));
        assert!(
            run.stdout.contains(usage.trim_end()),
            "{args:?} should print its usage\n{}",
            run.describe()
        );
        for sub in subcommands(&run.stdout) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        seen.push(path.join(" "));
    }
    for expected in [
        "chart save",
        "chart list",
        "chart export",
        "chart remove",
        "chart tag",
        "chart show",
        "chart prune",
        "chart verify",
        "cache list",
        "completion",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} not reached: {seen:?}"
        );
    }
    // Aliases answer too.
    for alias in [
        ["chart", "ls", "--help"],
        ["chart", "rm", "--help"],
        ["cache", "ls", "--help"],
    ] {
        home.ok(&alias);
    }
}

/// Regression: `chart list -o json | head -c 10` printed `Error: Broken pipe` and exited 1,
/// because the JSON writer's I/O error came wrapped in serde_json's error.
#[test]
fn a_reader_closing_the_pipe_early_is_not_an_error() {
    use std::io::Read;
    let home = Home::new();
    home.save(&fixture("simple"), Some("localhost:5000/p/simple:0.1.0"));
    // More output than a pipe buffers (64 KiB), so the writer is still writing at the close.
    for i in 0..250 {
        home.ok(&[
            "chart",
            "tag",
            "localhost:5000/p/simple:0.1.0",
            &format!("localhost:5000/p/simple:t{i}"),
        ]);
    }
    for format in ["json", "table"] {
        let mut child = home
            .std_cmd()
            .args(["chart", "list", "-o", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{format}: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}
