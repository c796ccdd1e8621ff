//! Request-flood protection for the admin API: a token bucket per client address, checked
//! before authentication (so token guessing is throttled too). Over the limit: 429 with
//! `Retry-After`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use tokio::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Api, ApiError};

/// Sustained requests per second one client address may make.
pub const API_RATE_PER_SEC: f64 = 200.0;
/// Requests one client may make at once after being idle.
pub const API_BURST: f64 = 400.0;
/// Client addresses tracked at most; beyond that, idle ones are forgotten first and
/// unknown newcomers share one bucket.
pub const API_CLIENTS_TRACKED_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by client address.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `ip` at `now`; false when its bucket is empty.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        // One slot stays free for the shared bucket of newcomers.
        let room = API_CLIENTS_TRACKED_MAX - 1;
        if !buckets.contains_key(&ip) && buckets.len() >= room {
            buckets.retain(|_, b| refill(*b, now).tokens < API_BURST);
        }
        let key = if buckets.contains_key(&ip) || buckets.len() < room {
            ip
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: API_BURST,
            at: now,
        });
        *bucket = refill(*bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn refill(b: Bucket, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    Bucket {
        tokens: (b.tokens + elapsed * API_RATE_PER_SEC).min(API_BURST),
        at: now,
    }
}

/// Middleware: 429 when the client's bucket is empty.
pub async fn throttle(State(api): State<Api>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if api.limiter.admit(ip, Instant::now()) {
        return next.run(req).await;
    }
    let mut r = ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from {ip}: the limit is {API_RATE_PER_SEC} per second"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
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
        let admitted = (0..1000).filter(|_| l.admit(a, t0)).count();
        assert_eq!(admitted, API_BURST as usize);
        assert!(l.admit(b, t0), "another client has its own bucket");
        let later = t0 + Duration::from_millis(100);
        let refilled = (0..1000).filter(|_| l.admit(a, later)).count();
        assert_eq!(refilled, (API_RATE_PER_SEC / 10.0) as usize);
    }

    #[test]
    fn tracked_clients_are_bounded() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..(API_CLIENTS_TRACKED_MAX as u32 + 500) {
            l.admit(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0);
        }
        assert!(l.buckets.lock().unwrap().len() <= API_CLIENTS_TRACKED_MAX);
    }
}
