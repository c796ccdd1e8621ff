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

    /// Whether any recipient was decided on its own.
    pub fn has_decisions(&self) -> bool {
        !self.recipients_released.is_empty() || !self.recipients_deleted.is_empty()
    }

    /// The join of two versions of this entry under the same seq that
    /// [agree](Self::agrees_with): each part an older relay may have dropped (score and
    /// symbols; the per-recipient decisions) taken from whichever version has it. `None`
    /// when `other` adds nothing to `self`. Commutative, associative and idempotent on
    /// agreeing versions, so replicas converge on the fullest version whatever reached
    /// them first.
    pub fn joined_with(&self, other: &IndexEntry) -> Option<IndexEntry> {
        let mut joined = IndexEntry {
            pending: None,
            ..self.clone()
        };
        let mut changed = false;
        if joined.score.is_none() && other.score.is_some() {
            joined.score = other.score;
            joined.symbols = other.symbols.clone();
            changed = true;
        }
        if !joined.has_decisions() && other.has_decisions() {
            joined.recipients_released = other.recipients_released.clone();
            joined.recipients_deleted = other.recipients_deleted.clone();
            changed = true;
        }
        changed.then_some(joined)
    }

    /// How recipient `rcpt` (case-insensitive) was decided: `None` while it is undecided
    /// (the entry is quarantined and no decision names it) or not a recipient at all.
    pub fn decision_for(&self, rcpt: &str) -> Option<EntryStatus> {
        let is = |r: &String| r.eq_ignore_ascii_case(rcpt);
        if !self.recipients.iter().any(is) {
            return None;
        }
        if self.recipients_released.iter().any(is) {
            return Some(EntryStatus::Released);
        }
        if self.recipients_deleted.iter().any(is) {
            return Some(EntryStatus::Deleted);
        }
        // Otherwise the status speaks for the recipient: the whole message was decided (or
        // expired, or moved) at once.
        Some(self.status).filter(|status| status.is_terminal())
    }

    /// Whether the message is still held for recipient `rcpt` (case-insensitive): the
    /// entry is quarantined, `rcpt` is one of its recipients and undecided.
    pub fn held_for(&self, rcpt: &str) -> bool {
        self.status == EntryStatus::Quarantined
            && self.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt))
            && self.decision_for(rcpt).is_none()
    }

    /// The recipients nobody decided for yet, in order (every recipient of an entry without
    /// decisions; none once the entry is terminal).
    pub fn undecided(&self) -> Vec<String> {
        if self.status.is_terminal() {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for r in &self.recipients {
            if self.decision_for(r).is_none() && !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
                out.push(r.clone());
            }
        }
        out
    }

    /// Carries out `action` for recipient `rcpt` (`None`: every undecided recipient) on a
    /// quarantined entry at `now_ms`: the recipient is recorded as released or deleted and,
    /// once nobody is left undecided, the entry becomes terminal (`released` if any
    /// recipient was released, else `deleted`). A whole-message action on an entry without
    /// decisions only sets the status (as before per-recipient decisions existed). Returns
    /// the recipients acted for (the relay's recipients for a release), or the refusal.
    pub fn decide(
        &mut self,
        rcpt: Option<&str>,
        action: IntentAction,
        now_ms: u64,
    ) -> Result<Vec<String>, Decided> {
        if self.status.is_terminal() {
            return Err(Decided::Entry(self.status));
        }
        let undecided = self.undecided();
        let targets: Vec<String> = match rcpt {
            None => undecided.clone(),
            Some(rcpt) => {
                if !self.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                    return Err(Decided::NotRecipient);
                }
                if let Some(how) = self.decision_for(rcpt) {
                    return Err(Decided::Recipient(how));
                }
                // Every spelling of the address on the entry is the same mailbox.
                let same = |r: &&String| r.eq_ignore_ascii_case(rcpt);
                let first = self.recipients.iter().find(same).cloned();
                first.into_iter().collect()
            }
        };
        let whole = targets.len() == undecided.len();
        if !(whole && !self.has_decisions() && rcpt.is_none()) {
            let list = match action {
                IntentAction::Release => &mut self.recipients_released,
                IntentAction::Delete => &mut self.recipients_deleted,
            };
            list.extend(targets.iter().cloned());
        }
        if whole {
            self.status = if !self.has_decisions() {
                action.status()
            } else if self.recipients_released.is_empty() {
                EntryStatus::Deleted
            } else {
                EntryStatus::Released
            };
            self.status_ms = now_ms;
        }
        Ok(targets)
    }

    /// Adds the decisions of `other` (another version of this message: a held copy, the
    /// index's view) that this one lacks; a recipient released anywhere counts as released.
    /// Returns whether anything was added.
    pub fn absorb_decisions(&mut self, other: &IndexEntry) -> bool {
        let mut changed = false;
        for r in &other.recipients_released {
            if !self
                .recipients_released
                .iter()
                .any(|m| m.eq_ignore_ascii_case(r))
            {
                self.recipients_deleted
                    .retain(|m| !m.eq_ignore_ascii_case(r));
                self.recipients_released.push(r.clone());
                changed = true;
            }
        }
        for r in &other.recipients_deleted {
            let known = |m: &String| m.eq_ignore_ascii_case(r);
            if !self.recipients_released.iter().any(known)
                && !self.recipients_deleted.iter().any(known)
            {
                self.recipients_deleted.push(r.clone());
                changed = true;
            }
        }
        changed
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

/// Why [`IndexEntry::decide`] did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// The entry is no longer quarantined (its status).
    Entry(EntryStatus),
    /// The recipient was already decided (released or deleted for it).
    Recipient(EntryStatus),
    /// The address is not a recipient of the message.
    NotRecipient,
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
    /// whole message. Carried in the record's `entry_id` ([`request_target`]).
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

/// Marks a per-recipient request in an [`IntentRecord`]'s `entry_id`:
/// `{message id}#rcpt{position}`.
///
/// Why there: a node of a release before per-recipient requests decodes records with
/// unknown fields dropped, and relays what it decoded. A separate field would reach an
/// old owner (or a new owner through an old relay) as a whole-message request. An old
/// owner instead looks `{id}#rcpt{n}` up, finds no such entry and answers `not found`,
/// changing nothing; every node relays the field as it is.
pub const RECIPIENT_MARK: &str = "#rcpt";

/// The `entry_id` an [`IntentRecord`] carries for a request about message `entry_id`,
/// for the recipient at position `recipient` or the whole message.
pub fn request_target(entry_id: &str, recipient: Option<u32>) -> String {
    match recipient {
        Some(n) => format!("{entry_id}{RECIPIENT_MARK}{n}"),
        None => entry_id.to_string(),
    }
}

/// The message id and recipient position a record's `entry_id` names (the inverse of
/// [`request_target`]); an id without a well-formed mark is a whole-message request.
pub fn parse_target(target: &str) -> (&str, Option<u32>) {
    if let Some((id, n)) = target.rsplit_once(RECIPIENT_MARK)
        && !id.is_empty()
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = n.parse::<u32>()
    {
        return (id, Some(n));
    }
    (target, None)
}

/// A request as written in the requester's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// Unique id of the request.
    pub request_id: String,
    /// The entry it is for: its message id, followed by [`RECIPIENT_MARK`] and the
    /// recipient's position for a per-recipient request ([`request_target`]).
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
