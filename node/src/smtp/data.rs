//! The DATA receiver: raw message bytes in, a normalised body out.
//!
//! Only the exact sequence CRLF `.` CRLF ends the data, and the start of the data counts
//! as just after a CRLF. Every near miss (`\n.\n`, `\r.\r\n`, `\r\n\x00.\r\n`, …) is
//! content, which is what defeats SMTP smuggling (CVE-2023-51764 and kin): a downstream
//! server can never see an end of data where we did not.
//!
//! The stored body is normalised so it can be relayed safely: a bare CR or bare LF becomes
//! CRLF, and a line that starts with `.` loses that dot (RFC 5321 §4.5.2). A "line start"
//! is only ever after a real CRLF, both for the terminator and for un-stuffing. The body
//! keeps the CRLF that ends its last line.
//!
//! State lives between calls, so the terminator is found across any chunk boundary.
//! Memory is bounded by `body_max_bytes`: once the body would exceed it, it is dropped and
//! the receiver only scans for the terminator.

/// First allocation for a body; later growth doubles up to the limit.
const BODY_INITIAL_CAPACITY_BYTES: usize = 4096;
/// A line ending as stored.
const CRLF: &[u8] = b"\r\n";

/// Limits the receiver enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Largest stored body.
    pub body_max_bytes: usize,
    /// Longest line, CRLF and any stuffed dot included.
    pub line_max_bytes: usize,
}

/// Why a complete message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// The body exceeded `body_max_bytes`.
    TooBig,
    /// A line exceeded `line_max_bytes`.
    LineTooLong,
}

/// Result of [`DataReceiver::ingest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// All input consumed; the terminator has not been seen yet.
    NeedMore,
    /// The terminator ended after `consumed` bytes; the rest belongs to command mode.
    Done {
        /// Bytes of this input that belonged to the data, terminator included.
        consumed: usize,
    },
}

/// Where the scanner is relative to lines and a possible terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Just after a CRLF (or at the very start).
    LineStart,
    /// `.` at a line start, not yet stored.
    Dot,
    /// `.` CR at a line start, not yet stored.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line, not yet stored.
    Cr,
}

/// Receives one message body.
#[derive(Debug)]
pub struct DataReceiver {
    limits: DataLimits,
    scan: Scan,
    body: Vec<u8>,
    line_bytes: usize,
    too_big: bool,
    line_too_long: bool,
}

impl DataReceiver {
    /// A receiver at the start of the data, i.e. just after the 354.
    pub fn new(limits: DataLimits) -> Self {
        Self {
            limits,
            scan: Scan::LineStart,
            body: Vec::new(),
            line_bytes: 0,
            too_big: false,
            line_too_long: false,
        }
    }

    /// Bytes of body held so far.
    pub fn buffered_bytes(&self) -> usize {
        self.body.len()
    }

    /// Consumes input until the terminator or the end of `input`.
    pub fn ingest(&mut self, input: &[u8]) -> Ingest {
        let mut index = 0;
        while let Some(rest) = input.get(index..).filter(|rest| !rest.is_empty()) {
            if self.scan == Scan::Text {
                // memchr2 looks at many bytes at once; this is the receiver's hot loop.
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if run > 0 {
                    self.text(rest.get(..run).unwrap_or_default());
                    index += run;
                    continue;
                }
            }
            let Some(&byte) = rest.first() else { break };
            index += 1;
            if self.step(byte) {
                return Ingest::Done { consumed: index };
            }
        }
        Ingest::NeedMore
    }

    /// The body, or why it is refused. Call after [`Ingest::Done`].
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.too_big {
            Err(DataError::TooBig)
        } else if self.line_too_long {
            Err(DataError::LineTooLong)
        } else {
            Ok(self.body)
        }
    }

    /// Advances by one byte; true when it completed the terminator.
    fn step(&mut self, byte: u8) -> bool {
        match (self.scan, byte) {
            (Scan::LineStart, b'.') => self.scan = Scan::Dot,
            (Scan::LineStart | Scan::Text, b'\r') => self.scan = Scan::Cr,
            (Scan::LineStart | Scan::Text, b'\n') => self.bare_line_end(),
            (Scan::LineStart | Scan::Text, _) => {
                self.text(&[byte]);
                self.scan = Scan::Text;
            }
            (Scan::Dot, b'\r') => self.scan = Scan::DotCr,
            (Scan::Dot, _) => {
                self.drop_stuffed_dot();
                return self.step(byte);
            }
            (Scan::DotCr, b'\n') => return true,
            (Scan::DotCr, _) => {
                self.drop_stuffed_dot();
                self.bare_line_end();
                return self.step(byte);
            }
            (Scan::Cr, b'\n') => {
                self.line_end();
                self.scan = Scan::LineStart;
            }
            (Scan::Cr, _) => {
                self.bare_line_end();
                return self.step(byte);
            }
        }
        false
    }

    /// The dot at a line start is removed but still counts towards the line length.
    fn drop_stuffed_dot(&mut self) {
        self.line_bytes = self.line_bytes.saturating_add(1);
        self.scan = Scan::Text;
    }

    /// A bare CR or LF: stored as CRLF, but the next byte is not at a line start.
    fn bare_line_end(&mut self) {
        self.line_end();
        self.scan = Scan::Text;
    }

    fn line_end(&mut self) {
        if self.line_bytes.saturating_add(CRLF.len()) > self.limits.line_max_bytes {
            self.line_too_long = true;
        }
        self.line_bytes = 0;
        self.append(CRLF);
    }

    fn text(&mut self, bytes: &[u8]) {
        self.line_bytes = self.line_bytes.saturating_add(bytes.len());
        self.append(bytes);
    }

    /// Stores bytes unless that would exceed the limit; then drops the whole body.
    fn append(&mut self, bytes: &[u8]) {
        if self.too_big {
            return;
        }
        let needed = self.body.len().saturating_add(bytes.len());
        if needed > self.limits.body_max_bytes {
            self.too_big = true;
            self.body = Vec::new();
            return;
        }
        if needed > self.body.capacity() {
            let target = needed
                .max(self.body.capacity().saturating_mul(2))
                .max(BODY_INITIAL_CAPACITY_BYTES)
                .min(self.limits.body_max_bytes);
            self.body
                .reserve_exact(target.saturating_sub(self.body.len()));
        }
        self.body.extend_from_slice(bytes);
    }
}
