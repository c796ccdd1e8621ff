//! Errors of the quarantine index, and the checks of the bounds every input must respect.

use super::model::{DoneRecord, EntryStatus, IndexEntry, IntentRecord, PendingAction};
use super::{
    ADDRESS_BYTES_MAX, ADMIN_BYTES_MAX, ENTRY_SYMBOLS_MAX, ID_BYTES_MAX, REASON_BYTES_MAX,
    RECIPIENTS_MAX, SEQ_MAX, SUBJECT_BYTES_MAX, SYMBOL_NAME_BYTES_MAX,
};

/// Why an index operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Input that breaks a bound or a rule of the format; `at` names the bad part, e.g.
    /// `owners[1].entries[3].subject`.
    #[error("{at}: {problem}")]
    Invalid {
        /// Path of the bad part.
        at: String,
        /// What is wrong there.
        problem: Problem,
    },
    /// A delta or snapshot of a schema version this build does not read.
    #[error("unsupported schema version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A node tried to write an entry of another node.
    #[error("entry {id:?} belongs to node {owner:?}, not to {me:?}")]
    NotOwner {
        /// The writing node.
        me: String,
        /// The entry's owner.
        owner: String,
        /// The entry.
        id: String,
    },
    /// No such entry (in the owner's log, for the `_own` operations).
    #[error("no quarantine entry {0:?}")]
    NotFound(String),
    /// The entry was purged; its id cannot be written again.
    #[error("quarantine entry {0:?} was purged")]
    Purged(String),
    /// A status change that would move an entry backwards.
    #[error("entry {id:?} is {from}; it cannot become {to}")]
    StatusRegression {
        /// The entry.
        id: String,
        /// Its status.
        from: EntryStatus,
        /// The status asked for.
        to: EntryStatus,
    },
    /// A request for an entry that is no longer quarantined.
    #[error("entry {id:?} is already {status}")]
    Gone {
        /// The entry.
        id: String,
        /// Its status.
        status: EntryStatus,
    },
    /// A per-recipient request for a recipient the message is no longer held for, or one
    /// that is not a recipient of it.
    #[error("entry {id:?}: {detail}")]
    RecipientDecided {
        /// The entry.
        id: String,
        /// What stands in the way, e.g. `already released for alice@example.com`.
        detail: String,
    },
    /// A request id already used for a different request.
    #[error("request {0:?} already exists with different content")]
    DuplicateRequest(String),
    /// No such request.
    #[error("no request {0:?}")]
    UnknownRequest(String),
    /// A node tried to record a request in another node's name.
    #[error("node {me:?} cannot record a request made by {requested_by:?}")]
    NotRequester {
        /// The writing node.
        me: String,
        /// The requester named in the request.
        requested_by: String,
    },
    /// A node tried to answer a request for another owner's entry.
    #[error("request {request_id:?} is for node {owner:?}, not {me:?}")]
    NotIntentOwner {
        /// The answering node.
        me: String,
        /// The owner the request is for.
        owner: String,
        /// The request.
        request_id: String,
    },
    /// The node has used up its sequence numbers (beyond [`SEQ_MAX`]).
    #[error("sequence numbers of node {0:?} are exhausted")]
    SeqExhausted(String),
    /// A cursor that is not `RECEIVED_MS:ID`.
    #[error("invalid cursor {0:?} (expected RECEIVED_MS:ID)")]
    BadCursor(String),
}

