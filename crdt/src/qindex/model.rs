//! The items of the index: entries, the requests (intents) and their answers, purge markers.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    ADDRESS_BYTES_MAX, ENTRY_SYMBOLS_MAX, REASON_BYTES_MAX, RECIPIENTS_MAX, SUBJECT_BYTES_MAX,
    SYMBOL_NAME_BYTES_MAX,
};

/// Where a quarantined message stands. Only moves forward: `quarantined` becomes one of the
/// three terminal statuses, and a terminal status never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Held on the owner's disk; can be released or deleted.
    Quarantined,
    /// Relayed on (tombstone).
    Released,
    /// Deleted by an admin, or lost with its owner's store (tombstone).
    Deleted,
    /// Dropped after retention without a decision (tombstone).
    Expired,
    /// Handed to another node, which adopted it into its own log (its entry names this
    /// one's owner in `adopted_from`); this copy is a tombstone and is never released.
    Moved,
}

impl EntryStatus {
    /// True for the tombstone statuses (anything but `quarantined`).
    pub fn is_terminal(self) -> bool {
        self != EntryStatus::Quarantined
    }

    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Quarantined => "quarantined",
            EntryStatus::Released => "released",
            EntryStatus::Deleted => "deleted",
            EntryStatus::Expired => "expired",
            EntryStatus::Moved => "moved",
        }
    }
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One symbol of the spam score a message was quarantined with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolWeight {
    /// The symbol's name, e.g. `HTML_LINK_TEXT_MISMATCH` (at most
    /// [`SYMBOL_NAME_BYTES_MAX`] bytes).
    pub name: String,
    /// Its weight for this message (finite).
    pub weight: f64,
}

/// Separates a name from its weight inside [`Symbols`].
const NAME_END: char = '\u{1f}';
/// Separates one symbol from the next inside [`Symbols`].
const SYMBOL_END: char = '\u{1e}';

/// The symbols of an entry's score, in order. Serialised as a list of [`SymbolWeight`];
/// held in memory as one string (every entry of the mesh sits in every node's index, and
/// ten symbols as separate strings cost about three times as much). Names never hold
/// control characters (they become U+FFFD), which keeps the encoding unambiguous.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Symbols(Box<str>);

impl Symbols {
    /// The symbols of `list`, in its order.
    pub fn new(list: &[SymbolWeight]) -> Symbols {
        let mut text = String::new();
        for (n, symbol) in list.iter().enumerate() {
            if n > 0 {
                text.push(SYMBOL_END);
            }
            let clean = |c: char| if c.is_control() { '\u{fffd}' } else { c };
            text.extend(symbol.name.chars().map(clean));
            text.push(NAME_END);
            text.push_str(&symbol.weight.to_string());
        }
        Symbols(text.into_boxed_str())
    }

