//! The values of the learned corpus: digests, classes, records and the counts derived from
//! them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::BayesError;

/// Bytes in a message [`Digest`].
pub const DIGEST_BYTES: usize = 32;

/// The normalised digest that identifies a learned message mesh-wide (computed by the
/// caller; this crate only compares them). Shown and serialised as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; DIGEST_BYTES]);

impl Digest {
    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = BayesError;

    /// Parses 64 hex digits (either case).
    fn from_str(text: &str) -> Result<Digest, BayesError> {
        let mut bytes = [0u8; DIGEST_BYTES];
        match hex::decode_to_slice(text, &mut bytes) {
            Ok(()) => Ok(Digest(bytes)),
            Err(_) => Err(BayesError::BadDigest {
                text: text.chars().take(80).collect(),
            }),
        }
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The two classes a message is learned as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Unwanted mail.
    Spam,
    /// Wanted mail.
    Ham,
}

impl Class {
    /// `spam` or `ham`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Class {
    type Err = BayesError;

    /// Parses `spam` or `ham` (exactly, lowercase).
    fn from_str(text: &str) -> Result<Class, BayesError> {
        match text {
            "spam" => Ok(Class::Spam),
            "ham" => Ok(Class::Ham),
            _ => Err(BayesError::UnknownClass {
                text: text.chars().take(80).collect(),
            }),
        }
    }
}

/// What a record says about its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordOp {
    /// The message was learned as `class`.
    Learn {
        /// The class it was learned as.
        class: Class,
        /// Its distinct tokens, strictly increasing (feature hashes chosen by the caller's
        /// tokenizer), at most [`TOKENS_PER_RECORD_MAX`](super::TOKENS_PER_RECORD_MAX).
        /// Serialised as one base64 string of 8 little-endian bytes per token (half the size
        /// of decimal numbers).
        #[serde(with = "tokens_base64")]
        tokens: Vec<u64>,
    },
    /// The message was forgotten (a tombstone).
    Forget,
}

impl RecordOp {
    /// Number of tokens carried (0 for a tombstone).
    pub fn token_count(&self) -> usize {
        match self {
            RecordOp::Learn { tokens, .. } => tokens.len(),
            RecordOp::Forget => 0,
        }
    }

    /// The class learned, or `None` for a tombstone.
    pub fn class(&self) -> Option<Class> {
        match self {
            RecordOp::Learn { class, .. } => Some(*class),
            RecordOp::Forget => None,
        }
    }
}

/// One entry of an owner's log: the owner's latest word on one digest. This is also the unit
/// a node persists, under the key `(owner, digest)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The node that wrote it, the only writer of its log.
    pub owner: String,
    /// The message it is about.
    pub digest: Digest,
    /// The owner's sequence number of this record (its position in the owner's log).
    pub seq: u64,
    /// Hybrid-logical-clock time of the operation, in ms: later than every record the owner
    /// had seen when it wrote this one. `(stamp_ms, owner)` orders the records of a digest.
    pub stamp_ms: u64,
    /// Learn or forget.
    pub op: RecordOp,
}

/// A record as held in a log (the owner and digest are the keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    /// The owner's sequence number of this record.
    pub seq: u64,
    /// Hybrid-logical-clock time of the operation, in ms.
    pub stamp_ms: u64,
    /// Learn or forget.
    pub op: RecordOp,
}

impl Stored {
    pub fn to_record(&self, owner: &str, digest: Digest) -> Record {
        Record {
            owner: owner.to_string(),
            digest,
            seq: self.seq,
            stamp_ms: self.stamp_ms,
            op: self.op.clone(),
        }
    }

    pub fn from_record(record: Record) -> Stored {
        Stored {
            seq: record.seq,
            stamp_ms: record.stamp_ms,
            op: record.op,
        }
    }
}

/// A pair of counts, one per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Count for [`Class::Spam`].
    pub spam: u32,
    /// Count for [`Class::Ham`].
    pub ham: u32,
}

impl ClassCounts {
    /// The count of `class`.
    pub fn get(&self, class: Class) -> u32 {
        match class {
            Class::Spam => self.spam,
            Class::Ham => self.ham,
        }
    }

    /// Adds one to (`up`) or takes one from the count of `class`.
    pub(super) fn step(&mut self, class: Class, up: bool) {
        let count = match class {
            Class::Spam => &mut self.spam,
            Class::Ham => &mut self.ham,
        };
        if up {
            *count += 1;
        } else {
            *count -= 1;
        }
    }

    /// Both counts are zero.
    pub fn is_zero(&self) -> bool {
        self.spam == 0 && self.ham == 0
    }
}

/// What one owner contributes, as known to this replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// Messages whose winning record is a learn by this owner, per class.
    pub winning: ClassCounts,
    /// Records of this owner held here (learns, also losing ones, and tombstones).
    pub records: usize,
}

/// Keys of a persisted record: `(owner, digest)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey {
    /// The record's owner.
    pub owner: String,
    /// The record's digest.
    pub digest: Digest,
}

/// What an operation changed, for the caller's store. Apply in this order, in one atomic
/// write: delete the `delete` keys, put every `put` record under `(owner, digest)`
/// (overwriting; a later record of the same key replaces an earlier one), then store the
/// `floors`. [`BayesCorpus::restore`](super::BayesCorpus::restore) rebuilds the corpus from
/// the stored records and floors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Records dropped below a raised floor.
    pub delete: Vec<RecordKey>,
    /// Records added or replacing the record of their key.
    pub put: Vec<Record>,
    /// Owners whose floor rose, with the new floor.
    pub floors: Vec<(String, u64)>,
}

impl Changes {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.put.is_empty() && self.floors.is_empty()
    }
}

/// What [`BayesCorpus::learn`](super::BayesCorpus::learn) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// The message was not learned (unknown or forgotten); now it is.
    Learned,
    /// The message was learned as the other class; it moved.
    Moved {
        /// The class it had.
        from: Class,
    },
    /// The message is already learned as this class (by any node): nothing written.
    AlreadyLearned,
}

/// The result of a learn: what happened and what to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnReport {
    /// What happened.
    pub outcome: LearnOutcome,
    /// The record written, if any.
    pub changes: Changes,
}

/// The result of a forget: what was learned and what to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetReport {
    /// The class the message was learned as here before the forget, `None` if it was not
    /// learned (unknown here, or already forgotten).
    pub was: Option<Class>,
    /// The tombstone written, if any (none when the message was already forgotten).
    pub changes: Changes,
}

/// The serialised form of token lists: base64 (standard alphabet, no padding) of the tokens
/// as 8 little-endian bytes each.
mod tokens_base64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use super::super::TOKENS_PER_RECORD_MAX;

    /// Bytes per token.
    const TOKEN_BYTES: usize = 8;

    pub fn serialize<S: Serializer>(tokens: &[u64], serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        serializer.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let max = TOKENS_PER_RECORD_MAX;
        if base64::decoded_len_estimate(text.len()) > (max + 1) * TOKEN_BYTES {
            return Err(D::Error::custom(format!("tokens: more than {max}")));
        }
        let bytes = B64
            .decode(text.as_bytes())
            .map_err(|e| D::Error::custom(format!("tokens: not base64 ({e})")))?;
        if !bytes.len().is_multiple_of(TOKEN_BYTES) {
            let len = bytes.len();
            return Err(D::Error::custom(format!(
                "tokens: {len} bytes, not a multiple of 8"
            )));
        }
        let token = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        Ok(bytes.chunks_exact(TOKEN_BYTES).map(token).collect())
    }
}