/// What is wrong at the place named by [`IndexError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than the bound.
    #[error("longer than {max} bytes")]
    TooLong {
        /// The bound, in bytes.
        max: usize,
    },
    /// The list has more items than the bound.
    #[error("more than {max} items")]
    TooMany {
        /// The bound, in items.
        max: usize,
    },
    /// An id with a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A number that is NaN or infinite.
    #[error("must be a finite number")]
    NotFinite,
    /// An item in the log of one node that claims to be written by another.
    #[error("belongs to node {found:?}, not to {expected:?} whose log it is in")]
    WrongOwner {
        /// The log's owner.
        expected: String,
        /// The node named by the item.
        found: String,
    },
    /// Sequence numbers that do not strictly increase along a list.
    #[error("seq {seq} does not follow {prev}")]
    NotIncreasing {
        /// The previous seq.
        prev: u64,
        /// This seq.
        seq: u64,
    },
    /// An item outside the range its record claims.
    #[error("seq {seq} outside the claimed range ({from}, {to}]")]
    OutOfRange {
        /// The item's seq.
        seq: u64,
        /// Start of the range (exclusive).
        from: u64,
        /// End of the range (inclusive).
        to: u64,
    },
    /// A range whose start is after its end.
    #[error("range start {from} is after its end {to}")]
    BadRange {
        /// Start (exclusive).
        from: u64,
        /// End (inclusive).
        to: u64,
    },
    /// An item below the floor its record announces.
    #[error("seq {seq} is below the floor {floor}")]
    BelowFloor {
        /// The item's seq.
        seq: u64,
        /// The floor.
        floor: u64,
    },
    /// A sequence number beyond [`SEQ_MAX`].
    #[error("seq {seq} exceeds the bound {max}")]
    SeqTooLarge {
        /// The seq.
        seq: u64,
        /// The bound.
        max: u64,
    },
    /// Two items of one node with the same seq.
    #[error("seq {0} appears twice")]
    DuplicateSeq(u64),
    /// Two versions of one item in one delta.
    #[error("item {0:?} appears twice")]
    DuplicateKey(String),
    /// An item that differs from the one this replica holds under the same seq: the node
    /// reused a sequence number.
    #[error("seq {0} of this node already holds a different item")]
    SeqConflict(u64),
    /// The ranges known of one node would be split into more pieces than the bound.
    #[error("known ranges would exceed {max} pieces")]
    TooFragmented {
        /// The bound, in ranges.
        max: usize,
    },
}

impl IndexError {
    pub(super) fn at(at: impl Into<String>, problem: Problem) -> IndexError {
        IndexError::Invalid {
            at: at.into(),
            problem,
        }
    }
}

/// Checks a node id, message id, request id or rule id: not empty, at most
/// [`ID_BYTES_MAX`] bytes, no control characters.
pub(crate) fn id_problem(id: &str) -> Option<Problem> {
    if id.is_empty() {
        Some(Problem::Empty)
    } else if id.len() > ID_BYTES_MAX {
        Some(Problem::TooLong { max: ID_BYTES_MAX })
    } else if id.chars().any(char::is_control) {
        Some(Problem::ControlCharacter)
    } else {
        None
    }
}

fn len_problem(text: &str, max: usize) -> Option<Problem> {
    (text.len() > max).then_some(Problem::TooLong { max })
}

pub(super) fn seq_problem(seq: u64) -> Option<Problem> {
    (seq > SEQ_MAX).then_some(Problem::SeqTooLarge { seq, max: SEQ_MAX })
}

/// Turns the first problem found into an error at `{at}.{field}`; the path is only built
/// when there is a problem.
fn first(at: &str, checks: &[(&str, Option<Problem>)]) -> Result<(), IndexError> {
    match checks.iter().find(|(_, problem)| problem.is_some()) {
        Some((field, Some(problem))) => {
            Err(IndexError::at(format!("{at}.{field}"), problem.clone()))
        }
        _ => Ok(()),
    }
}

/// Checks an id given on its own (a node id passed as `me`, an owner in a delta).
pub(super) fn check_id(at: &str, id: &str) -> Result<(), IndexError> {
    match id_problem(id) {
        Some(problem) => Err(IndexError::at(at, problem)),
        None => Ok(()),
    }
}

