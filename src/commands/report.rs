//! Reporting bulk jobs (`repo migrate`, `sync`): a progress bar on a terminal, one line per
//! finished item, a summary, and the exit status; or, with `-o json`, one JSON document at the
//! end (every item with its outcome, and the counts) for pipelines.

use std::io::IsTerminal;
use std::sync::Mutex;

use serde::Serialize;

use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::tasks::Outcome;
use crate::tasks::sync::images::{ChartImages, ImageOutcome, Why};

/// The verb a bulk job reports with: `migrate` / `migrated`, `sync` / `synced`.
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    pub base: &'static str,
    pub past: &'static str,
}

pub const MIGRATE: Verb = Verb {
    base: "migrate",
    past: "migrated",
};
pub const SYNC: Verb = Verb {
    base: "sync",
    past: "synced",
};

pub struct Reporter<'a> {
    ctx: &'a Context,
    bar: ProgressBar,
    dry_run: bool,
    verb: Verb,
    /// With `-o json`: the items so far, printed by [`Reporter::finish`].
    json: Option<Mutex<Vec<JsonItem>>>,
    /// With `sync --images`: each image seen (by its full reference) and what became of it
    /// last, for the summary.
    images: Option<Mutex<std::collections::BTreeMap<String, &'static str>>>,
}

/// One item of the JSON report.
#[derive(Debug, Serialize)]
struct JsonItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    target: String,
    /// `done`, `skipped`, `planned`, `failed` or `not-attempted`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// With `sync --images`: the chart's images, each with where it went and why the chart
    /// needs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<JsonImage>>,
    /// What `chart images` warned about while reading the chart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    image_warnings: Vec<crate::chart::images::Warning>,
}

/// One image of a chart in the JSON report.
#[derive(Debug, Serialize)]
struct JsonImage {
    image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    /// `copied`, `up-to-date`, `planned` or `failed`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Where the chart names it (`chart images --why`), or the list line that adds it.
    found: Vec<Why>,
}

/// An image's outcome as the reports name it.
fn image_outcome(outcome: &ImageOutcome) -> &'static str {
    match outcome {
        ImageOutcome::Copied => "copied",
        ImageOutcome::UpToDate => "up-to-date",
        ImageOutcome::Planned => "planned",
        ImageOutcome::Failed(_) => "failed",
    }
}

/// Image counts over the whole job, in the JSON report.
#[derive(Debug, Serialize)]
struct JsonImageCounts {
    copied: usize,
    up_to_date: usize,
    failed: usize,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    from: &'a str,
    dry_run: bool,
    done: usize,
    skipped: usize,
    failed: usize,
    refused: usize,
    not_attempted: usize,
    /// With `sync --images`: each image counted once, however many charts run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<JsonImageCounts>,
    items: Vec<JsonItem>,
}

