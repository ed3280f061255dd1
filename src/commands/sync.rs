//! `chartcache sync [SRC] DEST`: checks every argument (references, filters, the skopeo sync
//! file) before contacting anything, connects each side with its own credentials and TLS
//! settings, builds the list of sources (a repository, a tag, the cache, or the file's
//! registries), and runs the sync task once per source registry.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Context;
use super::report::Reporter;
use crate::cli::SyncArgs;
use crate::constraint::Constraint;
use crate::credentials::{Credential, Secret};
use crate::digest::Digest;
use crate::engine::cache::CachePlace;
use crate::engine::places::{LayoutSink, LayoutSource, PlaceName, RegistryPlace};
use crate::engine::referrers::{ReferrerPolicy, is_referrer_tag};
use crate::engine::{Sink, Source as EngineSource};
use crate::reference::Reference;
use crate::registry::{Registry, Transport};
use crate::tasks::Outcome;
use crate::tasks::sync::config::{self, Select};
use crate::tasks::sync::images::{self, Connector, Images};
use crate::tasks::sync::{self, Destination, SyncOptions, TagFilter};

/// The largest `--images-from` list read.
const MAX_IMAGE_LIST: u64 = 1024 * 1024;

/// One side's TLS settings, from the `--src-*` or `--dest-*` flags.
struct SideFlags<'a> {
    plain_http: bool,
    insecure: bool,
    tls_verify: Option<bool>,
    ca_file: &'a Option<PathBuf>,
    cert_file: &'a Option<PathBuf>,
    key_file: &'a Option<PathBuf>,
    cert_dir: &'a Option<PathBuf>,
}

impl SideFlags<'_> {
    fn transport(&self) -> Transport {
        let no_verify = self.tls_verify == Some(false);
        let mut t = Transport {
            plain_http: self.plain_http,
            insecure: self.insecure || no_verify,
            http_fallback: no_verify,
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            timeouts: Default::default(),
        };
        if let Some(dir) = self.cert_dir {
            apply_cert_dir(&mut t, dir);
        }
        t
    }
}

fn apply_cert_dir(t: &mut Transport, dir: &Path) {
    let (ca, cert, key) = config::cert_dir_files(dir);
    t.ca_file = t.ca_file.take().or(ca);
    if t.cert_file.is_none() {
        t.cert_file = cert;
        t.key_file = key;
    }
}

fn parse_creds(text: &str, flag: &str) -> Result<Credential> {
    let (user, pass) = text
        .split_once(':')
        .with_context(|| format!("{flag} takes USER:PASS"))?;
    Ok(Credential {
        username: user.to_string(),
        secret: Secret::new(pass),
    })
}

async fn connect(
    ctx: &Context,
    host: &str,
    transport: &Transport,
    creds: Option<Credential>,
) -> Result<Registry> {
    let credential = match creds {
        Some(c) => Some(c),
        None => ctx.credentials.get(host)?,
    };
    let transport = Transport {
        timeouts: ctx.timeouts,
        ..transport.clone()
    };
    Ok(Registry::connect(host, &transport, credential).await?)
}

/// What SRC names, parsed but not yet looked up.
enum SourceArg {
    /// `cache:` or `cache:SCOPE`: a repository or path prefix, or one cached reference.
    Cache(String),
    /// A repository (all its tags) or one tag or digest.
    Registry(Reference),
    /// `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`.
    Layout(PlaceName),
    /// `http(s)://…`: a classic chart repository, read through its index.yaml.
    Classic(String),
    /// `--config FILE`, every section checked.
    Config(
        PathBuf,
        Vec<(String, config::RegistryConfig, Vec<config::Entry>)>,
    ),
}

/// What DEST names.
enum DestArg {
    /// `cache:` or `cache:PREFIX`.
    Cache(Option<String>),
    /// `host[/prefix]`.
    Registry { host: String, base: String },
    /// `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`: artifacts keep their names.
    Layout(PlaceName),
}

