//! `chartcache repo …`: fetch from and migrate classic (index.yaml) repositories.

use std::io::Read;

use anyhow::{Context as _, Result, bail};

use super::Context;
use super::report::Reporter;
use crate::classic::{Repo, RepoOptions};
use crate::cli::{RepoAuthArgs, RepoCommand};
use crate::constraint::Constraint;
use crate::credentials::{Credential, Secret};
use crate::engine::Source as _;
use crate::engine::classic::{ClassicSource, Selection};
use crate::engine::places::RegistryPlace;
use crate::reference::Reference;
use crate::tasks::sync::{self, Destination, SyncOptions};
use crate::tasks::{Outcome, fetch, save};

pub async fn run(ctx: &Context, cmd: &RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Fetch {
            repo_url,
            chart,
            chart_version,
            devel,
            destination,
            save: save_ref,
            auth,
            ca_file,
            insecure,
            index: index_args,
        } => {
            let repo = Repo::new(
                repo_url,
                options(
                    ctx,
                    auth,
                    ca_file.clone(),
                    *insecure,
                    index_args.max_index_size,
                )?,
            )?;
            let index = repo.index().await?;
            for w in &index.warnings {
                ctx.warn(w);
            }
            let (entry, fetched) = fetch::fetch(
                &repo,
                &index,
                chart,
                chart_version.as_deref(),
                *devel,
                destination,
            )
            .await?;
            ctx.say(format_args!(
                "Fetched {} {} to {}",
                entry.name,
                entry.version,
                fetched.path.display()
            ));
            ctx.say(format_args!("Digest: {}", fetched.digest));
            if let Some(r) = save_ref {
                let saved = save::save(&ctx.store, &fetched.path, Some(r), &Default::default())?;
                ctx.say(format_args!("{}: saved", saved.reference));
            }
            Ok(())
        }
        RepoCommand::Migrate {
            repo_url,
            dest_prefix,
            charts,
            chart_version,
            devel,
            jobs,
            dry_run,
            keep_going,
            output,
            auth,
            transport,
            index: index_args,
        } => {
            let prefix = Reference::parse(dest_prefix)?;
            if prefix.tag().is_some() || prefix.digest().is_some() {
                bail!("{dest_prefix}: the destination is a prefix, without a tag or digest");
            }
            let constraint = chart_version
                .as_deref()
                .map(Constraint::parse)
                .transpose()?;
            let repo = Repo::new(
                repo_url,
                options(
                    ctx,
                    auth,
                    transport.ca_file.clone(),
                    transport.insecure,
                    index_args.max_index_size,
                )?,
            )?;
            let source = ClassicSource::open(repo).await?;
            for w in source.warnings() {
                ctx.warn(w);
            }
            let selection = source.select(charts, constraint.as_ref(), *devel)?;
            let registry = super::registry::connect(ctx, prefix.host(), transport).await?;
            let sink = RegistryPlace::new(registry);
            let options = SyncOptions {
                jobs: usize::from(*jobs),
                dry_run: *dry_run,
                keep_going: *keep_going,
                immutable_tags: false,
                platforms: Vec::new(),
                referrers: Default::default(),
                signatures: Default::default(),
            };
            migrate(ctx, &source, &sink, &prefix, selection, &options, *output).await
        }
    }
}

/// `repo migrate`: a sync from the classic repository to `DEST_PREFIX/<chart>:<version>`,
/// reported by destination name.
async fn migrate(
    ctx: &Context,
    source: &ClassicSource,
    sink: &RegistryPlace,
    prefix: &Reference,
    selection: Selection,
    options: &SyncOptions,
    output: crate::cli::OutputFormat,
) -> Result<()> {
    let Selection {
        named: refs,
        unnamed,
    } = selection;
    let destination = Destination {
        base: Some(prefix.repository()),
        scoped: false,
    };
    let total = refs.len() + unnamed.len();
    let reporter = Reporter::new(ctx, total, options.dry_run, super::report::MIGRATE, output);
    let mut outcomes = Vec::new();
    let (items, clashes) = sync::items(refs.into_iter().map(|r| (r, None)).collect(), &destination);
    let failed = unnamed
        .into_iter()
        .map(|(what, why)| (what, Outcome::Failed(why)))
        .chain(clashes);
    for (what, outcome) in failed {
        reporter.item(&what, &outcome);
        outcomes.push(outcome);
    }
    let done = sync::sync(
        source,
        Some(sink),
        &items,
        options,
        None,
        |item, outcome, _| reporter.item(&item.target.to_string(), outcome),
    )
    .await?;
    outcomes.extend(done);
    reporter.finish(&outcomes, "chart versions", &source.describe())
}

fn options(
    ctx: &Context,
    auth: &RepoAuthArgs,
    ca_file: Option<std::path::PathBuf>,
    insecure: bool,
    max_index_size: u64,
) -> Result<RepoOptions> {
    let secret = if auth.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        Some(Secret::new(s.trim_end_matches(['\n', '\r'])))
    } else if let Some(p) = &auth.password {
        ctx.warn("Using --password via the CLI is insecure. Use --password-stdin.");
        Some(Secret::new(p.clone()))
    } else {
        None
    };
    let credential = match (&auth.username, secret) {
        (Some(u), Some(s)) => Some(Credential {
            username: u.clone(),
            secret: s,
        }),
        (Some(u), None) => bail!("--username {u} needs --password-stdin (or --password)"),
        _ => None,
    };
    Ok(RepoOptions {
        credential,
        pass_credentials: auth.pass_credentials,
        ca_file,
        insecure,
        timeouts: ctx.timeouts,
        max_index_size,
    })
}
