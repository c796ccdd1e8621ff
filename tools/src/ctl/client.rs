//! Blocking HTTP client for one node's admin API.
//!
//! Any node answers for the whole mesh, so the client only ever talks to the one
//! base URL it was given. It knows paths, query strings, the bearer token and
//! status codes; what a response means to the operator is `output`'s business.

use std::fmt;
use std::io::Read as _;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// Upper bound for one HTTP exchange, connect included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a response body: well above the largest quarantined message
/// (25 MiB by default), so only a broken server ever hits it.
pub const RESPONSE_BODY_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The versioned prefix of every authenticated endpoint.
const API_PREFIX: [&str; 2] = ["api", "v1"];

/// The HTTP methods the admin API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_reqwest().as_str())
    }
}

/// Where a call goes, relative to the client's base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Path segments after the base URL. Each is percent-encoded on its own, so an
    /// id containing `/` or `?` stays one segment and cannot change the route.
    pub segments: Vec<String>,
    /// Query pairs in order. Filters the operator did not give are not listed.
    pub query: Vec<(&'static str, String)>,
    /// Whether to send `Authorization: Bearer`; false only for `/healthz`.
    pub authenticated: bool,
}

impl Endpoint {
    /// An authenticated endpoint under `/api/v1`.
    pub fn api(segments: &[&str]) -> Self {
        let segments = API_PREFIX
            .iter()
            .chain(segments)
            .map(|s| s.to_string())
            .collect();
        Endpoint {
            segments,
            query: Vec::new(),
            authenticated: true,
        }
    }

    /// An unauthenticated endpoint at the root, such as `/healthz`.
    pub fn public(segments: &[&str]) -> Self {
        let segments = segments.iter().map(|s| s.to_string()).collect();
        Endpoint {
            segments,
            query: Vec::new(),
            authenticated: false,
        }
    }

    /// Adds `key=value` to the query when `value` is present.
    pub fn with_query(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((key, value.to_string()));
        }
        self
    }
}

/// A request body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// JSON (`application/json`): a rule, settings.
    Json(Value),
    /// One raw message (`message/rfc822`), for learning and classifying.
    Message(Vec<u8>),
}

/// Media type of a raw message body.
pub const MESSAGE_CONTENT_TYPE: &str = "message/rfc822";

/// Retries of one request the node's rate limit answered `429`.
pub const RATE_LIMITED_RETRIES_MAX: u32 = 20;

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

/// The shortest wait before a retry (a `Retry-After` of 0 or none).
const RETRY_AFTER_MIN: Duration = Duration::from_millis(50);

/// A response as it came off the wire: status and raw body bytes.
#[derive(Debug)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body bytes as received.
    pub body: Vec<u8>,
}

/// Why a call got no HTTP response. Every variant names the URL at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--url` / `MXMESH_URL` is not a usable base URL.
    #[error("invalid server URL {url:?} (--url / MXMESH_URL): {reason}")]
    BadUrl { url: String, reason: String },
    /// The HTTP client cannot be built.
    #[error("cannot set up the HTTP client: {detail}")]
    Setup { detail: String },
    /// The request got no response (connect, TLS, I/O or timeout).
    #[error("{method} {url}: {detail}")]
    Transport {
        method: Method,
        url: Url,
        detail: String,
    },
    /// The response body exceeded the limit.
    #[error("{method} {url}: response body larger than {max_bytes} bytes")]
    BodyTooLarge {
        method: Method,
        url: Url,
        max_bytes: u64,
    },
}

/// A blocking client for the admin API of the node at one base URL.
#[derive(Debug)]
pub struct ApiClient {
    /// Scheme, host, port and optional path prefix; no query, no fragment.
    base: Url,
    /// Sent as `Authorization: Bearer` on authenticated endpoints; `None` lets
    /// the server answer 401 with its own message.
    token: Option<String>,
    http: Client,
}

