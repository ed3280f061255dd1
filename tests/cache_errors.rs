//! Bad input: broken charts, malicious or odd archives, bad references, missing paths and
//! unknown refs. Each must fail with exit code 1 and exactly one `Error: …` line on stderr that
//! names the path or ref, and must leave the cache exactly as it was.

mod common;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use common::{Home, TgzBuilder, assert_same_snapshot, copy_dir, fixture};

const MIB: u64 = 1024 * 1024;

/// A home that already holds one chart (so the cache skeleton exists and is part of the
/// before/after snapshot).
fn populated_home() -> Home {
    let home = Home::new();
    home.save(
        &fixture("simple"),
        Some("localhost:5000/myrepo/simple:0.1.0"),
    );
    home
}

/// Runs `args`, asserts the failure contract and an unchanged cache.
fn assert_refused(home: &Home, args: &[OsString], mentions: &[&str]) {
    let before = home.snapshot();
    let run = home.run(args);
    run.assert_error(mentions);
    assert_eq!(
        run.stdout,
        "",
        "nothing on stdout for {args:?}\n{}",
        run.describe()
    );
    assert_same_snapshot(&before, &home.snapshot(), &format!("{args:?}"));
}

fn save_args(path: &Path, reference: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["chart".into(), "save".into(), path.into()];
    if let Some(r) = reference {
        args.push(r.into());
    }
    args
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn broken_chart_directories_are_refused() {
    let home = populated_home();
    for (name, why) in [
        ("broken/no-chart-yaml", "Chart.yaml"),
        ("broken/bad-version", "one.two"),
        ("broken/bad-yaml", "YAML"),
        ("broken/bad-apiversion", "v3"),
        ("broken/bad-type", "plugin"),
    ] {
        let path = fixture(name);
        let shown = path.display().to_string();
        assert_refused(&home, &save_args(&path, None), &[&shown, why]);
        assert_refused(
            &home,
            &save_args(&path, Some("localhost:5000/myrepo/broken:1.0.0")),
            &[&shown],
        );
    }
}

#[test]
fn broken_charts_leave_a_fresh_home_without_blobs_or_refs() {
    let home = Home::new();
    for name in ["broken/no-chart-yaml", "broken/bad-yaml"] {
        let run = home.run(&save_args(&fixture(name), None));
        run.assert_error(&[name]);
    }
    let snap = home.snapshot();
    for (path, kind) in &snap {
        let in_store = path.starts_with("registry/blobs/")
            || path.starts_with("registry/refs/")
            || path.starts_with("registry/charts/")
            || path.starts_with("registry/.tmp/");
        assert!(
            !in_store || kind == "dir",
            "a failed save left {path} ({kind})"
        );
        assert_ne!(
            path, "registry/index.json",
            "a failed save wrote index.json"
        );
    }
}

/// The malicious and odd archives, built at test time.
fn bad_archives(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let chart = b"apiVersion: v2\nname: evil\nversion: 0.1.0\n".as_slice();
    let mut out = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>, why: &'static str| {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        out.push((p, why));
    };
    add(
        "dotdot.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .file("evil/../../outside.txt", b"x")
            .finish(),
        "..",
    );
    add(
        "dotdot-top.tgz",
        TgzBuilder::new().file("../evil/Chart.yaml", chart).finish(),
        "..",
    );
    add(
        "absolute.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .file("/tmp/evil/outside.txt", b"x")
            .finish(),
        "absolute",
    );
    add(
        "symlink-escape.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .symlink("evil/templates/passwd", "../../../etc/passwd")
            .finish(),
        "link",
    );
    add(
        "symlink-absolute.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .symlink("evil/passwd", "/etc/passwd")
            .finish(),
        "link",
    );
    add(
        "hardlink.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .hardlink("evil/passwd", "/etc/passwd")
            .finish(),
        "link",
    );
    add(
        "device.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .char_device("evil/null")
            .finish(),
        "evil/null",
    );
    add(
        "root-chart-yaml.tgz",
        TgzBuilder::new().file("Chart.yaml", chart).finish(),
        "Chart.yaml",
    );
    add(
        "two-tops.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .file("other/values.yaml", b"a: 1\n")
            .finish(),
        "other",
    );
    add(
        "no-chart-yaml.tgz",
        TgzBuilder::new()
            .file("evil/values.yaml", b"a: 1\n")
            .finish(),
        "Chart.yaml",
    );
    add(
        "bad-chart-yaml.tgz",
        TgzBuilder::new()
            .file(
                "evil/Chart.yaml",
                b"apiVersion: v2\nname: evil\nversion: one\n",
            )
            .finish(),
        "one",
    );
    add(
        "file-over-5mib.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .zeros("evil/big.bin", 5 * MIB + 1)
            .finish(),
        "5 MiB",
    );
    add(
        "lying-size.tgz",
        TgzBuilder::new()
            .file("evil/Chart.yaml", chart)
            .lying_file("evil/values.yaml", 4096, b"a: 1\n")
            .finish_truncated(),
        "",
    );
    add("not-gzip.tgz", b"this is not a chart\n".to_vec(), "");
    add("empty.tgz", Vec::new(), "");
    out
}

