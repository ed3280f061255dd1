//! A running `chartcache serve` for the serve tests: started on a free port of 127.0.0.1 in a
//! sandbox, its stderr (the access log) kept in a file, stopped when dropped.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Sandbox;

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `chartcache --home <sandbox cache> serve --listen 127.0.0.1:0 ARGS…` and waits for
    /// the line that says where it listens.
    pub fn start(sb: &Sandbox, args: &[&str]) -> Server {
        Self::try_start(sb, args).unwrap_or_else(|e| panic!("serve {args:?}: {e}"))
    }

    pub fn try_start(sb: &Sandbox, args: &[&str]) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("stderr.log");
        let mut child = sb
            .std_command(Sandbox::bin())
            .arg("--home")
            .arg(sb.cache_home())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(str::to_string);
        match base {
            Some(base) => Ok(Server {
                child,
                base,
                log,
                _dir: dir,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "no listening line (exit {status:?}): {line:?}\n--- stderr\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`, as registry clients name it.
    pub fn host(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (20 s at most) until the log says `needle` `n` times.
    pub fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "no {n} × {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the server, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The exit status, if the server exits within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit status (20 s at most, else it fails the test).
    pub fn wait(&mut self) -> ExitStatus {
        match self.wait_exit(Duration::from_secs(20)) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                panic!("serve did not stop after SIGTERM:\n{}", self.log());
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
