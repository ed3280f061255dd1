//! `chartcache sync [SRC] DEST`: builds the list of sources (a repository, a tag, the cache,
//! or a skopeo sync file), connects each side with its own credentials and TLS settings, and
//! runs the sync task once per source registry.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Context;
use super::report::Reporter;
use crate::cli::SyncArgs;
use crate::constraint::Constraint;
use crate::credentials::{Credential, Secret};
use crate::reference::Reference;
use crate::registry::{Registry, Transport};
use crate::tasks::Outcome;
use crate::tasks::sync::{self, Destination, Item, Place, SyncOptions, TagFilter, config};

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
    Ok(Registry::connect(host, transport, credential).await?)
}

/// The sources of one registry (or the cache), with their references.
struct Source {
    label: String,
    registry: Option<Registry>,
    refs: Vec<Reference>,
}

pub async fn run(ctx: &Context, args: &SyncArgs) -> Result<()> {
    let (source_arg, dest_arg) = match (&args.config, args.places.as_slice()) {
        (Some(_), [dest]) => (None, dest.as_str()),
        (Some(_), _) => bail!("with --config, give only DEST"),
        (None, [src, dest]) => (Some(src.as_str()), dest.as_str()),
        (None, _) => bail!("give SRC and DEST (or --config FILE and DEST)"),
    };
    let filter = || -> Result<TagFilter> {
        Ok(TagFilter {
            constraint: args
                .constraint
                .as_deref()
                .map(Constraint::parse)
                .transpose()?,
            regex: args
                .tag_regex
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .context("--tag-regex")?,
            only: None,
        })
    };
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

    // The destination.
    let (dest_registry, destination) = match dest_arg.strip_prefix("cache:") {
        Some(prefix) => (
            None,
            Destination {
                base: Some(prefix.to_string()).filter(|p| !p.is_empty()),
                scoped: args.scoped,
            },
        ),
        None => {
            let base = dest_arg
                .trim_start_matches("docker://")
                .trim_end_matches('/');
            Reference::parse(&format!("{base}/x"))
                .with_context(|| format!("{dest_arg}: not a registry or registry/prefix"))?;
            let host = base.split('/').next().unwrap_or(base);
            let registry = connect(ctx, host, &dest_flags.transport(), dest_creds).await?;
            (
                Some(registry),
                Destination {
                    base: Some(base.to_string()),
                    scoped: args.scoped,
                },
            )
        }
    };

    // The sources.
    let mut sources: Vec<Source> = Vec::new();
    if let Some(path) = &args.config {
        let cfg = config::read(path).map_err(anyhow::Error::msg)?;
        for (host, rc) in cfg {
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
            let registry = connect(ctx, &host, &transport, creds).await?;
            let mut refs = Vec::new();
            let mut add = async |name: &str, f: TagFilter| -> Result<()> {
                let repo = Reference::parse(&format!("{host}/{name}"))?;
                refs.extend(
                    sync::list(Place::Registry(&registry), &repo, &f)
                        .await
                        .map_err(anyhow::Error::msg)?,
                );
                Ok(())
            };
            for (name, tags) in &rc.images {
                let mut f = filter()?;
                f.only = tags.clone().filter(|t| !t.is_empty());
                add(name, f).await?;
            }
            for (name, re) in &rc.images_by_tag_regex {
                let mut f = filter()?;
                f.regex =
                    Some(regex::Regex::new(re).with_context(|| {
                        format!("{}: images-by-tag-regex {name}", path.display())
                    })?);
                add(name, f).await?;
            }
            for (name, c) in &rc.images_by_semver {
                let mut f = filter()?;
                f.constraint = Some(Constraint::parse(c)?);
                add(name, f).await?;
            }
            sources.push(Source {
                label: host.clone(),
                registry: Some(registry),
                refs,
            });
        }
    } else if let Some(src) = source_arg {
        match src.strip_prefix("cache:") {
            Some(scope) => {
                let repos = sync::cache_repositories(&ctx.store).map_err(anyhow::Error::msg)?;
                let mut refs = Vec::new();
                for repo in repos
                    .iter()
                    .filter(|r| scope.is_empty() || r.repository() == scope)
                {
                    refs.extend(
                        sync::list(Place::Cache(&ctx.store), repo, &filter()?)
                            .await
                            .map_err(anyhow::Error::msg)?,
                    );
                }
                sources.push(Source {
                    label: "the cache".into(),
                    registry: None,
                    refs,
                });
            }
            None => {
                let r = Reference::parse(src.trim_start_matches("docker://"))?;
                let registry = connect(ctx, r.host(), &src_flags.transport(), src_creds).await?;
                let refs = if r.tag().is_some() || r.digest().is_some() {
                    vec![r.clone()]
                } else {
                    sync::list(Place::Registry(&registry), &r, &filter()?)
                        .await
                        .map_err(anyhow::Error::msg)?
                };
                sources.push(Source {
                    label: r.repository(),
                    registry: Some(registry),
                    refs,
                });
            }
        }
    }

    let options = SyncOptions {
        jobs: args.jobs.into(),
        dry_run: args.dry_run,
        keep_going: args.keep_going,
        immutable_tags: args.immutable_tags,
    };
    let target_place = match &dest_registry {
        Some(r) => Place::Registry(r),
        None => Place::Cache(&ctx.store),
    };
    let total = sources.iter().map(|s| s.refs.len()).sum();
    let reporter = Reporter::new(ctx, total, args.dry_run, super::report::SYNC);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for source in &sources {
        let mut items = Vec::new();
        for r in &source.refs {
            match destination.target(r) {
                Ok(target) => items.push(Item {
                    source: r.clone(),
                    target,
                }),
                Err(e) => {
                    let outcome = Outcome::Failed(e);
                    reporter.item(&r.to_string(), &outcome);
                    outcomes.push(outcome);
                }
            }
        }
        let place = match &source.registry {
            Some(r) => Place::Registry(r),
            None => Place::Cache(&ctx.store),
        };
        outcomes.extend(
            sync::sync(place, target_place, &items, &options, |item, outcome| {
                reporter.item(&format!("{} -> {}", item.source, item.target), outcome);
            })
            .await,
        );
    }
    let from = sources
        .iter()
        .map(|s| s.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    reporter.finish(&outcomes, "references", &from)
}
