//! The cluster-wide digest settings (rule-book setting [`SETTING`], edited through
//! `PUT /api/v1/settings/digest`) and the schedule they describe: one period boundary a
//! day, at a wall-clock time in a time zone.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The rule-book setting holding the digest settings (JSON).
pub const SETTING: &str = "digest";
/// Longest link lifetime, in hours (90 days).
pub const LINK_LIFETIME_HOURS_MAX: u64 = 2160;
/// Most messages one digest lists (the rest are counted, and shown in the portal).
pub const ITEMS_PER_DIGEST_MAX: usize = 1000;
/// Longest `public_url`, `sender` or `time_zone`, in bytes.
pub const TEXT_BYTES_MAX: usize = 512;
/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;

/// The digest settings, mesh-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestSettings {
    /// Scheduled digests on (a run through the API works either way).
    pub enabled: bool,
    /// Local time of the daily digest, `HH:MM`.
    pub time: String,
    /// IANA time zone of `time` (`UTC`, `Europe/Paris`, …).
    pub time_zone: String,
    /// How long a link in a digest works, in hours.
    pub link_lifetime_hours: u64,
    /// The console's address as recipients reach it (`https://mx.example.com`): links are
    /// `{public_url}/q/{token}`, and any node behind it answers them.
    pub public_url: String,
    /// Envelope and `From:` address of the digests.
    pub sender: String,
    /// Messages listed in one digest at most.
    pub items_max: usize,
}

impl Default for DigestSettings {
    fn default() -> Self {
        DigestSettings {
            enabled: false,
            time: "08:00".into(),
            time_zone: "UTC".into(),
            link_lifetime_hours: 168,
            public_url: String::new(),
            sender: String::new(),
            items_max: 100,
        }
    }
}

impl DigestSettings {
    /// Checks every key; the error names the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.clock_time()?;
        self.zone()?;
        if !(1..=LINK_LIFETIME_HOURS_MAX).contains(&self.link_lifetime_hours) {
            return Err(format!(
                "link_lifetime_hours: {} must be from 1 to {LINK_LIFETIME_HOURS_MAX}",
                self.link_lifetime_hours
            ));
        }
        if !(1..=ITEMS_PER_DIGEST_MAX).contains(&self.items_max) {
            return Err(format!(
                "items_max: {} must be from 1 to {ITEMS_PER_DIGEST_MAX}",
                self.items_max
            ));
        }
        check_url(&self.public_url).map_err(|e| format!("public_url: {e}"))?;
        check_sender(&self.sender).map_err(|e| format!("sender: {e}"))?;
        if self.enabled && !self.ready() {
            return Err("enabled: scheduled digests need public_url and sender".into());
        }
        Ok(())
    }

    /// Whether digests can be sent: links need `public_url`, mail needs `sender`.
    pub fn ready(&self) -> bool {
        !self.public_url.is_empty() && !self.sender.is_empty()
    }

    /// Link lifetime in ms.
    pub fn link_lifetime_ms(&self) -> u64 {
        self.link_lifetime_hours.saturating_mul(HOUR_MS)
    }

    /// `public_url` without a trailing `/`.
    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// The latest scheduled boundary at or before `now_ms` (ms since the epoch).
    pub fn last_boundary(&self, now_ms: u64) -> Result<u64, String> {
        let (hour, minute) = self.clock_time()?;
        let zone = self.zone()?;
        let now = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .map_err(|e| format!("time {now_ms}: {e}"))?;
        let today = now.to_zoned(zone.clone()).date();
        let at = |date: jiff::civil::Date| -> Result<i64, String> {
            let local = date.at(hour, minute, 0, 0);
            let zoned = local
                .to_zoned(zone.clone())
                .map_err(|e| format!("time_zone: {e}"))?;
            Ok(zoned.timestamp().as_millisecond())
        };
        let mut boundary = at(today)?;
        if boundary > now.as_millisecond() {
            let yesterday = today.yesterday().map_err(|e| e.to_string())?;
            boundary = at(yesterday)?;
        }
        u64::try_from(boundary).map_err(|_| format!("time {boundary} before the epoch"))
    }

    /// `time` as hour and minute.
    fn clock_time(&self) -> Result<(i8, i8), String> {
        let bad = || format!("time: {:?} is not HH:MM (00:00 to 23:59)", self.time);
        let (h, m) = self.time.split_once(':').ok_or_else(bad)?;
        let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || !digits(m) {
            return Err(bad());
        }
        let (hour, minute): (i8, i8) =
            (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok((hour, minute))
    }

    /// The time zone of `time_zone`.
    fn zone(&self) -> Result<TimeZone, String> {
        if self.time_zone.len() > TEXT_BYTES_MAX {
            return Err(format!("time_zone: longer than {TEXT_BYTES_MAX} bytes"));
        }
        if self.time_zone.eq_ignore_ascii_case("UTC") {
            return Ok(TimeZone::UTC);
        }
        TimeZone::get(&self.time_zone).map_err(|e| {
            format!(
                "time_zone: {:?} is not a known time zone ({e})",
                self.time_zone
            )
        })
    }
}

