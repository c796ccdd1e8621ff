//! Listing and searching entries, newest first, with stable cursors.

use std::fmt;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::QuarantineIndex;
use super::error::{IndexError, id_problem};
use super::model::{EntryStatus, IndexEntry};
use super::store::EntryKey;

/// Most items one search returns.
pub const SEARCH_LIMIT_MAX: usize = 1000;
/// Items one search returns when the query's limit is 0.
pub const SEARCH_LIMIT_DEFAULT: usize = 100;
/// Most entries one search examines; past it the search returns what it found and a cursor.
pub const SEARCH_SCAN_MAX: usize = 250_000;

/// Where a listing continues: after the entry `(received_ms, id)` in newest-first order.
/// Written and parsed as `RECEIVED_MS:ID`. Stays valid when entries are added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    /// `received_ms` of the last entry returned.
    pub received_ms: u64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// The cursor that continues after `entry`.
    pub fn after(entry: &IndexEntry) -> Cursor {
        Cursor {
            received_ms: entry.received_ms,
            id: entry.id.clone(),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.received_ms, self.id)
    }
}

impl FromStr for Cursor {
    type Err = IndexError;

    fn from_str(text: &str) -> Result<Cursor, IndexError> {
        let bad = || IndexError::BadCursor(text.chars().take(200).collect());
        let (ms, id) = text.split_once(':').ok_or_else(bad)?;
        if !ms.bytes().all(|b| b.is_ascii_digit()) || id_problem(id).is_some() {
            return Err(bad());
        }
        let received_ms = ms.parse().map_err(|_| bad())?;
        Ok(Cursor {
            received_ms,
            id: id.to_string(),
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A search. Text filters are case-insensitive substrings; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexQuery {
    /// Substring of the envelope sender.
    pub sender: Option<String>,
    /// Substring of any recipient.
    pub rcpt: Option<String>,
    /// Substring of the subject.
    pub subject: Option<String>,
    /// Exactly this owner node.
    pub node: Option<String>,
    /// Received at or after this time, in ms.
    pub since_ms: Option<u64>,
    /// Exactly this status.
    pub status: Option<EntryStatus>,
    /// Most items to return: 0 means [`SEARCH_LIMIT_DEFAULT`], more than
    /// [`SEARCH_LIMIT_MAX`] means that.
    pub limit: usize,
    /// Continue after this entry.
    pub cursor: Option<Cursor>,
}

/// A query with its needles lowercased once.
struct Matcher<'q> {
    sender: Option<String>,
    rcpt: Option<String>,
    subject: Option<String>,
    node: Option<&'q str>,
    status: Option<EntryStatus>,
}

impl<'q> Matcher<'q> {
    fn new(query: &'q IndexQuery) -> Matcher<'q> {
        let lower = |text: &Option<String>| text.as_deref().map(str::to_lowercase);
        Matcher {
            sender: lower(&query.sender),
            rcpt: lower(&query.rcpt),
            subject: lower(&query.subject),
            node: query.node.as_deref(),
            status: query.status,
        }
    }

    fn matches(&self, entry: &IndexEntry) -> bool {
        self.node.is_none_or(|node| entry.node == node)
            && self.status.is_none_or(|status| entry.status == status)
            && matches_text(&entry.sender, self.sender.as_deref())
            && matches_text(&entry.subject, self.subject.as_deref())
            && self.rcpt.as_deref().is_none_or(|needle| {
                entry
                    .recipients
                    .iter()
                    .any(|rcpt| contains_lowercase(rcpt, needle))
            })
    }
}

fn matches_text(hay: &str, needle: Option<&str>) -> bool {
    needle.is_none_or(|needle| contains_lowercase(hay, needle))
}

/// Whether `hay` contains `needle` ignoring case; `needle` is already lowercase. ASCII text
/// is compared in place; anything else is lowercased first.
fn contains_lowercase(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
        let first = needle[0];
        return hay.len() >= needle.len()
            && (0..=hay.len() - needle.len()).any(|at| {
                hay[at].to_ascii_lowercase() == first
                    && hay[at..at + needle.len()].eq_ignore_ascii_case(needle)
            });
    }
    hay.to_lowercase().contains(needle)
}

impl QuarantineIndex {
    /// Entries matching `query`, newest first (by `received_ms`, then id, both descending),
    /// and the cursor for the next page when there may be more. Examines at most
    /// [`SEARCH_SCAN_MAX`] entries, so a page can be short (even empty) and still carry a
    /// cursor.
    ///
    /// Two owners claiming one message id (ids are unique, so only by mistake) are both
    /// listed, and never split across pages.
    pub fn search(&self, query: &IndexQuery) -> (Vec<&IndexEntry>, Option<Cursor>) {
        let limit = match query.limit {
            0 => SEARCH_LIMIT_DEFAULT,
            n => n.min(SEARCH_LIMIT_MAX),
        };
        let empty: Arc<str> = Arc::from("");
        let upper = match &query.cursor {
            Some(c) => Bound::Excluded((c.received_ms, Arc::from(c.id.as_str()), empty.clone())),
            None => Bound::Unbounded,
        };
        let lower = match query.since_ms {
            Some(ms) => Bound::Included((ms, empty.clone(), empty)),
            None => Bound::Unbounded,
        };
        if let (Bound::Included(low), Bound::Excluded(high)) = (&lower, &upper)
            && low >= high
        {
            return (Vec::new(), None);
        }
        let matcher = Matcher::new(query);
        let mut walk = self
            .entries
            .range::<EntryKey, _>((lower, upper))
            .rev()
            .peekable();
        let mut items = Vec::new();
        let mut scanned = 0;
        while let Some((_, entry)) = walk.next() {
            scanned += 1;
            if matcher.matches(entry) && !self.superseded(entry) {
                items.push(&**entry);
            }
            let same_key_next = walk
                .peek()
                .is_some_and(|((ms, id, _), _)| *ms == entry.received_ms && **id == *entry.id);
            if same_key_next {
                continue;
            }
            if items.len() >= limit || scanned >= SEARCH_SCAN_MAX {
                let more = walk.peek().is_some();
                return (items, more.then(|| Cursor::after(entry)));
            }
        }
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor: Cursor = "1700000000000:01HZX:odd".parse().expect("valid");
        assert_eq!(cursor.received_ms, 1_700_000_000_000);
        assert_eq!(cursor.id, "01HZX:odd");
        assert_eq!(cursor.to_string(), "1700000000000:01HZX:odd");
        for bad in [
            "",
            "12",
            ":id",
            "x:id",
            "-1:id",
            "12:",
            "99999999999999999999:id",
        ] {
            assert!(
                matches!(bad.parse::<Cursor>(), Err(IndexError::BadCursor(_))),
                "{bad:?}"
            );
        }
        let json = serde_json::to_string(&cursor).expect("serialise");
        assert_eq!(json, "\"1700000000000:01HZX:odd\"");
        let back: Cursor = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, cursor);
    }

    #[test]
    fn case_insensitive_substrings() {
        assert!(contains_lowercase("Hello World", "lo wo"));
        assert!(contains_lowercase("ab", ""));
        assert!(!contains_lowercase("ab", "abc"));
        assert!(contains_lowercase("Grüße AUS Köln", "köln"));
        assert!(contains_lowercase("ÄRGER", "ärger"));
        assert!(!contains_lowercase("plain", "ä"));
    }
}
