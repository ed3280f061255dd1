//! A small Docker-registry token issuer (the `auth: token` realm) for distribution 2.8.
//!
//! What distribution 2.8 checks (registry/auth/token/token.go + accesscontroller.go):
//! - the JWT is `header.claims.signature`, base64url without padding;
//! - `iss` is the configured `issuer`, `aud` (a string in 2.8) the configured `service`;
//! - `exp` + 60 s leeway is in the future, `nbf` - 60 s in the past;
//! - the signing key is found via the `x5c` chain (verified against `rootcertbundle`), a `jwk`,
//!   or — used here — `kid` = the libtrust key ID of a public key of a certificate in
//!   `rootcertbundle` (base32 of the first 240 bits of SHA-256 over the PKIX DER public key,
//!   in 12 colon-separated groups of 4);
//! - the signature uses `alg` (ES256 here: raw 64-byte `r || s`, not DER);
//! - the `access` claim (`[{type, name, actions}]`) covers every action the request needs
//!   (`repository:NAME:pull|push|delete`, `registry:catalog:*`). `GET /v2/` needs none.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::http::{ServerRequest, parse_form, read_request, write_response};
use super::pki::{openssl_cnf, self_signed};
use super::run_ok;

/// Token lifetime written to `exp` and `expires_in`.
const LIFETIME_SECS: i64 = 300;

/// One request the issuer answered, for assertions on what a client asked for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `GET` (Basic credentials) or `POST` (OAuth2 form).
    pub method: String,
    pub service: Option<String>,
    /// Scopes as requested, e.g. `repository:charts/app:pull,push`.
    pub scopes: Vec<String>,
    /// The authenticated user; `None` for anonymous requests.
    pub user: Option<String>,
    /// HTTP status answered (200, 400 or 401).
    pub status: u16,
    /// Scopes granted, same format as `scopes`.
    pub granted: Vec<String>,
}

struct Inner {
    stop: AtomicBool,
    key_path: PathBuf,
    cert_path: PathBuf,
    kid: String,
    service: String,
    issuer: String,
    user: String,
    pass: String,
    anonymous_pull: bool,
    requests: Mutex<Vec<TokenRequest>>,
}

/// The issuer: an HTTP server thread on 127.0.0.1 answering `GET /token?service=…&scope=…`
/// (Basic credentials) and `POST /token` (OAuth2 `grant_type=password`) with
/// `{"token", "access_token", "expires_in", "issued_at"}`. Valid credentials get every
/// requested action; anonymous requests get 401 unless `anonymous_pull`, which grants `pull`
/// only. Stops on drop.
pub struct TokenIssuer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl TokenIssuer {
    /// Generates a signing key + self-signed certificate in `dir` (which must outlive the
    /// issuer) and starts serving.
    pub fn start(
        dir: &Path,
        service: &str,
        issuer: &str,
        user: &str,
        pass: &str,
        anonymous_pull: bool,
    ) -> TokenIssuer {
        std::fs::create_dir_all(dir).expect("mkdir token dir");
        let cnf = openssl_cnf(dir);
        let key_path = dir.join("token-signer.key");
        let cert_path = dir.join("token-signer.pem");
        self_signed(
            &cnf,
            "ca",
            "/CN=chartcache test token signer",
            &key_path,
            &cert_path,
        );
        let spki_der = run_ok(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&key_path),
        );
        let kid = libtrust_key_id(&spki_der);

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token issuer");
        let addr = listener.local_addr().expect("issuer addr");
        let inner = Arc::new(Inner {
            stop: AtomicBool::new(false),
            key_path,
            cert_path,
            kid,
            service: service.to_string(),
            issuer: issuer.to_string(),
            user: user.to_string(),
            pass: pass.to_string(),
            anonymous_pull,
            requests: Mutex::new(Vec::new()),
        });
        let thread_inner = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("token-issuer".into())
            .spawn(move || serve(listener, thread_inner))
            .expect("spawn token issuer");
        TokenIssuer {
            addr,
            inner,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/token` — the registry's `auth.token.realm`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
    /// The registry's `auth.token.service` (the token's `aud`).
    pub fn service(&self) -> &str {
        &self.inner.service
    }
    /// The registry's `auth.token.issuer` (the token's `iss`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }
    /// The certificate of the signing key (the registry's `auth.token.rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.inner.cert_path
    }
    /// The `kid` header of issued tokens (libtrust key ID of the signing key).
    pub fn key_id(&self) -> &str {
        &self.inner.kid
    }
    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.inner.requests.lock().expect("requests lock").clone()
    }
    pub fn clear_requests(&self) {
        self.inner.requests.lock().expect("requests lock").clear();
    }

    /// Mints a valid token for `subject` granting `scopes` (`type:name:action,action`).
    pub fn mint(&self, subject: &str, scopes: &[&str]) -> String {
        self.mint_with_lifetime(subject, scopes, LIFETIME_SECS)
    }

    /// Like [`TokenIssuer::mint`] with `exp = now + lifetime_secs`; a lifetime below -60 s
    /// gives a token distribution rejects as expired (it allows 60 s of leeway).
    pub fn mint_with_lifetime(&self, subject: &str, scopes: &[&str], lifetime_secs: i64) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.inner.sign_token(subject, &scopes, lifetime_secs)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // Wake the accept() call.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, inner: Arc<Inner>) {
    for conn in listener.incoming() {
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = conn else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
        if let Ok(request) = read_request(&mut stream) {
            inner.handle(&mut stream, &request);
        }
    }
}

