//! Helm v4 interop, both ways, through a real registry: what chartcache pushes, Helm pulls
//! (`helm show`), and what Helm pushes (with or without a provenance file, with `+` in the
//! version), chartcache pulls byte for byte.

mod fault;
mod support;

use std::fs;

use fault::{Sandbox, get_manifest, sha256_hex};
use support::{Helm, Registry, chart_tgz, chart_tgz_with_files};

fn helm() -> Helm {
    Helm::new().unwrap_or_else(|| {
        panic!(
            "Helm v4 peer missing at {}: {}",
            Helm::venv_dir().display(),
            support::INSTALL_HINT
        )
    })
}

#[test]
fn helm_pulls_what_chartcache_pushed() {
    let reg = Registry::plain();
    let host = reg.host();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);

    let helm = helm();
    let chart_yaml = helm
        .show_chart(&reg.oci("myrepo/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("helm cannot pull chartcache's push: {e}"));
    assert!(chart_yaml.contains("name: mychart"), "{chart_yaml}");
    assert!(chart_yaml.contains("version: 0.1.0"), "{chart_yaml}");
    assert!(
        chart_yaml.contains("A chart for the registry tests"),
        "{chart_yaml}"
    );
    let values = helm
        .show_values(&reg.oci("myrepo/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(values.contains("replicas: 1"), "{values}");

    // Helm's content cache holds the very layer chartcache stored (found by its digest).
    let content = sb.ref_blob(&reference, "content");
    let hex = sha256_hex(&content);
    let mut found = Vec::new();
    let mut stack = vec![helm.cache_home()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&hex))
            {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "helm cached no blob named {hex}");
    for path in found {
        assert_eq!(fs::read(&path).unwrap(), content, "{}", path.display());
    }
}

#[test]
fn chartcache_pulls_what_helm_pushed() {
    let reg = Registry::plain();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let tgz = chart_tgz_with_files(
        dir.path(),
        "helmchart",
        "1.4.2",
        &[(
            "templates/cm.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
        )],
    );
    let digest = helm()
        .push(&tgz, &reg.oci("myrepo"), true)
        .unwrap_or_else(|e| panic!("{e}"));

    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/helmchart:1.4.2");
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Name: helmchart"), "{out}");
    assert!(out.contains("Version: 1.4.2"), "{out}");
    assert!(
        out.contains(&format!(
            "Content: sha256:{}",
            sha256_hex(&fs::read(&tgz).unwrap())
        )),
        "{out}"
    );
    let remote = get_manifest(&reg, "myrepo/helmchart", "1.4.2");
    assert_eq!(sb.ref_blob(&reference, "manifest"), remote.body);
    assert_eq!(sb.manifest_digest(&reference), digest);
    assert_eq!(sb.ref_blob(&reference, "content"), fs::read(&tgz).unwrap());
    assert!(
        !sb.ref_dir(&reference).join("prov").exists(),
        "no prov was pushed"
    );

    let export = sb.path().join("export");
    let out = sb.ok(&[
        "chart",
        "export",
        &reference,
        "-d",
        export.to_str().unwrap(),
    ]);
    assert!(out.contains("Exported to"), "{out}");
    let chart_yaml = fs::read_to_string(export.join("helmchart/Chart.yaml")).unwrap();
    assert!(chart_yaml.contains("version: 1.4.2"), "{chart_yaml}");
    assert!(export.join("helmchart/values.yaml").is_file());
    let cm = fs::read_to_string(export.join("helmchart/templates/cm.yaml")).unwrap();
    assert!(cm.contains("kind: ConfigMap"), "{cm}");
    sb.ok(&["chart", "verify"]);
}

#[test]
fn a_helm_push_with_provenance_keeps_the_prov_layer() {
    let reg = Registry::plain();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let tgz = chart_tgz(dir.path(), "signed", "0.9.0");
    let prov = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nnot really signed\n";
    fs::write(dir.path().join("signed-0.9.0.tgz.prov"), prov).unwrap();
    helm()
        .push(&tgz, &reg.oci("myrepo"), true)
        .unwrap_or_else(|e| panic!("{e}"));
    let remote = get_manifest(&reg, "myrepo/signed", "0.9.0").json();
    let layers = remote["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "helm pushed no prov layer: {remote}");

    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/signed:0.9.0");
    sb.ok(&["chart", "pull", &reference]);
    assert!(
        sb.ref_dir(&reference).join("prov").exists(),
        "the prov link is missing"
    );
    assert_eq!(sb.ref_blob(&reference, "prov"), prov);
    assert_eq!(sb.ref_blob(&reference, "content"), fs::read(&tgz).unwrap());

    // And it goes back out with the prov: push elsewhere, the manifest is unchanged.
    let copy = format!("{host}/copies/signed:0.9.0");
    sb.ok(&["chart", "tag", &reference, &copy]);
    sb.ok(&["chart", "push", &copy]);
    let copied = get_manifest(&reg, "copies/signed", "0.9.0");
    assert_eq!(copied.body, sb.ref_blob(&reference, "manifest"));
}

#[test]
fn a_helm_push_of_a_build_version_is_read_back_with_plus() {
    let reg = Registry::plain();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let tgz = chart_tgz(dir.path(), "buildchart", "2.0.0+build.7");
    helm()
        .push(&tgz, &reg.oci("myrepo"), true)
        .unwrap_or_else(|e| panic!("{e}"));

    let sb = Sandbox::new();
    let tags = sb.ok(&["registry", "tags", &format!("{host}/myrepo/buildchart")]);
    assert_eq!(tags.trim(), "2.0.0+build.7");
    let reference = format!("{host}/myrepo/buildchart:2.0.0_build.7");
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Version: 2.0.0+build.7"), "{out}");
}
