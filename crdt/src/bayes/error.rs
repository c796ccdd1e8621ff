//! Errors of the learned corpus, and the checks every record and delta must pass.

use std::collections::HashSet;

use super::model::{Digest, Record, RecordOp};
use super::{SEQ_MAX, STAMP_MS_MAX, TOKENS_PER_RECORD_MAX};
use crate::qindex;

/// Why a corpus operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BayesError {
    /// Input that breaks a bound or a rule of the format; `at` names the bad part, e.g.
    /// `owners[1].records[3].op.tokens`.
    #[error("{at}: {problem}")]
    Invalid {
        /// Path of the bad part.
        at: String,
        /// What is wrong there.
        problem: Problem,
    },
    /// A delta of a schema version this build does not read.
    #[error("unsupported schema version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The node has used up its sequence numbers (beyond [`SEQ_MAX`]).
    #[error("sequence numbers of node {0:?} are exhausted")]
    SeqExhausted(String),
    /// The hybrid clock would pass [`STAMP_MS_MAX`] (a peer wrote a stamp far in the future).
    #[error("the hybrid clock would pass {max} ms")]
    ClockExhausted {
        /// The bound.
        max: u64,
    },
    /// Text that is not a digest.
    #[error("digest {text:?} is not 64 hexadecimal digits")]
    BadDigest {
        /// The text (at most 80 characters of it).
        text: String,
    },
    /// Text that is not a class.
    #[error("unknown class {text:?} (expected spam or ham)")]
    UnknownClass {
        /// The text (at most 80 characters of it).
        text: String,
    },
    /// Planned own records that no longer fit the log: a record of another node, a seq
    /// that is not the next one (something else wrote a record of the node since the plan),
    /// or deletes and floors, which plans never hold.
    #[error("plan of node {me:?} is stale: record seq {seq}, next seq {next}")]
    StalePlan {
        /// The node whose log it is.
        me: String,
        /// The planned record's seq (0 for deletes or floors).
        seq: u64,
        /// The seq the log expects next.
        next: u64,
    },
    /// The recount of [`BayesCorpus::audit`](super::BayesCorpus::audit) disagrees with the
    /// counts kept incrementally (a bug).
    #[error("counts differ from a recount: {0}")]
    Audit(String),
}

/// What is wrong at the place named by [`BayesError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A bad node id (empty, too long, control characters).
    #[error("{0}")]
    Id(qindex::Problem),
    /// A list with more items than the bound.
    #[error("more than {max} items")]
    TooMany {
        /// The bound.
        max: usize,
    },
    /// Tokens not strictly increasing (unsorted or repeated).
    #[error("tokens must be strictly increasing (token {index} is not)")]
    TokensNotCanonical {
        /// Position of the first offending token.
        index: usize,
    },
    /// A record in the log of one node that claims another writer.
    #[error("belongs to node {found:?}, not to {expected:?} whose log it is in")]
    WrongOwner {
        /// The log's owner.
        expected: String,
        /// The owner named by the record.
        found: String,
    },
    /// One owner in two sections of one delta.
    #[error("owner {0:?} appears twice")]
    DuplicateOwner(String),
    /// One digest twice in one owner's section.
    #[error("digest {0} appears twice")]
    DuplicateDigest(Digest),
    /// Sequence numbers that do not strictly increase along a section.
    #[error("seq {seq} does not follow {prev}")]
    NotIncreasing {
        /// The previous seq.
        prev: u64,
        /// This seq.
        seq: u64,
    },
    /// A record outside the range its section claims.
    #[error("seq {seq} outside the claimed range ({from}, {to}]")]
    OutOfRange {
        /// The record's seq.
        seq: u64,
        /// Start (exclusive).
        from: u64,
        /// End (inclusive).
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
    /// A floor above the end of the range it comes with.
    #[error("floor {floor} is above the range end {to} + 1")]
    FloorAboveRange {
        /// The floor.
        floor: u64,
        /// The range end.
        to: u64,
    },
    /// A record below the floor its section announces.
    #[error("seq {seq} is below the floor {floor}")]
    BelowFloor {
        /// The record's seq.
        seq: u64,
        /// The floor.
        floor: u64,
    },
    /// A number beyond its bound (seqs: [`SEQ_MAX`], stamps: [`STAMP_MS_MAX`]).
    #[error("{value} exceeds the bound {max}")]
    TooLarge {
        /// The number.
        value: u64,
        /// The bound.
        max: u64,
    },
    /// Seq 0 (seqs start at 1).
    #[error("seq must be at least 1")]
    ZeroSeq,
    /// A record that differs from the one held under the same owner and seq: the owner
    /// reused a sequence number (restarted on a wiped store without restoring).
    #[error("seq {0} of this owner already holds a different record")]
    SeqConflict(u64),
}

