//! The server's log on stderr: one access line per request (unless quiet) and events (pulls,
//! upstream trouble, closed connections), as plain text or, with `--log-format json`, one JSON
//! object per line.
//!
//! What a client or an upstream sent (paths, user names, error texts) can hold control
//! characters: plain lines show them escaped, JSON escapes them as JSON does, so nothing from
//! outside drives a terminal or forges a line.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// One answered request.
#[derive(Debug)]
pub struct Access<'a> {
    pub remote: IpAddr,
    pub user: Option<&'a str>,
    pub method: &'a str,
    /// Path and query, as the client sent them.
    pub target: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    /// Body length, when known when the head is sent.
    pub bytes: Option<u64>,
    pub took: Duration,
}

#[derive(Serialize)]
struct AccessJson<'a> {
    time: String,
    remote: String,
    user: Option<&'a str>,
    method: &'a str,
    target: &'a str,
    protocol: &'a str,
    status: u16,
    bytes: Option<u64>,
    duration_ms: f64,
}

#[derive(Serialize)]
struct EventJson<'a> {
    time: String,
    level: &'static str,
    msg: &'a str,
}

/// The log of one server.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub format: LogFormat,
    /// Whether access lines are written (`-q` turns them off; events always are).
    pub access: bool,
}

impl Log {
    /// Something the server did or met.
    pub fn event(&self, msg: &str) {
        write_line(&self.event_line(msg, SystemTime::now()));
    }

    fn event_line(&self, msg: &str, now: SystemTime) -> String {
        match self.format {
            LogFormat::Plain => format!(
                "chartcache serve: {}\n",
                crate::output::terminal_safe(msg).replace('\n', "\\n")
            ),
            LogFormat::Json => json_line(&EventJson {
                time: crate::output::rfc3339(now),
                level: "info",
                msg,
            }),
        }
    }

    pub fn access(&self, a: &Access<'_>) {
        if self.access {
            write_line(&self.access_line(a, SystemTime::now()));
        }
    }

    fn access_line(&self, a: &Access<'_>, now: SystemTime) -> String {
        match self.format {
            LogFormat::Plain => format!(
                "{} - {} [{}] \"{} {} {}\" {} {} {}ms\n",
                a.remote,
                a.user.map_or_else(
                    || "-".to_string(),
                    |u| crate::output::terminal_safe(u).into_owned()
                ),
                crate::output::rfc3339(now),
                a.method,
                a.target.escape_debug(),
                a.protocol,
                a.status,
                a.bytes.map_or_else(|| "-".to_string(), |n| n.to_string()),
                a.took.as_millis()
            ),
            LogFormat::Json => json_line(&AccessJson {
                time: crate::output::rfc3339(now),
                remote: a.remote.to_string(),
                user: a.user,
                method: a.method,
                target: a.target,
                protocol: a.protocol,
                status: a.status,
                bytes: a.bytes,
                duration_ms: (a.took.as_secs_f64() * 1e6).round() / 1e3,
            }),
        }
    }
}

fn json_line(value: &impl Serialize) -> String {
    let mut line = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    line.push('\n');
    line
}

/// One whole line at a time, so concurrent requests never interleave.
fn write_line(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access<'static> {
        Access {
            remote: "127.0.0.1".parse().unwrap(),
            user: Some("al\u{1b}[2Jice"),
            method: "GET",
            target: "/index.yaml?x=\u{1b}",
            protocol: "HTTP/1.1",
            status: 200,
            bytes: Some(42),
            took: Duration::from_micros(1500),
        }
    }

    #[test]
    fn plain_lines_escape_what_clients_sent() {
        let log = Log {
            format: LogFormat::Plain,
            access: true,
        };
        let line = log.access_line(&access(), SystemTime::UNIX_EPOCH);
        assert!(!line.trim_end().contains(['\u{1b}', '\n']), "{line:?}");
        assert!(line.contains("\"GET /index.yaml?x=\\u{1b} HTTP/1.1\" 200 42 1ms"));
        let event = log.event_line("upstream said \u{1b}[31mno\nthen", SystemTime::UNIX_EPOCH);
        assert_eq!(event.matches('\n').count(), 1, "{event:?}");
        assert!(!event.contains('\u{1b}'));
    }

    #[test]
    fn json_lines_are_one_object_each() {
        let log = Log {
            format: LogFormat::Json,
            access: true,
        };
        let line = log.access_line(&access(), SystemTime::UNIX_EPOCH);
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["target"], "/index.yaml?x=\u{1b}");
        assert_eq!(v["user"], "al\u{1b}[2Jice");
        assert_eq!(v["bytes"], 42);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        let event: serde_json::Value =
            serde_json::from_str(&log.event_line("pulled x", SystemTime::UNIX_EPOCH)).unwrap();
        assert_eq!(event["msg"], "pulled x");
    }
}
