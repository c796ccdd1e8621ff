//! The fields a condition can look at and the ops that compare them.

use std::fmt;

use super::error::Problem;

/// Longest argument of `header:NAME` or `dnsbl:ZONE`, in characters.
pub const FIELD_ARG_LEN_MAX: usize = 253;

/// What a condition looks at. Parsed from its JSON name, e.g. `header:X-Spam` or `dnsbl:zen.spamhaus.org`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `from`: the envelope sender (`""` for the null sender).
    From,
    /// `to`: any envelope recipient.
    To,
    /// `header:NAME`: any occurrence of the header NAME (name compared case-insensitively).
    Header(String),
    /// `subject`: the decoded subject.
    Subject,
    /// `body`: the decoded text parts.
    Body,
    /// `attachment.name`: any attachment's file name.
    AttachmentName,
    /// `attachment.ext`: any attachment's extension (lowercase, no dot).
    AttachmentExt,
    /// `attachment.type`: any attachment's detected content type (not the claimed one).
    AttachmentType,
    /// `size`: the message size in bytes.
    Size,
    /// `client_ip`: the connecting client's address.
    ClientIp,
    /// `helo`: the HELO/EHLO name.
    Helo,
    /// `dnsbl:ZONE`: the A records the DNS blocklist ZONE returned (lowercase, no trailing dot).
    Dnsbl(String),
    /// `spf`: the SPF result (pass, fail, softfail, neutral, none, …).
    Spf,
    /// `dkim`: the DKIM result.
    Dkim,
    /// `dmarc`: the DMARC result.
    Dmarc,
    /// `virus`: the virus signature found, if any.
    Virus,
    /// `archive.bomb`: whether an attachment is a decompression bomb.
    ArchiveBomb,
    /// `score`: the spam score, the sum of the weights of the symbols that fired.
    Score,
    /// `symbol`: the set of the names of the spam symbols that fired (e.g. `DATE_IN_PAST`).
    Symbol,
    /// `bayes`: the Bayesian spam probability (0..1); absent when the classifier did not vote.
    Bayes,
    /// `direction`: `inbound` (mail for our domains from outside) or `outbound` (mail from
    /// a trusted network or an authenticated user, to any domain).
    Direction,
    /// `auth_user`: the user the client authenticated as on the submission port; absent
    /// when it did not.
    AuthUser,
}

/// The kind of value a field holds, which decides the ops that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// One or more strings.
    Text,
    /// A byte count.
    Size,
    /// An IP address.
    ClientIp,
    /// A yes/no flag.
    Flag,
    /// A real number (the spam score).
    Number,
    /// A probability between 0 and 1 that may be absent (the Bayes probability).
    Probability,
    /// A set of names (the spam symbols).
    Names,
}

/// How a condition compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Substring.
    Contains,
    /// Whole-value equality.
    Equals,
    /// Regular expression search (unanchored).
    Regex,
    /// Equality with any string of a list.
    In,
    /// Client address inside any listed network.
    InCidr,
    /// Numerically greater than.
    Gt,
    /// Numerically less than.
    Lt,
    /// The field is present; takes no value.
    Exists,
}

impl Field {
    /// Parses a field name such as `subject` or `header:X-Spam`.
    pub fn parse(name: &str) -> Result<Field, Problem> {
        if let Some(header) = name.strip_prefix("header:") {
            return header_name(header).map(|h| Field::Header(h.to_string()));
        }
        if let Some(zone) = name.strip_prefix("dnsbl:") {
            return dnsbl_zone(zone).map(Field::Dnsbl);
        }
        simple_field(name).ok_or_else(|| Problem::UnknownField(name.to_string()))
    }

    /// The kind of value this field holds.
    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Size => FieldKind::Size,
            Field::ClientIp => FieldKind::ClientIp,
            Field::ArchiveBomb => FieldKind::Flag,
            Field::Score => FieldKind::Number,
            Field::Bayes => FieldKind::Probability,
            Field::Symbol => FieldKind::Names,
            _ => FieldKind::Text,
        }
    }
}

fn simple_field(name: &str) -> Option<Field> {
    let field = match name {
        "from" => Field::From,
        "to" => Field::To,
        "subject" => Field::Subject,
        "body" => Field::Body,
        "attachment.name" => Field::AttachmentName,
        "attachment.ext" => Field::AttachmentExt,
        "attachment.type" => Field::AttachmentType,
        "size" => Field::Size,
        "client_ip" => Field::ClientIp,
        "helo" => Field::Helo,
        "spf" => Field::Spf,
        "dkim" => Field::Dkim,
        "dmarc" => Field::Dmarc,
        "virus" => Field::Virus,
        "archive.bomb" => Field::ArchiveBomb,
        "score" => Field::Score,
        "symbol" => Field::Symbol,
        "bayes" => Field::Bayes,
        "direction" => Field::Direction,
        "auth_user" => Field::AuthUser,
        _ => return None,
    };
    Some(field)
}

