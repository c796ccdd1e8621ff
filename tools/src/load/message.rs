//! Test messages and their SMTP DATA encoding.
//!
//! Every message of a run has the same shape: five headers, a body of printable
//! lines of at most [`BODY_LINE_MAX_CHARS`] characters, CRLF line ends, and the
//! requested total size. Exactly one body line starts with "." so that every
//! message exercises dot-stuffing on the wire and un-stuffing in the server.

/// Longest body line, without its CRLF (RFC 5322 recommends 78).
pub const BODY_LINE_MAX_CHARS: usize = 78;

/// The one body line that starts with ".": sent as ".." + rest, it must arrive
/// with a single dot, or the server's un-stuffing is wrong.
pub const DOT_PROBE_LINE: &str = ".mxload dot-stuffing probe: this line starts with a dot";

/// Body filler: printable ASCII without "." so no other line can start with one.
const FILLER: &[u8] = b"The quick brown fox jumps over the lazy dog 0123456789 ";

/// What every message of a run has in common.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    /// Envelope sender, also the From header.
    pub from: String,
    /// Envelope recipient, also the To header.
    pub rcpt: String,
    /// Size of each message in bytes, headers included, before dot-stuffing. A
    /// message never gets smaller than its headers and the dot probe line.
    pub size_bytes: usize,
    /// Date header value, the same for the whole run (see [`rfc5322_date`]).
    pub date: String,
    /// Unique per run, so the Message-IDs of two runs never collide.
    pub run_tag: String,
}

impl MessageSpec {
    /// Message number `index` of the run, as plain RFC 5322 bytes.
    pub fn render(&self, index: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_bytes + 512);
        let domain = self
            .from
            .rsplit_once('@')
            .map_or("mxload.test", |(_, domain)| domain);
        let headers = format!(
            "From: {from}\r\nTo: {rcpt}\r\nSubject: mxload test message {index}\r\nDate: {date}\r\n\
             Message-ID: <{tag}.{index}@{domain}>\r\n\r\n",
            from = self.from,
            rcpt = self.rcpt,
            date = self.date,
            tag = self.run_tag,
        );
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(DOT_PROBE_LINE.as_bytes());
        out.extend_from_slice(b"\r\n");
        fill_body(&mut out, self.size_bytes);
        out
    }
}

/// Appends filler lines until `out` is `size_bytes` long. The last line is cut
/// to fit; when that would leave a remainder too small for a line of its own
/// (one character plus CRLF), the line before it is shortened instead. Only
/// when fewer than 3 bytes are missing from the start does the message stay short.
fn fill_body(out: &mut Vec<u8>, size_bytes: usize) {
    const LINE_MIN_BYTES: usize = 3;
    let mut line_number = 0;
    while size_bytes.saturating_sub(out.len()) >= LINE_MIN_BYTES {
        let remaining = size_bytes - out.len();
        let mut line_bytes = remaining.min(BODY_LINE_MAX_CHARS + 2);
        let left_after = remaining - line_bytes;
        if left_after > 0 && left_after < LINE_MIN_BYTES {
            line_bytes -= LINE_MIN_BYTES;
        }
        let start = (line_number * 7) % FILLER.len();
        out.extend(FILLER.iter().cycle().skip(start).take(line_bytes - 2));
        out.extend_from_slice(b"\r\n");
        line_number += 1;
    }
}

