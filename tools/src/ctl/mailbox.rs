//! Messages from the operator's files, for `mxctl learn` and `mxctl classify`.
//!
//! A path names one of:
//! - a directory: a maildir; every file in `cur/` and `new/` is one message
//!   (`tmp/`, dot files and subdirectories are left alone);
//! - a file (or `-`, stdin) whose first line starts with `From `: an mbox. It is
//!   split at every line that starts with `From `; lines that start with one or
//!   more `>` before `From ` lose one `>` (mboxrd, which also undoes mboxo's
//!   `>From ` escape); the blank line a writer puts after each message is dropped;
//! - any other file: one message, byte for byte.
//!
//! Messages come out one at a time ([`messages`]), so an mbox of any size is read
//! in bounded memory: one message of at most [`MESSAGE_INPUT_MAX_BYTES`]. A
//! message that cannot be used (too large, empty, unreadable) is an `Err` item
//! that names its file and, in an mbox, its number and line; the items after it
//! still come.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};

/// Largest message sent to the admin API: the node's admin body limit
/// (`API_BODY_MAX_BYTES` in the node's admin module). A larger one would only be
/// refused with 413, so it is refused here, before it is sent, naming its file.
pub const MESSAGE_INPUT_MAX_BYTES: u64 = 1024 * 1024;
/// Most message files taken from one maildir (`cur/` and `new/` together); the
/// names are listed before the first message is read.
pub const MAILDIR_ENTRIES_MAX: usize = 1_000_000;
/// Longest piece of a line read at once: a line with no newline for megabytes is
/// read in pieces of this size, and only the first piece is checked for `From `.
const LINE_PIECE_MAX_BYTES: u64 = 64 * 1024;
/// The mbox separator and the start of an escaped body line after its `>`s.
const FROM_LINE_PREFIX: &[u8] = b"From ";
/// The maildir subdirectories that hold delivered messages, in the order read.
const MAILDIR_MESSAGE_DIRS: [&str; 2] = ["cur", "new"];

/// Where one message came from, as the operator reads it in errors and summaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The path given (or a file inside the maildir given), or `stdin`.
    pub file: String,
    /// In an mbox: the message's number (from 1) and the line of its `From ` line.
    pub in_mbox: Option<MboxPlace>,
}

/// A message's place in an mbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MboxPlace {
    /// 1 for the first message of the file.
    pub index: usize,
    /// Line number (from 1) of the message's `From ` separator line.
    pub line: usize,
}

impl Origin {
    fn file(file: impl Into<String>) -> Self {
        Origin {
            file: file.into(),
            in_mbox: None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(place) = self.in_mbox {
            write!(f, " message {} (line {})", place.index, place.line)?;
        }
        Ok(())
    }
}

/// One message, ready to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    /// Where it came from.
    pub origin: Origin,
    /// The raw RFC 5322 bytes (line endings as in the file).
    pub bytes: Vec<u8>,
}

/// Why a message (or a whole file) cannot be used. Each names its origin.
#[derive(Debug, thiserror::Error)]
pub enum MessageInputError {
    /// The file, directory or stdin cannot be read.
    #[error("cannot read {origin}: {error}")]
    Read {
        origin: Origin,
        error: std::io::Error,
    },
    /// A message is larger than the admin API takes.
    #[error("{origin} is larger than {max_bytes} bytes, the admin API's limit for a message")]
    TooLarge { origin: Origin, max_bytes: u64 },
    /// The input holds no message.
    #[error("{origin} is empty: no message in it")]
    Empty { origin: Origin },
    /// A directory that is not a maildir.
    #[error("{origin} is a directory but not a maildir: it has neither cur/ nor new/")]
    NotMaildir { origin: Origin },
    /// A maildir with more message files than the limit.
    #[error("{origin} holds more than {max} message files")]
    TooManyFiles { origin: Origin, max: usize },
}

impl MessageInputError {
    /// The file (and mbox message) at fault.
    pub fn origin(&self) -> &Origin {
        match self {
            MessageInputError::Read { origin, .. }
            | MessageInputError::TooLarge { origin, .. }
            | MessageInputError::Empty { origin }
            | MessageInputError::NotMaildir { origin }
            | MessageInputError::TooManyFiles { origin, .. } => origin,
        }
    }
}