impl<'a> Reporter<'a> {
    pub fn new(
        ctx: &'a Context,
        total: usize,
        dry_run: bool,
        verb: Verb,
        format: crate::cli::OutputFormat,
    ) -> Self {
        let json = (format == crate::cli::OutputFormat::Json).then(|| Mutex::new(Vec::new()));
        let bar = if std::io::stderr().is_terminal() && !ctx.quiet && json.is_none() {
            let bar = ProgressBar::new(total as u64);
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
        Reporter {
            ctx,
            bar,
            dry_run,
            verb,
            json,
            images: None,
        }
    }

    /// Reports carry each chart's images (`sync --images`).
    pub fn with_images(mut self) -> Self {
        self.images = Some(Mutex::default());
        self
    }

    fn line(&self, text: String) {
        if self.ctx.quiet || self.json.is_some() {
            return;
        }
        let text = crate::output::terminal_safe(&text).into_owned();
        if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// One copy has ended: `source` to `target`.
    pub fn copied(&self, source: &str, target: &str, outcome: &Outcome) {
        self.record(Some(source), target, outcome, None);
        self.show(&format!("{source} -> {target}"), outcome, "");
    }

    /// One copy with its images (`sync --images`) has ended: the chart's line says how many
    /// images were copied and how many were there; a dry run lists each image and where it
    /// would go.
    pub fn copied_with_images(
        &self,
        source: &str,
        target: &str,
        outcome: &Outcome,
        images: &ChartImages,
    ) {
        self.record(Some(source), target, outcome, Some(images));
        if let Some(seen) = &self.images {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            for i in &images.images {
                seen.insert(i.image.clone(), image_outcome(&i.outcome));
            }
        }
        let what = format!("{source} -> {target}");
        if self.json.is_none() {
            for w in &images.warnings {
                self.bar.suspend(|| self.ctx.warn(format!("{source}: {w}")));
            }
        }
        // A chart that was never looked at (not attempted, refused) has no image counts.
        let counts = match (outcome, images.images.is_empty()) {
            (Outcome::NotAttempted | Outcome::Refused(_), _) => String::new(),
            (Outcome::Failed(_), true) => String::new(),
            _ => {
                let (copied, there) = images.counts();
                let copied = match self.dry_run {
                    true => format!("{copied} to copy"),
                    false => format!("{copied} copied"),
                };
                format!(" (images: {copied}, {there} up to date)")
            }
        };
        self.show(&what, outcome, &counts);
        if self.dry_run {
            for i in &images.images {
                let to = i
                    .target
                    .as_ref()
                    .map(|t| format!(" -> {t}"))
                    .unwrap_or_default();
                let state = match &i.outcome {
                    ImageOutcome::Planned => "would copy".to_string(),
                    ImageOutcome::UpToDate => "up to date".to_string(),
                    ImageOutcome::Copied => "copied".to_string(),
                    ImageOutcome::Failed(e) => format!("cannot copy: {e}"),
                };
                self.line(format!("  image {}{to}: {state}", i.image));
            }
        }
    }

    /// One item has ended (named by what it became, or what it is when it has no name).
    pub fn item(&self, what: &str, outcome: &Outcome) {
        self.record(None, what, outcome, None);
        self.show(what, outcome, "");
    }

    fn record(
        &self,
        source: Option<&str>,
        target: &str,
        outcome: &Outcome,
        images: Option<&ChartImages>,
    ) {
        let Some(items) = &self.json else {
            return;
        };
        let (outcome, error) = match outcome {
            Outcome::Done => ("done", None),
            Outcome::Skipped => ("skipped", None),
            Outcome::Planned => ("planned", None),
            Outcome::Failed(e) => ("failed", Some(e.clone())),
            Outcome::Refused(e) => ("refused", Some(e.clone())),
            Outcome::NotAttempted => ("not-attempted", None),
        };
        items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(JsonItem {
                source: source.map(str::to_string),
                target: target.to_string(),
                outcome,
                error,
                images: images.map(|i| {
                    i.images
                        .iter()
                        .map(|i| JsonImage {
                            image: i.image.clone(),
                            target: i.target.as_ref().map(|t| t.to_string()),
                            outcome: image_outcome(&i.outcome),
                            error: match &i.outcome {
                                ImageOutcome::Failed(e) => Some(e.to_string()),
                                _ => None,
                            },
                            found: i.why.clone(),
                        })
                        .collect()
                }),
                image_warnings: images.map(|i| i.warnings.clone()).unwrap_or_default(),
            });
    }

    /// The line of an item that has ended; `more` goes after its outcome.
    fn show(&self, what: &str, outcome: &Outcome, more: &str) {
        self.bar.inc(1);
        self.bar
            .set_message(crate::output::terminal_safe(what).into_owned());
        match outcome {
            Outcome::Done => self.line(format!("{what}: {}{more}", self.verb.past)),
            Outcome::Skipped => self.line(format!("{what}: up to date, skipped{more}")),
            Outcome::Planned => self.line(format!("{what}: would {}{more}", self.verb.base)),
            Outcome::Failed(e) => {
                let line = crate::output::terminal_safe(&format!("{what}: {e}")).into_owned();
                self.bar.suspend(|| eprintln!("Error: {line}"));
            }
            Outcome::Refused(e) => {
                let line =
                    crate::output::terminal_safe(&format!("{what}: refused: {e}")).into_owned();
                self.bar.suspend(|| eprintln!("Error: {line}"));
            }
            Outcome::NotAttempted => {}
        }
    }

    /// Prints the summary; an error (already reported) if anything failed.
    /// `what` names the items ("chart versions"), `from` their source.
    pub fn finish(self, outcomes: &[Outcome], what: &str, from: &str) -> anyhow::Result<()> {
        self.bar.finish_and_clear();
        let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let failed = count(|o| matches!(o, Outcome::Failed(_)));
        let refused = count(|o| matches!(o, Outcome::Refused(_)));
        let not_attempted = count(|o| matches!(o, Outcome::NotAttempted));
        let done = count(|o| matches!(o, Outcome::Done | Outcome::Planned));
        let verb = if self.dry_run {
            format!("To {}", self.verb.base)
        } else {
            capitalized(self.verb.past)
        };
        let images = self.images.as_ref().map(|seen| {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let count = |kinds: &[&str]| seen.values().filter(|k| kinds.contains(k)).count();
            JsonImageCounts {
                copied: count(&["copied", "planned"]),
                up_to_date: count(&["up-to-date"]),
                failed: count(&["failed"]),
            }
        });
        if let Some(items) = self.json {
            let report = JsonReport {
                from,
                dry_run: self.dry_run,
                done,
                skipped: count(|o| matches!(o, Outcome::Skipped)),
                failed,
                refused,
                not_attempted,
                images,
                items: items.into_inner().unwrap_or_else(|e| e.into_inner()),
            };
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &report)?;
            std::io::Write::write_all(&mut out, b"\n")?;
            return match failed + refused {
                0 => Ok(()),
                _ => Err(super::Reported.into()),
            };
        }
        // Refusals are counted only when a policy made some (`--require-signed`).
        let refused_part = match refused {
            0 => String::new(),
            n => format!(", refused: {n}"),
        };
        let mut summary = format!(
            "{verb}: {done}, skipped: {}{refused_part}, failed: {failed} (of {} {what} from {from})",
            count(|o| matches!(o, Outcome::Skipped)),
            outcomes.len(),
        );
        if let Some(i) = images {
            let copied = match self.dry_run {
                true => "to copy",
                false => "copied",
            };
            summary.push_str(&format!(
                "; images: {} {copied}, {} up to date, {} failed",
                i.copied, i.up_to_date, i.failed
            ));
        }
        if not_attempted > 0 {
            summary.push_str(&format!(
                "; {not_attempted} not attempted after the failure (use --keep-going)"
            ));
        }
        self.ctx.say(&summary);
        if failed + refused > 0 {
            return Err(super::Reported.into());
        }
        Ok(())
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
