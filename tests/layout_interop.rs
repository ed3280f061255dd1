//! `chartcache::layout` against a real peer: what our `LayoutDir` and `ArchiveWriter` write,
//! skopeo 1.9.3 reads (`oci:DIR:REF`, `oci-archive:FILE:REF`); what skopeo writes, our
//! `LayoutDir` and `ArchiveReader` read; manifest and index digests never change on the way.
//! No registry: skopeo copies between the two local transports.

mod support;

use std::io::Read;
use std::path::Path;

use chartcache::digest::Digest;
use chartcache::layout::{ArchiveReader, ArchiveWriter, LayoutDir};
use chartcache::oci::{
    CHART_LAYER_MEDIA_TYPE, CONFIG_MEDIA_TYPE, Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
};
use serde_json::json;
use support::{Skopeo, chart_tgz};

/// One artifact: its blobs (config first) and manifest bytes.
struct Artifact {
    blobs: Vec<(Descriptor, Vec<u8>)>,
    manifest: Vec<u8>,
}

impl Artifact {
    /// A Helm chart as Helm pushes it, plus a top-level mediaType.
    fn chart(dir: &Path, name: &str, version: &str) -> Artifact {
        let tgz = std::fs::read(chart_tgz(dir, name, version)).expect("read chart tgz");
        let config = json!({"apiVersion": "v2", "name": name, "version": version})
            .to_string()
            .into_bytes();
        let config_desc = blob_desc(CONFIG_MEDIA_TYPE, &config);
        let layer_desc = blob_desc(CHART_LAYER_MEDIA_TYPE, &tgz);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config_desc,
            "layers": [layer_desc],
            "annotations": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            },
        })
        .to_string()
        .into_bytes();
        Artifact {
            blobs: vec![(config_desc, config), (layer_desc, tgz)],
            manifest,
        }
    }

    fn manifest_desc(&self) -> Descriptor {
        blob_desc(MANIFEST_MEDIA_TYPE, &self.manifest)
    }

    fn write_dir(&self, dir: &LayoutDir) -> Descriptor {
        for (desc, bytes) in &self.blobs {
            dir.put_blob(&bytes[..], desc).expect("put blob");
        }
        dir.put_manifest(&self.manifest, MANIFEST_MEDIA_TYPE)
            .expect("put manifest")
    }

    fn write_archive(&self, w: &mut ArchiveWriter) -> Descriptor {
        for (desc, bytes) in &self.blobs {
            w.put_blob(&bytes[..], desc).expect("put blob");
        }
        w.put_manifest(&self.manifest, MANIFEST_MEDIA_TYPE)
            .expect("put manifest")
    }
}

fn blob_desc(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
}

