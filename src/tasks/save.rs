//! `chart save`: turn a chart directory or `.tgz` into the three blobs Helm puts on the wire
//! (config, content, manifest; plus provenance when a `.prov` sits beside the package) and
//! point a tag at them.
//!
//! The expensive part (packaging or copying the archive, hashing it) happens before the cache
//! lock is taken, into a staged blob; only the renames and the ref swap happen under the lock.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::chart::Metadata;
use crate::chart::archive::{self, ArchiveError};
use crate::chart::package::{self, PackageError};
use crate::oci::{ChartArtifact, Descriptor};
use crate::reference::{Reference, ReferenceError};
use crate::sign::provenance::{SignError, SigningKey, archive_file_name};
use crate::store::{RefTarget, Store, StoreError};
use crate::version::version_to_tag;

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    #[error("{0}: not a chart directory or .tgz package")]
    NotAChart(PathBuf),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{path}: {source}")]
    Archive { path: PathBuf, source: ArchiveError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{0}: save needs a tag, not a digest (the digest is computed from the chart)")]
    DigestGiven(String),
    #[error("{0}")]
    Env(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--sign: {0}")]
    Sign(#[from] SignError),
}

/// What was saved.
#[derive(Debug)]
pub struct Saved {
    pub reference: Reference,
    pub metadata: Metadata,
    pub config: Descriptor,
    pub content: Descriptor,
    pub manifest: Descriptor,
    pub warnings: Vec<String>,
}

/// Choices beyond the path and the ref.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// The `org.opencontainers.image.created` annotation (RFC 3339). Without it, only
    /// `SOURCE_DATE_EPOCH` sets one, so saving the same chart twice gives the same digests.
    pub created: Option<String>,
    /// Sign the archive with this key, as `helm package --sign` does: the provenance file
    /// becomes the chart's provenance layer (replacing a `.prov` beside a package).
    pub sign: Option<SigningKey>,
}

/// Saves the chart at `path` under `reference` (tag defaulting to the chart version).
pub fn save(
    store: &Store,
    path: &Path,
    reference: Option<&str>,
    options: &SaveOptions,
) -> Result<Saved, SaveError> {
    let epoch = crate::env::source_date_epoch().map_err(SaveError::Env)?;
    let requested = reference.map(Reference::parse).transpose()?;
    if let Some(r) = &requested
        && r.digest().is_some()
    {
        return Err(SaveError::DigestGiven(r.to_string()));
    }

    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SaveError::NotFound(path.to_path_buf()),
        _ => SaveError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let mut blob = store.blob_writer()?;
    let (metadata, mut warnings, prov) = if meta.is_dir() {
        let packaged = package::package_dir(path, &mut blob, epoch.unwrap_or(0))?;
        (packaged.metadata, packaged.warnings, None)
    } else if meta.is_file() {
        let metadata = copy_archive(path, &mut blob)?;
        let prov_path = PathBuf::from(format!("{}.prov", path.display()));
        // A provenance file is a few KiB; one beside a downloaded archive is outside input.
        let prov = match File::open(&prov_path) {
            Ok(file) => {
                let mut bytes = Vec::new();
                file.take(crate::chart::artifact::MAX_PROV + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| SaveError::Io {
                        path: prov_path.clone(),
                        source,
                    })?;
                if bytes.len() as u64 > crate::chart::artifact::MAX_PROV {
                    return Err(SaveError::Io {
                        path: prov_path,
                        source: io::Error::other(format!(
                            "larger than {} KiB, not a provenance file",
                            crate::chart::artifact::MAX_PROV >> 10
                        )),
                    });
                }
                Some(bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SaveError::Io {
                    path: prov_path,
                    source,
                });
            }
        };
        (metadata, Vec::new(), prov)
    } else {
        return Err(SaveError::NotAChart(path.to_path_buf()));
    };
    let staged = blob.finish()?;
    let prov = match &options.sign {
        Some(key) => {
            if prov.is_some() {
                warnings.push(format!(
                    "{}.prov is not stored: the chart is signed anew (--sign)",
                    path.display()
                ));
            }
            let file_name = archive_file_name(&metadata.name, &metadata.version);
            Some(key.sign_chart(&metadata, &file_name, staged.digest())?)
        }
        None => prov,
    };

    let reference = match requested {
        Some(r) if r.tag().is_some() => r,
        Some(r) => r.with_tag(&version_to_tag(&metadata.version))?,
        None => Reference::parse(&format!("localhost/{}", metadata.name))
            .and_then(|r| r.with_tag(&version_to_tag(&metadata.version)))?,
    };
    if reference.basename() != metadata.name {
        warnings.push(format!(
            "the repository name {:?} differs from the chart name {:?}; `helm pull` users expect them to match",
            reference.basename(),
            metadata.name
        ));
    }

    let created = options.created.clone().or_else(|| {
        epoch.map(|secs| {
            crate::output::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        })
    });
    let artifact = ChartArtifact::new(
        &metadata,
        staged.digest().clone(),
        staged.size(),
        prov.as_deref(),
        created.as_deref(),
    );
    let (config_bytes, config, content, prov_desc, manifest_bytes) = (
        artifact.config_bytes,
        artifact.config,
        artifact.content,
        artifact.prov,
        artifact.manifest_bytes,
    );

    let writer = store.write()?;
    writer.commit_blob(staged, None)?;
    writer.put_blob(&config_bytes)?;
    if let Some(p) = &prov {
        writer.put_blob(p)?;
    }
    let manifest_digest = writer.put_blob(&manifest_bytes)?;
    writer.set_ref(
        &reference,
        &RefTarget {
            name: metadata.name.clone(),
            version: metadata.version.clone(),
            manifest: manifest_digest.clone(),
            config: config.digest.clone(),
            content: content.digest.clone(),
            prov: prov_desc.map(|d| d.digest),
        },
    )?;
    Ok(Saved {
        reference,
        metadata,
        config,
        content,
        manifest: Descriptor::new(
            crate::oci::MANIFEST_MEDIA_TYPE,
            manifest_digest,
            manifest_bytes.len() as u64,
        ),
        warnings,
    })
}

/// Copies a `.tgz` into the blob writer byte for byte while validating it in the same pass.
fn copy_archive(path: &Path, blob: &mut impl Write) -> Result<Metadata, SaveError> {
    let io_err = |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut tee = Tee {
        inner: BufReader::with_capacity(256 * 1024, file),
        copy: blob,
    };
    let (metadata, _) = archive::inspect(&mut tee).map_err(|source| SaveError::Archive {
        path: path.to_path_buf(),
        source,
    })?;
    // Whatever follows the end of the tar stream is part of the file and is kept.
    io::copy(&mut tee, &mut io::sink()).map_err(io_err)?;
    Ok(metadata)
}

/// A reader that writes everything it reads into `copy`.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