impl BayesError {
    pub(super) fn at(at: impl Into<String>, problem: Problem) -> BayesError {
        BayesError::Invalid {
            at: at.into(),
            problem,
        }
    }
}

/// Checks a node id (the rules of the quarantine index: not empty, at most
/// [`qindex::ID_BYTES_MAX`] bytes, no control characters).
pub(super) fn check_id(at: &str, id: &str) -> Result<(), BayesError> {
    match qindex::error::id_problem(id) {
        Some(problem) => Err(BayesError::at(at, Problem::Id(problem))),
        None => Ok(()),
    }
}

/// Checks `value ≤ max`.
pub(super) fn check_max(
    at: impl FnOnce() -> String,
    value: u64,
    max: u64,
) -> Result<(), BayesError> {
    if value > max {
        return Err(BayesError::at(at(), Problem::TooLarge { value, max }));
    }
    Ok(())
}

/// Checks a token list: at most [`TOKENS_PER_RECORD_MAX`], strictly increasing.
pub(super) fn check_tokens(at: &str, tokens: &[u64]) -> Result<(), BayesError> {
    if tokens.len() > TOKENS_PER_RECORD_MAX {
        let problem = Problem::TooMany {
            max: TOKENS_PER_RECORD_MAX,
        };
        return Err(BayesError::at(at, problem));
    }
    if let Some(n) = tokens.windows(2).position(|pair| pair[0] >= pair[1]) {
        let problem = Problem::TokensNotCanonical { index: n + 1 };
        return Err(BayesError::at(at, problem));
    }
    Ok(())
}

/// Checks one record on its own: owner, seq and stamp bounds, tokens.
pub(super) fn check_record(at: &str, record: &Record) -> Result<(), BayesError> {
    check_id(&format!("{at}.owner"), &record.owner)?;
    if record.seq == 0 {
        return Err(BayesError::at(format!("{at}.seq"), Problem::ZeroSeq));
    }
    check_max(|| format!("{at}.seq"), record.seq, SEQ_MAX)?;
    check_max(|| format!("{at}.stamp_ms"), record.stamp_ms, STAMP_MS_MAX)?;
    if let RecordOp::Learn { tokens, .. } = &record.op {
        check_tokens(&format!("{at}.op.tokens"), tokens)?;
    }
    Ok(())
}

/// Checks the records of one owner's section: writer, order, range, floor, no digest twice.
pub(super) fn check_section_records(
    at: &str,
    node: &str,
    (from, to, floor): (u64, u64, u64),
    records: &[Record],
) -> Result<(), BayesError> {
    let mut digests = HashSet::with_capacity(records.len());
    let mut prev = None;
    for (n, record) in records.iter().enumerate() {
        let at = format!("{at}.records[{n}]");
        check_record(&at, record)?;
        if record.owner != node {
            let problem = Problem::WrongOwner {
                expected: node.to_string(),
                found: record.owner.clone(),
            };
            return Err(BayesError::at(format!("{at}.owner"), problem));
        }
        let seq = record.seq;
        let at_seq = || format!("{at}.seq");
        if let Some(prev) = prev
            && seq <= prev
        {
            return Err(BayesError::at(
                at_seq(),
                Problem::NotIncreasing { prev, seq },
            ));
        }
        if seq <= from || seq > to {
            return Err(BayesError::at(
                at_seq(),
                Problem::OutOfRange { seq, from, to },
            ));
        }
        if seq < floor {
            return Err(BayesError::at(at_seq(), Problem::BelowFloor { seq, floor }));
        }
        if !digests.insert(record.digest) {
            let problem = Problem::DuplicateDigest(record.digest);
            return Err(BayesError::at(format!("{at}.digest"), problem));
        }
        prev = Some(seq);
    }
    Ok(())
}
