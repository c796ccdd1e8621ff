//! Command mode: bytes → lines → typed commands.
//!
//! [`LineReader`] cuts the input at LF with a hard bound; a line over the bound is
//! discarded up to its LF, so memory never depends on what the client sends.
//! [`parse_command`] turns one line into a [`Command`] or a [`ProtocolError`]. Addresses
//! are only split off here; they are parsed by the state machine, which knows whether
//! SMTPUTF8 is in force.

use super::address::split_path;
use super::reply::ProtocolError;

/// Longest verb we look at; anything longer is an unknown command.
const VERB_MAX_BYTES: usize = 16;
/// Longest `SIZE=` value in digits (`u64::MAX` has 20).
const SIZE_DIGITS_MAX: usize = 20;

/// What the reader produced for one line.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line without its LF and without one trailing CR.
    Line(Vec<u8>),
    /// A line that exceeded the bound; its bytes were dropped.
    TooLong,
}

/// Accumulates one command line, never more than `line_max_bytes` (LF included).
#[derive(Debug)]
pub struct LineReader {
    buffer: Vec<u8>,
    line_max_bytes: usize,
    discarding: bool,
}

impl LineReader {
    /// A reader for lines of at most `line_max_bytes`, line ending included.
    pub fn new(line_max_bytes: usize) -> Self {
        Self {
            buffer: Vec::new(),
            line_max_bytes,
            discarding: false,
        }
    }

    /// Bytes held for the current, incomplete line.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Drops any partial line.
    pub fn clear(&mut self) {
        self.buffer = Vec::new();
        self.discarding = false;
    }

    /// Consumes input up to and including the next LF. Returns how many bytes were
    /// consumed and the line if one was completed.
    pub fn read(&mut self, input: &[u8]) -> (usize, Option<LineEvent>) {
        let newline = input.iter().position(|&byte| byte == b'\n');
        let segment_len = newline.unwrap_or(input.len());
        let consumed = newline.map_or(input.len(), |index| index + 1);
        let segment = input.get(..segment_len).unwrap_or_default();
        if self.discarding {
            self.discarding = newline.is_none();
            return (consumed, newline.map(|_| LineEvent::TooLong));
        }
        if self.buffer.len().saturating_add(segment.len()) >= self.line_max_bytes {
            self.clear();
            self.discarding = newline.is_none();
            return (consumed, newline.map(|_| LineEvent::TooLong));
        }
        self.buffer.extend_from_slice(segment);
        if newline.is_none() {
            return (consumed, None);
        }
        let mut line = std::mem::take(&mut self.buffer);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        (consumed, Some(LineEvent::Line(line)))
    }
}

/// One parsed command. Borrowed from the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `EHLO domain`.
    Ehlo(&'a str),
    /// `HELO domain`.
    Helo(&'a str),
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The bracketed path, still unparsed.
        path: &'a str,
        /// The parameters, parsed.
        params: MailParams,
    },
    /// `RCPT TO:<path>`.
    Rcpt {
        /// The bracketed path, still unparsed.
        path: &'a str,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy,
    /// `HELP [string]`.
    Help,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism name, as sent.
        mechanism: &'a str,
        /// The initial response (base64, or `=` for an empty one), if given.
        initial: Option<&'a str>,
    },
}

/// `BODY=` values we accept (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// ESMTP parameters of MAIL FROM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n`; values beyond `u64` saturate.
    pub size: Option<u64>,
    /// `BODY=…`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// Whether any parameter was given (they need EHLO).
    pub any: bool,
}

/// Parses one command line (without its line ending).
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, ProtocolError> {
    if line.iter().any(|&byte| byte == 0 || byte == b'\r') {
        return Err(ProtocolError::Syntax);
    }
    let line = std::str::from_utf8(line).map_err(|_| ProtocolError::Syntax)?;
    let line = line.trim_end_matches([' ', '\t']);
    if line.is_empty() {
        return Err(ProtocolError::Syntax);
    }
    let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
    let verb = Verb::parse(verb).ok_or(ProtocolError::UnknownCommand)?;
    if !matches!(verb, Verb::Mail | Verb::Rcpt) && !line.is_ascii() {
        return Err(ProtocolError::Syntax);
    }
    verb.parse_argument(argument.trim_start_matches(' '))
}

/// The verbs we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ehlo,
    Helo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    Auth,
    NotImplemented,
}

impl Verb {
    fn parse(text: &str) -> Option<Self> {
        if text.len() > VERB_MAX_BYTES {
            return None;
        }
        let verb = match text.to_ascii_uppercase().as_str() {
            "EHLO" => Self::Ehlo,
            "HELO" => Self::Helo,
            "MAIL" => Self::Mail,
            "RCPT" => Self::Rcpt,
            "DATA" => Self::Data,
            "RSET" => Self::Rset,
            "NOOP" => Self::Noop,
            "QUIT" => Self::Quit,
            "VRFY" => Self::Vrfy,
            "HELP" => Self::Help,
            "STARTTLS" => Self::StartTls,
            "AUTH" => Self::Auth,
            "EXPN" | "BDAT" | "ETRN" | "TURN" | "ATRN" => Self::NotImplemented,
            _ => return None,
        };
        Some(verb)
    }