    /// The symbols, in order.
    pub fn iter(&self) -> impl Iterator<Item = SymbolWeight> + '_ {
        let pairs = self.0.split(SYMBOL_END).filter(|_| !self.0.is_empty());
        pairs.map(|pair| {
            let (name, weight) = pair.split_once(NAME_END).unwrap_or((pair, ""));
            SymbolWeight {
                name: name.to_string(),
                weight: weight.parse().unwrap_or(f64::NAN),
            }
        })
    }

    /// The symbols as a list.
    pub fn to_vec(&self) -> Vec<SymbolWeight> {
        self.iter().collect()
    }

    /// How many symbols.
    pub fn len(&self) -> usize {
        match self.0.is_empty() {
            true => 0,
            false => self.0.matches(SYMBOL_END).count() + 1,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<SymbolWeight>> for Symbols {
    fn from(list: Vec<SymbolWeight>) -> Symbols {
        Symbols::new(&list)
    }
}

impl fmt::Debug for Symbols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Symbols {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Symbols {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<SymbolWeight>::deserialize(deserializer).map(Symbols::from)
    }
}

/// The metadata of one quarantined message, written only by its owner node.
///
/// `score` and `symbols` came later than the other fields: records written before have
/// neither (they read as `None` and empty), and a copy relayed by a node of that older
/// version lacks them; such a copy [agrees](IndexEntry::agrees_with) with the full one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Message id (a ULID string), unique across the mesh.
    pub id: String,
    /// The owner: the node whose disk holds the message.
    pub node: String,
    /// When the message was received, in ms since the epoch.
    pub received_ms: u64,
    /// Envelope sender (empty for the null sender).
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// Message size, in bytes.
    pub size: u64,
    /// Why it was quarantined.
    pub reason: String,
    /// The rule that quarantined it, if any.
    pub rule_id: Option<String>,
    /// The message's spam score when it was quarantined (whether a rule or a threshold
    /// decided); `None` in entries written before scores were recorded. Finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The symbols that made the score, heaviest first, at most [`ENTRY_SYMBOLS_MAX`]
    /// (the lightest are left out when more fired).
    #[serde(default, skip_serializing_if = "Symbols::is_empty")]
    pub symbols: Symbols,
    /// Current status.
    pub status: EntryStatus,
    /// When the status last changed, in ms since the epoch.
    pub status_ms: u64,
    /// The oldest undone release/delete request for this entry. Derived by every replica from
    /// the intents it holds; ignored when written or received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Box<PendingAction>>,
    /// The owner's sequence number of the last change to this entry. Assigned by the owner;
    /// ignored by [`upsert_own`](super::QuarantineIndex::upsert_own).
    #[serde(default)]
    pub seq: u64,
    /// Other nodes that hold a durable copy of the message (bytes and metadata), in the
    /// order they took it; at most [`COPIES_MAX`](super::COPIES_MAX). The first of them
    /// that has not left the mesh is the entry's successor when its owner does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
    /// The node that owned the message before this one adopted it (a retire hand-over or a
    /// successor taking over from a forgotten owner). This entry supersedes that node's
    /// entry of the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
    /// Recipients the message was released to one by one (a digest link or the portal
    /// names one recipient), as written in `recipients`, in the order decided. Empty when
    /// nobody decided for a single recipient: then `status` speaks for every recipient.
    /// Only grows; once any recipient is decided, the terminal entry lists every recipient
    /// in this list or in `recipients_deleted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients_released: Vec<String>,
    /// Recipients the message was deleted for one by one; as `recipients_released`. A
    /// recipient is in at most one of the two lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients_deleted: Vec<String>,
}

/// Scores and weights are checked finite wherever an entry is written or received, so
/// equality is reflexive.
impl Eq for IndexEntry {}

impl IndexEntry {
    /// Cuts the free-text fields to their bounds ([`ADDRESS_BYTES_MAX`], [`SUBJECT_BYTES_MAX`],
    /// [`REASON_BYTES_MAX`], [`RECIPIENTS_MAX`], [`ENTRY_SYMBOLS_MAX`],
    /// [`SYMBOL_NAME_BYTES_MAX`]) at character boundaries and drops a score or weight that is
    /// not finite, so that an entry built from arbitrary mail is accepted by
    /// [`upsert_own`](super::QuarantineIndex::upsert_own). Ids are not touched.
    pub fn fit_to_bounds(&mut self) {
        truncate(&mut self.sender, ADDRESS_BYTES_MAX);
        self.recipients.truncate(RECIPIENTS_MAX);
        for rcpt in &mut self.recipients {
            truncate(rcpt, ADDRESS_BYTES_MAX);
        }
        truncate(&mut self.subject, SUBJECT_BYTES_MAX);
        truncate(&mut self.reason, REASON_BYTES_MAX);
        self.score = self.score.filter(|s| s.is_finite());
        let mut symbols = self.symbols.to_vec();
        symbols.retain(|s| s.weight.is_finite() && !s.name.is_empty());
        symbols.truncate(ENTRY_SYMBOLS_MAX);
        for symbol in &mut symbols {
            truncate(&mut symbol.name, SYMBOL_NAME_BYTES_MAX);
        }
        self.symbols = Symbols::new(&symbols);
        for list in [&mut self.recipients_released, &mut self.recipients_deleted] {
            list.truncate(RECIPIENTS_MAX);
            for rcpt in list.iter_mut() {
                truncate(rcpt, ADDRESS_BYTES_MAX);
            }
        }
    }

    /// Whether `other` is this entry as far as both know it: equal apart from the derived
    /// `pending`, or equal apart from `score` and `symbols` when one of them has no score
    /// (a copy that passed through a node that predates them). Used to tell a node that
    /// reused a seq from an older relay's copy.
    ///
    /// The same holds for the per-recipient decisions (`recipients_released`,
    /// `recipients_deleted`): a node that predates them drops them when it relays the entry.
    pub fn agrees_with(&self, other: &IndexEntry) -> bool {
        if self.same_content(other) {
            return true;
        }
        let strip_score = self.score.is_none() || other.score.is_none();
        let strip_decisions = !self.has_decisions() || !other.has_decisions();
        self.stripped(strip_score, strip_decisions) == other.stripped(strip_score, strip_decisions)
    }

    /// The entry without `pending`, and without its score or its decisions when asked: what
    /// a node that predates them relays.
    fn stripped(&self, score: bool, decisions: bool) -> IndexEntry {
        let mut bare = IndexEntry {
            pending: None,
            ..self.clone()
        };
        if score {
            bare.score = None;
            bare.symbols = Symbols::default();
        }
        if decisions {
            bare.recipients_released.clear();
            bare.recipients_deleted.clear();
        }
        bare
    }

    /// Equal apart from the derived `pending` field.
    pub(super) fn same_content(&self, other: &IndexEntry) -> bool {
        let bare = |entry: &IndexEntry| IndexEntry {
            pending: None,
            ..entry.clone()
        };
        bare(self) == bare(other)
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// What a request asks the owner to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentAction {
    /// Relay the message on.
    Release,
    /// Delete the message.
    Delete,
}

impl IntentAction {
    /// The status the entry gets when the owner carries the action out.
    pub fn status(self) -> EntryStatus {
        match self {
            IntentAction::Release => EntryStatus::Released,
            IntentAction::Delete => EntryStatus::Deleted,
        }
    }
}

/// A release or delete request as shown on the entry it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAction {
    /// What is asked.
    pub action: IntentAction,
    /// The node that recorded the request.
    pub requested_by: String,
    /// The admin who asked.
    pub admin: String,
    /// When it was asked, in ms since the epoch.
    pub requested_ms: u64,
    /// Unique id of the request (a ULID string, chosen by the requester).
    pub request_id: String,
    /// The recipient it is for, by position in the entry's `recipients` (a digest link or
    /// the portal); `None` for the whole message (every undecided recipient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<u32>,
}

/// How the owner answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOutcome {
    /// The owner released the message.
    Released,
    /// The owner deleted the message.
    Deleted,
    /// The entry was already released: nothing done.
    AlreadyReleased,
    /// The entry was already deleted: nothing done.
    AlreadyDeleted,
    /// The entry had already expired: nothing done.
    AlreadyExpired,
    /// The owner has no such entry (never had, or purged): nothing done.
    NotFound,
    /// The entry had been handed to another node: nothing done here.
    AlreadyMoved,
    /// An outcome written by a newer version.
    #[serde(other)]
    Other,
}

