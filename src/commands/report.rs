//! Reporting bulk jobs (`repo migrate`, `sync`): a progress bar on a terminal, one line per
//! finished item, a summary, and the exit status.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::Context;
use crate::tasks::Outcome;

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
}

impl<'a> Reporter<'a> {
    pub fn new(ctx: &'a Context, total: usize, dry_run: bool, verb: Verb) -> Self {
        let bar = if std::io::stderr().is_terminal() && !ctx.quiet {
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
        }
    }

    fn line(&self, text: String) {
        if self.ctx.quiet {
            return;
        }
        let text = crate::output::terminal_safe(&text).into_owned();
        if self.bar.is_hidden() {
            println!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// One item has ended.
    pub fn item(&self, what: &str, outcome: &Outcome) {
        self.bar.inc(1);
        self.bar
            .set_message(crate::output::terminal_safe(what).into_owned());
        match outcome {
            Outcome::Done => self.line(format!("{what}: {}", self.verb.past)),
            Outcome::Skipped => self.line(format!("{what}: up to date, skipped")),
            Outcome::Planned => self.line(format!("{what}: would {}", self.verb.base)),
            Outcome::Failed(e) => {
                let line = crate::output::terminal_safe(&format!("{what}: {e}")).into_owned();
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
        let not_attempted = count(|o| matches!(o, Outcome::NotAttempted));
        let done = count(|o| matches!(o, Outcome::Done | Outcome::Planned));
        let verb = if self.dry_run {
            format!("To {}", self.verb.base)
        } else {
            capitalized(self.verb.past)
        };
        let mut summary = format!(
            "{verb}: {done}, skipped: {}, failed: {failed} (of {} {what} from {from})",
            count(|o| matches!(o, Outcome::Skipped)),
            outcomes.len(),
        );
        if not_attempted > 0 {
            summary.push_str(&format!(
                "; {not_attempted} not attempted after the failure (use --keep-going)"
            ));
        }
        self.ctx.say(&summary);
        if failed > 0 {
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