/// One message or the reason it cannot be used.
pub type Item = Result<Message, MessageInputError>;

/// Every message under `path` (`-` is stdin), in file order. A path that cannot be
/// opened gives one `Err` item; an empty file or maildir gives none.
pub fn messages(path: &Path) -> Box<dyn Iterator<Item = Item>> {
    if path.as_os_str() == "-" {
        return Box::new(Stream::new(
            "stdin",
            BufReader::new(std::io::stdin().lock()),
        ));
    }
    let name = path.display().to_string();
    if path.is_dir() {
        return match maildir_files(path) {
            Ok(files) => Box::new(files.into_iter().map(read_message_file)),
            Err(error) => Box::new(std::iter::once(Err(error))),
        };
    }
    match File::open(path) {
        Ok(file) => Box::new(Stream::new(&name, BufReader::new(file))),
        Err(error) => Box::new(std::iter::once(Err(MessageInputError::Read {
            origin: Origin::file(name),
            error,
        }))),
    }
}

/// The message files of a maildir: `cur/` then `new/`, each sorted by name.
fn maildir_files(dir: &Path) -> Result<Vec<PathBuf>, MessageInputError> {
    let origin = || Origin::file(dir.display().to_string());
    let subdirs: Vec<PathBuf> = MAILDIR_MESSAGE_DIRS
        .iter()
        .map(|sub| dir.join(sub))
        .filter(|sub| sub.is_dir())
        .collect();
    if subdirs.is_empty() {
        return Err(MessageInputError::NotMaildir { origin: origin() });
    }
    let mut files = Vec::new();
    for sub in subdirs {
        let read_error = |error| MessageInputError::Read {
            origin: Origin::file(sub.display().to_string()),
            error,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&sub).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let path = entry.path();
            if entry.file_name().as_encoded_bytes().starts_with(b".") || !path.is_file() {
                continue;
            }
            if files.len() + names.len() >= MAILDIR_ENTRIES_MAX {
                return Err(MessageInputError::TooManyFiles {
                    origin: origin(),
                    max: MAILDIR_ENTRIES_MAX,
                });
            }
            names.push(path);
        }
        names.sort();
        files.extend(names);
    }
    Ok(files)
}

/// One maildir file: one message, never an mbox.
fn read_message_file(path: PathBuf) -> Item {
    let origin = Origin::file(path.display().to_string());
    match File::open(&path) {
        Ok(file) => read_rest_bounded(Vec::new(), file, origin),
        Err(error) => Err(MessageInputError::Read { origin, error }),
    }
}

/// `prefix` plus the rest of `reader` as one message, refused past the bound.
fn read_rest_bounded(mut bytes: Vec<u8>, reader: impl std::io::Read, origin: Origin) -> Item {
    let room = (MESSAGE_INPUT_MAX_BYTES + 1).saturating_sub(bytes.len() as u64);
    if let Err(error) = reader.take(room).read_to_end(&mut bytes) {
        return Err(MessageInputError::Read { origin, error });
    }
    finish(bytes, false, origin)
}

