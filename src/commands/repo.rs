//! `chartcache repo …`: fetch from and migrate classic (index.yaml) repositories.

use std::io::{IsTerminal, Read};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::classic::{Repo, RepoOptions};
use crate::cli::{RepoAuthArgs, RepoCommand};
use crate::constraint::Constraint;
use crate::credentials::{Credential, Secret};
use crate::reference::Reference;
use crate::tasks::migrate::{self, MigrateOptions, Outcome};
use crate::tasks::{fetch, save};

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
        } => {
            let repo = Repo::new(repo_url, options(ctx, auth, ca_file.clone(), *insecure)?)?;
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
            auth,
            transport,
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
                options(ctx, auth, transport.ca_file.clone(), transport.insecure)?,
            )?;
            let index = repo.index().await?;
            for w in &index.warnings {
                ctx.warn(w);
            }
            let entries = index.select(charts, constraint.as_ref(), *devel)?;
            let registry = super::registry::connect(ctx, prefix.host(), transport).await?;
            migrate_all(
                ctx,
                &repo,
                &registry,
                &prefix,
                &entries,
                *jobs,
                *dry_run,
                *keep_going,
            )
            .await
        }
    }
}

fn options(
    ctx: &Context,
    auth: &RepoAuthArgs,
    ca_file: Option<std::path::PathBuf>,
    insecure: bool,
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
    })
}

#[allow(clippy::too_many_arguments)]
async fn migrate_all(
    ctx: &Context,
    repo: &Repo,
    registry: &crate::registry::Registry,
    prefix: &Reference,
    entries: &[&crate::classic::IndexEntry],
    jobs: u16,
    dry_run: bool,
    keep_going: bool,
) -> Result<()> {
    let bar = if std::io::stderr().is_terminal() && !ctx.quiet {
        let bar = ProgressBar::new(entries.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let say = |line: String| {
        if ctx.quiet {
            return;
        }
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let options = MigrateOptions {
        jobs: jobs.into(),
        dry_run,
        keep_going,
    };
    let outcomes = migrate::migrate(
        &ctx.store,
        repo,
        registry,
        prefix,
        entries,
        &options,
        |entry, target, outcome| {
            bar.inc(1);
            bar.set_message(format!("{} {}", entry.name, entry.version));
            let target = if target.is_empty() {
                format!("{} {}", entry.name, entry.version)
            } else {
                target.to_string()
            };
            match outcome {
                Outcome::Migrated => say(format!("{target}: migrated")),
                Outcome::Skipped => say(format!("{target}: up to date, skipped")),
                Outcome::Planned => say(format!("{target}: would migrate")),
                Outcome::Failed(e) => eprintln!("Error: {target}: {e}"),
                Outcome::NotAttempted => {}
            }
        },
    )
    .await;
    bar.finish_and_clear();
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let failed = count(|o| matches!(o, Outcome::Failed(_)));
    let not_attempted = count(|o| matches!(o, Outcome::NotAttempted));
    let verb = if dry_run { "To migrate" } else { "Migrated" };
    let done = count(|o| matches!(o, Outcome::Migrated | Outcome::Planned));
    let mut summary = format!(
        "{verb}: {done}, skipped: {}, failed: {failed} (of {} chart versions from {})",
        count(|o| matches!(o, Outcome::Skipped)),
        entries.len(),
        repo.url()
    );
    if not_attempted > 0 {
        summary.push_str(&format!(
            "; {not_attempted} not attempted after the failure (use --keep-going)"
        ));
    }
    ctx.say(&summary);
    if failed > 0 {
        return Err(super::Reported.into());
    }
    Ok(())
}