    fn parse_argument(self, argument: &str) -> Result<Command<'_>, ProtocolError> {
        let none = |command| {
            if argument.is_empty() {
                Ok(command)
            } else {
                Err(ProtocolError::ParametersNotAllowed)
            }
        };
        let required = |argument: &str| {
            if argument.is_empty() {
                Err(ProtocolError::ArgumentRequired)
            } else {
                Ok(())
            }
        };
        match self {
            Self::Ehlo => required(argument).map(|()| Command::Ehlo(argument)),
            Self::Helo => required(argument).map(|()| Command::Helo(argument)),
            Self::Mail => parse_mail(argument),
            Self::Rcpt => parse_rcpt(argument),
            Self::Data => none(Command::Data),
            Self::Rset => none(Command::Rset),
            Self::Quit => none(Command::Quit),
            Self::StartTls => none(Command::StartTls),
            Self::Noop => Ok(Command::Noop),
            Self::Help => Ok(Command::Help),
            Self::Vrfy => required(argument).map(|()| Command::Vrfy),
            Self::Auth => parse_auth(argument),
            Self::NotImplemented => Err(ProtocolError::NotImplemented),
        }
    }
}

/// `AUTH mechanism [initial-response]`: one or two words.
fn parse_auth(argument: &str) -> Result<Command<'_>, ProtocolError> {
    let mut words = argument.split(' ').filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(mechanism), initial, None) => Ok(Command::Auth { mechanism, initial }),
        (None, _, _) => Err(ProtocolError::ArgumentRequired),
        _ => Err(ProtocolError::Syntax),
    }
}

/// Strips a case-insensitive keyword such as `FROM:` and any spaces after it.
fn strip_keyword<'a>(argument: &'a str, keyword: &str) -> Option<&'a str> {
    let (head, rest) = argument.split_at_checked(keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest.trim_start_matches(' '))
}

/// Splits `<path> params`; params must be separated from the path by a space.
fn split_path_and_params(argument: &str) -> Result<(&str, &str), ProtocolError> {
    let (path, rest) = split_path(argument).map_err(|_| ProtocolError::PathSyntax)?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(ProtocolError::PathSyntax);
    }
    if !rest.is_ascii() {
        return Err(ProtocolError::Syntax);
    }
    Ok((path, rest))
}

fn parse_mail(argument: &str) -> Result<Command<'_>, ProtocolError> {
    let argument = strip_keyword(argument, "FROM:").ok_or(ProtocolError::PathSyntax)?;
    let (path, params) = split_path_and_params(argument)?;
    let params = parse_mail_params(params)?;
    Ok(Command::Mail { path, params })
}

fn parse_rcpt(argument: &str) -> Result<Command<'_>, ProtocolError> {
    let argument = strip_keyword(argument, "TO:").ok_or(ProtocolError::PathSyntax)?;
    let (path, params) = split_path_and_params(argument)?;
    if !params.trim_start_matches(' ').is_empty() {
        return Err(ProtocolError::UnknownParameter);
    }
    Ok(Command::Rcpt { path })
}

/// Parses `KEY[=VALUE]` parameters separated by spaces (RFC 5321 §4.1.2 `Mail-parameters`).
fn parse_mail_params(text: &str) -> Result<MailParams, ProtocolError> {
    let mut params = MailParams::default();
    for param in text.split(' ').filter(|param| !param.is_empty()) {
        params.any = true;
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (param, None),
        };
        apply_mail_param(&mut params, key, value)?;
    }
    Ok(params)
}

fn apply_mail_param(
    params: &mut MailParams,
    key: &str,
    value: Option<&str>,
) -> Result<(), ProtocolError> {
    match (key.to_ascii_uppercase().as_str(), value) {
        ("SIZE", Some(value)) if params.size.is_none() => params.size = Some(parse_size(value)?),
        ("BODY", Some(value)) if params.body.is_none() => params.body = Some(parse_body(value)?),
        ("SMTPUTF8", None) if !params.smtputf8 => params.smtputf8 = true,
        ("SIZE" | "BODY" | "SMTPUTF8", _) => return Err(ProtocolError::BadParameter),
        _ => return Err(ProtocolError::UnknownParameter),
    }
    Ok(())
}

/// `SIZE=` digits; too many digits or overflow saturate (they exceed any limit anyway).
fn parse_size(value: &str) -> Result<u64, ProtocolError> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ProtocolError::BadParameter);
    }
    if value.len() > SIZE_DIGITS_MAX {
        return Ok(u64::MAX);
    }
    Ok(value.parse().unwrap_or(u64::MAX))
}

fn parse_body(value: &str) -> Result<BodyType, ProtocolError> {
    match value.to_ascii_uppercase().as_str() {
        "7BIT" => Ok(BodyType::SevenBit),
        "8BITMIME" => Ok(BodyType::EightBitMime),
        "BINARYMIME" => Err(ProtocolError::BinaryMime),
        _ => Err(ProtocolError::BadParameter),
    }
}