/// Validates a header name: RFC 5322 field-name characters (printable ASCII but `:`).
fn header_name(name: &str) -> Result<&str, Problem> {
    check_argument(name)?;
    match name.chars().find(|c| !c.is_ascii_graphic() || *c == ':') {
        Some(found) => Err(Problem::InvalidCharacter {
            found,
            allowed: "printable ASCII except ':' in a header name",
        }),
        None => Ok(name),
    }
}

/// Validates and normalises a DNSBL zone: lowercase, no trailing dot.
fn dnsbl_zone(zone: &str) -> Result<String, Problem> {
    let zone = zone.strip_suffix('.').unwrap_or(zone).to_ascii_lowercase();
    check_argument(&zone)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    match zone.chars().find(|c| !allowed(*c)) {
        Some(found) => Err(Problem::InvalidCharacter {
            found,
            allowed: "letters, digits, '-', '_' and '.' in a DNS zone",
        }),
        None => Ok(zone),
    }
}

fn check_argument(argument: &str) -> Result<(), Problem> {
    if argument.is_empty() {
        return Err(Problem::Empty);
    }
    if argument.chars().count() > FIELD_ARG_LEN_MAX {
        return Err(Problem::TooLong {
            max: FIELD_ARG_LEN_MAX,
        });
    }
    Ok(())
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Header(name) => return write!(f, "header:{name}"),
            Field::Dnsbl(zone) => return write!(f, "dnsbl:{zone}"),
            Field::From => "from",
            Field::To => "to",
            Field::Subject => "subject",
            Field::Body => "body",
            Field::AttachmentName => "attachment.name",
            Field::AttachmentExt => "attachment.ext",
            Field::AttachmentType => "attachment.type",
            Field::Size => "size",
            Field::ClientIp => "client_ip",
            Field::Helo => "helo",
            Field::Spf => "spf",
            Field::Dkim => "dkim",
            Field::Dmarc => "dmarc",
            Field::Virus => "virus",
            Field::ArchiveBomb => "archive.bomb",
            Field::Score => "score",
            Field::Symbol => "symbol",
            Field::Bayes => "bayes",
            Field::Direction => "direction",
            Field::AuthUser => "auth_user",
        };
        f.write_str(name)
    }
}

impl FieldKind {
    /// The ops that apply to a field of this kind.
    pub fn allowed_ops(self) -> &'static [Op] {
        match self {
            FieldKind::Text => &[Op::Contains, Op::Equals, Op::Regex, Op::In, Op::Exists],
            FieldKind::Size => &[Op::Equals, Op::Gt, Op::Lt],
            FieldKind::ClientIp => &[Op::Equals, Op::In, Op::InCidr],
            FieldKind::Flag => &[Op::Equals, Op::Exists],
            FieldKind::Number => &[Op::Equals, Op::Gt, Op::Lt],
            FieldKind::Probability => &[Op::Equals, Op::Gt, Op::Lt, Op::Exists],
            FieldKind::Names => &[Op::In, Op::Contains, Op::Exists],
        }
    }

    /// The allowed ops as text, for error messages.
    pub fn allowed_ops_text(self) -> &'static str {
        match self {
            FieldKind::Text => "contains, equals, regex, in, exists",
            FieldKind::Size => "equals, gt, lt",
            FieldKind::ClientIp => "equals, in, in_cidr",
            FieldKind::Flag => "equals, exists",
            FieldKind::Number => "equals, gt, lt",
            FieldKind::Probability => "equals, gt, lt, exists",
            FieldKind::Names => "in, contains, exists",
        }
    }
}

impl Op {
    /// Parses an op name such as `contains` or `in_cidr`.
    pub fn parse(name: &str) -> Result<Op, Problem> {
        let op = match name {
            "contains" => Op::Contains,
            "equals" => Op::Equals,
            "regex" => Op::Regex,
            "in" => Op::In,
            "in_cidr" => Op::InCidr,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "exists" => Op::Exists,
            _ => return Err(Problem::UnknownOp(name.to_string())),
        };
        Ok(op)
    }

    /// The op's JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Contains => "contains",
            Op::Equals => "equals",
            Op::Regex => "regex",
            Op::In => "in",
            Op::InCidr => "in_cidr",
            Op::Gt => "gt",
            Op::Lt => "lt",
            Op::Exists => "exists",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