#[test]
fn malicious_and_odd_archives_are_refused() {
    let home = populated_home();
    let dir = home.scratch("archives");
    for (path, why) in bad_archives(&dir) {
        let shown = path.display().to_string();
        assert_refused(&home, &save_args(&path, None), &[&shown, why]);
    }
}

#[test]
fn an_archive_over_100_mib_unpacked_is_refused() {
    let home = populated_home();
    let dir = home.scratch("archives");
    // 21 files of exactly 5 MiB: each within the per-file limit, 105 MiB in all.
    let mut b = TgzBuilder::new().file(
        "bomb/Chart.yaml",
        b"apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
    );
    for i in 0..21 {
        b = b.zeros(&format!("bomb/f{i:02}.bin"), 5 * MIB);
    }
    let path = b.write(&dir.join("bomb-0.1.0.tgz"));
    let shown = path.display().to_string();
    assert_refused(&home, &save_args(&path, None), &[&shown, "100 MiB"]);
}

#[test]
fn an_archive_with_chained_symlinks_cannot_write_outside_the_export() {
    let home = populated_home();
    let dir = home.scratch("archives");
    let path = TgzBuilder::new()
        .file(
            "evil/Chart.yaml",
            b"apiVersion: v2\nname: evil\nversion: 0.1.0\n",
        )
        .symlink("evil/l", ".")
        .symlink("evil/l2", "l/..")
        .symlink("evil/l3", "l2/..")
        .file("evil/l3/pwned.txt", b"pwned\n")
        .write(&dir.join("evil-0.1.0.tgz"));
    let before = home.snapshot();
    let run = home.run(&save_args(&path, None));
    if run.code != Some(0) {
        // Refusing the archive outright is fine.
        run.assert_error(&[&path.display().to_string()]);
        assert_same_snapshot(&before, &home.snapshot(), "chained symlinks");
        return;
    }
    let out = home.scratch("out");
    let dest = out.join("dest");
    fs::create_dir_all(&dest).unwrap();
    let _ = home.run(&[
        "chart".as_ref(),
        "export".as_ref(),
        "localhost/evil:0.1.0".as_ref(),
        "-d".as_ref(),
        dest.as_os_str(),
    ]);
    let outside: Vec<String> = common::snapshot(&out)
        .into_keys()
        .filter(|p| !p.starts_with("dest"))
        .collect();
    assert!(
        outside.is_empty(),
        "export wrote outside its destination: {outside:?}"
    );
    let inside_dest: Vec<String> = common::snapshot(&dest)
        .into_keys()
        .filter(|p| !p.starts_with("evil"))
        .collect();
    assert!(
        inside_dest.is_empty(),
        "export wrote outside DIR/<name>: {inside_dest:?}"
    );
}

