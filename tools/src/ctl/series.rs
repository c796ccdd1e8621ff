//! `mxctl stats series --metric M [--since T] [--step S]`: one counter's history over
//! `GET /api/v1/stats/series`, as a table with one row per step (its start, UTC) and one
//! column per node plus the total; `--json` prints the answer itself.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Endpoint, Method};
use super::commands::{Call, OutputArgs, View};
use super::tables::Table;

/// The counters the server keeps a history of (README, Admin API).
pub const METRICS: [&str; 9] = [
    "received",
    "accepted",
    "tagged",
    "quarantined",
    "rejected",
    "relayed",
    "deferred",
    "bounced",
    "tempfailed",
];
/// Longest relative `--since` or `--step` accepted, in seconds (the server keeps 30 days).
pub const DURATION_SECS_MAX: u64 = 366 * 24 * 3600;

/// `mxctl stats …`: the counters now, or one counter's history.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StatsArgs {
    /// A counter's history instead of the totals
    #[command(subcommand)]
    pub command: Option<StatsCommand>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `mxctl stats series`.
#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// One counter per step for every live node and the total (GET /api/v1/stats/series)
    Series(SeriesArgs),
}

/// The options of `stats series`.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// The counter: received, accepted, tagged, quarantined, rejected, relayed, deferred,
    /// bounced or tempfailed
    #[arg(long, value_name = "M", value_parser = clap::builder::PossibleValuesParser::new(METRICS))]
    pub metric: String,
    /// From when: ms since the epoch, an RFC 3339 time, or a time ago like 90m, 6h, 2d
    /// (default: the server's, an hour ago)
    #[arg(long, value_name = "T", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Width of a row: seconds (a multiple of 60), or 5m, 1h, 1d (default: 1m)
    #[arg(long, value_name = "S", value_parser = parse_step)]
    pub step: Option<u64>,
    /// `--json`, which may follow the command.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `--since` as given: passed on as the server reads it, or a time ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Ms since the epoch or an RFC 3339 time, sent as written.
    At(String),
    /// This many seconds before now.
    Ago(u64),
}

impl Since {
    /// The `since=` query value at `now_ms`.
    pub fn query(&self, now_ms: u64) -> String {
        match self {
            Since::At(text) => text.clone(),
            Since::Ago(secs) => now_ms.saturating_sub(secs.saturating_mul(1000)).to_string(),
        }
    }
}

/// A relative duration like `90s`, `30m`, `6h`, `2d`, in seconds; `None` when `text` is not
/// one (a bare number is not: it has no unit).
fn relative_secs(text: &str) -> Option<Result<u64, String>> {
    let unit = text.chars().last()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|s| *s <= DURATION_SECS_MAX);
    Some(secs.ok_or_else(|| format!("{text:?} is longer than {DURATION_SECS_MAX} seconds")))
}

fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    match relative_secs(text) {
        Some(secs) => secs.map(Since::Ago),
        None => Ok(Since::At(text.to_string())),
    }
}

fn parse_step(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let secs = match relative_secs(text) {
        Some(secs) => secs?,
        None => text
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not seconds nor like 5m, 1h, 1d"))?,
    };
    if secs == 0 || !secs.is_multiple_of(60) {
        return Err(format!("{text:?} is not a whole number of minutes"));
    }
    Ok(secs)
}

impl StatsArgs {
    /// The one API call of `stats` or `stats series`.
    pub fn into_call(self) -> Call {
        match self.command {
            None => Call::table(
                Method::Get,
                Endpoint::api(&["stats"]),
                View::Stats,
                self.output,
            ),
            Some(StatsCommand::Series(args)) => args.into_call(now_ms()),
        }
    }
}

impl SeriesArgs {
    /// `GET /api/v1/stats/series` with a relative `--since` resolved at `now_ms`.
    pub fn into_call(self, now_ms: u64) -> Call {
        let endpoint = Endpoint::api(&["stats", "series"])
            .with_query("metric", Some(self.metric))
            .with_query("since", self.since.map(|s| s.query(now_ms)))
            .with_query("step", self.step);
        Call::table(Method::Get, endpoint, View::Series, self.output)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The table of a series answer: TIME (UTC), one column per node (sorted), TOTAL; then a
/// line naming the nodes that did not answer. `None` for another shape.
pub fn table(answer: &Value) -> Option<String> {
    let times = answer.get("times")?.as_array()?;
    answer.get("total")?.as_array()?;
    let nodes = answer.get("nodes")?.as_object()?;
    let ids: Vec<&String> = nodes.keys().collect();
    let header = std::iter::once("TIME (UTC)".to_string())
        .chain(ids.iter().map(|id| id.to_string()))
        .chain(std::iter::once("TOTAL".to_string()))
        .collect();
    let mut right = vec![true; ids.len() + 2];
    right[0] = false;
    let mut table = Table::new(header, right);
    let count = |points: Option<&Value>, i: usize| {
        points
            .and_then(|p| p.get(i))
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    };
    for (i, time) in times.iter().enumerate() {
        let mut row = vec![time.as_u64().map_or_else(|| "-".to_string(), utc_minute)];
        row.extend(ids.iter().map(|id| count(nodes.get(id.as_str()), i)));
        row.push(count(answer.get("total"), i));
        table.push(row);
    }
    let mut text = String::new();
    if let Some(metric) = answer.get("metric").and_then(Value::as_str) {
        let step = answer.get("step").and_then(Value::as_u64).unwrap_or(60);
        text.push_str(&format!("{metric} per {}\n", step_text(step)));
    }
    text.push_str(&table.render());
    let unreachable: Vec<&str> = answer
        .get("unreachable")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !unreachable.is_empty() {
        text.push_str(&format!(
            "not answering (not in TOTAL): {}\n",
            unreachable.join(", ")
        ));
    }
    Some(text)
}

/// `60` → `1 min`, `3600` → `60 min`: the row width for the title line.
fn step_text(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// Ms since the epoch as `YYYY-MM-DD HH:MM` in UTC.
pub fn utc_minute(ms: u64) -> String {
    let secs = ms / 1000;
    let (year, month, day) = civil_date(secs / 86_400);
    let minute_of_day = (secs % 86_400) / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: eras of 400 years (146,097 days)
/// starting on March 1st, so the leap day is the last day of a year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    const DAYS_PER_ERA: u64 = 146_097;
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / DAYS_PER_ERA;
    let day_of_era = z % DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[path = "series_tests.rs"]
mod tests;