fn parse_dest(dest: &str) -> Result<DestArg> {
    if let Some(place) = PlaceName::parse(dest) {
        return Ok(DestArg::Layout(place));
    }
    if let Some(prefix) = dest.strip_prefix("cache:") {
        let prefix = prefix.trim_end_matches('/');
        if prefix.is_empty() {
            return Ok(DestArg::Cache(None));
        }
        Reference::parse(&format!("{prefix}/x"))
            .with_context(|| format!("{dest}: not cache: or cache:HOST[/PREFIX]"))?;
        return Ok(DestArg::Cache(Some(prefix.to_string())));
    }
    let base = dest.trim_start_matches("docker://").trim_end_matches('/');
    Reference::parse(&format!("{base}/x"))
        .with_context(|| format!("{dest}: not a registry or registry/prefix"))?;
    let host = base.split('/').next().unwrap_or(base).to_string();
    Ok(DestArg::Registry {
        host,
        base: base.to_string(),
    })
}

/// One place to sync from (a registry, the cache, a layout, a classic repository), with the
/// references chosen there.
struct Source {
    label: String,
    place: Box<dyn EngineSource>,
    refs: Vec<(Reference, Option<Digest>)>,
}

pub async fn run(ctx: &Context, args: &SyncArgs) -> Result<()> {
    // Everything the arguments say is checked first: a mistake contacts nothing.
    let (source_arg, dest_arg) = match (&args.config, args.places.as_slice()) {
        (Some(_), [dest]) => (None, dest.as_str()),
        (Some(_), _) => bail!("with --config, give only DEST"),
        (None, [src, dest]) => (Some(src.as_str()), dest.as_str()),
        (None, _) => bail!("give SRC and DEST (or --config FILE and DEST)"),
    };
    let filter = TagFilter {
        constraint: args
            .constraint
            .as_deref()
            .map(Constraint::parse)
            .transpose()
            .context("--constraint")?,
        regex: args
            .tag_regex
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("--tag-regex")?,
    };
    let platforms = args
        .platform
        .iter()
        .map(|p| crate::engine::copy::Platform::parse(p))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--platform {e}"))?;
    // Keys are read before anything is contacted.
    let signatures = super::signing::required(
        args.require_signed,
        args.keyring.as_deref(),
        args.cosign_key.as_deref(),
    )?;
    let src_creds = args
        .src_creds
        .as_deref()
        .map(|c| parse_creds(c, "--src-creds"))
        .transpose()?;
    let dest_creds = args
        .dest_creds
        .as_deref()
        .map(|c| parse_creds(c, "--dest-creds"))
        .transpose()?;
    let listed = match &args.images_from {
        Some(path) => image_list(path)?,
        None => Vec::new(),
    };
    let source = match (source_arg, &args.config) {
        (_, Some(path)) => {
            let cfg = config::read(path).map_err(anyhow::Error::msg)?;
            let mut sections = Vec::new();
            for (host, rc) in cfg {
                let entries = config::entries(path, &host, &rc).map_err(anyhow::Error::msg)?;
                sections.push((host, rc, entries));
            }
            SourceArg::Config(path.clone(), sections)
        }
        (Some(src), None) if src.starts_with("https://") || src.starts_with("http://") => {
            SourceArg::Classic(src.to_string())
        }
        (Some(src), None) if PlaceName::parse(src).is_some() => {
            SourceArg::Layout(PlaceName::parse(src).context("checked above")?)
        }
        (Some(src), None) => match src.strip_prefix("cache:") {
            Some(scope) => SourceArg::Cache(scope.trim_end_matches('/').to_string()),
            None => {
                let r = Reference::parse(src.trim_start_matches("docker://"))?;
                if (r.tag().is_some() || r.digest().is_some()) && !filter.is_empty() {
                    bail!(
                        "{src}: names one tag; {} filter the tags of a repository",
                        filter.describe()
                    );
                }
                SourceArg::Registry(r)
            }
        },
        (None, None) => unreachable!("checked above"),
    };
    let dest = parse_dest(dest_arg)?;
    let source_host = match &source {
        SourceArg::Registry(r) => Some(r.host().to_string()),
        _ => None,
    };
    match (&source, &dest) {
        (SourceArg::Cache(_), DestArg::Cache(_)) => bail!(
            "SRC and DEST are both the cache: use `chart tag` to give cached charts other names"
        ),
        (SourceArg::Layout(a), DestArg::Layout(b)) if a.path() == b.path() => {
            bail!("SRC and DEST are the same layout")
        }
        _ => {}
    }

    let src_flags = SideFlags {
        plain_http: args.src_plain_http,
        insecure: args.src_insecure,
        tls_verify: args.src_tls_verify,
        ca_file: &args.src_ca_file,
        cert_file: &args.src_cert_file,
        key_file: &args.src_key_file,
        cert_dir: &args.src_cert_dir,
    };
    let dest_flags = SideFlags {
        plain_http: args.dest_plain_http,
        insecure: args.dest_insecure,
        tls_verify: args.dest_tls_verify,
        ca_file: &args.dest_ca_file,
        cert_file: &args.dest_cert_file,
        key_file: &args.dest_key_file,
        cert_dir: &args.dest_cert_dir,
    };

    // Two registries are reached at once: each costs a round trip or two before anything else.
    let (src_registry, dest_registry) = tokio::join!(
        async {
            match &source {
                SourceArg::Registry(r) => {
                    let transport = src_flags.transport();
                    Some(connect(ctx, r.host(), &transport, src_creds.clone()).await).transpose()
                }
                _ => Ok(None),
            }
        },
        async {
            match &dest {
                DestArg::Registry { host, .. } => {
                    let transport = dest_flags.transport();
                    Some(connect(ctx, host, &transport, dest_creds.clone()).await).transpose()
                }
                _ => Ok(None),
            }
        },
    );
    let (mut src_registry, mut dest_registry) = (src_registry?, dest_registry?);

    // The destination. A layout is opened (or created) here; an archive is written to a
    // temporary file and only renamed into place once every copy is done. A dry run does not
    // create a layout that is not there.
    let dest_ref = match &dest {
        DestArg::Layout(place) => place.reference().map(str::to_string),
        _ => None,
    };
    let (sink, destination): (Option<Box<dyn Sink>>, Destination) = match dest {
        DestArg::Layout(place) => {
            let sink: Option<Box<dyn Sink>> = match &place {
                _ if !args.dry_run => Some(match place {
                    PlaceName::Archive { .. } => Box::new(LayoutSink::archive(place)?),
                    PlaceName::Layout { .. } => Box::new(LayoutSink::dir(place, true)?),
                }),
                PlaceName::Layout { path, .. } if path.exists() => {
                    Some(Box::new(LayoutSink::dir(place, false)?))
                }
                _ => None,
            };
            let destination = Destination {
                base: None,
                scoped: false,
            };
            (sink, destination)
        }
        DestArg::Cache(prefix) => (
            Some(Box::new(CachePlace::new(ctx.store.clone()))),
            Destination {
                base: prefix,
                scoped: args.scoped,
            },
        ),
        DestArg::Registry { host, base } => {
            let registry = match dest_registry.take() {
                Some(registry) => registry,
                None => connect(ctx, &host, &dest_flags.transport(), dest_creds).await?,
            };
            (
                Some(Box::new(RegistryPlace::new(registry))),
                Destination {
                    base: Some(base),
                    scoped: args.scoped,
                },
            )
        }
    };

    // The sources: what each holds that the filters take.
    let mut sources: Vec<Source> = Vec::new();
    match source {
        SourceArg::Classic(url) => {
            let options = crate::classic::RepoOptions {
                credential: src_creds.clone(),
                ca_file: args.src_ca_file.clone(),
                insecure: args.src_insecure || args.src_tls_verify == Some(false),
                timeouts: ctx.timeouts,
                ..Default::default()
            };
            let repo = crate::classic::Repo::new(&url, options)?;
            let classic = crate::engine::classic::ClassicSource::open(repo).await?;
            for w in classic.warnings() {
                ctx.warn(w);
            }
            let label = crate::classic::http::redact(&classic_url(&url)?);
            let what = "no chart version to sync (none in the index, or none matches)";
            sources.push(engine_source(label, Box::new(classic), &filter, what)?);
        }
        SourceArg::Layout(place) => {
            let label = place.to_string();
            let layout: Box<dyn EngineSource> = match place {
                PlaceName::Archive { .. } => Box::new(LayoutSource::open_archive(place)?),
                PlaceName::Layout { .. } => Box::new(LayoutSource::open_dir(place)?),
            };
            let what = "no artifact to sync (no ref names one, or none matches)";
            sources.push(engine_source(label, layout, &filter, what)?);
        }
        SourceArg::Config(path, sections) => {
            for (host, rc, entries) in sections {
                for key in rc.unknown.keys() {
                    ctx.warn(format!(
                        "{}: {host}: unknown key {key:?} ignored (as skopeo does)",
                        path.display()
                    ));
                }
                if entries.is_empty() {
                    ctx.warn(format!("{}: {host}: no images to sync", path.display()));
                    continue;
                }
                let mut transport = src_flags.transport();
                if rc.tls_verify == Some(false) {
                    transport.insecure = true;
                    transport.http_fallback = true;
                }
                if let Some(dir) = &rc.cert_dir {
                    apply_cert_dir(&mut transport, dir);
                }
                let creds = match &rc.credentials {
                    Some(c) if !c.username.is_empty() => Some(Credential {
                        username: c.username.clone(),
                        secret: Secret::new(c.password.clone()),
                    }),
                    _ => src_creds.clone(),
                };
                let place = RegistryPlace::new(connect(ctx, &host, &transport, creds).await?)
                    .listing_once();
                let mut refs = Vec::new();
                for entry in entries {
                    let mut f = filter.clone();
                    let found = match entry.select {
                        Select::Only(named) => {
                            refs.extend(
                                named
                                    .into_iter()
                                    .filter(|r| r.tag().is_none_or(|t| f.accepts(t)))
                                    .map(|r| (r, None)),
                            );
                            continue;
                        }
                        Select::All => sync::list(&place, &entry.repo, &f).await?,
                        Select::Regex(re) => {
                            f.regex = Some(re);
                            sync::list(&place, &entry.repo, &f).await?
                        }
                        Select::Semver(c) => {
                            f.constraint = Some(c);
                            sync::list(&place, &entry.repo, &f).await?
                        }
                    };
                    if found.is_empty() {
                        ctx.warn(format!(
                            "{}: {}: no tag matches",
                            path.display(),
                            entry.repo
                        ));
                    }
                    refs.extend(found.into_iter().map(|r| (r, None)));
                }
                sources.push(Source {
                    label: host.clone(),
                    place: Box::new(place),
                    refs,
                });
            }
        }
        SourceArg::Cache(scope) => {
            let place = CachePlace::new(ctx.store.clone());
            let refs = cache_refs(&place, &scope, &filter).await?;
            sources.push(Source {
                label: match scope.as_str() {
                    "" => "the cache".into(),
                    s => format!("the cache ({s})"),
                },
                place: Box::new(place),
                refs,
            });
        }
        SourceArg::Registry(r) => {
            let registry = match src_registry.take() {
                Some(registry) => registry,
                None => connect(ctx, r.host(), &src_flags.transport(), src_creds.clone()).await?,
            };
            let place = RegistryPlace::new(registry).listing_once();
            let refs = if r.tag().is_some() || r.digest().is_some() {
                match place.registry.manifest_digest(&r).await? {
                    Some(d) => vec![(r.clone(), Some(d))],
                    None => bail!("{r}: not found at {}", r.host()),
                }
            } else {
                let found = sync::list(&place, &r, &filter).await?;
                if found.is_empty() {
                    match filter.is_empty() {
                        true => bail!("{r}: the repository has no tags"),
                        false => bail!("{r}: no tag matches {}", filter.describe()),
                    }
                }
                found.into_iter().map(|t| (t, None)).collect()
            };
            sources.push(Source {
                label: r.to_string(),
                place: Box::new(place),
                refs,
            });
        }
    }

    let options = SyncOptions {
        jobs: args.jobs.into(),
        dry_run: args.dry_run,
        keep_going: args.keep_going,
        immutable_tags: args.immutable_tags,
        platforms,
        referrers: ReferrerPolicy {
            enabled: !args.no_referrers,
            types: args.referrers_type.clone(),
        },
        signatures,
    };
    if let Some(r) = &dest_ref {
        let count: usize = sources.iter().map(|s| s.refs.len()).sum();
        if count > 1 {
            bail!("{dest_arg}: :{r} names one artifact, and the source has {count}");
        }
    }
    // With --images: images are read with the source side's TLS settings and the stored
    // logins (--src-creds too, for the source registry's own host).
    let images = args.images.then(|| {
        let given = match (&source_host, &src_creds) {
            (Some(host), Some(c)) => vec![(host.clone(), c.clone())],
            _ => Vec::new(),
        };
        let connector = Connector {
            transport: Transport {
                timeouts: ctx.timeouts,
                ..src_flags.transport()
            },
            credentials: ctx.credentials.clone(),
            given,
        };
        Images::new(connector, listed, destination.clone())
    });
    let total = sources.iter().map(|s| s.refs.len()).sum();
    let mut reporter = Reporter::new(ctx, total, args.dry_run, super::report::SYNC, args.output);
    if images.is_some() {
        reporter = reporter.with_images();
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    let from = sources
        .iter()
        .map(|s| s.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for source in sources {
        let (items, failed) = sync::items(source.refs, &destination);
        for (what, outcome) in failed {
            reporter.item(&what, &outcome);
            outcomes.push(outcome);
        }
        let report = |item: &sync::Item, outcome: &Outcome, found: &images::ChartImages| {
            let (from, to) = (item.source.to_string(), item.target.to_string());
            match images.is_some() {
                true => reporter.copied_with_images(&from, &to, outcome, found),
                false => reporter.copied(&from, &to, outcome),
            }
        };
        let done = sync::sync(
            source.place.as_ref(),
            sink.as_deref(),
            &items,
            &options,
            images.as_ref(),
            report,
        )
        .await;
        match done {
            Ok(done) => outcomes.extend(done),
            Err(e) if outcomes.is_empty() => bail!(e),
            Err(e) => {
                let outcome = Outcome::Failed(e.to_string());
                reporter.item(&source.label, &outcome);
                outcomes.push(outcome);
            }
        }
        if outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))) && !args.keep_going {
            break;
        }
    }
    // An archive is complete only now: renamed into place when every copy succeeded (or
    // with --keep-going, holding what did); else its temporary file is dropped.
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(_)));
    if let Some(sink) = &sink
        && (!failed || args.keep_going)
    {
        sink.finish()?;
    }
    reporter.finish(&outcomes, "references", &from)
}

