//! The one retry policy of every request to a registry or a classic repository.
//!
//! Only what a retry can mend is tried again: a connection refused or dropped, a timeout, a
//! body cut off or stalled, and the statuses 408, 429 and 5xx but 501 (Not Implemented) and 505
//! (HTTP Version Not Supported). Only requests that are safe to repeat are repeated (the
//! callers decide: GET, HEAD, a manifest PUT; an upload is started over as a whole).
//!
//! An operation gets one [`Attempts`] budget, and every try of every request it makes counts
//! against it: a blob upload started over as a whole, the token request inside a request, a
//! download resumed with `Range` all take from the same budget, so retries never nest.
//!
//! Between tries the wait grows from [`RetryPolicy::base`] to [`RetryPolicy::cap`] with jitter,
//! or is what the server's `Retry-After` asks (seconds or an HTTP date) when that is longer. A
//! `Retry-After` above [`RetryPolicy::max_retry_after`] is not waited for: the operation fails
//! at once, saying how long the server asked to wait.

use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The default of `--retries` (`CHARTCACHE_RETRIES`): tries of an operation, the first included.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// The first wait between tries (then doubled each time, with jitter).
pub const DEFAULT_BASE: Duration = Duration::from_millis(250);
/// The longest wait between tries chartcache chooses itself.
pub const DEFAULT_CAP: Duration = Duration::from_secs(8);
/// The longest `Retry-After` waited for.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// How often, and after how long, a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one operation, the first included (1: no retry).
    pub attempts: u32,
    /// The wait before the second try; doubled for each one after.
    pub base: Duration,
    /// The longest wait chosen by backoff.
    pub cap: Duration,
    /// The longest `Retry-After` honoured; a longer one fails the operation at once.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: DEFAULT_ATTEMPTS,
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The default policy with `attempts` tries (at least one).
    pub fn with_attempts(attempts: u32) -> Self {
        RetryPolicy {
            attempts: attempts.max(1),
            ..RetryPolicy::default()
        }
    }

    /// The backoff before try `n + 1` (n ≥ 1 tries made): `base·2^(n-1)` capped, the upper half
    /// of it random ("equal jitter"), so clients that failed together do not come back together.
    fn backoff(&self, made: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << made.saturating_sub(1).min(16))
            .min(self.cap);
        let half = exp / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1), different each call (not for cryptography).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What an error that outlived its tries adds to its message: ` (gave up after N tries)`,
/// nothing after a single try.
pub fn gave_up_after(tries: u32) -> String {
    if tries > 1 {
        format!(" (gave up after {tries} tries)")
    } else {
        String::new()
    }
}

/// Whether an answer with this status may be tried again.
pub fn is_transient_status(code: u16) -> bool {
    matches!(code, 408 | 429) || ((500..=599).contains(&code) && code != 501 && code != 505)
}

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP date (zero when it has
/// passed). None without one, or when it cannot be read.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An error that knows whether another try could mend it.
pub trait Transient: Sized {
    fn is_transient(&self) -> bool;
    /// The wait the server asked for (`Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration>;
    /// The error once `tries` tries failed: saying so, and no longer transient, so that no
    /// caller tries the operation again (retries never multiply).
    fn gave_up(self, tries: u32) -> Self;
}

/// A result as one try of an operation: a transient failure may be tried again.
pub fn judged<T, E: Transient>(result: Result<T, E>) -> Outcome<T, E> {
    match result {
        Err(e) if e.is_transient() => Outcome::Again {
            retry_after: e.retry_after(),
            last: Err(e),
        },
        done => Outcome::Done(done),
    }
}

/// Runs an operation, one try per call of `op`, until it succeeds, fails in a way a retry
/// cannot mend, or `attempts` is spent. `too_long(asked, allowed)` is the error for a
/// `Retry-After` longer than the policy waits.
pub async fn run<T, E, F, Fut>(
    attempts: &mut Attempts,
    mut op: F,
    too_long: impl Fn(Duration, Duration) -> E,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        let result = op().await;
        if let ControlFlow::Break(r) = attempts.settle(judged(result), &too_long).await {
            return r;
        }
    }
}

/// How one try went.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// Final: a success, or a failure a retry cannot mend.
    Done(Result<T, E>),
    /// A transient failure (an error, or an answer with a transient status), with the wait the
    /// server asked for. `last` is the result if no try is left.
    Again {
        last: Result<T, E>,
        retry_after: Option<Duration>,
    },
}

impl<T, E> Outcome<T, E> {
    /// The same outcome with the success mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U, E> {
        match self {
            Outcome::Done(r) => Outcome::Done(r.map(f)),
            Outcome::Again { last, retry_after } => Outcome::Again {
                last: last.map(f),
                retry_after,
            },
        }
    }

    /// The same outcome with the error mapped.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> Outcome<T, F> {
        match self {
            Outcome::Done(r) => Outcome::Done(r.map_err(f)),
            Outcome::Again { last, retry_after } => Outcome::Again {
                last: last.map_err(f),
                retry_after,
            },
        }
    }
}

