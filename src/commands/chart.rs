//! `chartcache chart …`: each subcommand is its flags, one call into the store or a task, and
//! the output in the seed's format.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, Result, bail};

use super::Context;
use super::signing;
use crate::chart::archive;
use crate::cli::{ChartCommand, OutputFormat, ShowWhat, SignArgs, TransportArgs, VerifyArgs};
use crate::engine::places::RegistryPlace;
use crate::output::{Table, human_duration, human_size, rfc3339};
use crate::reference::Reference;
use crate::store::{RefEntry, StoredRef};
use crate::tasks;
use crate::version::version_to_tag;

pub fn run(ctx: &Context, cmd: &ChartCommand) -> Result<()> {
    match cmd {
        ChartCommand::Save {
            path,
            reference,
            sign,
        } => save(ctx, path, reference.as_deref(), sign),
        ChartCommand::List { prefix, output } => list(ctx, prefix.as_deref(), *output),
        ChartCommand::Export {
            reference,
            destination,
            force,
            verify,
        } => export(ctx, reference, destination, *force, verify),
        ChartCommand::Remove { references } => remove(ctx, references),
        ChartCommand::Tag { source, target } => tag(ctx, source, target),
        ChartCommand::Show {
            reference,
            referrers: true,
            output,
            ..
        } => super::referrers::show(ctx, reference, *output),
        ChartCommand::Show {
            reference, what, ..
        } => show(ctx, reference, *what),
        ChartCommand::Images(args) => super::images::run(ctx, args),
        ChartCommand::Push {
            reference,
            transport,
        } => super::block_on(push(ctx, reference, transport)),
        ChartCommand::Pull {
            reference,
            verify,
            cosign_key,
            transport,
        } => super::block_on(pull(
            ctx,
            reference,
            verify,
            cosign_key.as_deref(),
            transport,
        )),
        ChartCommand::Prune => prune(ctx),
        ChartCommand::Verify {
            reference: None, ..
        } => verify(ctx),
        ChartCommand::Verify {
            reference: Some(reference),
            keyring,
            cosign_key,
            transport,
        } => super::block_on(signing::verify_ref(
            ctx,
            reference,
            keyring.as_deref(),
            cosign_key.as_deref(),
            transport,
        )),
    }
}

/// The four summary lines of the seed: Name, Version, Meta, Content.
pub fn print_summary(
    ctx: &Context,
    name: &str,
    version: &str,
    meta: &impl std::fmt::Display,
    content: &impl std::fmt::Display,
) {
    ctx.say(format_args!(
        "Name: {name}\nVersion: {version}\nMeta: {meta}\nContent: {content}"
    ));
}

fn save(ctx: &Context, path: &Path, reference: Option<&str>, sign: &SignArgs) -> Result<()> {
    let options = tasks::save::SaveOptions {
        sign: signing::signing_key(sign)?,
        ..Default::default()
    };
    let saved = tasks::save::save(&ctx.store, path, reference, &options)?;
    for w in &saved.warnings {
        ctx.warn(w);
    }
    print_summary(
        ctx,
        &saved.metadata.name,
        &saved.metadata.version,
        &saved.config.digest,
        &saved.content.digest,
    );
    ctx.say(format_args!(
        "{}: saved",
        saved.reference.tag().unwrap_or_default()
    ));
    Ok(())
}

fn parse(reference: &str) -> Result<Reference> {
    Ok(Reference::parse(reference)?)
}

pub(super) fn resolve(ctx: &Context, reference: &str) -> Result<RefEntry> {
    let r = parse(reference)?;
    let guard = ctx.store.read()?;
    Ok(ctx.store.resolve(&guard, &r)?)
}

fn list(ctx: &Context, prefix: Option<&str>, output: OutputFormat) -> Result<()> {
    let entries: Vec<RefEntry> = {
        let guard = ctx.store.read()?;
        let under = ctx.store.list_under(&guard, prefix.unwrap_or_default())?;
        under
            .into_iter()
            .filter_map(StoredRef::into_chart)
            .collect()
    };
    let now = SystemTime::now();
    // Many refs share one content blob: stat each blob once.
    let mut stats = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(entries.len());
    for e in &entries {
        let (size, mtime) = *stats.entry(e.content.clone()).or_insert_with(|| {
            std::fs::metadata(ctx.store.blob_path(&e.content))
                .map(|m| (m.len(), m.modified().unwrap_or(now)))
                .unwrap_or((0, now))
        });
        rows.push((e, size, mtime));
    }
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let json: Vec<ListItem> = rows
                .iter()
                .map(|(e, size, mtime)| ListItem {
                    reference: e.reference.to_string(),
                    name: &e.name,
                    version: &e.version,
                    digest: &e.content,
                    size: *size,
                    created: rfc3339(*mtime),
                    manifest: e.manifest.as_ref(),
                    meta: &e.config,
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            let mut table = Table::new(&["REF", "NAME", "VERSION", "DIGEST", "SIZE", "CREATED"]);
            for (e, size, mtime) in &rows {
                table.row(vec![
                    e.reference.to_string(),
                    e.name.clone(),
                    e.version.clone(),
                    e.content.short().to_string(),
                    human_size(*size),
                    human_duration(now.duration_since(*mtime).unwrap_or_default()),
                ]);
            }
            write!(out, "{table}")?;
        }
    }
    Ok(())
}