/// Two platform variants of a chart artifact under one OCI image index.
fn two_platforms(dir: &Path) -> (Vec<Artifact>, Vec<u8>) {
    let a = Artifact::chart(dir, "multi", "1.0.0");
    let b = Artifact::chart(dir, "multi", "1.0.1");
    let entry = |art: &Artifact, arch: &str| {
        let d = art.manifest_desc();
        json!({
            "mediaType": d.media_type,
            "digest": d.digest,
            "size": d.size,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [entry(&a, "amd64"), entry(&b, "arm64")],
    })
    .to_string()
    .into_bytes();
    (vec![a, b], index)
}

/// Reads the whole blob through the verifying reader: fails on any mismatch.
fn drain(mut r: impl Read, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    out
}

/// Something we can read a layout back from, directory or archive.
enum Source {
    Dir(LayoutDir),
    Archive(ArchiveReader),
}

impl Source {
    fn resolve(&self, name: &str) -> Descriptor {
        match self {
            Source::Dir(d) => d.resolve(Some(name)),
            Source::Archive(a) => a.resolve(Some(name)),
        }
        .unwrap_or_else(|e| panic!("resolve {name}: {e}"))
    }

    fn manifest(&self, desc: &Descriptor) -> Vec<u8> {
        match self {
            Source::Dir(d) => d.read_manifest(desc),
            Source::Archive(a) => a.read_manifest(desc),
        }
        .unwrap_or_else(|e| panic!("read manifest {}: {e}", desc.digest))
    }

    fn blob(&self, desc: &Descriptor) -> Vec<u8> {
        let bytes = match self {
            Source::Dir(d) => drain(d.open_blob(&desc.digest).expect("open blob"), "dir blob"),
            Source::Archive(a) => drain(
                a.open_blob(&desc.digest).expect("open blob"),
                "archive blob",
            ),
        };
        assert_eq!(bytes.len() as u64, desc.size, "size of {}", desc.digest);
        bytes
    }

    /// Checks `name` is the artifact, every blob verifying.
    fn check_artifact(&self, name: &str, art: &Artifact) {
        let desc = self.resolve(name);
        assert_eq!(
            desc.digest,
            art.manifest_desc().digest,
            "manifest digest of {name}"
        );
        assert_eq!(self.manifest(&desc), art.manifest);
        for (blob, bytes) in &art.blobs {
            assert_eq!(&self.blob(blob), bytes);
        }
    }

    /// Checks `name` is the image index, every manifest and blob under it verifying.
    fn check_index(&self, name: &str, arts: &[Artifact], index: &[u8]) {
        let desc = self.resolve(name);
        assert_eq!(desc.digest, Digest::of(index), "index digest of {name}");
        assert_eq!(desc.media_type, INDEX_MEDIA_TYPE);
        assert_eq!(self.manifest(&desc), index);
        for art in arts {
            let m = art.manifest_desc();
            assert_eq!(self.manifest(&m), art.manifest);
            for (blob, bytes) in &art.blobs {
                assert_eq!(&self.blob(blob), bytes);
            }
        }
    }
}

fn arg(transport: &str, path: &Path, name: &str) -> String {
    format!("{transport}:{}:{name}", path.display())
}

#[test]
fn skopeo_copies_our_layout_dir_to_an_archive_and_a_dir() {
    let skopeo = Skopeo::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let art = Artifact::chart(tmp.path(), "mychart", "0.1.0");
    let ours = tmp.path().join("ours");
    let dir = LayoutDir::create(&ours).expect("create layout");
    let m = art.write_dir(&dir);
    dir.set_ref("0.1.0", &m).expect("set ref");

    let sko_tar = tmp.path().join("sko.tar");
    let sko_dir = tmp.path().join("skodir");
    let src = arg("oci", &ours, "0.1.0");
    skopeo.run_ok(&["copy", &src, &arg("oci-archive", &sko_tar, "0.1.0")]);
    skopeo.run_ok(&["copy", &src, &arg("oci", &sko_dir, "0.1.0")]);

    let archive = ArchiveReader::open(&sko_tar).expect("open skopeo's archive");
    Source::Archive(archive).check_artifact("0.1.0", &art);
    let layout = LayoutDir::open(&sko_dir).expect("open skopeo's layout");
    Source::Dir(layout).check_artifact("0.1.0", &art);
}

#[test]
fn skopeo_reads_our_archive() {
    let skopeo = Skopeo::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let art = Artifact::chart(tmp.path(), "mychart", "0.2.0");
    let ours = tmp.path().join("ours.tar");
    let mut w = ArchiveWriter::create(&ours).expect("create archive");
    let m = art.write_archive(&mut w);
    w.set_ref("0.2.0", &m).expect("set ref");
    w.finish().expect("finish archive");

    let raw = skopeo.run_ok(&["inspect", "--raw", &arg("oci-archive", &ours, "0.2.0")]);
    assert_eq!(
        Digest::of(raw.as_bytes()),
        m.digest,
        "skopeo inspect --raw: {raw}"
    );

    let out = tmp.path().join("out");
    skopeo.run_ok(&[
        "copy",
        &arg("oci-archive", &ours, "0.2.0"),
        &arg("oci", &out, "0.2.0"),
    ]);
    Source::Dir(LayoutDir::open(&out).expect("open skopeo's layout")).check_artifact("0.2.0", &art);

    // And our own reader agrees with what we wrote.
    Source::Archive(ArchiveReader::open(&ours).expect("open our archive"))
        .check_artifact("0.2.0", &art);
}

#[test]
fn image_index_keeps_its_digest_both_ways() {
    let skopeo = Skopeo::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (arts, index) = two_platforms(tmp.path());

    // Ours (a directory) → skopeo --all → an archive, read by us.
    let ours = tmp.path().join("ours");
    let dir = LayoutDir::create(&ours).expect("create layout");
    for art in &arts {
        art.write_dir(&dir);
    }
    let idx = dir
        .put_manifest(&index, INDEX_MEDIA_TYPE)
        .expect("put index");
    dir.set_ref("multi", &idx).expect("set ref");
    let sko_tar = tmp.path().join("sko.tar");
    skopeo.run_ok(&[
        "copy",
        "--all",
        &arg("oci", &ours, "multi"),
        &arg("oci-archive", &sko_tar, "multi"),
    ]);
    Source::Archive(ArchiveReader::open(&sko_tar).expect("open skopeo's archive"))
        .check_index("multi", &arts, &index);

    // Ours (an archive) → skopeo --all → a directory, read by us.
    let ours_tar = tmp.path().join("ours.tar");
    let mut w = ArchiveWriter::create(&ours_tar).expect("create archive");
    for art in &arts {
        art.write_archive(&mut w);
    }
    let idx = w.put_manifest(&index, INDEX_MEDIA_TYPE).expect("put index");
    w.set_ref("multi", &idx).expect("set ref");
    w.finish().expect("finish archive");
    let raw = skopeo.run_ok(&["inspect", "--raw", &arg("oci-archive", &ours_tar, "multi")]);
    assert_eq!(
        Digest::of(raw.as_bytes()),
        idx.digest,
        "skopeo inspect --raw: {raw}"
    );
    let out = tmp.path().join("out");
    skopeo.run_ok(&[
        "copy",
        "--all",
        &arg("oci-archive", &ours_tar, "multi"),
        &arg("oci", &out, "multi"),
    ]);
    Source::Dir(LayoutDir::open(&out).expect("open skopeo's layout"))
        .check_index("multi", &arts, &index);
}

#[test]
fn several_refs_in_one_layout_are_kept_when_skopeo_adds_one() {
    // skopeo writing a second ref into our layout keeps ours; we then add a third and keep
    // skopeo's entry; skopeo reads every one.
    let skopeo = Skopeo::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Artifact::chart(tmp.path(), "a", "1.0.0");
    let b = Artifact::chart(tmp.path(), "b", "2.0.0");
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    let s = LayoutDir::create(&src).expect("create layout");
    let ma = a.write_dir(&s);
    s.set_ref("a", &ma).expect("set ref");
    let mb = b.write_dir(&s);
    s.set_ref("b", &mb).expect("set ref");

    let d = LayoutDir::create(&dst).expect("create layout");
    let ma2 = a.write_dir(&d);
    d.set_ref("a", &ma2).expect("set ref");
    skopeo.run_ok(&["copy", &arg("oci", &src, "b"), &arg("oci", &dst, "b")]);
    let d = LayoutDir::open(&dst).expect("reopen");
    d.set_ref("a-again", &ma2).expect("set ref");
    let names: Vec<Option<String>> = d
        .refs()
        .expect("refs")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [Some("a".into()), Some("b".into()), Some("a-again".into())]
    );
    for (name, digest) in [
        ("a", &ma.digest),
        ("b", &mb.digest),
        ("a-again", &ma.digest),
    ] {
        let raw = skopeo.run_ok(&["inspect", "--raw", &arg("oci", &dst, name)]);
        assert_eq!(&Digest::of(raw.as_bytes()), digest, "{name}");
    }
}
