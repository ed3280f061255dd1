//! `serve` answers the OCI 1.1 referrers API from the cache: a chart synced into the cache
//! with an SBOM, a signature of that SBOM and a cosign signature is served with all of them:
//! `GET /v2/NAME/referrers/DIGEST` (with and without `?artifactType=`), the referrers tag
//! schema's `sha256-<hex>` tag and cosign's `.sig` tag through the manifests and tags API; and
//! `chartcache sync` from the server into a fresh real registry keeps every one, by digest.

mod attached;
mod fault;
mod support;

use attached::{
    OCI_INDEX, OCI_MANIFEST, SBOM, SBOM_CREATED, SIGNATURE, assert_all_there, fallback_tag,
    signed_chart,
};
use fault::{Sandbox, ServeProcess, sha256_hex};
use serde_json::json;
use support::{Registry, http_get};

#[test]
fn serve_answers_the_referrers_api_and_keeps_the_tag_schema() {
    let reg = Registry::plain();
    let publisher = Sandbox::new();
    let signed = signed_chart(&publisher, &reg);

    let sb = Sandbox::new();
    let out = sb.ok(&["sync", &format!("{}/charts/app", reg.host()), "cache:"]);
    assert!(out.contains("Synced: 1"), "{out}");
    let server = ServeProcess::start(&sb, &[]);
    let served = format!("{}/charts/app", reg.host().replace(':', "_"));
    let get = |path: &str| http_get(&server.url(path), &[]).expect("GET");

    // The chart's referrers: the SBOM, described from its own manifest.
    let chart_referrers = format!("/v2/{served}/referrers/{}", signed.chart.digest);
    let sbom = json!({
        "mediaType": OCI_MANIFEST,
        "digest": signed.sbom.digest,
        "size": signed.sbom.size,
        "annotations": {"org.opencontainers.image.created": SBOM_CREATED},
        "artifactType": SBOM,
    });
    let index = |manifests: serde_json::Value| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let resp = get(&chart_referrers);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(resp.header("OCI-Filters-Applied"), None);
    assert_eq!(resp.json(), index(json!([sbom])));

    // Filtered: the header says so, whether anything matches or not.
    let resp = get(&format!(
        "{chart_referrers}?artifactType=application%2Fspdx%2Bjson"
    ));
    assert_eq!(resp.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(resp.json(), index(json!([sbom])));
    let resp = get(&format!("{chart_referrers}?artifactType={SIGNATURE}"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(resp.json(), index(json!([])));

    // A referrer of a referrer.
    let resp = get(&format!("/v2/{served}/referrers/{}", signed.sbom.digest));
    assert_eq!(
        resp.json(),
        index(json!([{
            "mediaType": OCI_MANIFEST,
            "digest": signed.sbom_signature.digest,
            "size": signed.sbom_signature.size,
            "artifactType": SIGNATURE,
        }]))
    );
    // Nothing refers to an unknown digest: an empty index, not a 404.
    let unknown = format!("sha256:{}", sha256_hex(b"nothing"));
    let resp = get(&format!("/v2/{served}/referrers/{unknown}"));
    assert_eq!((resp.status, resp.json()), (200, index(json!([]))));
    // An invalid digest is a bad request; a repository the cache lacks is unknown.
    assert_eq!(
        get(&format!("/v2/{served}/referrers/sha256:zz")).status,
        400
    );
    let resp = get(&format!(
        "/v2/{}/charts/none/referrers/{unknown}",
        reg.host().replace(':', "_")
    ));
    assert_eq!(resp.status, 404, "{}", resp.text());

    // The tag schema and cosign's tag, as any registry without the API serves them.
    let tags = get(&format!("/v2/{served}/tags/list")).json();
    let schema_tag = fallback_tag(&signed.chart.digest);
    let sig_tag = format!("{schema_tag}.sig");
    let mut want = vec![
        "1.0.0".to_string(),
        schema_tag.clone(),
        sig_tag.clone(),
        fallback_tag(&signed.sbom.digest),
    ];
    want.sort();
    assert_eq!(tags["tags"], json!(want));
    let accept = [(
        "Accept",
        "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
    )];
    let resp = http_get(
        &server.url(&format!("/v2/{served}/manifests/{schema_tag}")),
        &accept,
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some(OCI_INDEX));
    assert!(resp.text().contains(&signed.sbom.digest), "{}", resp.text());
    let resp = http_get(
        &server.url(&format!("/v2/{served}/manifests/{sig_tag}")),
        &accept,
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&resp.body)),
        signed.cosign.digest
    );
    let resp = http_get(
        &server.url(&format!("/v2/{served}/manifests/{}", signed.sbom.digest)),
        &accept,
    )
    .unwrap();
    assert_eq!(
        (resp.status, resp.header("Content-Type")),
        (200, Some(OCI_MANIFEST))
    );

    // From the server into a fresh registry: everything arrives, digests kept; the server's
    // referrers API was used.
    let fresh = Registry::plain();
    let client = Sandbox::new();
    let out = client.ok(&[
        "sync",
        &format!("{}/{served}", server.host()),
        &format!("{}/fromserve", fresh.host()),
    ]);
    assert!(out.contains("Synced: 1"), "{out}");
    assert_all_there(&fresh, "fromserve/app", &signed, "cache → serve → registry");
    assert!(
        server
            .log()
            .contains(&format!("/referrers/{}", signed.chart.digest)),
        "{}",
        server.log()
    );
}