/// The message, or why it cannot be used.
fn finish(bytes: Vec<u8>, oversized: bool, origin: Origin) -> Item {
    if oversized || bytes.len() as u64 > MESSAGE_INPUT_MAX_BYTES {
        return Err(MessageInputError::TooLarge {
            origin,
            max_bytes: MESSAGE_INPUT_MAX_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(MessageInputError::Empty { origin });
    }
    Ok(Message { origin, bytes })
}

/// What the stream has found the input to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Nothing read yet.
    Start,
    /// An mbox; the `From ` line of the next message (at this line number) has
    /// been read.
    Mbox { from_line: usize },
    /// Every message has been given out (or reading failed).
    Done,
}

/// Messages of one file or stdin: an mbox split message by message, or the whole
/// input as one message.
pub struct Stream<R> {
    name: String,
    reader: R,
    mode: Mode,
    /// Messages of the mbox given out so far.
    index: usize,
    /// Lines read so far (complete lines, counting their newline).
    lines: usize,
    /// Whether the next piece starts a line.
    at_line_start: bool,
}

impl<R: BufRead> Stream<R> {
    /// A stream over `reader`, whose messages are named after `name`.
    pub fn new(name: &str, reader: R) -> Self {
        Stream {
            name: name.to_string(),
            reader,
            mode: Mode::Start,
            index: 0,
            lines: 0,
            at_line_start: true,
        }
    }

    /// Reads the next piece of a line (at most [`LINE_PIECE_MAX_BYTES`]) into
    /// `piece`; returns whether that piece starts a line, and the number of that
    /// line. Empty at the end.
    fn read_piece(&mut self, piece: &mut Vec<u8>) -> std::io::Result<(bool, usize)> {
        piece.clear();
        let starts_line = self.at_line_start;
        let line = self.lines + 1;
        (&mut self.reader)
            .take(LINE_PIECE_MAX_BYTES)
            .read_until(b'\n', piece)?;
        if piece.ends_with(b"\n") {
            self.lines += 1;
            self.at_line_start = true;
        } else {
            self.at_line_start = false;
        }
        Ok((starts_line, line))
    }

    fn read_error(&mut self, error: std::io::Error) -> Item {
        self.mode = Mode::Done;
        Err(MessageInputError::Read {
            origin: Origin::file(self.name.clone()),
            error,
        })
    }

    /// The first read decides: an mbox, one message, or nothing at all.
    fn start(&mut self) -> Option<Item> {
        let mut piece = Vec::new();
        if let Err(error) = self.read_piece(&mut piece) {
            return Some(self.read_error(error));
        }
        if piece.is_empty() {
            self.mode = Mode::Done;
            return None;
        }
        if piece.starts_with(FROM_LINE_PREFIX) {
            self.mode = Mode::Mbox { from_line: 1 };
            return self.next_in_mbox(1);
        }
        self.mode = Mode::Done;
        let origin = Origin::file(self.name.clone());
        Some(read_rest_bounded(piece, &mut self.reader, origin))
    }

    /// The message after the `From ` line at `from_line`: up to the next `From `
    /// line or the end.
    fn next_in_mbox(&mut self, from_line: usize) -> Option<Item> {
        self.index += 1;
        let origin = Origin {
            file: self.name.clone(),
            in_mbox: Some(MboxPlace {
                index: self.index,
                line: from_line,
            }),
        };
        let mut bytes = Vec::new();
        let mut oversized = false;
        let mut piece = Vec::new();
        loop {
            let (starts_line, line) = match self.read_piece(&mut piece) {
                Ok(read) => read,
                Err(error) => return Some(self.read_error(error)),
            };
            if piece.is_empty() {
                self.mode = Mode::Done;
                break;
            }
            if starts_line && piece.starts_with(FROM_LINE_PREFIX) {
                self.mode = Mode::Mbox { from_line: line };
                break;
            }
            if oversized {
                continue;
            }
            let unescaped = if starts_line && is_escaped_from_line(&piece) {
                &piece[1..]
            } else {
                &piece[..]
            };
            bytes.extend_from_slice(unescaped);
            if bytes.len() as u64 > MESSAGE_INPUT_MAX_BYTES {
                oversized = true;
                bytes = Vec::new();
            }
        }
        drop_separator_blank_line(&mut bytes);
        Some(finish(bytes, oversized, origin))
    }
}

impl<R: BufRead> Iterator for Stream<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        match self.mode {
            Mode::Start => self.start(),
            Mode::Mbox { from_line } => self.next_in_mbox(from_line),
            Mode::Done => None,
        }
    }
}

/// Whether `line` is `>From `, `>>From `, …: a body line that an mbox writer escaped.
fn is_escaped_from_line(line: &[u8]) -> bool {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    quotes > 0 && line[quotes..].starts_with(FROM_LINE_PREFIX)
}

