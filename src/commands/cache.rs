//! `chartcache cache …`: everything the cache holds, charts and the rest (images, image
//! indexes, Docker manifests and lists, OCI artifacts), as `sync` stores them.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use super::Context;
use crate::cli::{CacheCommand, OutputFormat};
use crate::digest::Digest;
use crate::output::{Table, human_size};
use crate::store::StoredRef;
use crate::store::graph::{self, Summary};

pub fn run(ctx: &Context, cmd: &CacheCommand) -> Result<()> {
    match cmd {
        CacheCommand::List { prefix, output } => list(ctx, prefix.as_deref(), *output),
    }
}

/// One row of `cache list -o json`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListItem<'a> {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(rename = "type")]
    kind: &'a str,
    /// `null` for a chart of Helm's alpha cache (no manifest) or a manifest that cannot be
    /// read.
    media_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    /// The manifest digest (`null` for a chart of Helm's alpha cache, which has none).
    digest: Option<&'a Digest>,
    /// `null` when it cannot be told (see `chart verify`).
    size: Option<u64>,
}

/// What one ref is: its manifest's summary, or why there is none.
enum Found {
    Summary(Summary),
    /// A chart of Helm's alpha cache: no manifest.
    NoManifest,
    /// The manifest is missing or unreadable (`chart verify` says more).
    Unreadable,
}

impl Found {
    fn kind(&self) -> &str {
        match self {
            Found::Summary(s) => s.kind.label(),
            Found::NoManifest => "helm chart",
            Found::Unreadable => "unreadable",
        }
    }

    fn summary(&self) -> Option<&Summary> {
        match self {
            Found::Summary(s) => Some(s),
            _ => None,
        }
    }
}

fn list(ctx: &Context, prefix: Option<&str>, output: OutputFormat) -> Result<()> {
    let rows: Vec<(StoredRef, Found)> = {
        // Held while manifests are read, so a prune cannot delete them meanwhile.
        let guard = ctx.store.read()?;
        let refs = ctx.store.list_under(&guard, prefix.unwrap_or_default())?;
        // Tags of one artifact share its manifest: each is read and followed once.
        let mut summaries: HashMap<Digest, Option<Summary>> = HashMap::new();
        refs.into_iter()
            .map(|r| {
                let found = match r.manifest() {
                    None => Found::NoManifest,
                    Some(m) => {
                        let s = summaries
                            .entry(m.clone())
                            .or_insert_with(|| graph::summarize(&ctx.store, m).ok());
                        s.clone().map_or(Found::Unreadable, Found::Summary)
                    }
                };
                (r, found)
            })
            .collect()
    };
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let items: Vec<ListItem> = rows
                .iter()
                .map(|(r, f)| ListItem {
                    reference: r.reference().to_string(),
                    kind: f.kind(),
                    media_type: f.summary().map(|s| s.media_type.as_str()),
                    artifact_type: f.summary().and_then(|s| s.artifact_type.as_deref()),
                    digest: r.manifest(),
                    size: f.summary().map(|s| s.size),
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &items)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            let mut table = Table::new(&["REF", "TYPE", "DIGEST", "SIZE"]);
            for (r, f) in &rows {
                table.row(vec![
                    r.reference().to_string(),
                    f.kind().to_string(),
                    r.manifest().map_or("-", |d| d.short()).to_string(),
                    f.summary().map_or("-".to_string(), |s| human_size(s.size)),
                ]);
            }
            write!(out, "{table}")?;
        }
    }
    Ok(())
}
