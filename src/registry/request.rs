//! One registry request, and the retry loop of an operation.
//!
//! [`Registry::send`] makes one try: it authorizes the request for its scopes (fetching a
//! Bearer token when needed, and once more when the registry answers 401 to a cached one) and
//! sends it through the transport, bounded in time. It never repeats a request for another
//! reason: an operation ([`Registry::retried`]) repeats its tries under one [`Attempts`]
//! budget, so that retries never nest.

use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::auth;
use super::retry::{self, Attempts, judged};
use super::transport::{self, Body, Upload};
use super::{MAX_ERROR_BODY, Registry, RegistryError};

/// A request body: made once per try (`None` when it cannot be made again; an upload streamed
/// from elsewhere is started over as a whole instead).
pub(super) type MakeBody<'a> = &'a mut (dyn FnMut(&Upload) -> Option<reqwest::Body> + Send);

/// What [`Registry::send`] sends.
pub(super) struct Request<'a> {
    /// For messages: `manifest …`, `upload of blob …`.
    pub what: &'a str,
    pub method: Method,
    pub url: &'a Url,
    /// The token scopes the request needs.
    pub scopes: &'a [String],
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The body, with its length.
    pub body: Option<(u64, MakeBody<'a>)>,
}

impl<'a> Request<'a> {
    /// A request without a body or extra headers.
    pub fn new(what: &'a str, method: Method, url: &'a Url, scopes: &'a [String]) -> Self {
        Request {
            what,
            method,
            url,
            scopes,
            headers: &[],
            body: None,
        }
    }
}

impl Registry {
    /// A new retry budget for one operation.
    pub(super) fn attempts(&self) -> Attempts {
        Attempts::new(self.timeouts.retry)
    }

    /// The error for a `Retry-After` longer than the policy waits.
    pub(super) fn wait_too_long(
        &self,
        what: &str,
        asked: Duration,
        allowed: Duration,
    ) -> RegistryError {
        RegistryError::WaitTooLong {
            host: self.host.clone(),
            what: what.to_string(),
            asked,
            allowed,
        }
    }

    /// Counts one try of the operation `what` against `attempts`: `Break` with its result, or
    /// `Continue` (after the wait) for another try.
    pub(super) async fn settle<T>(
        &self,
        attempts: &mut Attempts,
        what: &str,
        result: Result<T, RegistryError>,
    ) -> ControlFlow<Result<T, RegistryError>> {
        attempts
            .settle(judged(result), |asked, allowed| {
                self.wait_too_long(what, asked, allowed)
            })
            .await
    }

    /// Runs the operation `what`, one try per call of `op`, under one retry budget (see
    /// [`retry::run`]).
    pub(super) async fn retried<T, F, Fut>(&self, what: &str, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        retry::run(&mut self.attempts(), op, |asked, allowed| {
            self.wait_too_long(what, asked, allowed)
        })
        .await
    }

    /// Sends `req` once, authorized for its scopes: a Bearer token is fetched again once if the
    /// registry answers 401 (with the scope it names, if any). Any status comes back;
    /// transport failures and timeouts are errors. Credentials go to the registry's own
    /// origin only (an upload location elsewhere gets none).
    pub(super) async fn send(&self, req: Request<'_>) -> Result<reqwest::Response, RegistryError> {
        let Request {
            what,
            method,
            url,
            scopes,
            headers,
            mut body,
        } = req;
        let mut scopes = scopes.to_vec();
        let authorized = self.same_origin(url);
        let mut refreshed = false;
        loop {
            let authorization = if authorized {
                self.auth
                    .header(&self.http, &self.timeouts, &scopes)
                    .await?
            } else {
                None
            };
            let mut builder = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                builder = builder.header(k, v);
            }
            if let Some(v) = &authorization {
                builder = builder.header(AUTHORIZATION, v.clone());
            }
            let mut upload = None;
            if let Some((size, make)) = body.as_mut() {
                let up = Upload::new(*size);
                let b = make(&up).ok_or_else(|| RegistryError::Other {
                    host: self.host.clone(),
                    what: what.to_string(),
                    message: "the upload was refused and cannot be sent again".into(),
                })?;
                builder = builder.header(CONTENT_LENGTH, *size).body(b);
                upload = Some(up);
            }
            let resp = transport::send(builder, &self.timeouts, upload.as_ref())
                .await
                .map_err(|e| e.into_registry(&self.host, what))?;
            if resp.status().as_u16() == 401
                && matches!(self.auth.scheme(), auth::Scheme::Bearer { .. })
                && authorized
                && !refreshed
            {
                refreshed = true;
                self.auth.forget(&scopes).await;
                // The registry may name the scope it wants.
                if let Some(auth::Challenge::Bearer {
                    scope: Some(scope), ..
                }) = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge)
                    && !scopes.contains(&scope)
                {
                    scopes.push(scope);
                }
                continue;
            }
            return Ok(resp);
        }
    }

    /// A GET or HEAD, sent once, accepting `accept`.
    pub(super) async fn read_once(
        &self,
        what: &str,
        method: Method,
        url: &Url,
        scopes: &[String],
        accept: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let accept = HeaderValue::from_str(accept)
            .map_err(|_| RegistryError::Config(format!("bad Accept value {accept:?}")))?;
        self.send(Request {
            headers: &[(reqwest::header::ACCEPT, accept)],
            ..Request::new(what, method, url, scopes)
        })
        .await
    }

    /// `resp` if it is a success, else the error for it.
    pub(super) async fn success(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, RegistryError> {
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(self.failure(what, resp).await)
        }
    }

    /// The error for an unsuccessful answer, with the registry's own words (the first
    /// [`MAX_ERROR_BODY`] bytes of its body, no more) and the wait its `Retry-After` asks for.
    pub(super) async fn failure(&self, what: &str, resp: reqwest::Response) -> RegistryError {
        let code = resp.status().as_u16();
        let retry_after = super::retry::retry_after(resp.headers(), std::time::SystemTime::now());
        let body = Body::new(resp, &self.timeouts)
            .read_prefix(MAX_ERROR_BODY)
            .await;
        RegistryError::from_status(&self.host, what, code, retry_after, &body)
    }

    /// A successful answer's body, at most `limit` bytes.
    pub(super) async fn body(
        &self,
        what: &str,
        resp: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        Body::new(resp, &self.timeouts)
            .read_to_vec(limit)
            .await
            .map_err(|e| e.into_registry(&self.host, what))
    }
}