/// The DATA payload for `message`: each line that starts with "." gets a second
/// "." (RFC 5321 4.5.2), then the end marker ".\r\n". A message that does not
/// end with CRLF gets one, so the marker is always on a line of its own.
pub fn data_payload(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `unix_secs` as an RFC 5322 date in UTC: "Thu, 01 Jan 1970 00:00:00 +0000".
pub fn rfc5322_date(unix_secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{weekday}, {day:02} {month} {year} {h:02}:{m:02}:{s:02} +0000",
        weekday = WEEKDAYS[(days % 7) as usize],
        month = MONTHS[(month - 1) as usize],
        h = secs_of_day / 3600,
        m = secs_of_day / 60 % 60,
        s = secs_of_day % 60,
    )
}

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a day count since
/// 1970-01-01, by the era method (400-year cycles of 146 097 days).
fn civil_from_days(days_since_epoch: u64) -> (u64, u64, u64) {
    let z = days_since_epoch + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size_bytes: usize) -> MessageSpec {
        MessageSpec {
            from: "load@mxload.test".to_string(),
            rcpt: "user@example.com".to_string(),
            size_bytes,
            date: rfc5322_date(1_700_000_000),
            run_tag: "t1".to_string(),
        }
    }

    fn body_lines(message: &[u8]) -> Vec<&[u8]> {
        let text = message
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let mut in_body = false;
        let mut lines = Vec::new();
        for line in text {
            if in_body {
                lines.push(line);
            } else if line.is_empty() {
                in_body = true;
            }
        }
        lines.pop(); // after the final CRLF
        lines
    }

    #[test]
    fn size_is_exact_above_the_minimum_and_within_a_line_otherwise() {
        let minimum = spec(0).render(7).len();
        for size in (0..3000).chain([10_240, 65_536, 1_000_000]) {
            let len = spec(size).render(7).len();
            if size < minimum {
                assert_eq!(len, minimum, "size {size}");
            } else {
                assert!(len <= size && len + 2 >= size, "size {size}: got {len}");
                assert!(
                    len.abs_diff(size) <= BODY_LINE_MAX_CHARS + 2,
                    "size {size}: got {len}"
                );
            }
        }
    }

    #[test]
    fn sizes_at_or_above_min_plus_three_are_exact() {
        let minimum = spec(0).render(123).len();
        for size in [
            minimum,
            minimum + 3,
            minimum + 79,
            minimum + 80,
            minimum + 81,
            minimum + 82,
            10_240,
        ] {
            assert_eq!(spec(size).render(123).len(), size, "size {size}");
        }
    }

    #[test]
    fn line_ends_are_crlf_only() {
        let message = spec(20_000).render(1);
        for (i, &b) in message.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(message[i - 1], b'\r', "bare LF at {i}");
            }
            if b == b'\r' {
                assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
        }
        assert!(message.ends_with(b"\r\n"));
    }

    #[test]
    fn body_is_printable_short_lines_with_exactly_one_leading_dot() {
        let message = spec(50_000).render(42);
        let lines = body_lines(&message);
        assert!(lines.len() > 600, "{}", lines.len());
        for line in &lines {
            assert!(
                line.len() <= BODY_LINE_MAX_CHARS,
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert!(line.iter().all(|b| (0x20..0x7f).contains(b)));
        }
        let dotted: Vec<_> = lines.iter().filter(|l| l.first() == Some(&b'.')).collect();
        assert_eq!(dotted, [&DOT_PROBE_LINE.as_bytes()]);
    }

    #[test]
    fn headers_name_the_envelope_and_ids_differ_per_message() {
        let text = String::from_utf8(spec(2000).render(5)).unwrap();
        assert!(text.starts_with(
            "From: load@mxload.test\r\nTo: user@example.com\r\nSubject: mxload test message 5\r\n"
        ));
        assert!(
            text.contains("\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nMessage-ID: <t1.5@mxload.test>\r\n\r\n"),
            "{text}"
        );
        assert_ne!(spec(2000).render(5), spec(2000).render(6));
    }

    #[test]
    fn payload_is_dot_stuffed_and_terminated() {
        let message = spec(4000).render(3);
        let payload = data_payload(&message);
        assert!(payload.ends_with(b"\r\n.\r\n"));
        let wire = String::from_utf8(payload.clone()).unwrap();
        assert!(wire.contains(&format!("\r\n.{DOT_PROBE_LINE}\r\n")));
        let lines: Vec<&str> = wire.split("\r\n").collect();
        assert_eq!(
            lines.iter().filter(|l| **l == ".").count(),
            1,
            "only the end marker is a lone dot"
        );
        assert_eq!(unstuff(&payload), message);
    }

    #[test]
    fn payload_edge_cases() {
        assert_eq!(data_payload(b""), b".\r\n");
        assert_eq!(
            data_payload(b"a\r\n.\r\n..b\r\n"),
            b"a\r\n..\r\n...b\r\n.\r\n"
        );
        assert_eq!(
            data_payload(b".no final newline"),
            b"..no final newline\r\n.\r\n"
        );
    }

    /// What a receiver does: strip the end marker and one leading dot per line.
    fn unstuff(payload: &[u8]) -> Vec<u8> {
        let body = payload.strip_suffix(b".\r\n").unwrap();
        let mut out = Vec::new();
        for line in body.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn dates_are_rfc5322_in_utc() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(
            rfc5322_date(4_107_542_399),
            "Sun, 28 Feb 2100 23:59:59 +0000"
        );
        assert_eq!(
            rfc5322_date(4_107_542_400),
            "Mon, 01 Mar 2100 00:00:00 +0000"
        );
    }
}