/// The tries of one operation, counted against one [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    made: u32,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts { policy, made: 0 }
    }

    /// Tries made so far (counted by [`Attempts::settle`]).
    pub fn made(&self) -> u32 {
        self.made
    }

    /// Counts a try that went as `outcome`. `Break` with the operation's result when it is
    /// final, when no try is left, or when the server asks for a longer wait than the policy
    /// allows (`too_long(asked, allowed)` makes that error); else waits and returns `Continue`
    /// for the next try.
    pub async fn settle<T, E: Transient>(
        &mut self,
        outcome: Outcome<T, E>,
        too_long: impl FnOnce(Duration, Duration) -> E,
    ) -> ControlFlow<Result<T, E>> {
        match self.next(outcome, too_long) {
            ControlFlow::Break(r) => ControlFlow::Break(r),
            ControlFlow::Continue(wait) => {
                tokio::time::sleep(wait).await;
                ControlFlow::Continue(())
            }
        }
    }

    /// [`Attempts::settle`] without the wait: `Continue` with how long to wait.
    fn next<T, E: Transient>(
        &mut self,
        outcome: Outcome<T, E>,
        too_long: impl FnOnce(Duration, Duration) -> E,
    ) -> ControlFlow<Result<T, E>, Duration> {
        self.made += 1;
        let (last, asked) = match outcome {
            Outcome::Done(r) => return ControlFlow::Break(r),
            Outcome::Again { last, retry_after } => (last, retry_after),
        };
        if let Some(asked) = asked
            && asked > self.policy.max_retry_after
        {
            return ControlFlow::Break(Err(too_long(asked, self.policy.max_retry_after)));
        }
        if self.made >= self.policy.attempts {
            return ControlFlow::Break(last.map_err(|e| e.gave_up(self.made)));
        }
        // The answer is dropped before the wait, so its connection goes back to the pool.
        drop(last);
        ControlFlow::Continue(
            self.policy
                .backoff(self.made)
                .max(asked.unwrap_or_default()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn transient_statuses() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_transient_status(code), "{code}");
        }
        for code in [200, 201, 400, 401, 403, 404, 409, 416, 501, 505] {
            assert!(!is_transient_status(code), "{code}");
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(
            retry_after(&headers("3"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(" 120 "), now),
            Some(Duration::from_secs(120))
        );
        // 2015-10-21 07:28:00 UTC is 1445412480: ten seconds after `now`.
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_secs(10))
        );
        // A date gone by: no wait.
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"), later),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for made in 1..=10 {
            let full = p.base.saturating_mul(1 << (made - 1)).min(p.cap);
            for _ in 0..20 {
                let d = p.backoff(made);
                assert!(d >= full / 2 && d <= full, "{made}: {d:?} vs {full:?}");
            }
        }
        assert!(p.backoff(1000) <= p.cap);
    }

    #[derive(Debug, PartialEq)]
    struct Failure(String);

    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            !self.0.starts_with("gave up")
        }
        fn retry_after(&self) -> Option<Duration> {
            None
        }
        fn gave_up(self, tries: u32) -> Self {
            Failure(format!("gave up after {tries}: {}", self.0))
        }
    }

    fn again(after: Option<u64>) -> Outcome<(), Failure> {
        Outcome::Again {
            last: Err(Failure("last".into())),
            retry_after: after.map(Duration::from_secs),
        }
    }

    fn too_long(asked: Duration, allowed: Duration) -> Failure {
        Failure(format!("wait {asked:?} > {allowed:?}"))
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn attempts_are_counted_once_and_end_with_the_last_result() {
        let mut a = Attempts::new(fast(3));
        assert!(a.next(again(None), too_long).is_continue());
        assert!(a.next(again(None), too_long).is_continue());
        match a.next(again(None), too_long) {
            ControlFlow::Break(Err(e)) => assert_eq!(e.0, "gave up after 3: last"),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.made(), 3);
        let mut a = Attempts::new(fast(3));
        assert!(matches!(
            a.next(Outcome::Done(Ok::<(), Failure>(())), too_long),
            ControlFlow::Break(Ok(()))
        ));
        // One try allowed: given up at once, so no caller tries again either.
        let mut a = Attempts::new(fast(1));
        match a.next(again(None), too_long) {
            ControlFlow::Break(Err(e)) => assert_eq!(e.0, "gave up after 1: last"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_retry_after_above_the_limit_fails_at_once() {
        let mut a = Attempts::new(fast(4));
        match a.next(again(Some(3600)), too_long) {
            ControlFlow::Break(Err(e)) => assert_eq!(e.0, "wait 3600s > 5s"),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.made(), 1);
    }

    #[test]
    fn a_retry_after_is_waited_for_and_backoff_otherwise() {
        let mut a = Attempts::new(fast(4));
        assert_eq!(
            a.next(again(Some(2)), too_long),
            ControlFlow::Continue(Duration::from_secs(2))
        );
        match a.next(again(None), too_long) {
            ControlFlow::Continue(d) => assert!(d <= Duration::from_millis(2), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_attempt_at_least() {
        assert_eq!(RetryPolicy::with_attempts(0).attempts, 1);
        assert_eq!(RetryPolicy::with_attempts(7).attempts, 7);
    }
}