/// Checks every bound of an entry (`pending` is derived and not looked at).
pub(super) fn check_entry(at: &str, entry: &IndexEntry) -> Result<(), IndexError> {
    first(
        at,
        &[
            ("id", id_problem(&entry.id)),
            ("node", id_problem(&entry.node)),
            ("sender", len_problem(&entry.sender, ADDRESS_BYTES_MAX)),
            ("subject", len_problem(&entry.subject, SUBJECT_BYTES_MAX)),
            ("reason", len_problem(&entry.reason, REASON_BYTES_MAX)),
            ("rule_id", entry.rule_id.as_deref().and_then(id_problem)),
            ("seq", seq_problem(entry.seq)),
        ],
    )?;
    let lists = [
        ("recipients", &entry.recipients),
        ("recipients_released", &entry.recipients_released),
        ("recipients_deleted", &entry.recipients_deleted),
    ];
    for (name, list) in lists {
        if list.len() > RECIPIENTS_MAX {
            let problem = Problem::TooMany {
                max: RECIPIENTS_MAX,
            };
            return Err(IndexError::at(format!("{at}.{name}"), problem));
        }
        for (n, rcpt) in list.iter().enumerate() {
            if let Some(problem) = len_problem(rcpt, ADDRESS_BYTES_MAX) {
                return Err(IndexError::at(format!("{at}.{name}[{n}]"), problem));
            }
        }
    }
    check_custody(at, entry)?;
    check_score(at, entry)
}

/// Checks the copy holders and the previous owner: valid ids, at most
/// [`COPIES_MAX`](super::COPIES_MAX) holders, none of them the owner itself.
fn check_custody(at: &str, entry: &IndexEntry) -> Result<(), IndexError> {
    if entry.copies.len() > super::COPIES_MAX {
        let problem = Problem::TooMany {
            max: super::COPIES_MAX,
        };
        return Err(IndexError::at(format!("{at}.copies"), problem));
    }
    for (n, holder) in entry.copies.iter().enumerate() {
        if let Some(problem) = id_problem(holder) {
            return Err(IndexError::at(format!("{at}.copies[{n}]"), problem));
        }
    }
    if let Some(problem) = entry.adopted_from.as_deref().and_then(id_problem) {
        return Err(IndexError::at(format!("{at}.adopted_from"), problem));
    }
    Ok(())
}

/// Checks the score and its symbols: finite numbers, at most [`ENTRY_SYMBOLS_MAX`]
/// symbols, names like ids but at most [`SYMBOL_NAME_BYTES_MAX`] bytes.
fn check_score(at: &str, entry: &IndexEntry) -> Result<(), IndexError> {
    if entry.score.is_some_and(|s| !s.is_finite()) {
        return Err(IndexError::at(format!("{at}.score"), Problem::NotFinite));
    }
    if entry.symbols.len() > ENTRY_SYMBOLS_MAX {
        let problem = Problem::TooMany {
            max: ENTRY_SYMBOLS_MAX,
        };
        return Err(IndexError::at(format!("{at}.symbols"), problem));
    }
    for (n, symbol) in entry.symbols.iter().enumerate() {
        let name =
            id_problem(&symbol.name).or_else(|| len_problem(&symbol.name, SYMBOL_NAME_BYTES_MAX));
        let weight = (!symbol.weight.is_finite()).then_some(Problem::NotFinite);
        first(
            &format!("{at}.symbols[{n}]"),
            &[("name", name), ("weight", weight)],
        )?;
    }
    Ok(())
}

/// Checks a request as given by an admin.
pub(super) fn check_pending(at: &str, pending: &PendingAction) -> Result<(), IndexError> {
    first(
        at,
        &[
            ("request_id", id_problem(&pending.request_id)),
            ("requested_by", id_problem(&pending.requested_by)),
            ("admin", len_problem(&pending.admin, ADMIN_BYTES_MAX)),
        ],
    )
}

pub(super) fn check_intent(at: &str, record: &IntentRecord) -> Result<(), IndexError> {
    first(
        at,
        &[
            ("request_id", id_problem(&record.request_id)),
            ("entry_id", id_problem(&record.entry_id)),
            ("owner", id_problem(&record.owner)),
            ("requested_by", id_problem(&record.requested_by)),
            ("admin", len_problem(&record.admin, ADMIN_BYTES_MAX)),
            ("seq", seq_problem(record.seq)),
        ],
    )
}

pub(super) fn check_done(at: &str, record: &DoneRecord) -> Result<(), IndexError> {
    first(
        at,
        &[
            ("request_id", id_problem(&record.request_id)),
            ("seq", seq_problem(record.seq)),
        ],
    )
}