/// One row of `chart list -o json`.
#[derive(serde::Serialize)]
struct ListItem<'a> {
    #[serde(rename = "ref")]
    reference: String,
    name: &'a str,
    version: &'a str,
    /// The content (chart .tgz) digest, as in the table's DIGEST column.
    digest: &'a crate::digest::Digest,
    size: u64,
    created: String,
    manifest: Option<&'a crate::digest::Digest>,
    meta: &'a crate::digest::Digest,
}

fn export(
    ctx: &Context,
    reference: &str,
    dest: &Path,
    force: bool,
    verify: &VerifyArgs,
) -> Result<()> {
    let entry = resolve(ctx, reference)?;
    let keyring = verify
        .verify
        .then(|| signing::keyring(verify.keyring.as_deref()))
        .transpose()?;
    let (target, verified) = {
        let _guard = ctx.store.read()?;
        match &keyring {
            None => (
                tasks::export::export(&ctx.store, &entry, dest, force)?,
                None,
            ),
            Some(keyring) => {
                let e = tasks::export::export_verified(&ctx.store, &entry, dest, force, keyring)?;
                (e.chart, Some((e.archive, e.verified)))
            }
        }
    };
    print_summary(
        ctx,
        &entry.name,
        &entry.version,
        &entry.config,
        &entry.content,
    );
    if let Some((archive, verified)) = &verified {
        signing::print_provenance(ctx, verified);
        ctx.say(format_args!(
            "Wrote {} and {}.prov",
            archive.display(),
            archive.display()
        ));
    }
    ctx.say(format_args!("Exported to {}/", target.display()));
    Ok(())
}