impl IntentOutcome {
    /// The outcome of a request for an entry that is already in `status`.
    pub(super) fn already(status: EntryStatus) -> IntentOutcome {
        match status {
            EntryStatus::Quarantined => IntentOutcome::Other,
            EntryStatus::Released => IntentOutcome::AlreadyReleased,
            EntryStatus::Deleted => IntentOutcome::AlreadyDeleted,
            EntryStatus::Expired => IntentOutcome::AlreadyExpired,
            EntryStatus::Moved => IntentOutcome::AlreadyMoved,
        }
    }

    /// Human text, e.g. `already released`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentOutcome::Released => "released",
            IntentOutcome::Deleted => "deleted",
            IntentOutcome::AlreadyReleased => "already released",
            IntentOutcome::AlreadyDeleted => "already deleted",
            IntentOutcome::AlreadyExpired => "already expired",
            IntentOutcome::NotFound => "not found",
            IntentOutcome::AlreadyMoved => "already moved to another node",
            IntentOutcome::Other => "other",
        }
    }
}

impl fmt::Display for IntentOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The owner's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentDone {
    /// What happened.
    pub outcome: IntentOutcome,
    /// When, in ms since the epoch.
    pub done_ms: u64,
}

/// A release or delete request with its answer, merged from the requester's
/// [`IntentRecord`] and the owner's [`DoneRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique id of the request.
    pub request_id: String,
    /// The entry it is for.
    pub entry_id: String,
    /// The entry's owner, the only node that carries it out.
    pub owner: String,
    /// What is asked.
    pub action: IntentAction,
    /// The node that recorded it.
    pub requested_by: String,
    /// The admin who asked.
    pub admin: String,
    /// When it was asked, in ms since the epoch.
    pub requested_ms: u64,
    /// The owner's answer, once given.
    pub done: Option<IntentDone>,
    /// The recipient it is for, by position in the entry's `recipients`; `None` for the
    /// whole message. Carried in the record's `entry_id` ([`request_target`](super::request_target)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<u32>,
}

