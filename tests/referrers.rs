//! Referrers travel with what they refer to: an SBOM (OCI 1.1 `subject`), a signature of
//! that SBOM, and a cosign signature tag (`sha256-<hex>.sig`) of a chart go with it through
//! `sync`, registry → registry and registry → `oci-archive:` → registry, byte for byte; the
//! referrers tag schema index at the destination is merged with what another tool put there,
//! never overwritten; `--no-referrers` and `--referrers-type` choose. The registry here
//! (distribution 2.8) has no referrers API, so this is the tag schema path, as oras and cosign
//! write it for such registries.

mod attached;
mod fault;
mod support;

use attached::*;
use fault::Sandbox;
use support::Registry;

#[test]
fn referrers_go_registry_to_registry_and_through_an_archive() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);

    let out = sb.ok(&[
        "sync",
        &format!("{}/charts/app", reg.host()),
        &format!("{}/mirror", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(&reg, "mirror/app", &signed, "registry → registry");

    let archive = sb.path().join("bundle.tar");
    sb.ok(&[
        "sync",
        &format!("{}/charts/app", reg.host()),
        &format!("oci-archive:{}", archive.display()),
    ]);
    let out = sb.ok(&[
        "sync",
        &format!("oci-archive:{}", archive.display()),
        &format!("{}/imported", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(
        &reg,
        "imported/app",
        &signed,
        "registry → archive → registry",
    );
}

#[test]
fn a_new_referrer_is_merged_with_what_another_tool_put_at_the_destination() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);
    let (src, dst) = (
        format!("{}/charts/app", reg.host()),
        format!("{}/mirror", reg.host()),
    );
    sb.ok(&["sync", &src, &dst]);
    // Another tool signs the copy at the destination; then the source gets a second SBOM.
    sb.ok(&["chart", "pull", &format!("{dst}/app:1.0.0")]);
    let theirs = push_referrer(
        &reg,
        "mirror/app",
        SIGNATURE,
        b"their signature",
        &signed.chart,
    );
    let second = push_referrer(
        &reg,
        "charts/app",
        SBOM,
        b"{\"second\":true}",
        &signed.chart,
    );

    // The chart is up to date; its new referrer still comes, next to theirs.
    let out = sb.ok(&["sync", &src, &dst]);
    assert!(
        out.contains("Synced: 1"),
        "the new referrer was copied: {out}"
    );
    assert_eq!(
        listed(&reg, "mirror/app", &signed.chart),
        sorted(vec![
            signed.sbom.digest.clone(),
            theirs.digest.clone(),
            second.digest.clone()
        ])
    );
    // And once there, nothing more to do.
    let out = sb.ok(&["sync", &src, &dst]);
    assert!(out.contains("skipped: 1"), "{out}");
}

#[test]
fn no_referrers_and_referrers_type_choose() {
    let reg = Registry::plain();
    let sb = Sandbox::new();
    let signed = signed_chart(&sb, &reg);
    let src = format!("{}/charts/app", reg.host());

    sb.ok(&[
        "sync",
        "--no-referrers",
        &src,
        &format!("{}/bare", reg.host()),
    ]);
    assert!(get(&reg, "bare/app", "1.0.0").is_some());
    assert!(listed(&reg, "bare/app", &signed.chart).is_empty());
    let sig_tag = format!("{}.sig", fallback_tag(&signed.chart.digest));
    assert!(get(&reg, "bare/app", &sig_tag).is_none(), "no cosign tag");

    sb.ok(&[
        "sync",
        "--referrers-type",
        SBOM,
        &src,
        &format!("{}/sboms", reg.host()),
    ]);
    assert_eq!(
        listed(&reg, "sboms/app", &signed.chart),
        vec![signed.sbom.digest.clone()]
    );
    // The SBOM's signature is of another type: left out.
    assert!(listed(&reg, "sboms/app", &signed.sbom).is_empty());
    assert!(get(&reg, "sboms/app", &sig_tag).is_none(), "no cosign tag");
    let both = sb.run(&[
        "sync",
        "--no-referrers",
        "--referrers-type",
        SBOM,
        &src,
        "x.example/y",
    ]);
    assert_eq!(both.status.code(), Some(2), "a usage error");
    let both = String::from_utf8_lossy(&both.stderr);
    assert!(both.contains("cannot be used with"), "{both}");
}

#[test]
fn a_pulled_chart_keeps_its_referrers_in_the_cache_and_pushes_them_on() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let signed = signed_chart(&publisher, &reg);

    let sb = Sandbox::new();
    sb.ok(&["chart", "pull", &format!("{}/charts/app:1.0.0", reg.host())]);
    // The cache lists the chart as a chart, and what refers to it among its other artifacts.
    let charts = sb.ok(&["chart", "list"]);
    assert!(charts.contains("charts/app:1.0.0"), "{charts}");
    let all = sb.ok(&["cache", "list", "-o", "json"]);
    assert!(all.contains(&fallback_tag(&signed.chart.digest)), "{all}");
    sb.ok(&["chart", "verify"]);
    // Out of the cache into another repository: everything arrives with its digests.
    let out = sb.ok(&[
        "sync",
        &format!("cache:{}/charts/app", reg.host()),
        &format!("{}/from-cache", reg.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(
        &reg,
        "from-cache/app",
        &signed,
        "registry → cache → registry",
    );
}