impl Inner {
    fn handle(&self, stream: &mut TcpStream, req: &ServerRequest) {
        if req.path != "/token" {
            let _ = write_response(stream, 404, &[], b"not found");
            return;
        }
        // Parameters and credentials: query + Basic for GET; form body for POST (OAuth2).
        let (params, creds) = match req.method.as_str() {
            "GET" => (req.query.clone(), req.basic_credentials()),
            "POST" => {
                let form = parse_form(&String::from_utf8_lossy(&req.body));
                let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                if get("grant_type").as_deref() != Some("password") {
                    let _ = write_response(
                        stream,
                        400,
                        &[("Content-Type", "application/json")],
                        br#"{"error":"unsupported_grant_type"}"#,
                    );
                    return;
                }
                let creds = get("username").zip(get("password"));
                (form, creds)
            }
            _ => {
                let _ = write_response(stream, 405, &[], b"method not allowed");
                return;
            }
        };
        let service = params
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone());
        let scopes: Vec<String> = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        let mut record = TokenRequest {
            method: req.method.clone(),
            service: service.clone(),
            scopes: scopes.clone(),
            user: None,
            status: 0,
            granted: Vec::new(),
        };

        let (status, headers, body): (u16, Vec<(&str, &str)>, Vec<u8>) =
            if service.as_deref().is_some_and(|s| s != self.service) {
                (
                    400,
                    vec![("Content-Type", "application/json")],
                    json!({"errors": [{"code": "DENIED", "message": "unknown service"}]})
                        .to_string()
                        .into_bytes(),
                )
            } else {
                let authenticated = match &creds {
                    Some((u, p)) if *u == self.user && *p == self.pass => Some(Some(u.clone())),
                    Some(_) => None,
                    None if self.anonymous_pull => Some(None),
                    None => None,
                };
                match authenticated {
                    None => (
                        401,
                        vec![
                            ("Content-Type", "application/json"),
                            ("WWW-Authenticate", "Basic realm=\"chartcache-test-token\""),
                        ],
                        json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                            .to_string()
                            .into_bytes(),
                    ),
                    Some(user) => {
                        let granted = grant(&scopes, user.is_some());
                        let token =
                            self.sign_token(user.as_deref().unwrap_or(""), &granted, LIFETIME_SECS);
                        record.user = user;
                        record.granted = granted;
                        (
                            200,
                            vec![("Content-Type", "application/json")],
                            json!({
                                "token": token,
                                "access_token": token,
                                "expires_in": LIFETIME_SECS,
                                "issued_at": rfc3339(now()),
                            })
                            .to_string()
                            .into_bytes(),
                        )
                    }
                }
            };
        record.status = status;
        self.requests.lock().expect("requests lock").push(record);
        let _ = write_response(stream, status, &headers, &body);
    }

    /// A signed ES256 JWT for `subject` with an `access` claim made from `scopes`.
    fn sign_token(&self, subject: &str, scopes: &[String], lifetime_secs: i64) -> String {
        static JTI: AtomicU64 = AtomicU64::new(0);
        let now = now();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| parse_scope(s))
            .map(|(kind, name, actions)| json!({"type": kind, "name": name, "actions": actions}))
            .collect();
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime_secs,
            "nbf": now - 1,
            "iat": now,
            "jti": format!("{}-{}", std::process::id(), JTI.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let der = openssl_sign(&self.key_path, signing_input.as_bytes());
        let raw = ecdsa_der_to_raw(&der, 32);
        format!("{signing_input}.{}", b64.encode(raw))
    }
}