/// The `--images-from` list: one image reference per line.
fn image_list(path: &Path) -> Result<Vec<images::Listed>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut text = String::new();
    file.take(MAX_IMAGE_LIST + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{}: not a UTF-8 text file", path.display()))?;
    if text.len() as u64 > MAX_IMAGE_LIST {
        bail!("{}: larger than 1 MiB", path.display());
    }
    Ok(images::parse_list(&path.display().to_string(), &text)?)
}

/// The artifacts of a source of the copy engine that `filter` takes, newest first; an error
/// saying `none` when there are none.
fn engine_source(
    label: String,
    place: Box<dyn EngineSource>,
    filter: &TagFilter,
    none: &str,
) -> Result<Source> {
    let mut refs: Vec<Reference> = place
        .artifacts()?
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.tag()
                .is_none_or(|t| filter.accepts(t) && !is_referrer_tag(t))
        })
        .collect();
    sync::sort(&mut refs);
    if refs.is_empty() {
        bail!("{label}: {none}");
    }
    Ok(Source {
        label,
        place,
        refs: refs.into_iter().map(|r| (r, None)).collect(),
    })
}

fn classic_url(url: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(url).with_context(|| format!("{url}: not a valid repository URL"))
}

/// The cached references `cache:SCOPE` names: everything (no scope), one reference (a scope
/// with a tag or digest), or the repositories equal to or under the scope.
async fn cache_refs(
    cache: &CachePlace,
    scope: &str,
    filter: &TagFilter,
) -> Result<Vec<(Reference, Option<Digest>)>> {
    let store = &cache.store;
    if !scope.is_empty()
        && let Ok(one) = Reference::parse(scope)
        && (one.tag().is_some() || one.digest().is_some())
    {
        if !store.root().exists() {
            bail!(
                "cache:{scope}: not in the cache (there is none at {})",
                store.root().display()
            );
        }
        let guard = store.read()?;
        let found = store
            .resolve_any(&guard, &one)
            .with_context(|| format!("cache:{scope}: not in the cache"))?;
        return Ok(vec![(found.reference().clone(), found.manifest().cloned())]);
    }
    let (found, refs) = sync::list_cached_under(store, scope, filter)?;
    if found == 0 {
        match scope.is_empty() {
            true => bail!("the cache holds no charts (at {})", store.root().display()),
            false => bail!("cache:{scope}: no cached repository is or is under {scope}"),
        }
    }
    if refs.is_empty() {
        bail!("cache:{scope}: no tag matches {}", filter.describe());
    }
    Ok(refs.into_iter().map(|r| (r, None)).collect())
}
