//! `verify_recipients = "list"`: a file of the domain's addresses and wildcards, one a
//! line, reloaded when it changes.
//!
//! A line is an address (`user@example.com`), or a pattern where `*` matches any run of
//! characters and `?` one (`sales-*@example.com`, `*@lists.example.com`). Matching is
//! case-insensitive. Blank lines and lines starting with `#` are ignored. The file is
//! checked for a change (modification time and size) at most once per
//! [`RELOAD_CHECK_INTERVAL`]; a file that disappears or does not read keeps the last list
//! (logged).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Largest recipients file read.
pub const RECIPIENTS_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Wildcard patterns kept at most (exact addresses are a hash set, bounded by the file).
pub const PATTERNS_MAX: usize = 10_000;
/// Longest line, in bytes.
pub const LINE_BYTES_MAX: usize = 512;
/// The file is looked at for a change at most this often.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a recipients file was not taken; names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// It could not be read.
    #[error("recipients file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A line breaks a bound.
    #[error("recipients file {path} line {line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// The parsed contents of a recipients file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recipients {
    exact: HashSet<String>,
    patterns: Vec<String>,
}

impl Recipients {
    /// Parses the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Recipients, ListError> {
        let mut out = Recipients::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| ListError::Line {
                path: path.to_string(),
                line: i + 1,
                message,
            };
            if line.len() > LINE_BYTES_MAX || line.contains(char::is_whitespace) {
                return Err(bad(format!(
                    "not an address or pattern (no spaces, at most {LINE_BYTES_MAX} bytes)"
                )));
            }
            let entry = line.to_ascii_lowercase();
            if entry.contains(['*', '?']) {
                if out.patterns.len() >= PATTERNS_MAX {
                    return Err(bad(format!("more than {PATTERNS_MAX} wildcard patterns")));
                }
                out.patterns.push(entry);
            } else {
                out.exact.insert(entry);
            }
        }
        Ok(out)
    }

    /// Whether `rcpt` is listed.
    pub fn contains(&self, rcpt: &str) -> bool {
        let rcpt = rcpt.to_ascii_lowercase();
        self.exact.contains(&rcpt) || self.patterns.iter().any(|p| glob(p, &rcpt))
    }

    /// Entries (addresses and patterns).
    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `*` and `?` glob match, iterative (linear backtracking on the last `*`).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug)]
struct Loaded {
    list: Recipients,
    stamp: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// A recipients file, reloaded on change.
#[derive(Debug)]
pub struct RecipientList {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl RecipientList {
    /// Reads `path` (it must read now; later failures keep the last list).
    pub fn open(path: &Path) -> Result<RecipientList, ListError> {
        let (list, stamp) = read(path)?;
        Ok(RecipientList {
            path: path.to_path_buf(),
            loaded: Mutex::new(Loaded {
                list,
                stamp: Some(stamp),
                checked: Instant::now(),
            }),
        })
    }

    /// Whether `rcpt` is listed (reloading the file first when it changed).
    pub fn contains(&self, rcpt: &str) -> bool {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            loaded.checked = Instant::now();
            let now = file_stamp(&self.path).ok();
            if now.is_some() && now != loaded.stamp {
                match read(&self.path) {
                    Ok((list, stamp)) => {
                        tracing::info!(file = %self.path.display(), entries = list.len(), "recipients file reloaded");
                        loaded.list = list;
                        loaded.stamp = Some(stamp);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "recipients file not reloaded; keeping the last list")
                    }
                }
            }
        }
        loaded.list.contains(rcpt)
    }
}

fn file_stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.modified()?, meta.len()))
}

fn read(path: &Path) -> Result<(Recipients, (SystemTime, u64)), ListError> {
    let name = path.display().to_string();
    let err = |e: std::io::Error| ListError::Read {
        path: name.clone(),
        message: e.to_string(),
    };
    let stamp = file_stamp(path).map_err(err)?;
    if stamp.1 > RECIPIENTS_FILE_BYTES_MAX {
        return Err(ListError::Read {
            path: name,
            message: format!("larger than {RECIPIENTS_FILE_BYTES_MAX} bytes"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(err)?;
    Ok((Recipients::parse(&text, &name)?, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_wildcards_match() {
        let text = "# staff\nAlice@example.com\n\nsales-*@example.com\n?@example.com\n";
        let r = Recipients::parse(text, "r.txt").unwrap();
        assert!(r.contains("alice@EXAMPLE.com"));
        assert!(r.contains("sales-eu@example.com"));
        assert!(r.contains("x@example.com"));
        assert!(!r.contains("xy@example.com"));
        assert!(!r.contains("bob@example.com"));
        assert!(!r.contains("sales@example.com"));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = Recipients::parse("a@b.c\nnot an address\n", "r.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "recipients file r.txt line 2: not an address or pattern (no spaces, at most 512 bytes)"
        );
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob("*a*b", "xxaxxab"));
        assert!(!glob("*a*b", "xxaxxa"));
        assert!(glob("*", ""));
        assert!(glob("a*", "a"));
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_last_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rcpts");
        std::fs::write(&path, "a@example.com\n").unwrap();
        let list = RecipientList::open(&path).unwrap();
        assert!(list.contains("a@example.com"));
        std::fs::write(&path, "a@example.com\nb@example.com\n").unwrap();
        list.loaded.lock().unwrap().checked -= RELOAD_CHECK_INTERVAL;
        assert!(list.contains("b@example.com"));
        std::fs::write(&path, "a@example.com\nbroken line here\n").unwrap();
        list.loaded.lock().unwrap().checked -= RELOAD_CHECK_INTERVAL;
        assert!(list.contains("b@example.com"), "the last good list stays");
    }
}
