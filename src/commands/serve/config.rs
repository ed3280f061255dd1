//! `serve --config FILE`: every flag of `serve` from a YAML file, flags winning.
//!
//! The file is a mapping whose keys are the long names of `serve`'s flags (`listen`,
//! `htpasswd`, `index-ttl`, …; `index_ttl` works too) and whose values are what the flag
//! takes: a scalar, `true` for a switch, or a list for a flag that repeats (`repo: [a, b]`).
//! Nothing is special-cased: the file becomes arguments, parsed by the same clap definition as
//! the command line, so every flag (a new one included) works there with the same checks and
//! messages. A flag given on the command line, or through its environment variable, wins over
//! the file; so `chartcache serve --config prod.yaml --listen 127.0.0.1:0` changes one thing.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, CommandFactory, FromArgMatches};

use crate::cli::{Cli, ServeArgs};

/// The largest config file read: a config of every flag is a few KiB.
const MAX_CONFIG: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than 1 MiB, not a serve configuration")]
    TooLarge { path: String },
    #[error("{path}: not YAML: {reason}")]
    Yaml { path: String, reason: String },
    #[error("{path}: expected a mapping of serve's flags to their values")]
    NotAMapping { path: String },
    #[error(
        "{path}: {key:?} is not a flag of serve (keys are its long flags, like listen or htpasswd)"
    )]
    UnknownKey { path: String, key: String },
    #[error("{path}: {key}: {reason}")]
    BadValue {
        path: String,
        key: String,
        reason: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The serve command as clap defines it, alone.
fn serve_command() -> clap::Command {
    ServeArgs::augment_args(clap::Command::new("serve")).no_binary_name(true)
}

/// The matches of `serve` on this process's command line, to tell which flags it gave.
pub fn command_line_matches() -> Option<ArgMatches> {
    let matches = Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()?;
    matches.subcommand_matches("serve").cloned()
}

/// `args` with every flag that `explicit` did not give (on the command line or through the
/// environment) taken from the YAML `text` of `path`.
pub fn merge(
    args: &ServeArgs,
    explicit: Option<&ArgMatches>,
    text: &str,
    path: &Path,
) -> Result<ServeArgs, ConfigError> {
    let shown = path.display().to_string();
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let map = match doc {
        serde_norway::Value::Mapping(m) => m,
        serde_norway::Value::Null => serde_norway::Mapping::new(),
        _ => return Err(ConfigError::NotAMapping { path: shown }),
    };
    let cmd = serve_command();
    let given = |id: &str| {
        explicit.is_some_and(|m| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
    };
    let mut tokens: Vec<OsString> = Vec::new();
    for (key, value) in &map {
        let key = match key {
            serde_norway::Value::String(k) => k.replace('_', "-"),
            other => {
                return Err(ConfigError::UnknownKey {
                    path: shown,
                    key: format!("{other:?}"),
                });
            }
        };
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| ConfigError::UnknownKey {
                path: shown.clone(),
                key: key.clone(),
            })?;
        if given(arg.get_id().as_str()) {
            continue;
        }
        let bad = |reason: &str| ConfigError::BadValue {
            path: shown.clone(),
            key: key.clone(),
            reason: reason.to_string(),
        };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let values: Vec<&serde_norway::Value> = match value {
            serde_norway::Value::Sequence(items)
                if matches!(arg.get_action(), ArgAction::Append) =>
            {
                items.iter().collect()
            }
            serde_norway::Value::Sequence(_) => return Err(bad("takes one value, not a list")),
            v => vec![v],
        };
        for v in values {
            let text = match v {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                serde_norway::Value::Bool(b) => b.to_string(),
                serde_norway::Value::Null => continue,
                _ => return Err(bad("expected a string, a number or a boolean")),
            };
            if switch {
                match text.as_str() {
                    "true" => tokens.push(format!("--{key}").into()),
                    "false" => {}
                    _ => return Err(bad("expected true or false")),
                }
            } else {
                tokens.push(format!("--{key}={text}").into());
            }
        }
    }
    // What the command line (or the environment) gave, as arguments again.
    if let Some(m) = explicit {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if m.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let Some(long) = arg.get_long() else {
                continue;
            };
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                tokens.push(format!("--{long}").into());
            } else if let Some(raw) = m.get_raw(id) {
                for v in raw {
                    let mut t = OsString::from(format!("--{long}="));
                    t.push(v);
                    tokens.push(t);
                }
            }
        }
    }
    let merged =
        serve_command()
            .try_get_matches_from(tokens)
            .map_err(|e| ConfigError::Invalid {
                path: shown.clone(),
                message: e.kind().to_string() + ": " + &first_line(&e.to_string()),
            })?;
    let mut out = ServeArgs::from_arg_matches(&merged).map_err(|e| ConfigError::Invalid {
        path: shown,
        message: first_line(&e.to_string()),
    })?;
    out.config = args.config.clone();
    Ok(out)
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

