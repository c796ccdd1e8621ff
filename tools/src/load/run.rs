//! One load run: validate the config, resolve the target once, start the
//! session tasks, let them draw message tickets until M are used, merge their
//! tallies into a [`Report`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;

use super::message::{MessageSpec, data_payload, rfc5322_date};
use super::report::{Outcome, Report, RunShape, Tally};
use super::smtp::{CLOSING_CODE, ClientConfig, Envelope, Failure, SmtpClient};

/// Most concurrent sessions; each is a task and a socket.
pub const SESSIONS_MAX: usize = 10_000;
/// Most messages per run; every accepted one keeps a latency sample.
pub const MESSAGES_MAX: usize = 10_000_000;
/// Largest message; well above any sane server's SIZE limit.
pub const MESSAGE_SIZE_MAX_BYTES: usize = 100 * 1024 * 1024;
/// Longest per-step timeout accepted.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Longest envelope address (RFC 5321 4.5.3.1.3 path limit, less the brackets).
pub const ADDRESS_MAX_BYTES: usize = 254;
/// Longest EHLO name (a domain name).
pub const EHLO_NAME_MAX_BYTES: usize = 255;

/// Whether a session carries many messages or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionReuse {
    /// Keep the session open between messages (the default, like a relaying MTA).
    Reuse,
    /// Connect, send one message, QUIT: measures connection setup too.
    NewPerMessage,
}

/// Everything a run needs, as given on the command line.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// HOST:PORT of the SMTP server.
    pub target: String,
    /// Concurrent sessions (S).
    pub sessions: usize,
    /// Messages in total over all sessions (M).
    pub messages: usize,
    /// Size of each message in bytes, headers included.
    pub size_bytes: usize,
    /// Envelope sender; empty for the null sender `<>`.
    pub from: String,
    /// Envelope recipient.
    pub rcpt: String,
    /// Name given in EHLO.
    pub ehlo_name: String,
    /// Many messages per session, or one.
    pub session_reuse: SessionReuse,
    /// Bound on connect and on each read and write.
    pub timeout: Duration,
}

/// Why a run did not start. Each names the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A numeric flag outside its bounds.
    #[error("--{flag} must be between {min} and {max}, got {value}")]
    OutOfRange {
        flag: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// A flag's value that cannot be used (not `HOST:PORT`, empty, too long…).
    #[error("--{flag} {value:?}: {reason}")]
    BadValue {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The target host cannot be resolved.
    #[error("--to {target:?}: cannot resolve: {source}")]
    Resolve {
        target: String,
        source: std::io::Error,
    },
}

impl LoadConfig {
    /// Checks every bound and that the addresses can go into SMTP commands as they are.
    pub fn validate(&self) -> Result<(), RunError> {
        check_range("sessions", self.sessions as u64, 1, SESSIONS_MAX as u64)?;
        check_range("messages", self.messages as u64, 1, MESSAGES_MAX as u64)?;
        check_range(
            "size",
            self.size_bytes as u64,
            0,
            MESSAGE_SIZE_MAX_BYTES as u64,
        )?;
        check_range(
            "timeout-secs",
            self.timeout.as_secs(),
            1,
            TIMEOUT_MAX.as_secs(),
        )?;
        check_target(&self.target)?;
        check_token("from", &self.from, ADDRESS_MAX_BYTES, true)?;
        check_token("rcpt", &self.rcpt, ADDRESS_MAX_BYTES, false)?;
        check_token("ehlo", &self.ehlo_name, EHLO_NAME_MAX_BYTES, false)?;
        Ok(())
    }
}

fn check_range(flag: &'static str, value: u64, min: u64, max: u64) -> Result<(), RunError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(RunError::OutOfRange {
            flag,
            value,
            min,
            max,
        })
    }
}

