//! Counting outcomes and summing them up: per-session tallies, the merged
//! report, nearest-rank percentiles, and the human and JSON renderings.
//!
//! Pure: nothing here does I/O or reads the clock; durations come in from the run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx after the end of data. `latency` runs from sending MAIL to that reply.
    Accepted {
        latency: Duration,
        message_bytes: usize,
    },
    /// A 4xx at any step; the text quotes the step and the reply.
    TempFailed(String),
    /// A 5xx at any step.
    Rejected(String),
    /// The session broke: connect, I/O, timeout or a reply out of protocol.
    Error(String),
}

/// A note kept for the operator: the first text of its kind and when it happened,
/// so that merging session tallies keeps the earliest.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FirstNote {
    at: Instant,
    text: String,
}

/// Counts kept by one session task, merged into one at the end of the run.
#[derive(Debug, Default)]
pub struct Tally {
    accepted: u64,
    tempfailed: u64,
    rejected: u64,
    errors: u64,
    /// Message bytes (before dot-stuffing) of accepted messages, for MB/s.
    accepted_bytes: u64,
    /// One entry per accepted message; at most the run's message count.
    latencies: Vec<Duration>,
    first_error: Option<FirstNote>,
    first_refusal: Option<FirstNote>,
}

impl Tally {
    /// Counts `outcome`, observed at `at`.
    pub fn record(&mut self, outcome: Outcome, at: Instant) {
        match outcome {
            Outcome::Accepted {
                latency,
                message_bytes,
            } => {
                self.accepted += 1;
                self.accepted_bytes += message_bytes as u64;
                self.latencies.push(latency);
            }
            Outcome::TempFailed(text) => {
                self.tempfailed += 1;
                keep_first(&mut self.first_refusal, FirstNote { at, text });
            }
            Outcome::Rejected(text) => {
                self.rejected += 1;
                keep_first(&mut self.first_refusal, FirstNote { at, text });
            }
            Outcome::Error(text) => {
                self.errors += 1;
                keep_first(&mut self.first_error, FirstNote { at, text });
            }
        }
    }

    /// Adds another session's counts to these.
    pub fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.tempfailed += other.tempfailed;
        self.rejected += other.rejected;
        self.errors += other.errors;
        self.accepted_bytes += other.accepted_bytes;
        self.latencies.extend(other.latencies);
        if let Some(note) = other.first_error {
            keep_first(&mut self.first_error, note);
        }
        if let Some(note) = other.first_refusal {
            keep_first(&mut self.first_refusal, note);
        }
    }

    /// Messages counted so far, whatever their outcome.
    pub fn total(&self) -> u64 {
        self.accepted + self.tempfailed + self.rejected + self.errors
    }
}

fn keep_first(slot: &mut Option<FirstNote>, note: FirstNote) {
    if slot.as_ref().is_none_or(|kept| note.at < kept.at) {
        *slot = Some(note);
    }
}

/// The value at `percent` (1..=100) of `sorted` by the nearest-rank method: the
/// smallest value such that at least `percent`% of all values are ≤ it, i.e.
/// `sorted[ceil(percent/100 · n) − 1]`. Integer arithmetic, so p90 of ten
/// values is exactly the 9th. `None` for an empty list.
pub fn nearest_rank<T: Copy>(sorted: &[T], percent: u32) -> Option<T> {
    assert!(
        (1..=100).contains(&percent),
        "percentile {percent} outside 1..=100"
    );
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(percent) * n).div_ceil(100);
    Some(sorted[rank as usize - 1])
}

/// Latency percentiles over the accepted messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median latency (nearest rank).
    pub p50: Duration,
    /// 90th percentile latency (nearest rank).
    pub p90: Duration,
    /// 99th percentile latency (nearest rank).
    pub p99: Duration,
    /// The slowest accepted message's latency.
    pub max: Duration,
}

impl LatencySummary {
    fn of(mut latencies: Vec<Duration>) -> Option<Self> {
        latencies.sort_unstable();
        Some(LatencySummary {
            p50: nearest_rank(&latencies, 50)?,
            p90: nearest_rank(&latencies, 90)?,
            p99: nearest_rank(&latencies, 99)?,
            max: *latencies.last()?,
        })
    }
}

