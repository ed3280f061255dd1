//! `chartcache serve` against slow and hostile clients, run as the built binary on 127.0.0.1
//! with its default limits (see the module docs of `src/serve/mod.rs`): downloads that
//! are never read, idle keep-alive sockets, slowloris headers, request bodies and heads that
//! are too large, user-name probing through htpasswd timings, and SIGTERM with all of that
//! under way. Each test waits for conditions by bounded polling and asserts generous upper
//! bounds; the longest (a write timeout) takes about 30 s.

mod fault;
mod support;

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fault::{Sandbox, ServeProcess as Server};
use support::basic_auth;

/// The server's defaults, as documented.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// What a busy two-core machine may add to a timeout.
const SLACK: Duration = Duration::from_secs(6);

/// A sandbox holding `big` 1.0.0, a chart of 12 MB of incompressible data (in files under
/// Helm's 5 MiB cap): far more than the socket buffers of a client that never reads take in.
/// Returns the sandbox and the archive's size.
fn big_chart() -> (Sandbox, usize) {
    let sb = Sandbox::new();
    let dir = sb.chart("big", "1.0.0");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..6 {
        let mut data = vec![0u8; 2 * 1024 * 1024];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        fs::write(dir.join(format!("blob{i}.bin")), &data).expect("write chart data");
    }
    sb.ok(&[
        "chart",
        "save",
        dir.to_str().expect("utf-8 path"),
        "reg.example.com/big/big",
    ]);
    let size = sb
        .ref_blob("reg.example.com/big/big:1.0.0", "content")
        .len();
    (sb, size)
}

/// Connects and sends `request` (a whole request head, or the start of one).
fn send(host: &str, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    stream
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// Reads one response (head and `Content-Length` body) off a kept-alive connection; returns
/// the status and the body.
fn read_response(stream: &mut TcpStream, limit: Duration) -> (u16, Vec<u8>) {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {status_line:?}"));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().expect("Content-Length");
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("body");
    assert!(reader.buffer().is_empty(), "nothing beyond the body");
    (status, body)
}

/// How long until the server closes `stream` (reading and dropping whatever it sends);
/// `None` if it is still open after `limit`. Also returns the bytes read.
fn time_to_close(stream: &mut TcpStream, limit: Duration) -> (Option<Duration>, usize) {
    let started = Instant::now();
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return (None, total);
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (Some(started.elapsed()), total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (None, total);
            }
            Err(_) => return (Some(started.elapsed()), total),
        }
    }
}

/// A GET of `path` on a fresh connection (waiting up to 60 s for the answer, as a client in
/// the listen backlog may): how long it took and the status.
fn timed_get(server: &Server, path: &str, headers: &[(&str, &str)]) -> (Duration, u16) {
    let started = Instant::now();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut stream = send(
        &server.host(),
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
    );
    let (status, _) = read_response(&mut stream, Duration::from_secs(60));
    (started.elapsed(), status)
}

/// Two downloads that are never read hold both of `--max-connections 2`; the write timeout
/// ends them, and a third client gets its index within that timeout.
#[test]
fn downloads_nobody_reads_free_their_slots_after_the_write_timeout() {
    let (sb, size) = big_chart();
    let server = Server::start(
        &sb,
        &[
            "--max-connections",
            "2",
            "--memory-cache",
            "0",
            "--write-timeout",
            "5s",
        ],
    );
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| send(&server.host(), &get("/charts/big-1.0.0.tgz")))
        .collect();
    // Both are answered (the access log line comes as the body starts), then stall.
    server.wait_log("\"GET /charts/big-1.0.0.tgz HTTP/1.1\" 200", 2);

    let started = Instant::now();
    let (took, status) = timed_get(&server, "/index.yaml", &[]);
    eprintln!("third client behind two stalled downloads answered after {took:?}");
    assert_eq!(status, 200);
    assert!(
        took <= WRITE_TIMEOUT + SLACK,
        "the third client waited {took:?}\n{}",
        server.log()
    );
    assert!(
        took >= WRITE_TIMEOUT / 2,
        "answered after {took:?}: were both slots really held?"
    );
    server.wait_log("the client took nothing for 5s", 2);
    // The stalled clients got part of the archive, then the end of the connection.
    for stream in &mut stalled {
        let (closed, got) = time_to_close(stream, Duration::from_secs(10));
        assert!(closed.is_some(), "still open {:?} on", started.elapsed());
        assert!(got < size, "the whole archive ({got} bytes) was sent");
    }
    // And the server goes on serving.
    assert_eq!(timed_get(&server, "/index.yaml", &[]).1, 200);
}

