//! Real-world charts and real peers: the 18 charts of the shared test data survive a save /
//! export round trip exactly as Helm's loader would see them, and skopeo reads the cache as an
//! OCI image layout.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Home, fixture, helm_admitted_files, read_tree, shared_testdata};

fn real_charts() -> Option<Vec<PathBuf>> {
    let root = shared_testdata("real-charts")?;
    let mut charts = Vec::new();
    for repo in ["stable", "incubator"] {
        let Ok(rd) = fs::read_dir(root.join(repo)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.join("Chart.yaml").is_file() {
                charts.push(p);
            }
        }
    }
    charts.sort();
    Some(charts)
}

#[test]
fn real_charts_round_trip_through_save_and_export() {
    let Some(charts) = real_charts() else {
        return;
    };
    assert_eq!(
        charts.len(),
        18,
        "the shared test data has 18 charts: {charts:?}"
    );
    let home = Home::new();
    let out = home.scratch("out");
    let again = Home::new();
    for dir in &charts {
        let repo = dir.parent().unwrap().file_name().unwrap().to_string_lossy();
        let base = dir.file_name().unwrap().to_string_lossy();
        let reference = format!("localhost:5000/{repo}/{base}");
        let saved = home.save(dir, Some(&reference));
        let full = format!("{reference}:{}", saved.tag);
        let tagged = saved.version.replace('+', "_");
        assert_eq!(saved.tag, tagged, "{}", dir.display());

        // show prints the chart's own Chart.yaml.
        let shown = home.ok(&["chart", "show", &full]);
        let expected = helm_admitted_files(dir);
        let mut chart_yaml = String::from_utf8(expected["Chart.yaml"].clone()).unwrap();
        if !chart_yaml.ends_with('\n') {
            chart_yaml.push('\n');
        }
        assert_eq!(shown.stdout, chart_yaml, "{full}: show");

        // export writes exactly the files Helm's loader admits, byte for byte.
        let run = home.ok(&[
            "chart".as_ref(),
            "export".as_ref(),
            full.as_ref(),
            "-d".as_ref(),
            out.as_os_str(),
        ]);
        let target = out.join(&saved.name);
        assert!(
            run.stdout
                .ends_with(&format!("Exported to {}/\n", target.display())),
            "{}",
            run.describe()
        );
        let exported = read_tree(&target);
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !exported.contains_key(*k))
            .collect();
        let extra: Vec<&String> = exported
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{full}: missing {missing:?}, extra {extra:?}"
        );
        for (rel, data) in &expected {
            assert!(exported[rel] == *data, "{full}: {rel} differs after export");
        }

        // Saving the export again gives the same chart, bit for bit.
        let resaved = again.save(&target, Some(&full));
        assert_eq!(
            resaved.content, saved.content,
            "{full}: export is not a fixed point"
        );
        assert_eq!(resaved.meta, saved.meta, "{full}");
    }
    assert_eq!(home.list_json().len(), charts.len());
    home.verify_ok();
}

fn skopeo() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/skopeo");
    if p.is_file() {
        Some(p.to_path_buf())
    } else {
        eprintln!("note: skipping: /usr/bin/skopeo is missing (.ci/install-peers installs it)");
        None
    }
}

#[test]
fn skopeo_reads_the_cache_as_an_oci_layout() {
    let Some(skopeo) = skopeo() else {
        return;
    };
    let home = Home::new();
    let refs = [
        "localhost:5000/myrepo/simple:0.1.0",
        "localhost/with-helmignore:0.3.0",
        "registry.example.com/deep/path/to/simple:prod",
    ];
    home.save(&fixture("simple"), Some(refs[0]));
    home.save(&fixture("with-helmignore"), Some(refs[1]));
    home.ok(&["chart", "tag", refs[0], refs[2]]);
    let user_home = home.scratch("skopeo-home");
    let layout = home.registry();
    for r in refs {
        let out = Command::new(&skopeo)
            .env_clear()
            .env("HOME", &user_home)
            .arg("inspect")
            .arg("--raw")
            .arg(format!("oci:{}:{r}", layout.display()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stored = home.read_blob(&home.link_hex(r, "manifest"));
        assert_eq!(out.stdout, stored, "{r}: skopeo sees other manifest bytes");
    }

    // A copy out of the layout keeps every blob byte for byte.
    let dest = home.scratch("copy");
    let out = Command::new(&skopeo)
        .env_clear()
        .env("HOME", &user_home)
        .args(["--insecure-policy", "copy"])
        .arg(format!("oci:{}:{}", layout.display(), refs[0]))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(dest.join("manifest.json")).unwrap(),
        home.read_blob(&home.link_hex(refs[0], "manifest"))
    );
    for link in ["content", "meta"] {
        let hex = home.link_hex(refs[0], link);
        assert_eq!(
            fs::read(dest.join(&hex)).unwrap(),
            home.read_blob(&hex),
            "{link} blob"
        );
    }
}