/// What the run was asked to do, repeated in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunShape {
    /// HOST:PORT of the SMTP server.
    pub target: String,
    /// Messages in total over all sessions.
    pub messages: usize,
    /// Concurrent sessions.
    pub sessions: usize,
    /// Size of each message in bytes, headers included.
    pub size_bytes: usize,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// What the run was asked to do.
    pub shape: RunShape,
    /// Wall time from the first connect to the last session's end.
    pub elapsed: Duration,
    /// Messages that got a 2xx after the end of data.
    pub accepted: u64,
    /// Messages that got a 4xx at some step.
    pub tempfailed: u64,
    /// Messages that got a 5xx at some step.
    pub rejected: u64,
    /// Messages whose session broke (connect, I/O, timeout, protocol).
    pub errors: u64,
    /// Message bytes (before dot-stuffing) of the accepted messages.
    pub accepted_bytes: u64,
    /// `None` when no message was accepted.
    pub latency: Option<LatencySummary>,
    /// The earliest I/O or protocol error, verbatim.
    pub first_error: Option<String>,
    /// The earliest 4xx or 5xx reply, with the step that got it.
    pub first_refusal: Option<String>,
}

impl Report {
    pub fn new(shape: RunShape, elapsed: Duration, tally: Tally) -> Self {
        Report {
            shape,
            elapsed,
            accepted: tally.accepted,
            tempfailed: tally.tempfailed,
            rejected: tally.rejected,
            errors: tally.errors,
            accepted_bytes: tally.accepted_bytes,
            latency: LatencySummary::of(tally.latencies),
            first_error: tally.first_error.map(|note| note.text),
            first_refusal: tally.first_refusal.map(|note| note.text),
        }
    }

    /// True when there was mail to send and none of it was accepted.
    pub fn all_failed(&self) -> bool {
        self.shape.messages > 0 && self.accepted == 0
    }

    /// Accepted messages per second of wall time.
    pub fn msgs_per_s(&self) -> f64 {
        per_second(self.accepted as f64, self.elapsed)
    }

    /// Accepted message data in megabytes (10^6 bytes, before dot-stuffing) per second.
    pub fn mb_per_s(&self) -> f64 {
        per_second(self.accepted_bytes as f64 / 1e6, self.elapsed)
    }

    /// One JSON object: `messages, sessions, size, elapsed_s, accepted,
    /// tempfailed, rejected, errors, msgs_per_s, mb_per_s,
    /// latency_ms {p50, p90, p99, max}` (null when nothing was accepted), plus
    /// `target`, `first_error` and `first_refusal` (null when none).
    pub fn to_json(&self) -> Value {
        let ms = |pick: fn(&LatencySummary) -> Duration| {
            self.latency.as_ref().map(|l| round(millis(pick(l)), 3))
        };
        json!({
            "target": self.shape.target,
            "messages": self.shape.messages,
            "sessions": self.shape.sessions,
            "size": self.shape.size_bytes,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "accepted": self.accepted,
            "tempfailed": self.tempfailed,
            "rejected": self.rejected,
            "errors": self.errors,
            "msgs_per_s": round(self.msgs_per_s(), 2),
            "mb_per_s": round(self.mb_per_s(), 3),
            "latency_ms": {
                "p50": ms(|l| l.p50),
                "p90": ms(|l| l.p90),
                "p99": ms(|l| l.p99),
                "max": ms(|l| l.max),
            },
            "first_error": self.first_error,
            "first_refusal": self.first_refusal,
        })
    }

    /// A few aligned lines for a terminal.
    pub fn to_human(&self) -> String {
        let shape = &self.shape;
        let mut out = format!(
            "mxload to {}: {} messages of {} bytes over {} sessions\n",
            shape.target, shape.messages, shape.size_bytes, shape.sessions
        );
        out += &format!("elapsed      {:.3} s\n", self.elapsed.as_secs_f64());
        out += &format!(
            "throughput   {:.1} msgs/s accepted, {:.2} MB/s\n",
            self.msgs_per_s(),
            self.mb_per_s()
        );
        match &self.latency {
            Some(l) => {
                out += &format!(
                    "latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}\n",
                    millis(l.p50),
                    millis(l.p90),
                    millis(l.p99),
                    millis(l.max)
                );
            }
            None => out += "latency ms   none (no message accepted)\n",
        }
        out += &format!("accepted     {}\n", self.accepted);
        out += &format!("tempfailed   {}\n", self.tempfailed);
        out += &format!("rejected     {}\n", self.rejected);
        out += &format!("errors       {}\n", self.errors);
        if let Some(text) = &self.first_refusal {
            out += &format!("first refusal: {text}\n");
        }
        if let Some(text) = &self.first_error {
            out += &format!("first error: {text}\n");
        }
        out
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_follows_the_definition() {
        let ten: Vec<u32> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        assert_eq!(nearest_rank(&ten, 99), Some(10));
        assert_eq!(nearest_rank(&ten, 100), Some(10));
        assert_eq!(nearest_rank(&ten, 1), Some(1));
        assert_eq!(nearest_rank(&ten, 11), Some(2));

        let hundred: Vec<u32> = (1..=100).collect();
        for p in 1..=100 {
            assert_eq!(nearest_rank(&hundred, p), Some(p), "p{p}");
        }

        // Classic textbook example: 15, 20, 35, 40, 50.
        let five = [15, 20, 35, 40, 50];
        assert_eq!(nearest_rank(&five, 5), Some(15));
        assert_eq!(nearest_rank(&five, 30), Some(20));
        assert_eq!(nearest_rank(&five, 40), Some(20));
        assert_eq!(nearest_rank(&five, 50), Some(35));
        assert_eq!(nearest_rank(&five, 100), Some(50));
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank::<u32>(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 1), Some(7));
        assert_eq!(nearest_rank(&[7], 99), Some(7));
        let thousand: Vec<u32> = (1..=1000).collect();
        assert_eq!(nearest_rank(&thousand, 99), Some(990));
        let three = [1, 2, 3];
        assert_eq!(nearest_rank(&three, 50), Some(2));
        assert_eq!(nearest_rank(&three, 99), Some(3));
    }