/// Reads the config file (at most [`MAX_CONFIG`]).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let io = |source| ConfigError::Io {
        path: shown.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_CONFIG {
        return Err(ConfigError::TooLarge { path: shown });
    }
    std::fs::read_to_string(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> (ServeArgs, ArgMatches) {
        let full: Vec<&str> = ["chartcache", "serve"]
            .iter()
            .chain(argv)
            .copied()
            .collect();
        let cli = Cli::try_parse_from(&full).unwrap();
        let matches = Cli::command().try_get_matches_from(&full).unwrap();
        let crate::cli::Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        (args, matches.subcommand_matches("serve").unwrap().clone())
    }

    fn merged(argv: &[&str], yaml: &str) -> Result<ServeArgs, ConfigError> {
        let (args, m) = parse(argv);
        merge(&args, Some(&m), yaml, Path::new("serve.yaml"))
    }

    #[test]
    fn the_file_sets_what_the_command_line_does_not() {
        let yaml = "listen: 0.0.0.0:9000\nupstream: reg.example.com/charts\nrepo: [a, b]\n\
                    revalidate: true\nindex_ttl: 60\nlog-format: json\nmax-connections: 7\n\
                    plain-http: true\nmemory-cache: 0\n";
        let a = merged(&["--listen", "127.0.0.1:0", "--max-connections=9"], yaml).unwrap();
        assert_eq!(a.listen, "127.0.0.1:0", "the flag wins");
        assert_eq!(a.max_connections, 9, "the flag wins");
        assert_eq!(a.upstream.as_deref(), Some("reg.example.com/charts"));
        assert_eq!(a.repos, ["a", "b"]);
        assert!(a.revalidate);
        assert_eq!(a.index_ttl, 60);
        assert_eq!(a.log_format, crate::cli::LogFormatArg::Json);
        assert!(a.transport.plain_http);
        assert_eq!(a.memory_cache, 0);
        // A repeated flag on the command line replaces the file's list.
        let a = merged(&["--repo", "c"], yaml).unwrap();
        assert_eq!(a.repos, ["c"]);
        // Defaults stay where neither says anything.
        let a = merged(&[], "").unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080");
    }

    #[test]
    fn mistakes_in_the_file_name_the_file_and_the_key() {
        let e = merged(&[], "lisen: x\n").unwrap_err().to_string();
        assert!(e.contains("serve.yaml") && e.contains("\"lisen\""), "{e}");
        let e = merged(&[], "max-connections: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("serve.yaml") && e.contains("lots"), "{e}");
        let e = merged(&[], "listen: [a, b]\n").unwrap_err().to_string();
        assert!(e.contains("listen: takes one value"), "{e}");
        let e = merged(&[], "revalidate: maybe\n").unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = merged(&[], "- a\n").unwrap_err().to_string();
        assert!(e.contains("mapping"), "{e}");
        let e = merged(&[], "config: other.yaml\n").unwrap_err().to_string();
        assert!(e.contains("\"config\""), "{e}");
    }

    #[test]
    fn every_flag_of_serve_has_a_key() {
        for arg in serve_command().get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if long == "config" || long == "help" {
                continue;
            }
            let value = match arg.get_action() {
                ArgAction::SetTrue => "true".to_string(),
                _ => match arg.get_possible_values().first() {
                    Some(v) => v.get_name().to_string(),
                    None => "1".to_string(),
                },
            };
            let yaml = format!("{long}: {value}\n");
            match merged(&[], &yaml) {
                Ok(_) => {}
                Err(ConfigError::UnknownKey { .. }) => panic!("{long} has no config key"),
                // A value of 1 may not suit the flag; the key itself was taken.
                Err(_) => {}
            }
        }
    }
}