impl ApiClient {
    /// Validates `base_url` (plain `http://` with a host) and builds the client.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = parse_base_url(base_url)?;
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mxctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::Setup {
                detail: error_chain(&error),
            })?;
        let token = token.filter(|t| !t.is_empty());
        Ok(ApiClient { base, token, http })
    }

    /// The full URL of `endpoint` on this client's node.
    pub fn url(&self, endpoint: &Endpoint) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("parse_base_url only accepts URLs that can be a base")
            .pop_if_empty()
            .extend(&endpoint.segments);
        if !endpoint.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(endpoint.query.iter().map(|(k, v)| (*k, v)));
        }
        url
    }

    /// Sends one request and reads the whole response (bounded by
    /// [`RESPONSE_BODY_MAX_BYTES`]). Any status is an `Ok`; only a missing or
    /// unreadable response is an error. A `429` (the node's per-client rate limit) is
    /// retried after its `Retry-After` (at most [`RETRY_AFTER_MAX`]), at most
    /// [`RATE_LIMITED_RETRIES_MAX`] times, so a long `mxctl learn` paces itself.
    pub fn send(
        &self,
        method: Method,
        endpoint: &Endpoint,
        body: Option<&Body>,
    ) -> Result<ApiResponse, ClientError> {
        let mut retries = 0;
        loop {
            let (response, retry_after) = self.send_once(method, endpoint, body)?;
            if response.status != StatusCode::TOO_MANY_REQUESTS
                || retries == RATE_LIMITED_RETRIES_MAX
            {
                return Ok(response);
            }
            retries += 1;
            std::thread::sleep(retry_after.min(RETRY_AFTER_MAX));
        }
    }

    fn send_once(
        &self,
        method: Method,
        endpoint: &Endpoint,
        body: Option<&Body>,
    ) -> Result<(ApiResponse, Duration), ClientError> {
        let url = self.url(endpoint);
        let mut request = self.http.request(method.to_reqwest(), url.clone());
        if endpoint.authenticated
            && let Some(token) = &self.token
        {
            request = request.bearer_auth(token);
        }
        match body {
            Some(Body::Json(value)) => request = request.json(value),
            Some(Body::Message(bytes)) => {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, MESSAGE_CONTENT_TYPE)
                    .body(bytes.clone());
            }
            None => {}
        }
        let transport = |error: &dyn std::error::Error| ClientError::Transport {
            method,
            url: url.clone(),
            detail: error_chain(error),
        };
        let response = request
            .send()
            .map_err(|error| transport(&error.without_url()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(RETRY_AFTER_MIN, Duration::from_secs)
            .max(RETRY_AFTER_MIN);
        let mut body = Vec::new();
        response
            .take(RESPONSE_BODY_MAX_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|error| transport(&error))?;
        if body.len() as u64 > RESPONSE_BODY_MAX_BYTES {
            return Err(ClientError::BodyTooLarge {
                method,
                url,
                max_bytes: RESPONSE_BODY_MAX_BYTES,
            });
        }
        Ok((ApiResponse { status, body }, retry_after))
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    // An operator who types HOST:PORT means plain HTTP to it.
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|error| bad(&error.to_string()))?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(bad("https is not supported; the admin API is plain HTTP")),
        _ => return Err(bad("expected http://HOST:PORT")),
    }
    if url.host_str().is_none() || url.cannot_be_a_base() {
        return Err(bad("expected http://HOST:PORT"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// An error and its causes on one line: "error sending request: …: Connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> ApiClient {
        ApiClient::new(base, Some("t0ken".to_string())).unwrap()
    }

    #[test]
    fn api_paths_sit_under_api_v1() {
        let url = client("http://127.0.0.1:8025").url(&Endpoint::api(&["rules", "history"]));
        assert_eq!(url.as_str(), "http://127.0.0.1:8025/api/v1/rules/history");
    }

    #[test]
    fn base_path_prefix_is_kept_with_or_without_trailing_slash() {
        for base in [
            "http://mx1.example.com/admin",
            "http://mx1.example.com/admin/",
        ] {
            let url = client(base).url(&Endpoint::api(&["stats"]));
            assert_eq!(
                url.as_str(),
                "http://mx1.example.com/admin/api/v1/stats",
                "base {base}"
            );
        }
    }

    #[test]
    fn public_endpoint_has_no_prefix_and_no_auth() {
        let endpoint = Endpoint::public(&["healthz"]);
        assert!(!endpoint.authenticated);
        assert_eq!(
            client("http://h:1").url(&endpoint).as_str(),
            "http://h:1/healthz"
        );
    }

    #[test]
    fn ids_are_encoded_as_one_segment() {
        let url = client("http://h:1").url(&Endpoint::api(&["rules", "a/b?c d"]));
        assert_eq!(url.as_str(), "http://h:1/api/v1/rules/a%2Fb%3Fc%20d");
    }

    #[test]
    fn query_lists_only_given_values_and_encodes_them() {
        let endpoint = Endpoint::api(&["quarantine"])
            .with_query("sender", Some("a+b@example.com"))
            .with_query("rcpt", None::<&str>)
            .with_query("subject", Some("cheap pills & more"))
            .with_query("limit", Some(50));
        let url = client("http://h:1").url(&endpoint);
        assert_eq!(
            url.as_str(),
            "http://h:1/api/v1/quarantine?sender=a%2Bb%40example.com&subject=cheap+pills+%26+more&limit=50"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs[1],
            ("subject".to_string(), "cheap pills & more".to_string())
        );
    }

    #[test]
    fn host_and_port_alone_means_http() {
        let url = client("127.0.0.1:8025").url(&Endpoint::api(&["stats"]));
        assert_eq!(url.as_str(), "http://127.0.0.1:8025/api/v1/stats");
    }

    #[test]
    fn base_query_and_fragment_are_dropped() {
        let url = client("http://h:1/?x=1#frag").url(&Endpoint::api(&["cluster"]));
        assert_eq!(url.as_str(), "http://h:1/api/v1/cluster");
    }

    #[test]
    fn bad_base_urls_are_refused_with_the_url_named() {
        for raw in [
            "https://h:1",
            "ftp://h",
            "not a url",
            "http://",
            "http://h:99999",
        ] {
            let error = ApiClient::new(raw, None).unwrap_err().to_string();
            assert!(error.contains(&format!("{raw:?}")), "{raw}: {error}");
        }
    }
}
