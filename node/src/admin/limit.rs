//! Request-flood protection for the admin API: a token bucket per client address, checked
//! before authentication (so token guessing is throttled too). Over the limit: 429 with
//! `Retry-After`. The rate and the bucket size are `[admin] rate_per_sec` and `rate_burst`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use tokio::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Api, ApiError};

/// Default sustained requests per second one client address may make.
pub const API_RATE_PER_SEC: f64 = 200.0;
/// Default number of requests one client may make at once after being idle.
pub const API_BURST: f64 = 400.0;
/// Client addresses tracked at most; beyond that, idle ones are forgotten first and
/// unknown newcomers share one bucket.
pub const API_CLIENTS_TRACKED_MAX: usize = 10_000;
/// Longest `Retry-After` announced, in seconds (a very slow configured rate).
pub const RETRY_AFTER_MAX_SECS: u64 = 86_400;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by client address.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second.
    rate: f64,
    /// Bucket size.
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Default for RateLimiter {
    /// The default rate and burst.
    fn default() -> Self {
        RateLimiter::new(API_RATE_PER_SEC, API_BURST)
    }
}

impl RateLimiter {
    /// `rate` tokens per second into buckets of `burst` (both validated by the config:
    /// positive and finite).
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip` at `now`: `Ok`, or `Err(seconds)` until the next token
    /// when its bucket is empty.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        // One slot stays free for the shared bucket of newcomers.
        let room = API_CLIENTS_TRACKED_MAX - 1;
        if !buckets.contains_key(&ip) && buckets.len() >= room {
            buckets.retain(|_, b| self.refill(*b, now).tokens < self.burst);
        }
        let key = if buckets.contains_key(&ip) || buckets.len() < room {
            ip
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        *bucket = self.refill(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.seconds_to_next_token(bucket.tokens))
        }
    }

    fn refill(&self, b: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        Bucket {
            tokens: (b.tokens + elapsed * self.rate).min(self.burst),
            at: now,
        }
    }

    /// Whole seconds until a bucket holding `tokens` (< 1) has one: at least 1.
    fn seconds_to_next_token(&self, tokens: f64) -> u64 {
        let secs = ((1.0 - tokens) / self.rate).ceil();
        // `as` saturates; NaN (impossible with a validated rate) becomes 0, then 1.
        (secs as u64).clamp(1, RETRY_AFTER_MAX_SECS)
    }
}

/// Middleware: 429 when the client's bucket is empty.
pub async fn throttle(State(api): State<Api>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let retry_after = match api.limiter.admit(ip, Instant::now()) {
        Ok(()) => return next.run(req).await,
        Err(secs) => secs,
    };
    let mut r = ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many requests from {ip}: the limit is {} per second",
            api.limiter.rate
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    r
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_sustained_rate_per_client() {
        let l = RateLimiter::default();
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        let t0 = Instant::now();
        let admitted = (0..1000).filter(|_| l.admit(a, t0).is_ok()).count();
        assert_eq!(admitted, API_BURST as usize);
        assert_eq!(
            l.admit(a, t0),
            Err(1),
            "empty: the next token in 5 ms, said as 1 s"
        );
        assert!(l.admit(b, t0).is_ok(), "another client has its own bucket");
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..1000).filter(|_| l.admit(a, later).is_ok()).count();
        assert_eq!(refilled, (API_RATE_PER_SEC / 10.0) as usize);
    }

    #[test]
    fn a_configured_rate_and_burst_are_obeyed_and_retry_after_follows_the_rate() {
        let l = RateLimiter::new(0.25, 3.0);
        let a = IpAddr::from([127, 0, 0, 1]);
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| l.admit(a, t0).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(l.admit(a, t0), Err(4), "one token per 4 s");
        assert_eq!(l.admit(a, t0 + Duration::from_secs(1)), Err(3));
        assert!(l.admit(a, t0 + Duration::from_secs(4)).is_ok());
        let slow = RateLimiter::new(1e-9, 1.0);
        assert!(slow.admit(a, t0).is_ok());
        assert_eq!(slow.admit(a, t0), Err(RETRY_AFTER_MAX_SECS), "bounded");
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..(API_CLIENTS_TRACKED_MAX as u32 + 500) {
            let _ = l.admit(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0);
        }
        assert!(l.buckets.lock().unwrap().len() <= API_CLIENTS_TRACKED_MAX);
    }
}