/// An idle kept-alive connection and a slowloris (one header byte a second) hold both of
/// `--max-connections 2`; the header timeout ends them, and a third client is served.
#[test]
fn idle_and_slowloris_connections_free_their_slots_after_the_header_timeout() {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    let server = Server::start(&sb, &["--max-connections", "2", "--header-timeout", "3s"]);

    // One request on a kept-alive connection, then nothing.
    let mut idle = send(&server.host(), &get("/index.yaml"));
    assert_eq!(read_response(&mut idle, Duration::from_secs(20)).0, 200);
    let idle_since = Instant::now();

    // A request head that never ends, a byte a second.
    let mut slow = send(
        &server.host(),
        "GET /index.yaml HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    );
    let slow_since = Instant::now();
    let mut writer = slow.try_clone().expect("clone the slow socket");
    let dripping = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < 60 && writer.write_all(b"a").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    });

    // Both connected before this one: the kernel hands them over first.
    let (took, status) = timed_get(&server, "/index.yaml", &[]);
    eprintln!("third client behind an idle and a slowloris connection answered after {took:?}");
    assert_eq!(status, 200);
    assert!(
        took <= HEADER_TIMEOUT + SLACK,
        "the third client waited {took:?}\n{}",
        server.log()
    );
    assert!(
        took >= HEADER_TIMEOUT / 2,
        "answered after {took:?}: were both slots really held?"
    );

    let limit = HEADER_TIMEOUT + SLACK;
    let (closed, _) = time_to_close(&mut idle, limit.saturating_sub(idle_since.elapsed()));
    assert!(closed.is_some(), "the idle connection is still open");
    let (closed, _) = time_to_close(&mut slow, limit.saturating_sub(slow_since.elapsed()));
    assert!(closed.is_some(), "the slowloris connection is still open");
    let slow_took = slow_since.elapsed();
    eprintln!("slowloris closed after {slow_took:?}");
    assert!(
        slow_took >= HEADER_TIMEOUT - Duration::from_secs(1),
        "closed after {slow_took:?}, before the timeout"
    );
    let sent = dripping.join().expect("drip thread");
    assert!(
        sent < 30,
        "the server took {sent} header bytes, one a second"
    );
    server.wait_log("no complete request head within 3s", 2);
}

