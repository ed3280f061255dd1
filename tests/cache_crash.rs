//! Crash safety and concurrency: `chart save` killed with SIGKILL at arbitrary points must
//! leave a cache that verifies and lists either the old ref or the new one, never a torn one;
//! saves from several processes into one home must all land.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Home, Lcg, fixture, write_chart};

/// (content digest, manifest digest, meta digest) of the one listed ref, checking it is the
/// only one and is `reference`.
fn listed_state(home: &Home, reference: &str) -> (String, String, String) {
    let list = home.list_json();
    assert_eq!(list.len(), 1, "exactly one ref expected: {list:?}");
    let e = &list[0];
    assert_eq!(e["ref"], reference);
    let s = |k: &str| {
        e[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {e}"))
            .to_string()
    };
    (s("digest"), s("manifest"), s("meta"))
}

/// A chart of about 6 MB of barely compressible text, in files of at most 1.5 MB.
fn big_chart(dir: &Path) {
    let mut rng = Lcg::new(42);
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("files/part-{i}.txt"), rng.text(1_500_000)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    write_chart(dir, "big", "1.0.0", &refs);
}

#[test]
fn a_killed_save_leaves_the_old_ref_or_the_new_one() {
    let home = Home::new();
    let chart = home.scratch("src").join("big");
    big_chart(&chart);
    let reference = "localhost:5000/crash/big:stable";
    home.save(&chart, Some(reference));
    let mut old = listed_state(&home, reference);

    let mut rng = Lcg::new(2024);
    let mut outcomes = Vec::new();
    for i in 0..15 {
        // Each round saves different content under the same tag.
        fs::write(chart.join("round.txt"), format!("round {i}\n")).unwrap();
        let delay = Duration::from_millis(rng.below(301));
        let mut child = home
            .std_cmd()
            .args(["chart", "save"])
            .arg(&chart)
            .arg(reference)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn save");
        std::thread::sleep(delay);
        // SIGKILL: no destructors, no cleanup.
        let _ = child.kill();
        let status = child.wait().unwrap();
        outcomes.push(format!("{delay:?}: {status}"));

        let verify = home.run(&["chart", "verify"]);
        assert_eq!(
            verify.code,
            Some(0),
            "round {i} (killed after {delay:?}): verify failed\n{}",
            verify.describe()
        );
        let seen = listed_state(&home, reference);

        // Finish the save to learn the new state; it must succeed after any crash.
        home.save(&chart, Some(reference));
        let new = listed_state(&home, reference);
        assert_ne!(old.0, new.0, "round {i}: the content should have changed");
        assert!(
            seen == old || seen == new,
            "round {i} (killed after {delay:?}): torn ref {seen:?}\nold {old:?}\nnew {new:?}"
        );
        old = new;
    }
    eprintln!("kill outcomes: {outcomes:?}");
    home.ok(&["chart", "prune"]);
    home.verify_ok();
    assert_eq!(home.list_json().len(), 1);
    // After prune only the live chart's blobs remain.
    assert_eq!(home.blob_names().len(), 3, "{:?}", home.blob_names());
}

#[test]
fn parallel_saves_from_six_processes_all_land() {
    let home = Home::new();
    let src = home.scratch("src");
    let mut jobs = Vec::new();
    for i in 0..3 {
        let name = format!("par{i}");
        let dir = src.join(&name);
        let mut rng = Lcg::new(i);
        let text = rng.text(200_000);
        write_chart(&dir, &name, "1.0.0", &[("data.txt", &text)]);
        // Two tags of each chart: two processes race on the same blobs.
        for tag in ["one", "two"] {
            jobs.push((dir.clone(), format!("localhost:5000/par/{name}:{tag}")));
        }
    }
    let children: Vec<_> = jobs
        .iter()
        .map(|(dir, reference)| {
            home.std_cmd()
                .args(["chart", "save"])
                .arg(dir)
                .arg(reference)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn save")
        })
        .collect();
    for (child, (_, reference)) in children.into_iter().zip(&jobs) {
        let out = common::Run::from_output(child.wait_with_output().unwrap());
        assert_eq!(out.code, Some(0), "{reference}\n{}", out.describe());
        assert!(out.stdout.ends_with("saved\n"), "{}", out.describe());
    }
    home.verify_ok();
    let mut expected: Vec<String> = jobs.iter().map(|(_, r)| r.clone()).collect();
    expected.sort();
    assert_eq!(home.list_refs(), expected);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(home.registry().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 6, "{index}");
    // Three charts, three blobs each.
    assert_eq!(home.blob_names().len(), 9);
}

#[test]
fn reads_run_while_a_save_is_killed_repeatedly() {
    // Readers during and after crashed writers: list and export always see a whole chart.
    let home = Home::new();
    let reference = "localhost:5000/crash/simple:0.1.0";
    home.save(&fixture("simple"), Some(reference));
    let chart = home.scratch("src").join("big");
    big_chart(&chart);
    let mut rng = Lcg::new(7);
    for i in 0..5 {
        let mut child = home
            .std_cmd()
            .args(["chart", "save"])
            .arg(&chart)
            .arg("localhost:5000/crash/big:stable")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn save");
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        let out = home.scratch(&format!("out{i}"));
        let export = home.run(&[
            "chart".as_ref(),
            "export".as_ref(),
            reference.as_ref(),
            "-d".as_ref(),
            out.as_os_str(),
        ]);
        let _ = child.kill();
        child.wait().unwrap();
        assert_eq!(export.code, Some(0), "{}", export.describe());
        assert_eq!(
            common::read_tree(&out.join("simple")),
            common::read_tree(&fixture("simple"))
        );
        home.verify_ok();
    }
}

#[test]
fn prunes_running_alongside_saves_lose_nothing() {
    let home = Home::new();
    let src = home.scratch("src");
    let mut jobs = Vec::new();
    for i in 0..4 {
        let name = format!("pr{i}");
        let dir = src.join(&name);
        let text = Lcg::new(100 + i).text(300_000);
        write_chart(&dir, &name, "1.0.0", &[("data.txt", &text)]);
        jobs.push((dir, format!("localhost:5000/prune/{name}:1.0.0")));
    }
    let mut children = Vec::new();
    for (i, (dir, reference)) in jobs.iter().enumerate() {
        let mut save = home.std_cmd();
        save.args(["chart", "save"]).arg(dir).arg(reference);
        children.push((reference.clone(), save));
        if i % 2 == 0 {
            let mut prune = home.std_cmd();
            prune.args(["chart", "prune"]);
            children.push(("prune".to_string(), prune));
        }
    }
    let running: Vec<_> = children
        .into_iter()
        .map(|(what, mut cmd)| {
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            (what, child)
        })
        .collect();
    for (what, child) in running {
        let out = common::Run::from_output(child.wait_with_output().unwrap());
        assert_eq!(out.code, Some(0), "{what}\n{}", out.describe());
    }
    home.verify_ok();
    let mut expected: Vec<String> = jobs.iter().map(|(_, r)| r.clone()).collect();
    expected.sort();
    assert_eq!(home.list_refs(), expected);
    assert_eq!(
        home.blob_names().len(),
        12,
        "every saved chart keeps its 3 blobs"
    );
}

/// The ref names `index.json` lists, parsed as any reader parses it.
fn index_names(home: &Home) -> Vec<String> {
    let bytes = fs::read(home.registry().join("index.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("index.json: {e}: {}", String::from_utf8_lossy(&bytes)));
    let mut names: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn an_index_torn_mid_append_is_rebuilt_by_the_next_write() {
    // `index.json` is appended to in place; a writer killed mid-append leaves it torn, with the
    // dirty marker it wrote before changing anything. The next writer rebuilds it from refs/.
    let home = Home::new();
    let names = ["a", "b", "c"].map(|t| format!("localhost:5000/torn/simple:{t}"));
    home.save(&fixture("simple"), Some(&names[0]));
    for n in &names[1..] {
        home.ok(&["chart", "tag", &names[0], n]);
    }
    let index = home.registry().join("index.json");
    let whole = fs::read(&index).unwrap();
    // Cut in the middle of the last entry (its closing `]}` never written).
    fs::write(&index, &whole[..whole.len() - 60]).unwrap();
    fs::write(home.registry().join("index.json.dirty"), "").unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&fs::read(&index).unwrap()).is_err());
    // verify knows a writer died and does not blame the index.
    home.verify_ok();

    let d = "localhost:5000/torn/simple:d";
    home.ok(&["chart", "tag", &names[0], d]);
    let mut expected: Vec<String> = names.to_vec();
    expected.push(d.to_string());
    assert_eq!(index_names(&home), expected);
    assert!(!home.registry().join("index.json.dirty").exists());
    home.verify_ok();

    // Without the marker (torn by something else), a torn end is still not appended to.
    let whole = fs::read(&index).unwrap();
    fs::write(&index, &whole[..whole.len() - 1]).unwrap();
    let e = "localhost:5000/torn/simple:e";
    home.ok(&["chart", "tag", &names[0], e]);
    expected.push(e.to_string());
    assert_eq!(index_names(&home), expected);
    home.verify_ok();
}

#[test]
fn refs_ahead_of_the_index_are_caught_up_by_the_next_write() {
    // Killed after the ref changed but before the index did: the ref is in refs/ only.
    let home = Home::new();
    let first = "localhost:5000/ahead/simple:1";
    home.save(&fixture("simple"), Some(first));
    let index = home.registry().join("index.json");
    let before = fs::read(&index).unwrap();
    home.ok(&["chart", "tag", first, "localhost:5000/ahead/simple:2"]);
    home.ok(&["chart", "remove", first]);
    fs::write(&index, &before).unwrap();
    fs::write(home.registry().join("index.json.dirty"), "").unwrap();
    home.ok(&[
        "chart",
        "tag",
        "localhost:5000/ahead/simple:2",
        "localhost:5000/ahead/simple:3",
    ]);
    assert_eq!(
        index_names(&home),
        [
            "localhost:5000/ahead/simple:2",
            "localhost:5000/ahead/simple:3"
        ]
    );
    home.verify_ok();
}
