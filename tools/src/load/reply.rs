//! SMTP reply parsing (RFC 5321 4.2), sans I/O.
//!
//! [`parse_reply`] looks at the bytes received so far and either finds one
//! complete reply, says more data is needed, or refuses the input. Hard limits
//! on line length and line count bound the buffer a misbehaving server can make
//! the client hold.

use std::fmt;

/// Longest reply line accepted, CRLF included. RFC 5321 allows 512; real
/// servers stay well under, so twice that still catches garbage early.
pub const REPLY_LINE_MAX_BYTES: usize = 1024;
/// Most lines in one multiline reply. An EHLO answer has about a dozen.
pub const REPLY_LINES_MAX: usize = 64;

/// One complete reply: a code and the text of each of its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code, 200..=599 in practice.
    pub code: u16,
    /// Text after the code and separator, one entry per line, CRLF removed.
    pub lines: Vec<String>,
}

impl Reply {
    /// First digit of the code: 2 done, 3 go on, 4 try later, 5 refused.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// Whether an EHLO reply lists `keyword` (case-insensitive) among its
    /// extension lines, the lines after the greeting.
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }
}

impl fmt::Display for Reply {
    /// "250 first line / second line", the way an operator quotes a reply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Input that is not an SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line longer than `REPLY_LINE_MAX_BYTES`.
    #[error("reply line longer than {REPLY_LINE_MAX_BYTES} bytes")]
    LineTooLong,
    /// More lines than `REPLY_LINES_MAX`.
    #[error("reply longer than {REPLY_LINES_MAX} lines")]
    TooManyLines,
    /// A line that is not a 2xx–5xx code followed by nothing, `-text` or ` text`.
    #[error("malformed reply line {line:?}")]
    Malformed { line: String },
    /// A multiline reply whose lines do not share one code.
    #[error("reply code changed from {first} to {found} within one reply")]
    CodeChanged { first: u16, found: u16 },
}

/// Looks for one complete reply at the start of `buf`. Returns the reply and
/// the number of bytes it used, `None` when more bytes are needed, or an error
/// when the bytes cannot be a reply. Lines end in CRLF; a bare LF is tolerated.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut used = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[used..];
        let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() >= REPLY_LINE_MAX_BYTES {
                Err(ReplyError::LineTooLong)
            } else {
                Ok(None)
            };
        };
        if newline + 1 > REPLY_LINE_MAX_BYTES {
            return Err(ReplyError::LineTooLong);
        }
        let raw = &rest[..newline];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (line_code, is_last, text) = parse_line(line)?;
        match code {
            None => code = Some(line_code),
            Some(first) if first != line_code => {
                return Err(ReplyError::CodeChanged {
                    first,
                    found: line_code,
                });
            }
            Some(_) => {}
        }
        lines.push(text);
        used += newline + 1;
        if is_last {
            return Ok(Some((
                Reply {
                    code: line_code,
                    lines,
                },
                used,
            )));
        }
        if lines.len() >= REPLY_LINES_MAX {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// "250-text" → (250, false, "text"); "250 text" or "250" → (250, true, …).
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let malformed = || ReplyError::Malformed {
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let digits = line.get(..3).ok_or_else(malformed)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(malformed());
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let is_last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(malformed()),
    };
    let text = line.get(4..).unwrap_or_default();
    Ok((code, is_last, String::from_utf8_lossy(text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<Option<(Reply, usize)>, ReplyError> {
        parse_reply(input.as_bytes())
    }

    #[test]
    fn single_line() {
        let (reply, used) = parse("250 2.0.0 Ok: queued\r\n").unwrap().unwrap();
        assert_eq!(
            reply,
            Reply {
                code: 250,
                lines: vec!["2.0.0 Ok: queued".to_string()]
            }
        );
        assert_eq!(used, 22);
        assert_eq!(reply.class(), 2);
    }

    #[test]
    fn bare_code_and_bare_lf_are_accepted() {
        let (reply, used) = parse("354\n").unwrap().unwrap();
        assert_eq!(
            (reply.code, reply.lines, used),
            (354, vec![String::new()], 4)
        );
    }

    #[test]
    fn multiline_ehlo_with_extensions() {
        let input =
            "250-mx1.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250 8BITMIME\r\n";
        let (reply, used) = parse(input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert_eq!(reply.lines.len(), 4);
        assert!(reply.has_extension("pipelining"));
        assert!(reply.has_extension("SIZE"));
        assert!(!reply.has_extension("STARTTLS"));
        assert!(
            !reply.has_extension("mx1.example.com"),
            "the greeting line is not an extension"
        );
    }

    #[test]
    fn pipelined_replies_are_taken_one_at_a_time() {
        let input = b"250 ok\r\n250 ok\r\n354 go ahead\r\n";
        let (first, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!((first.code, used), (250, 8));
        let (second, used2) = parse_reply(&input[used..]).unwrap().unwrap();
        assert_eq!((second.code, used2), (250, 8));
        let (third, _) = parse_reply(&input[used + used2..]).unwrap().unwrap();
        assert_eq!(third.code, 354);
    }

    #[test]
    fn incomplete_input_needs_more() {
        for partial in [
            "",
            "2",
            "250 ok",
            "250 ok\r",
            "250-first\r\n",
            "250-first\r\n250 la",
        ] {
            assert_eq!(parse(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "hello\r\n",
            "25\r\n",
            "2x0 ok\r\n",
            "250_ok\r\n",
            "999 nine\r\n",
            "150 old\r\n",
            "\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ReplyError::Malformed { .. })),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
    }

    #[test]
    fn code_must_not_change_within_a_reply() {
        assert_eq!(
            parse("250-a\r\n251 b\r\n"),
            Err(ReplyError::CodeChanged {
                first: 250,
                found: 251
            })
        );
    }

    #[test]
    fn over_long_line_is_refused_with_or_without_its_end() {
        let long = format!("250 {}", "x".repeat(REPLY_LINE_MAX_BYTES));
        assert_eq!(parse(&long), Err(ReplyError::LineTooLong));
        assert_eq!(parse(&format!("{long}\r\n")), Err(ReplyError::LineTooLong));
        let fits = format!("250 {}\r\n", "x".repeat(REPLY_LINE_MAX_BYTES - 6));
        assert_eq!(fits.len(), REPLY_LINE_MAX_BYTES);
        assert!(parse(&fits).unwrap().is_some());
    }

    #[test]
    fn too_many_lines_is_refused() {
        let many = "250-x\r\n".repeat(REPLY_LINES_MAX + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
        let most = format!("{}250 end\r\n", "250-x\r\n".repeat(REPLY_LINES_MAX - 1));
        assert_eq!(
            parse(&most).unwrap().unwrap().0.lines.len(),
            REPLY_LINES_MAX
        );
    }

    #[test]
    fn display_quotes_every_line() {
        let (reply, _) = parse("451-4.7.1 try\r\n451 later\r\n").unwrap().unwrap();
        assert_eq!(reply.to_string(), "451 4.7.1 try / later");
    }
}