/// A bcrypt htpasswd file (cost 10) for `user:pass`.
fn htpasswd(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let out = std::process::Command::new("htpasswd")
        .args(["-B", "-C", "10", "-bn", user, pass])
        .output()
        .expect("htpasswd (apache2-utils) must be installed: run .ci/install-peers");
    assert!(out.status.success(), "htpasswd failed");
    let path = dir.join("htpasswd");
    fs::write(&path, out.stdout).expect("write htpasswd");
    path
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Whether a user name exists does not show in how long a 401 takes.
#[test]
fn unknown_users_take_as_long_to_refuse_as_wrong_passwords() {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = htpasswd(tmp.path(), "alice", "wonder land");
    let server = Server::start(&sb, &["--htpasswd", file.to_str().expect("utf-8 path")]);
    let wrong = basic_auth("alice", "not it");
    let unknown = basic_auth("mallory", "not it");
    let (mut wrong_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (took, status) = timed_get(&server, "/index.yaml", &[("Authorization", &wrong)]);
        assert_eq!(status, 401);
        wrong_times.push(took);
        let (took, status) = timed_get(&server, "/index.yaml", &[("Authorization", &unknown)]);
        assert_eq!(status, 401);
        unknown_times.push(took);
    }
    let (wrong, unknown) = (median(wrong_times), median(unknown_times));
    eprintln!("median 401: wrong password {wrong:?}, unknown user {unknown:?}");
    assert!(
        unknown * 3 >= wrong,
        "an unknown user is refused in {unknown:?}, a wrong password in {wrong:?}"
    );
    assert!(wrong * 3 >= unknown, "{wrong:?} vs {unknown:?}");
    let right = basic_auth("alice", "wonder land");
    assert_eq!(
        timed_get(&server, "/index.yaml", &[("Authorization", &right)]).1,
        200
    );
}

/// After clients stalled on downloads and request heads, the server still answers, and it
/// exits on SIGTERM within its 10 s grace, stalled clients or not.
#[test]
fn stalled_clients_do_not_hold_up_sigterm_beyond_the_grace() {
    let (sb, _) = big_chart();
    let mut server = Server::start(&sb, &["--max-connections", "8", "--memory-cache", "0"]);
    let _stalled: Vec<TcpStream> = (0..2)
        .map(|_| send(&server.host(), &get("/charts/big-1.0.0.tgz")))
        .collect();
    server.wait_log("\"GET /charts/big-1.0.0.tgz HTTP/1.1\" 200", 2);
    let _slow = send(
        &server.host(),
        "GET /index.yaml HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    );
    let (took, status) = timed_get(&server, "/index.yaml", &[]);
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(5),
        "a free slot answered in {took:?}"
    );

    let started = Instant::now();
    server.terminate();
    let status = server.wait_exit(SHUTDOWN_GRACE + SLACK);
    let took = started.elapsed();
    eprintln!("exited {took:?} after SIGTERM");
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    assert!(
        took <= SHUTDOWN_GRACE + Duration::from_secs(3),
        "exited after {took:?}"
    );
    let log = server.log();
    assert!(
        log.contains("gave up waiting for connections after 10 s"),
        "{log}"
    );
}

/// A body sent with a GET is not read into memory, and oversized request heads are refused.
#[test]
fn request_bodies_are_never_read_and_huge_heads_are_refused() {
    let sb = Sandbox::new();
    sb.save("web", "1.0.0", "reg.example.com/team/web:1.0.0");
    let server = Server::start(&sb, &[]);
    assert_eq!(timed_get(&server, "/index.yaml", &[]).1, 200);
    let rss_before = server.rss_kib();

    // 1 GiB announced and sent as fast as the server takes it.
    const GIB: u64 = 1024 * 1024 * 1024;
    let mut stream = send(
        &server.host(),
        &format!("GET /index.yaml HTTP/1.1\r\nHost: x\r\nContent-Length: {GIB}\r\n\r\n"),
    );
    let mut writer = stream.try_clone().expect("clone socket");
    let sending = std::thread::spawn(move || {
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < GIB {
            match writer.write(&chunk) {
                Ok(n) => sent += n as u64,
                Err(_) => break,
            }
        }
        sent
    });
    let (status, body) = read_response(&mut stream, Duration::from_secs(20));
    assert_eq!(status, 200);
    assert!(!body.is_empty());
    let (closed, _) = time_to_close(&mut stream, Duration::from_secs(10));
    assert!(
        closed.is_some(),
        "the connection stays open with a body unread"
    );
    let sent = sending.join().expect("sender thread");
    assert!(
        sent < 64 * 1024 * 1024,
        "the server took {sent} bytes of body"
    );
    let rss_after = server.rss_kib();
    eprintln!(
        "1 GiB body: {sent} bytes sent before the close; RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "resident memory went from {rss_before} KiB to {rss_after} KiB"
    );

    // A 70 KiB header, and 120 small ones.
    let big = format!(
        "GET /index.yaml HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let mut stream = send(&server.host(), &big);
    assert_eq!(read_response(&mut stream, Duration::from_secs(20)).0, 431);
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut stream = send(
        &server.host(),
        &format!("GET /index.yaml HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
    );
    assert_eq!(read_response(&mut stream, Duration::from_secs(20)).0, 431);
    // Just under the limits is fine.
    let fine: String = (0..90)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(500)))
        .collect();
    let mut stream = send(
        &server.host(),
        &format!("GET /index.yaml HTTP/1.1\r\nHost: x\r\n{fine}\r\n"),
    );
    assert_eq!(read_response(&mut stream, Duration::from_secs(20)).0, 200);
}

/// A client that reads a trickle (1 KiB every 100 ms, about 10 KiB/s) holds the only slot of
/// `--max-connections 1` until, over a `--write-timeout` window of waiting on it, it took fewer
/// than `--min-write-rate` bytes; then its connection is closed and the next client served.
#[test]
fn a_client_reading_a_trickle_is_cut_off_at_the_minimum_rate() {
    let (sb, _) = big_chart();
    let server = Server::start(
        &sb,
        &[
            "--max-connections",
            "1",
            "--memory-cache",
            "0",
            "--write-timeout",
            "2s",
            "--min-write-rate",
            "1048576",
        ],
    );
    let mut trickle = send(&server.host(), &get("/charts/big-1.0.0.tgz"));
    server.wait_log("\"GET /charts/big-1.0.0.tgz HTTP/1.1\" 200", 1);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let started = Instant::now();
        // Reads slowly until the server ends the connection (or 60 s pass).
        while started.elapsed() < Duration::from_secs(60) {
            match trickle.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    let (took, status) = timed_get(&server, "/index.yaml", &[]);
    eprintln!("the next client was served after {took:?}");
    assert_eq!(status, 200);
    assert!(
        took <= Duration::from_secs(30),
        "waited {took:?}\n{}",
        server.log()
    );
    // Which limit ends it depends on how the kernel wakes a writer behind a slow reader: the
    // rate floor ("under the … required") or the no-progress timeout ("took nothing").
    server.wait_log("chartcache serve: closed a connection from", 1);
    drop(reader);
}