/// Drops the empty line an mbox writer puts between a message and the next
/// `From ` line (LF or CRLF), so the message ends as it was written.
fn drop_separator_blank_line(bytes: &mut Vec<u8>) {
    if bytes.ends_with(b"\r\n\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n\n") {
        bytes.truncate(bytes.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn split(input: &[u8]) -> Vec<Item> {
        Stream::new("box", Cursor::new(input.to_vec())).collect()
    }

    fn texts(input: &[u8]) -> Vec<String> {
        split(input)
            .into_iter()
            .map(|item| String::from_utf8(item.unwrap().bytes).unwrap())
            .collect()
    }

    fn place(index: usize, line: usize) -> Option<MboxPlace> {
        Some(MboxPlace { index, line })
    }

    #[test]
    fn a_plain_message_is_one_message_byte_for_byte() {
        let message = b"From: a@example.com\r\nSubject: hi\r\n\r\nFrom here on\r\n\r\n";
        let items = split(message);
        assert_eq!(items.len(), 1);
        let item = items.into_iter().next().unwrap().unwrap();
        assert_eq!(item.bytes, message);
        assert_eq!(item.origin, Origin::file("box"));
        assert_eq!(item.origin.to_string(), "box");
    }

    #[test]
    fn an_lf_mbox_splits_at_from_lines_and_unescapes() {
        let mbox = b"From a@example.com Mon Jan  1 00:00:00 2024\n\
Subject: one\n\
\n\
>From the start\n\
>>From twice quoted\n\
Not From here\n\
\n\
From b@example.com Mon Jan  1 00:00:01 2024\n\
Subject: two\n\
\n\
body\n";
        assert_eq!(
            texts(mbox),
            [
                "Subject: one\n\nFrom the start\n>From twice quoted\nNot From here\n",
                "Subject: two\n\nbody\n",
            ]
        );
        let origins: Vec<_> = split(mbox)
            .into_iter()
            .map(|item| item.unwrap().origin.in_mbox)
            .collect();
        assert_eq!(origins, [place(1, 1), place(2, 8)]);
    }

    #[test]
    fn a_crlf_mbox_keeps_crlf_and_drops_only_the_separator_blank_line() {
        let mbox = b"From x Mon Jan  1 00:00:00 2024\r\n\
Subject: one\r\n\r\n>From me\r\nbody\r\n\r\n\
From y Mon Jan  1 00:00:00 2024\r\n\
Subject: two\r\n\r\nlast\r\n";
        assert_eq!(
            texts(mbox),
            [
                "Subject: one\r\n\r\nFrom me\r\nbody\r\n",
                "Subject: two\r\n\r\nlast\r\n"
            ]
        );
    }

    #[test]
    fn from_is_a_separator_only_at_the_start_of_a_line() {
        let mbox = b"From x\nSubject: s\n\n From indented\nsay From here\nFrom\tnot a separator\n";
        assert_eq!(
            texts(mbox),
            ["Subject: s\n\n From indented\nsay From here\nFrom\tnot a separator\n"]
        );
    }

    #[test]
    fn a_plain_message_keeps_its_escapes() {
        assert_eq!(
            texts(b"Subject: s\n\n>From me\n"),
            ["Subject: s\n\n>From me\n"]
        );
    }

    #[test]
    fn an_empty_file_has_no_messages() {
        assert!(split(b"").is_empty());
    }

    #[test]
    fn blank_files_and_empty_mbox_messages_are_errors_that_name_them() {
        let items = split(b"\r\n\r\n");
        assert_eq!(items.len(), 1);
        let error = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(error.to_string(), "box is empty: no message in it");

        let items = split(b"From a\nFrom b\nSubject: s\n\nx\nFrom c\n\n");
        let shown: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Ok(message) => format!("ok {}", message.origin),
                Err(error) => error.to_string(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "box message 1 (line 1) is empty: no message in it",
                "ok box message 2 (line 2)",
                "box message 3 (line 6) is empty: no message in it",
            ]
        );
    }

    #[test]
    fn an_oversized_mbox_message_is_refused_and_the_next_one_still_comes() {
        let big_line = "x".repeat(1000) + "\n";
        let mut mbox = b"From a\nSubject: big\n\n".to_vec();
        let big_lines = MESSAGE_INPUT_MAX_BYTES as usize / big_line.len() + 2;
        for _ in 0..big_lines {
            mbox.extend_from_slice(big_line.as_bytes());
        }
        mbox.extend_from_slice(b"From b\nSubject: small\n\nok\n");
        let items = split(&mbox);
        assert_eq!(items.len(), 2);
        let mut items = items.into_iter();
        let error = items.next().unwrap().unwrap_err();
        assert!(
            matches!(error, MessageInputError::TooLarge { .. }),
            "{error}"
        );
        assert_eq!(error.origin().in_mbox, place(1, 1));
        let small = items.next().unwrap().unwrap();
        assert_eq!(small.bytes, b"Subject: small\n\nok\n");
        assert_eq!(small.origin.in_mbox, place(2, 4 + big_lines));
    }

    #[test]
    fn an_oversized_plain_message_is_refused() {
        let big = vec![b'a'; MESSAGE_INPUT_MAX_BYTES as usize + 1];
        let items = split(&big);
        assert_eq!(items.len(), 1);
        let error = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "box is larger than {MESSAGE_INPUT_MAX_BYTES} bytes, the admin API's limit for a message"
            )
        );
        let exact = vec![b'a'; MESSAGE_INPUT_MAX_BYTES as usize];
        assert_eq!(texts(&exact).len(), 1);
    }

    #[test]
    fn a_line_longer_than_a_piece_is_not_split_into_from_lines() {
        // The piece boundary falls right before "From ": it is not a line start.
        let mut text = b"From a\nSubject: s\n\n".to_vec();
        text.extend(std::iter::repeat_n(b'y', LINE_PIECE_MAX_BYTES as usize));
        text.extend_from_slice(b"From inside a long line\nend\n");
        let messages = texts(&text);
        assert_eq!(messages.len(), 1);
        assert!(messages[0].ends_with("yFrom inside a long line\nend\n"));
    }

    fn maildir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mxctl-maildir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_maildir_gives_cur_then_new_and_ignores_tmp_and_dot_files() {
        let dir = maildir("full");
        for sub in ["cur", "new", "tmp", "cur/.hidden-dir", "cur/subdir"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let write = |path: &str, text: &str| std::fs::write(dir.join(path), text).unwrap();
        write("cur/2:2,S", "Subject: cur 2\n\nb\n");
        write("cur/1:2,S", "Subject: cur 1\n\n>From me\n");
        write("new/3", "From x\nSubject: new 3\n\nc\n");
        write("tmp/4", "Subject: half delivered\n\n");
        write("cur/.5", "Subject: hidden\n\n");
        write("cur/subdir/6", "Subject: nested\n\n");
        write("cur/7", "");
        let items: Vec<Item> = messages(&dir).collect();
        let shown: Vec<String> = items
            .into_iter()
            .map(|item| match item {
                Ok(message) => String::from_utf8(message.bytes).unwrap(),
                Err(error) => error.to_string(),
            })
            .collect();
        let file = |path: &str| dir.join(path).display().to_string();
        assert_eq!(
            shown,
            [
                "Subject: cur 1\n\n>From me\n".to_string(),
                "Subject: cur 2\n\nb\n".to_string(),
                format!("{} is empty: no message in it", file("cur/7")),
                // A maildir file is one message even when it starts with `From `.
                "From x\nSubject: new 3\n\nc\n".to_string(),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_maildir_has_no_messages_and_a_plain_directory_is_refused() {
        let dir = maildir("empty");
        std::fs::create_dir_all(dir.join("new")).unwrap();
        assert_eq!(messages(&dir).count(), 0);
        std::fs::remove_dir_all(dir.join("new")).unwrap();
        let items: Vec<Item> = messages(&dir).collect();
        let error = items.into_iter().next().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} is a directory but not a maildir: it has neither cur/ nor new/",
                dir.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_one_error_naming_it() {
        let items: Vec<Item> = messages(Path::new("/nonexistent/spam.mbox")).collect();
        assert_eq!(items.len(), 1);
        let error = items.into_iter().next().unwrap().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/spam.mbox: "),
            "{error}"
        );
    }
}