fn check_target(target: &str) -> Result<(), RunError> {
    let bad = |reason| RunError::BadValue {
        flag: "to",
        value: target.to_string(),
        reason,
    };
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    if host.is_empty() {
        return Err(bad("expected HOST:PORT, the host is missing"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(bad("expected HOST:PORT with a port between 1 and 65535")),
    }
}

/// An address or name that goes verbatim into a command line.
fn check_token(
    flag: &'static str,
    value: &str,
    max_bytes: usize,
    may_be_empty: bool,
) -> Result<(), RunError> {
    let bad = |reason| RunError::BadValue {
        flag,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() && !may_be_empty {
        return Err(bad("must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(bad("too long"));
    }
    if value
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'<' || b == b'>')
    {
        return Err(bad(
            "must not contain spaces, control characters or angle brackets",
        ));
    }
    Ok(())
}

/// What every session task reads.
struct Shared {
    client: ClientConfig,
    envelope: Envelope,
    spec: MessageSpec,
    session_reuse: SessionReuse,
    messages: usize,
    /// Index of the next message to send; a session stops when it reaches `messages`.
    next_ticket: AtomicUsize,
}

impl Shared {
    fn take_ticket(&self) -> Option<usize> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        (ticket < self.messages).then_some(ticket)
    }
}

/// Runs the load described by `config` and reports on it. Sending problems
/// are counted, not returned: only a config that cannot run is an error.
pub async fn run(config: &LoadConfig) -> Result<Report, RunError> {
    config.validate()?;
    let addr = resolve(&config.target).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let shared = Arc::new(Shared {
        client: ClientConfig {
            addr,
            ehlo_name: config.ehlo_name.clone(),
            timeout: config.timeout,
        },
        envelope: Envelope::new(&config.from, &config.rcpt),
        spec: MessageSpec {
            from: if config.from.is_empty() {
                "mxload@mxload.test".to_string()
            } else {
                config.from.clone()
            },
            rcpt: config.rcpt.clone(),
            size_bytes: config.size_bytes,
            date: rfc5322_date(now.as_secs()),
            run_tag: format!(
                "{:x}.{:x}.{:x}",
                now.as_secs(),
                now.subsec_nanos(),
                std::process::id()
            ),
        },
        session_reuse: config.session_reuse,
        messages: config.messages,
        next_ticket: AtomicUsize::new(0),
    });

    let started = Instant::now();
    let mut sessions = JoinSet::new();
    for _ in 0..config.sessions.min(config.messages) {
        sessions.spawn(session(Arc::clone(&shared)));
    }
    let mut tally = Tally::default();
    while let Some(joined) = sessions.join_next().await {
        match joined {
            Ok(session_tally) => tally.merge(session_tally),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    let elapsed = started.elapsed();
    debug_assert_eq!(
        tally.total(),
        config.messages as u64,
        "every ticket is counted once"
    );

    let shape = RunShape {
        target: config.target.clone(),
        messages: config.messages,
        sessions: config.sessions,
        size_bytes: config.size_bytes,
    };
    Ok(Report::new(shape, elapsed, tally))
}

async fn resolve(target: &str) -> Result<SocketAddr, RunError> {
    let resolve_error = |source| RunError::Resolve {
        target: target.to_string(),
        source,
    };
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(resolve_error)?;
    addrs
        .next()
        .ok_or_else(|| resolve_error(std::io::Error::other("no address found")))
}

/// One session task: draw a ticket, (re)connect if needed, send, count; until
/// the tickets run out. A session that breaks is dropped and the next ticket
/// opens a fresh one, so a flaky server costs messages, not sessions.
async fn session(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let mut open: Option<SmtpClient> = None;
    while let Some(index) = shared.take_ticket() {
        let message = shared.spec.render(index);
        let payload = data_payload(&message);
        let mut client = match open.take() {
            Some(client) => client,
            None => match SmtpClient::connect(&shared.client).await {
                Ok(client) => client,
                Err(failure) => {
                    tally.record(outcome_of_failure(&failure), Instant::now());
                    continue;
                }
            },
        };
        let started = Instant::now();
        let result = client.send(&shared.envelope, &payload).await;
        let latency = started.elapsed();
        let usable = match &result {
            Ok(_) => true,
            Err(Failure::Refused { reply, .. }) if reply.code == CLOSING_CODE => false,
            Err(Failure::Refused { .. }) => {
                shared.session_reuse == SessionReuse::NewPerMessage || client.reset().await.is_ok()
            }
            Err(Failure::Broken(_)) => false,
        };
        let outcome = match result {
            Ok(_) => Outcome::Accepted {
                latency,
                message_bytes: message.len(),
            },
            Err(failure) => outcome_of_failure(&failure),
        };
        tally.record(outcome, Instant::now());
        match (usable, shared.session_reuse) {
            (true, SessionReuse::Reuse) => open = Some(client),
            (true, SessionReuse::NewPerMessage) => client.quit().await,
            (false, _) => drop(client),
        }
    }
    if let Some(client) = open {
        client.quit().await;
    }
    tally
}

fn outcome_of_failure(failure: &Failure) -> Outcome {
    match failure {
        Failure::Refused { reply, .. } if reply.class() == 4 => {
            Outcome::TempFailed(failure.to_string())
        }
        Failure::Refused { .. } => Outcome::Rejected(failure.to_string()),
        Failure::Broken(error) => Outcome::Error(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig {
            target: "127.0.0.1:2525".to_string(),
            sessions: 20,
            messages: 1000,
            size_bytes: 10_240,
            from: "load@mxload.test".to_string(),
            rcpt: "user@example.com".to_string(),
            ehlo_name: "mxload.test".to_string(),
            session_reuse: SessionReuse::Reuse,
            timeout: Duration::from_secs(30),
        }
    }

    fn error_of(change: impl FnOnce(&mut LoadConfig)) -> String {
        let mut config = config();
        change(&mut config);
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        config().validate().unwrap();
        LoadConfig {
            from: String::new(),
            target: "[::1]:25".to_string(),
            ..config()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            error_of(|c| c.sessions = 0),
            "--sessions must be between 1 and 10000, got 0"
        );
        assert!(error_of(|c| c.messages = MESSAGES_MAX + 1).starts_with("--messages "));
        assert!(error_of(|c| c.size_bytes = MESSAGE_SIZE_MAX_BYTES + 1).starts_with("--size "));
        assert!(error_of(|c| c.timeout = Duration::ZERO).starts_with("--timeout-secs "));
        for target in ["localhost", ":25", "h:0", "h:port", "h:70000"] {
            assert!(
                error_of(|c| c.target = target.to_string()).starts_with("--to "),
                "{target}"
            );
        }
        assert!(error_of(|c| c.rcpt = String::new()).starts_with("--rcpt "));
        assert!(error_of(|c| c.rcpt = "a@b>\r\nDATA".to_string()).starts_with("--rcpt "));
        assert!(error_of(|c| c.from = "a b@c".to_string()).starts_with("--from "));
        assert!(error_of(|c| c.ehlo_name = "x".repeat(300)).starts_with("--ehlo "));
    }

    #[test]
    fn tickets_are_handed_out_exactly_once() {
        let shared = Shared {
            client: ClientConfig {
                addr: "127.0.0.1:1".parse().unwrap(),
                ehlo_name: "x".to_string(),
                timeout: Duration::from_secs(1),
            },
            envelope: Envelope::new("a@b", "c@d"),
            spec: MessageSpec {
                from: "a@b".to_string(),
                rcpt: "c@d".to_string(),
                size_bytes: 0,
                date: rfc5322_date(0),
                run_tag: "t".to_string(),
            },
            session_reuse: SessionReuse::Reuse,
            messages: 3,
            next_ticket: AtomicUsize::new(0),
        };
        let drawn: Vec<_> = std::iter::from_fn(|| shared.take_ticket()).collect();
        assert_eq!(drawn, [0, 1, 2]);
        assert_eq!(shared.take_ticket(), None);
    }
}