/// What a client gets for `scopes`: everything when authenticated, else `pull` on repositories.
fn grant(scopes: &[String], authenticated: bool) -> Vec<String> {
    scopes
        .iter()
        .filter_map(|s| {
            let (kind, name, actions) = parse_scope(s)?;
            let actions: Vec<String> = if authenticated {
                actions
            } else if kind == "repository" {
                actions.into_iter().filter(|a| a == "pull").collect()
            } else {
                Vec::new()
            };
            (!actions.is_empty()).then(|| format!("{kind}:{name}:{}", actions.join(",")))
        })
        .collect()
}

/// `type:name:a,b` → (type, name, [a, b]); the name may itself contain `:` (e.g. a port).
fn parse_scope(scope: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions = actions
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    Some((kind.to_string(), name.to_string(), actions))
}

/// libtrust's key ID: base32(sha256(PKIX DER)[..30]) in groups of 4 joined by `:`.
fn libtrust_key_id(spki_der: &[u8]) -> String {
    let digest = Sha256::digest(spki_der);
    let b32 = base32_nopad(&digest[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 (standard alphabet), padding dropped.
fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `openssl dgst -sha256 -sign KEY` over `data`: a DER ECDSA signature.
fn openssl_sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write signing input");
    let out = child.wait_with_output().expect("openssl dgst");
    assert!(
        out.status.success(),
        "openssl dgst -sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` → fixed-width `r || s` (JWS ES256 form).
fn ecdsa_der_to_raw(der: &[u8], width: usize) -> Vec<u8> {
    fn read_len(der: &[u8], pos: &mut usize) -> usize {
        let first = der[*pos];
        *pos += 1;
        if first < 0x80 {
            return usize::from(first);
        }
        let n = usize::from(first & 0x7f);
        let mut len = 0;
        for _ in 0..n {
            len = (len << 8) | usize::from(der[*pos]);
            *pos += 1;
        }
        len
    }
    assert_eq!(der.first(), Some(&0x30), "not a DER ECDSA signature");
    let mut pos = 1;
    read_len(der, &mut pos);
    let mut out = Vec::with_capacity(2 * width);
    for _ in 0..2 {
        assert_eq!(der[pos], 0x02, "expected INTEGER in ECDSA signature");
        pos += 1;
        let len = read_len(der, &mut pos);
        let mut int = &der[pos..pos + len];
        pos += len;
        while int.len() > width && int[0] == 0 {
            int = &int[1..];
        }
        assert!(int.len() <= width, "ECDSA integer too long");
        out.extend(std::iter::repeat_n(0u8, width - int.len()));
        out.extend_from_slice(int);
    }
    out
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC).
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