/// An `http://` or `https://` URL without query, fragment, spaces or quotes (or empty).
fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if url.len() > TEXT_BYTES_MAX {
        return Err(format!("longer than {TEXT_BYTES_MAX} bytes"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || "?#\"'<>\\".contains(c);
    if let Some(c) = url.chars().find(|c| bad(*c)) {
        return Err(format!("{url:?} contains {c:?}"));
    }
    Ok(())
}

/// `local@domain` without spaces, angle brackets or control characters (or empty).
fn check_sender(sender: &str) -> Result<(), String> {
    if sender.is_empty() {
        return Ok(());
    }
    if sender.len() > TEXT_BYTES_MAX {
        return Err(format!("longer than {TEXT_BYTES_MAX} bytes"));
    }
    let ok_char = |c: char| c.is_ascii_graphic() && !"<>()[]\\,;:\"".contains(c);
    match sender.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && sender.chars().all(ok_char) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{sender:?} is not an address like quarantine@example.com"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-15 10:30:00 UTC.
    const JAN_15_1030_UTC: u64 = 1_768_473_000_000;
    const DAY_MS: u64 = 24 * HOUR_MS;

    fn settings(time: &str, zone: &str) -> DigestSettings {
        DigestSettings {
            time: time.into(),
            time_zone: zone.into(),
            ..DigestSettings::default()
        }
    }

    #[test]
    fn the_last_boundary_is_today_or_yesterday_at_the_local_time() {
        let s = settings("08:00", "UTC");
        let today_8 = JAN_15_1030_UTC - 2 * HOUR_MS - 30 * 60_000;
        assert_eq!(s.last_boundary(JAN_15_1030_UTC).unwrap(), today_8);
        assert_eq!(
            s.last_boundary(today_8).unwrap(),
            today_8,
            "at the boundary itself"
        );
        assert_eq!(s.last_boundary(today_8 - 1).unwrap(), today_8 - DAY_MS);
        // 11:00 is still ahead today: yesterday's.
        let s = settings("11:00", "UTC");
        assert_eq!(
            s.last_boundary(JAN_15_1030_UTC).unwrap(),
            JAN_15_1030_UTC + 30 * 60_000 - DAY_MS
        );
    }

    #[test]
    fn a_time_zone_shifts_the_boundary() {
        // 08:00 in Paris in January is 07:00 UTC.
        let s = settings("08:00", "Europe/Paris");
        let seven_utc = JAN_15_1030_UTC - 3 * HOUR_MS - 30 * 60_000;
        assert_eq!(s.last_boundary(JAN_15_1030_UTC).unwrap(), seven_utc);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let cases = [
            (settings("8:00", "UTC"), "time"),
            (settings("24:00", "UTC"), "time"),
            (settings("08:00", "Mars/Olympus"), "time_zone"),
            (
                DigestSettings {
                    link_lifetime_hours: 0,
                    ..DigestSettings::default()
                },
                "link_lifetime_hours",
            ),
            (
                DigestSettings {
                    public_url: "ftp://x".into(),
                    ..DigestSettings::default()
                },
                "public_url",
            ),
            (
                DigestSettings {
                    public_url: "https://x/?a=1".into(),
                    ..DigestSettings::default()
                },
                "public_url",
            ),
            (
                DigestSettings {
                    sender: "nobody".into(),
                    ..DigestSettings::default()
                },
                "sender",
            ),
            (
                DigestSettings {
                    enabled: true,
                    ..DigestSettings::default()
                },
                "enabled",
            ),
            (
                DigestSettings {
                    items_max: 0,
                    ..DigestSettings::default()
                },
                "items_max",
            ),
        ];
        for (s, key) in cases {
            let e = s.validate().unwrap_err();
            assert!(e.starts_with(key), "{key}: {e}");
        }
        let good = DigestSettings {
            enabled: true,
            public_url: "https://mx.example.com/".into(),
            sender: "quarantine@example.com".into(),
            ..DigestSettings::default()
        };
        good.validate().unwrap();
        assert_eq!(good.base_url(), "https://mx.example.com");
    }
}
