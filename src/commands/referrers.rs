//! `chart show REF --referrers [-o json]`: what the cache holds that refers to a chart
//! ([`crate::tasks::referrers`]), as an indented table or as JSON.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Result, anyhow};
use serde::Serialize;

use super::Context;
use crate::cli::OutputFormat;
use crate::digest::Digest;
use crate::oci::ANNOTATION_CREATED;
use crate::output::{human_size, terminal_safe};
use crate::tasks::referrers::{Referrer, Via};

pub fn show(ctx: &Context, reference: &str, output: OutputFormat) -> Result<()> {
    let entry = super::chart::resolve(ctx, reference)?;
    let manifest = entry.manifest.clone().ok_or_else(|| {
        anyhow!(
            "{}: written by Helm's alpha cache, it has no manifest and so no referrers",
            entry.reference
        )
    })?;
    let found = crate::tasks::referrers::tree(&ctx.store, &entry.reference, &manifest)?;
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let doc = Shown {
                reference: entry.reference.to_string(),
                digest: &manifest,
                referrers: found.iter().map(Item::from).collect(),
            };
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        OutputFormat::Table if found.is_empty() => {
            ctx.say(format_args!(
                "No referrers of {} ({manifest}) in the cache",
                entry.reference
            ));
        }
        OutputFormat::Table => {
            let mut rows =
                vec![["DIGEST", "ARTIFACT TYPE", "SIZE", "VIA", "CREATED"].map(String::from)];
            flatten(&found, 0, &mut rows);
            write!(out, "{}", aligned(&rows))?;
        }
    }
    Ok(())
}

/// One row per referrer, each indented two spaces per level under what it refers to.
fn flatten(found: &[Referrer], depth: usize, rows: &mut Vec<[String; 5]>) {
    for r in found {
        let d = &r.descriptor;
        let via = match (&r.via, &r.tag) {
            (Via::CosignTag, Some(tag)) => {
                let suffix = tag.rsplit_once('.').map_or("", |(_, s)| s);
                format!("cosign .{suffix}")
            }
            (via, _) => via.as_str().to_string(),
        };
        rows.push([
            format!("{}{}", "  ".repeat(depth), d.digest),
            d.artifact_type.clone().unwrap_or_else(|| "-".into()),
            human_size(d.size),
            via,
            d.annotations
                .get(ANNOTATION_CREATED)
                .cloned()
                .unwrap_or_else(|| "-".into()),
        ]);
        flatten(&r.referrers, depth + 1, rows);
    }
}

/// Columns padded to their widest cell (never cut: digests are shown whole), made safe for a
/// terminal (artifact types and dates come from outside).
fn aligned(rows: &[[String; 5]]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| terminal_safe(c).into_owned()).collect())
        .collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push('\n');
    }
    text
}

/// `chart show --referrers -o json`.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(rename = "ref")]
    reference: String,
    /// The chart's manifest digest.
    digest: &'a Digest,
    referrers: Vec<Item<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    digest: &'a Digest,
    media_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    size: u64,
    via: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    annotations: &'a BTreeMap<String, String>,
    referrers: Vec<Item<'a>>,
}

impl<'a> From<&'a Referrer> for Item<'a> {
    fn from(r: &'a Referrer) -> Self {
        let d = &r.descriptor;
        Item {
            digest: &d.digest,
            media_type: &d.media_type,
            artifact_type: d.artifact_type.as_deref(),
            size: d.size,
            via: r.via.as_str(),
            tag: r.tag.as_deref(),
            annotations: &d.annotations,
            referrers: r.referrers.iter().map(Item::from).collect(),
        }
    }
}