impl Intent {
    /// The request as shown on its entry.
    pub fn pending_action(&self) -> PendingAction {
        PendingAction {
            action: self.action,
            requested_by: self.requested_by.clone(),
            admin: self.admin.clone(),
            requested_ms: self.requested_ms,
            request_id: self.request_id.clone(),
            recipient: self.recipient,
        }
    }
}

/// A request as written in the requester's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// Unique id of the request.
    pub request_id: String,
    /// The entry it is for: its message id, followed by [`RECIPIENT_MARK`](super::RECIPIENT_MARK) and the
    /// recipient's position for a per-recipient request ([`request_target`](super::request_target)).
    pub entry_id: String,
    /// The entry's owner.
    pub owner: String,
    /// What is asked.
    pub action: IntentAction,
    /// The node that recorded it: the owner of the log that holds this record.
    pub requested_by: String,
    /// The admin who asked.
    pub admin: String,
    /// When it was asked, in ms since the epoch.
    pub requested_ms: u64,
    /// The requester's sequence number of this record.
    pub seq: u64,
}

/// An owner's answer to a request, as written in the owner's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneRecord {
    /// The request answered.
    pub request_id: String,
    /// What happened.
    pub outcome: IntentOutcome,
    /// When, in ms since the epoch.
    pub done_ms: u64,
    /// The owner's sequence number of this record.
    pub seq: u64,
}

/// The three kinds of item a log holds (and a [`PurgeMarker`] can replace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An [`IndexEntry`], keyed by message id.
    Entry,
    /// An [`IntentRecord`], keyed by request id.
    Intent,
    /// A [`DoneRecord`], keyed by request id.
    Done,
}

impl ItemKind {
    pub(super) fn index(self) -> usize {
        match self {
            ItemKind::Entry => 0,
            ItemKind::Intent => 1,
            ItemKind::Done => 2,
        }
    }
}

/// Records that the log's owner purged an item, so replicas drop their copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeMarker {
    /// The kind of item purged.
    pub kind: ItemKind,
    /// Its id (message id or request id).
    pub id: String,
    /// The owner's sequence number of the purge.
    pub seq: u64,
}