    #[test]
    #[should_panic(expected = "outside 1..=100")]
    fn nearest_rank_refuses_zero() {
        nearest_rank(&[1], 0);
    }

    fn shape() -> RunShape {
        RunShape {
            target: "127.0.0.1:2525".to_string(),
            messages: 4,
            sessions: 2,
            size_bytes: 1_000_000,
        }
    }

    #[test]
    fn merged_tallies_report_counts_rates_and_percentiles() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        let mut a = Tally::default();
        a.record(
            Outcome::Accepted {
                latency: Duration::from_millis(30),
                message_bytes: 1_000_000,
            },
            t0,
        );
        a.record(
            Outcome::Error("connect to 127.0.0.1:2525: refused".to_string()),
            later,
        );
        let mut b = Tally::default();
        b.record(
            Outcome::Accepted {
                latency: Duration::from_millis(10),
                message_bytes: 1_000_000,
            },
            t0,
        );
        b.record(Outcome::Rejected("RCPT TO: 550 no".to_string()), later);
        b.record(
            Outcome::TempFailed("end of data: 451 later".to_string()),
            t0,
        );
        b.record(Outcome::Error("earlier".to_string()), t0);
        a.merge(b);
        assert_eq!(a.total(), 6);

        let report = Report::new(shape(), Duration::from_secs(2), a);
        assert_eq!(
            (
                report.accepted,
                report.tempfailed,
                report.rejected,
                report.errors
            ),
            (2, 1, 1, 2)
        );
        assert_eq!(report.msgs_per_s(), 1.0);
        assert_eq!(report.mb_per_s(), 1.0);
        let latency = report.latency.unwrap();
        assert_eq!(latency.p50, Duration::from_millis(10));
        assert_eq!(latency.p99, Duration::from_millis(30));
        assert_eq!(latency.max, Duration::from_millis(30));
        assert_eq!(report.first_error.as_deref(), Some("earlier"));
        assert_eq!(
            report.first_refusal.as_deref(),
            Some("end of data: 451 later")
        );
        assert!(!report.all_failed());
    }

    #[test]
    fn json_has_the_documented_keys() {
        let mut tally = Tally::default();
        tally.record(
            Outcome::Accepted {
                latency: Duration::from_micros(1500),
                message_bytes: 10,
            },
            Instant::now(),
        );
        let json = Report::new(shape(), Duration::from_millis(500), tally).to_json();
        for key in [
            "messages",
            "sessions",
            "size",
            "elapsed_s",
            "accepted",
            "tempfailed",
            "rejected",
            "errors",
            "msgs_per_s",
            "mb_per_s",
            "latency_ms",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(json["latency_ms"]["p50"], 1.5);
        assert_eq!(json["msgs_per_s"], 2.0);
        assert_eq!(json["size"], 1_000_000);
        assert_eq!(json["elapsed_s"], 0.5);
    }

    #[test]
    fn nothing_accepted_means_all_failed_and_no_latency() {
        let mut tally = Tally::default();
        for _ in 0..4 {
            tally.record(Outcome::Error("boom".to_string()), Instant::now());
        }
        let report = Report::new(shape(), Duration::ZERO, tally);
        assert!(report.all_failed());
        assert_eq!(report.msgs_per_s(), 0.0);
        assert_eq!(report.latency, None);
        assert_eq!(report.to_json()["latency_ms"]["p99"], Value::Null);
        let human = report.to_human();
        assert!(human.contains("errors       4\n"), "{human}");
        assert!(human.contains("first error: boom\n"), "{human}");
    }
}
