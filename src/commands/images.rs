//! `chartcache chart images CHART`: the flags in, one [`chart_images`] call, the report out
//! (a table of IMAGE and FOUND IN, or JSON with every place and the warnings).

use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::Context;
use crate::chart::images::{ImageReport, LoadedChart, Overrides, chart_images};
use crate::cli::{ImagesArgs, OutputFormat};
use crate::output::terminal_safe;
use crate::reference::Reference;

/// The largest `--values` file read (Helm's limit for a file of a chart).
const MAX_VALUES_FILE: u64 = 5 * 1024 * 1024;

pub fn run(ctx: &Context, args: &ImagesArgs) -> Result<()> {
    let chart = load(ctx, &args.chart)?;
    let mut overrides = Overrides::default();
    for file in &args.values {
        overrides.add_values(file.display().to_string(), read_values(file)?);
    }
    args.set.iter().for_each(|s| overrides.add_set(s));
    args.set_string
        .iter()
        .for_each(|s| overrides.add_set_string(s));
    let report = chart_images(&chart, &overrides).with_context(|| args.chart.clone())?;
    let mut out = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            for w in &report.warnings {
                ctx.warn(w);
            }
            if ctx.quiet {
                for image in &report.images {
                    writeln!(out, "{}", image.image)?;
                }
            } else {
                write!(out, "{}", table(&report, args.why))?;
            }
        }
    }
    Ok(())
}

/// The chart named by `what`: a directory or archive on disk, else a cached reference.
fn load(ctx: &Context, what: &str) -> Result<LoadedChart> {
    let path = Path::new(what);
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(LoadedChart::from_dir(path)?),
        Ok(_) => {
            let file = fs::File::open(path).with_context(|| what.to_string())?;
            LoadedChart::from_archive(BufReader::with_capacity(256 * 1024, file))
                .with_context(|| what.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Ok(reference) = Reference::parse(what) else {
                bail!(
                    "{what}: no such chart directory or .tgz, and not a chart reference (like localhost:5000/myrepo/mychart:1.0.0)"
                );
            };
            let guard = ctx.store.read()?;
            let entry = ctx.store.resolve(&guard, &reference)?;
            let blob = ctx.store.open_blob(&entry.content)?;
            LoadedChart::from_archive(BufReader::with_capacity(256 * 1024, blob))
                .with_context(|| entry.reference.to_string())
        }
        Err(e) => Err(e).with_context(|| what.to_string()),
    }
}

fn read_values(file: &Path) -> Result<String> {
    let f = fs::File::open(file).with_context(|| file.display().to_string())?;
    let mut text = String::new();
    f.take(MAX_VALUES_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{}: not a UTF-8 text file", file.display()))?;
    if text.len() as u64 > MAX_VALUES_FILE {
        bail!("{}: larger than 5 MiB", file.display());
    }
    Ok(text)
}

/// IMAGE and FOUND IN, columns padded as `chart list` pads them (no truncation: references
/// are longer than its 60-character cap). Without `why`, one row per image with its first
/// place and how many more there are; with it, a row per place.
fn table(report: &ImageReport, why: bool) -> String {
    let mut rows: Vec<(String, String)> = vec![("IMAGE".into(), "FOUND IN".into())];
    for image in &report.images {
        let shown = image.image.to_string();
        let mut places = image
            .found
            .iter()
            .map(|f| terminal_safe(&f.to_string()).into_owned());
        let first = places.next().unwrap_or_default();
        if why {
            rows.push((shown, first));
            rows.extend(places.map(|p| (String::new(), p)));
        } else {
            let more = image.found.len().saturating_sub(1);
            let first = if more > 0 {
                format!("{first} (+{more} more)")
            } else {
                first
            };
            rows.push((shown, first));
        }
    }
    let width = rows
        .iter()
        .map(|(i, _)| i.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (image, place) in rows {
        out.push_str(&format!("{image:<width$}\t{place}\n"));
    }
    out
}
