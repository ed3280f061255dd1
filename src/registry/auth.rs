//! Registry authentication, as `docker` and Helm do it: nothing for an open registry, Basic
//! credentials where `GET /v2/` asks for Basic, and the Bearer token flow where it asks for a
//! token. The flow: the 401 of `GET /v2/` carries `WWW-Authenticate: Bearer realm=…,service=…`;
//! a token for a scope (`repository:NAME:pull`, `…:pull,push`, `registry:catalog:*`) comes from
//! `GET realm?service=…&scope=…`, with the credential as Basic auth when there is one
//! (anonymously otherwise), as JSON `{"token"}` or `{"access_token"}` of at most
//! [`MAX_TOKEN_BYTES`]. Tokens are cached per scope; a 401 drops the cached one so the next try
//! fetches a fresh one.
//!
//! Credentials go only to the registry's origin and to the realm it names, and never over
//! plain HTTP to a realm on another host unless the registry itself is plain HTTP.

use std::collections::HashMap;

use reqwest::Url;
use reqwest::header::HeaderValue;

use super::RegistryError;
use super::retry;
use super::transport::{self, Body, Timeouts};
use crate::credentials::Credential;

/// Token answers larger than this are refused.
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value: `Basic realm="…"` or
/// `Bearer realm="…",service="…",scope="…"` (quoted or bare values, any order).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `k=v, k="v, with commas"` pairs.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// How a registry wants requests authorized, learnt from its answer to `GET /v2/`.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// The ping succeeded without credentials: none are ever sent.
    Open,
    Basic,
    Bearer {
        realm: Url,
        service: Option<String>,
    },
}

/// Credentials, the scheme, and the tokens fetched so far.
pub struct Auth {
    host: String,
    credential: Option<Credential>,
    scheme: Scheme,
    /// scope list → `Authorization` value.
    tokens: tokio::sync::Mutex<HashMap<String, HeaderValue>>,
}

impl Auth {
    /// The scheme of a registry whose ping answered `status` with `challenge`.
    pub fn new(
        host: &str,
        registry_scheme: &'static str,
        credential: Option<Credential>,
        status: u16,
        challenge: Option<&str>,
    ) -> Result<Self, RegistryError> {
        let scheme = if (200..300).contains(&status) {
            Scheme::Open
        } else {
            match challenge.and_then(parse_challenge) {
                Some(Challenge::Bearer { realm, service, .. }) => Scheme::Bearer {
                    realm: realm_url(host, registry_scheme, &realm)?,
                    service,
                },
                _ => Scheme::Basic,
            }
        };
        Ok(Auth {
            host: host.to_string(),
            credential,
            scheme,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// The `Authorization` value for requests needing `scopes`, fetching a token if needed.
    pub async fn header(
        &self,
        http: &reqwest::Client,
        timeouts: &Timeouts,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match &self.scheme {
            Scheme::Open => Ok(None),
            Scheme::Basic => self.credential.as_ref().map(basic).transpose(),
            Scheme::Bearer { .. } => {
                let key = scopes.join(" ");
                let mut tokens = self.tokens.lock().await;
                if let Some(v) = tokens.get(&key) {
                    return Ok(Some(v.clone()));
                }
                let token = self.token(http, timeouts, scopes).await?;
                let value = bearer(&self.host, &token)?;
                tokens.insert(key, value.clone());
                Ok(Some(value))
            }
        }
    }

    /// Forgets the token for `scopes` (the registry refused it).
    pub async fn forget(&self, scopes: &[String]) {
        self.tokens.lock().await.remove(&scopes.join(" "));
    }

    /// A token from the realm for `scopes` (none: a login check). A refusal is
    /// [`RegistryError::Unauthorized`]. One try: the request that needs the token is tried
    /// again, token request included, when this fails in a way a retry can mend.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        timeouts: &Timeouts,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        let Scheme::Bearer { realm, service } = &self.scheme else {
            return Err(RegistryError::Config(format!(
                "{}: the registry asks for no token",
                self.host
            )));
        };
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let what = "token request";
        let mut req = http.get(url);
        if let Some(c) = &self.credential {
            req = req.header(reqwest::header::AUTHORIZATION, basic(c)?);
        }
        let resp = transport::send(req, timeouts, None)
            .await
            .map_err(|e| e.into_registry(&self.host, what))?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let retry_after = retry::retry_after(resp.headers(), std::time::SystemTime::now());
            let body = Body::new(resp, timeouts)
                .read_prefix(super::error::MAX_ERROR_BODY)
                .await;
            return Err(RegistryError::from_status(
                &self.host,
                what,
                status,
                retry_after,
                &body,
            ));
        }
        let body = Body::new(resp, timeouts)
            .read_to_vec(MAX_TOKEN_BYTES)
            .await
            .map_err(|e| e.into_registry(&self.host, what))?;
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| RegistryError::Other {
            host: self.host.clone(),
            what: what.into(),
            message: format!("not a token answer: {e}"),
        })?;
        answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::Other {
                host: self.host.clone(),
                what: what.into(),
                message: "the token answer holds no token".into(),
            })
    }
}

/// The realm as a URL credentials may go to: HTTPS, or plain HTTP on the registry's own host,
/// a loopback host, or when the registry itself is plain HTTP.
fn realm_url(host: &str, registry_scheme: &str, realm: &str) -> Result<Url, RegistryError> {
    let bad = |why: &str| RegistryError::Other {
        host: host.to_string(),
        what: "token realm".into(),
        message: format!("{realm:?}: {why}"),
    };
    let base = Url::parse(&format!("{registry_scheme}://{host}/v2/"))
        .map_err(|_| bad("the registry name is not a URL host"))?;
    let url = base.join(realm).map_err(|_| bad("not a URL"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http"
            if registry_scheme == "http"
                || url.host_str() == base.host_str()
                || url.host_str().is_some_and(transport::is_loopback) =>
        {
            Ok(url)
        }
        _ => Err(bad("credentials go to an HTTPS realm only")),
    }
}

/// A sensitive `Authorization: Basic …` value.
pub fn basic(c: &Credential) -> Result<HeaderValue, RegistryError> {
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        c.username,
        c.secret.expose()
    ));
    sensitive(&format!("Basic {pair}"))
        .ok_or_else(|| RegistryError::Config("the credential cannot go in a header".into()))
}

fn bearer(host: &str, token: &str) -> Result<HeaderValue, RegistryError> {
    sensitive(&format!("Bearer {token}")).ok_or_else(|| RegistryError::Other {
        host: host.to_string(),
        what: "token request".into(),
        message: "the token cannot go in a header".into(),
    })
}

fn sensitive(text: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(text).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(
                r#"bearer service=x, realm="http://127.0.0.1:1/t", scope="repository:a:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("x".into()),
                scope: Some("repository:a:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn realms_must_be_safe_for_credentials() {
        assert!(realm_url("reg.example", "https", "https://auth.example/t").is_ok());
        assert!(realm_url("reg.example", "https", "http://auth.example/t").is_err());
        assert!(realm_url("reg.example", "https", "http://127.0.0.1:9/t").is_ok());
        assert!(realm_url("127.0.0.1:5000", "http", "http://auth.example/t").is_ok());
        assert!(realm_url("reg.example", "https", "ftp://x/t").is_err());
    }

    #[test]
    fn basic_values_are_sensitive() {
        let c = Credential {
            username: "u".into(),
            secret: crate::credentials::Secret::new("p"),
        };
        let v = basic(&c).expect("header");
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().ok(), Some("Basic dTpw"));
    }
}
