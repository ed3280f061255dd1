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
    /// `null` with the digest, for a chart of Helm's alpha cache.
    media_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    /// The manifest digest (`null` for a chart of Helm's alpha cache, which has none).
    digest: Option<&'a Digest>,
    size: u64,
}

fn list(ctx: &Context, prefix: Option<&str>, output: OutputFormat) -> Result<()> {
    let refs = {
        let guard = ctx.store.read()?;
        ctx.store.list_under(&guard, prefix.unwrap_or_default())?
    };
    // Tags of one artifact share its manifest: each is read and followed once.
    let mut summaries: HashMap<Digest, Summary> = HashMap::new();
    let mut rows: Vec<(&StoredRef, Option<Summary>)> = Vec::with_capacity(refs.len());
    for r in &refs {
        let summary = match r.manifest() {
            Some(m) => match summaries.get(m) {
                Some(s) => Some(s.clone()),
                None => {
                    let s = graph::summarize(&ctx.store, m)?;
                    summaries.insert(m.clone(), s.clone());
                    Some(s)
                }
            },
            None => None,
        };
        rows.push((r, summary));
    }
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let items: Vec<ListItem> = rows
                .iter()
                .map(|(r, s)| ListItem {
                    reference: r.reference().to_string(),
                    kind: s.as_ref().map_or("helm chart", |s| s.kind.label()),
                    media_type: s.as_ref().map(|s| s.media_type.as_str()),
                    artifact_type: s.as_ref().and_then(|s| s.artifact_type.as_deref()),
                    digest: r.manifest(),
                    size: s.as_ref().map_or(0, |s| s.size),
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &items)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            let mut table = Table::new(&["REF", "TYPE", "DIGEST", "SIZE"]);
            for (r, s) in &rows {
                table.row(vec![
                    r.reference().to_string(),
                    s.as_ref()
                        .map_or("helm chart", |s| s.kind.label())
                        .to_string(),
                    r.manifest().map_or("-", |d| d.short()).to_string(),
                    s.as_ref().map_or("-".to_string(), |s| human_size(s.size)),
                ]);
            }
            write!(out, "{table}")?;
        }
    }
    Ok(())
}