#[test]
fn a_package_with_duplicate_entries_is_refused_or_exports() {
    let home = populated_home();
    let dir = home.scratch("archives");
    let path = TgzBuilder::new()
        .file(
            "dup/Chart.yaml",
            b"apiVersion: v2\nname: dup\nversion: 0.1.0\n",
        )
        .file("dup/values.yaml", b"a: 1\n")
        .file("dup/values.yaml", b"a: 2\n")
        .write(&dir.join("dup-0.1.0.tgz"));
    let before = home.snapshot();
    let run = home.run(&save_args(&path, None));
    if run.code != Some(0) {
        run.assert_error(&[&path.display().to_string()]);
        assert_same_snapshot(&before, &home.snapshot(), "duplicate entries");
        return;
    }
    // Accepted: then it must export, and like Helm (and tar) the last copy wins.
    let out = home.scratch("out");
    let export = home.run(&[
        "chart".as_ref(),
        "export".as_ref(),
        "localhost/dup:0.1.0".as_ref(),
        "-d".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(export.code, Some(0), "{}", export.describe());
    assert_eq!(fs::read(out.join("dup/values.yaml")).unwrap(), b"a: 2\n");
    let show = home.ok(&["chart", "show", "localhost/dup:0.1.0", "values"]);
    assert_eq!(show.stdout, "a: 2\n");
}

#[test]
fn bad_chart_directories_made_at_test_time_are_refused() {
    let home = populated_home();
    let base = home.scratch("dirs");
    let make = |name: &str| {
        let dir = base.join(name).join("simple");
        copy_dir(&fixture("simple"), &dir);
        dir
    };

    // (Links that leave the chart are followed, as by `helm package`: tests/cache_save.rs.)
    let dev_null = make("dev-null");
    std::os::unix::fs::symlink("/dev/null", dev_null.join("templates/null.yaml")).unwrap();
    let dangling = make("dangling");
    std::os::unix::fs::symlink("nowhere.yaml", dangling.join("templates/x.yaml")).unwrap();
    let big = make("big-file");
    fs::write(big.join("big.bin"), vec![b'x'; (5 * MIB + 1) as usize]).unwrap();
    let double_star = make("double-star");
    fs::write(double_star.join(".helmignore"), "templates/**/x\n").unwrap();
    let bad_pattern = make("bad-pattern");
    fs::write(bad_pattern.join(".helmignore"), "[unclosed\n").unwrap();
    let sub_no_chart = make("sub-no-chart");
    fs::create_dir_all(sub_no_chart.join("charts/sub")).unwrap();
    fs::write(sub_no_chart.join("charts/sub/values.yaml"), "a: 1\n").unwrap();
    let sub_bad_tgz = make("sub-bad-tgz");
    fs::create_dir_all(sub_bad_tgz.join("charts")).unwrap();
    fs::write(sub_bad_tgz.join("charts/sub-1.0.0.tgz"), "not gzip").unwrap();
    let fifo = make("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(fifo.join("templates/pipe"))
        .status()
        .expect("mkfifo");
    assert!(status.success());

    for (dir, mention) in [
        (&dev_null, "null.yaml"),
        (&dangling, "x.yaml"),
        (&big, "big.bin"),
        (&double_star, ".helmignore"),
        (&bad_pattern, ".helmignore"),
        (&sub_no_chart, "sub"),
        (&sub_bad_tgz, "sub-1.0.0.tgz"),
        (&fifo, "pipe"),
    ] {
        let shown = dir.display().to_string();
        assert_refused(&home, &save_args(dir, None), &[&shown, mention]);
    }
}

#[test]
fn a_helmignore_that_drops_chart_yaml_is_refused() {
    let home = populated_home();
    let base = home.scratch("dirs");
    // Helm's negation ignores everything the rule does not match: Chart.yaml included.
    for (name, rules) in [
        ("plain", "Chart.yaml\n"),
        ("negation", "*.txt\n!notes.txt\n"),
    ] {
        let dir = base.join(name).join("simple");
        copy_dir(&fixture("simple"), &dir);
        fs::write(dir.join(".helmignore"), rules).unwrap();
        let shown = dir.display().to_string();
        assert_refused(&home, &save_args(&dir, None), &[&shown, "Chart.yaml"]);
    }
}

#[test]
fn a_path_that_is_not_a_chart_is_refused() {
    let home = populated_home();
    let scratch = home.scratch("paths");
    let missing = scratch.join("does-not-exist");
    assert_refused(
        &home,
        &save_args(&missing, None),
        &[&missing.display().to_string()],
    );
    let missing_tgz = scratch.join("nope-1.0.0.tgz");
    assert_refused(
        &home,
        &save_args(&missing_tgz, Some("localhost:5000/x/nope:1.0.0")),
        &[&missing_tgz.display().to_string()],
    );
    let fifo = scratch.join("pipe.tgz");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    assert_refused(
        &home,
        &save_args(&fifo, None),
        &[&fifo.display().to_string()],
    );
}

#[test]
fn bad_references_are_refused() {
    let home = populated_home();
    let chart = fixture("simple");
    let digest = format!("sha256:{}", "a".repeat(64));
    let with_digest = format!("localhost:5000/myrepo/simple@{digest}");
    for bad in [
        "MyChart:1",
        "localhost:5000/UPPER:1",
        "localhost:5000/x:bad+tag",
        "host/x@sha256:123",
        "localhost:5000/x:.dot",
        "localhost:5000//x:1",
        "localhost:99999/x:1",
        "",
    ] {
        assert_refused(&home, &save_args(&chart, Some(bad)), &[bad]);
        if bad.is_empty() {
            continue;
        }
        assert_refused(&home, &args(&["chart", "export", bad]), &[bad]);
        assert_refused(&home, &args(&["chart", "show", bad]), &[bad]);
        assert_refused(&home, &args(&["chart", "remove", bad]), &[bad]);
        assert_refused(
            &home,
            &args(&["chart", "tag", bad, "localhost:5000/myrepo/simple:x"]),
            &[bad],
        );
        assert_refused(
            &home,
            &args(&["chart", "tag", "localhost:5000/myrepo/simple:0.1.0", bad]),
            &[bad],
        );
    }
    // save computes the digest itself.
    assert_refused(
        &home,
        &save_args(&chart, Some(&with_digest)),
        &[&with_digest],
    );
}

#[test]
fn unknown_refs_are_refused() {
    let home = populated_home();
    let unknown = "localhost:5000/nope/nope:1.0.0";
    let unknown_digest = format!("localhost:5000/myrepo/simple@sha256:{}", "b".repeat(64));
    for r in [unknown, unknown_digest.as_str()] {
        assert_refused(&home, &args(&["chart", "export", r]), &[r]);
        assert_refused(&home, &args(&["chart", "show", r]), &[r]);
        assert_refused(&home, &args(&["chart", "show", r, "values"]), &[r]);
        assert_refused(&home, &args(&["chart", "remove", r]), &[r]);
        assert_refused(
            &home,
            &args(&["chart", "tag", r, "localhost:5000/myrepo/simple:new"]),
            &[r],
        );
    }
    // The right repository is not enough: the tag must exist.
    let other_tag = "localhost:5000/myrepo/simple:9.9.9";
    assert_refused(&home, &args(&["chart", "export", other_tag]), &[other_tag]);
    // A ref with neither tag nor digest cannot name a stored chart.
    let bare = "localhost:5000/myrepo/simple";
    assert_refused(&home, &args(&["chart", "export", bare]), &[bare]);
    assert_refused(&home, &args(&["chart", "show", bare]), &[bare]);
}

#[test]
fn unknown_refs_on_an_empty_home_are_refused() {
    let home = Home::new();
    let unknown = "localhost:5000/nope/nope:1.0.0";
    for a in [
        args(&["chart", "export", unknown]),
        args(&["chart", "show", unknown]),
        args(&["chart", "remove", unknown]),
        args(&["chart", "tag", unknown, "localhost/x:1"]),
    ] {
        let run = home.run(&a);
        run.assert_error(&[unknown]);
    }
    assert!(home.blob_names().is_empty());
    assert!(home.list_refs().is_empty());
}

#[test]
fn a_bad_source_date_epoch_is_refused() {
    let home = populated_home();
    let before = home.snapshot();
    let out = home
        .cmd()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .args(["chart", "save"])
        .arg(fixture("simple"))
        .output()
        .unwrap();
    let run = common::Run::from_output(out);
    run.assert_error(&["SOURCE_DATE_EPOCH", "yesterday"]);
    assert_same_snapshot(&before, &home.snapshot(), "bad SOURCE_DATE_EPOCH");
}

#[test]
fn usage_errors_exit_2() {
    let home = populated_home();
    for a in [
        args(&["chart", "save"]),
        args(&["chart", "nonsense"]),
        args(&["chart", "list", "-o", "yaml"]),
        args(&["chart", "remove"]),
        args(&[
            "chart",
            "show",
            "localhost:5000/myrepo/simple:0.1.0",
            "everything",
        ]),
    ] {
        let run = home.run(&a);
        assert_eq!(run.code, Some(2), "{a:?}\n{}", run.describe());
    }
}