fn remove(ctx: &Context, references: &[String]) -> Result<()> {
    let parsed = references
        .iter()
        .map(|r| parse(r))
        .collect::<Result<Vec<_>>>()?;
    let writer = ctx.store.write()?;
    let mut failed = 0;
    for r in &parsed {
        let removed = match r.tag() {
            Some(_) if r.digest().is_none() => writer.remove_ref(r)?,
            _ => {
                // By digest: remove the tag(s) that resolve to it.
                match writer.resolve(r) {
                    Ok(entry) => writer.remove_ref(&entry.reference)?,
                    Err(crate::store::StoreError::RefNotFound(_)) => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if removed {
            ctx.say(format_args!(
                "{}: removed",
                r.tag().map_or_else(|| r.to_string(), str::to_string)
            ));
        } else {
            eprintln!("Error: ref not found: {r}");
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(super::Reported.into());
    }
    Ok(())
}

fn tag(ctx: &Context, source: &str, target: &str) -> Result<()> {
    let src = parse(source)?;
    let dst = parse(target)?;
    if dst.digest().is_some() {
        bail!("{dst}: the new ref needs a tag, not a digest");
    }
    let writer = ctx.store.write()?;
    let entry = writer.resolve(&src)?;
    let dst = match dst.tag() {
        Some(_) => dst,
        None => dst.with_tag(&version_to_tag(&entry.version))?,
    };
    let Some(manifest) = entry.manifest.clone() else {
        bail!(
            "{src}: this ref was written by an older cache without a manifest; save the chart again"
        );
    };
    writer.set_ref(
        &dst,
        &crate::store::RefTarget {
            name: entry.name,
            version: entry.version,
            manifest,
            config: entry.config,
            content: entry.content,
            prov: entry.prov,
        },
    )?;
    ctx.say(format_args!("{}: tagged", dst.tag().unwrap_or_default()));
    Ok(())
}

fn show(ctx: &Context, reference: &str, what: ShowWhat) -> Result<()> {
    let entry = resolve(ctx, reference)?;
    let read = |want: &dyn Fn(&str) -> bool| -> Result<Option<Vec<u8>>> {
        let blob = ctx.store.open_blob(&entry.content)?;
        archive::read_file(std::io::BufReader::new(blob), want)
            .with_context(|| entry.reference.to_string())
    };
    let chart = || read(&|p: &str| p == "Chart.yaml");
    let values = || read(&|p: &str| p == "values.yaml");
    let readme =
        || read(&|p: &str| !p.contains('/') && p.to_ascii_lowercase().starts_with("readme"));
    let mut out = std::io::stdout().lock();
    // A chart's files are the chart author's words: on a terminal, escape sequences in them
    // are shown, not obeyed. Piped output stays byte for byte.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut emit = |bytes: Option<Vec<u8>>| -> Result<()> {
        if let Some(mut b) = bytes {
            if terminal {
                b = crate::output::terminal_safe(&String::from_utf8_lossy(&b))
                    .into_owned()
                    .into_bytes();
            }
            out.write_all(&b)?;
            if !b.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
        Ok(())
    };
    match what {
        ShowWhat::Chart => emit(chart()?)?,
        ShowWhat::Values => emit(values()?)?,
        ShowWhat::Readme => emit(readme()?)?,
        ShowWhat::All => {
            emit(chart()?)?;
            for part in [values()?, readme()?].into_iter().flatten() {
                emit(Some(b"---".to_vec()))?;
                emit(Some(part))?;
            }
        }
    }
    Ok(())
}

async fn push(ctx: &Context, reference: &str, transport: &TransportArgs) -> Result<()> {
    let r = parse(reference)?;
    let registry = super::registry::connect(ctx, r.host(), transport).await?;
    ctx.say(format_args!(
        "The push refers to repository [{}]",
        r.repository()
    ));
    let registry = RegistryPlace::new(registry);
    let pushed = tasks::transfer::push(&ctx.store, &registry, &r).await?;
    let (e, copied) = (&pushed.entry, &pushed.copied);
    print_summary(ctx, &e.name, &e.version, &e.config, &e.content);
    ctx.say(format_args!(
        "{}: pushed to remote ({} layer{}, {} total)",
        e.reference.tag().unwrap_or_default(),
        copied.blobs,
        if copied.blobs == 1 { "" } else { "s" },
        human_size(pushed.total)
    ));
    if ctx.debug {
        eprintln!(
            "debug: manifest {}; {} of {} blob(s) sent",
            copied.digest, copied.sent, copied.blobs
        );
    }
    Ok(())
}

async fn pull(
    ctx: &Context,
    reference: &str,
    verify: &VerifyArgs,
    cosign_key: Option<&Path>,
    transport: &TransportArgs,
) -> Result<()> {
    let r = parse(reference)?;
    if r.tag().is_none() && r.digest().is_none() {
        bail!("{r}: a tag or a digest is required (like {r}:1.0.0)");
    }
    let policy = signing::policy(verify.verify, verify.keyring.as_deref(), cosign_key)?;
    let registry = super::registry::connect(ctx, r.host(), transport).await?;
    let shown = r.tag().map_or_else(
        || r.digest().map(ToString::to_string).unwrap_or_default(),
        str::to_string,
    );
    ctx.say(format_args!("{shown}: Pulling from {}", r.repository()));
    let registry = RegistryPlace::new(registry);
    let (pulled, checked) = if policy.is_empty() {
        let pulled = tasks::transfer::pull(&ctx.store, &registry, &r).await?;
        (pulled, Default::default())
    } else {
        // Checked in a scratch cache first: a chart that does not verify is not stored.
        tasks::verify::pull(&ctx.store, &registry, &r, &policy).await?
    };
    for w in &pulled.warnings {
        eprintln!("Warning: {}", crate::output::terminal_safe(w));
    }
    let e = &pulled.entry;
    print_summary(ctx, &e.name, &e.version, &e.config, &e.content);
    signing::print_checked(ctx, &checked, cosign_key);
    if pulled.downloaded {
        ctx.say(format_args!(
            "Status: Downloaded newer chart for {}",
            e.reference
        ));
    } else {
        ctx.say(format_args!(
            "Status: Chart is up to date for {}",
            e.reference
        ));
    }
    Ok(())
}

fn prune(ctx: &Context) -> Result<()> {
    let report = ctx.store.write()?.prune()?;
    if report.blobs == 0 && report.markers == 0 && report.bytes == 0 {
        ctx.say("Nothing to prune");
    } else {
        ctx.say(format_args!(
            "Deleted {} blob{} and {} chart version marker{}, freed {}",
            report.blobs,
            if report.blobs == 1 { "" } else { "s" },
            report.markers,
            if report.markers == 1 { "" } else { "s" },
            human_size(report.bytes)
        ));
    }
    Ok(())
}

fn verify(ctx: &Context) -> Result<()> {
    let report = {
        let guard = ctx.store.read()?;
        ctx.store.verify(&guard)?
    };
    for p in &report.problems {
        println!("{}", crate::output::terminal_safe(&p.to_string()));
    }
    if report.problems.is_empty() {
        ctx.say(format_args!(
            "Verified {} blobs and {} refs: OK",
            report.blobs, report.refs
        ));
        Ok(())
    } else {
        bail!(
            "{} problem{} found in {}",
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" },
            ctx.store.root().display()
        )
    }
}
