//! The model of the learned Bayes corpus, pure: what the replicated corpus promises
//! (`crdt/src/bayes.rs`, "The winner of a digest, and the counts"), written down without
//! its data structures, so the final check compares every node against the contract rather
//! than against a second run of the implementation.
//!
//! - Each node's **word** on a message (learn as spam, learn as ham, forget) replaces its
//!   earlier word on that message: a node holds at most one record per digest.
//! - Of the words on one message, the one with the greatest `(stamp, node id)` wins (ids
//!   compared as byte strings). The stamps come from the records the nodes wrote: a stamp is
//!   the node's hybrid clock at the time, which depends on what it had heard, and the model
//!   does not re-derive it.
//! - The **learned set** is the messages whose winning word is a learn, with that class. The
//!   classifier's counts are a function of the learned set alone ([`recount`]): per class,
//!   its messages; per token, the learned messages of each class that contain it (once per
//!   message, however often it occurs).
//!
//! A wiped store loses the words its node wrote before the wipe, unless a peer held them and
//! gives them back: those words are **at risk**. A message's allowed outcomes are then the
//! winner of its safe words and every at-risk word that would beat it ([`Model::allowed`]).

use std::collections::{BTreeMap, BTreeSet};

use mxmesh_crdt::bayes::{Class, ClassCounts, Digest};

/// One node's latest word on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    /// The stamp of the record the node wrote, in ms.
    pub stamp_ms: u64,
    /// The class it learned the message as; `None` for a forget.
    pub class: Option<Class>,
    /// Written before the node's store was wiped: it may have vanished with the disk.
    pub at_risk: bool,
}

/// Every word the workload made the nodes write, by message.
#[derive(Debug, Default)]
pub struct Model {
    /// digest → node id → that node's latest word on it.
    words: BTreeMap<Digest, BTreeMap<String, Word>>,
}

impl Model {
    /// Records that `node` wrote `word` on message `digest` (replacing its earlier word).
    pub fn write(&mut self, node: &str, digest: Digest, word: Word) {
        self.words
            .entry(digest)
            .or_default()
            .insert(node.to_string(), word);
    }

    /// `node`'s store was wiped: every word it wrote so far is at risk.
    pub fn wiped(&mut self, node: &str) {
        for words in self.words.values_mut() {
            if let Some(word) = words.get_mut(node) {
                word.at_risk = true;
            }
        }
    }

    /// Every message some node wrote a word on, in digest order.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.words.keys()
    }

    /// The nodes that wrote a word on `digest`.
    pub fn writers(&self, digest: &Digest) -> impl Iterator<Item = &str> {
        self.words
            .get(digest)
            .into_iter()
            .flat_map(|words| words.keys().map(String::as_str))
    }

    /// The winning word on `digest` among all words, at risk or not: (node, word).
    pub fn winner(&self, digest: &Digest) -> Option<(&str, &Word)> {
        best(self.words.get(digest)?.iter().map(|(n, w)| (n.as_str(), w)))
    }

    /// The class `digest` is learned as if no word was lost; `None` when not learned.
    pub fn class_of(&self, digest: &Digest) -> Option<Class> {
        self.winner(digest).and_then(|(_, word)| word.class)
    }

    /// Every outcome the contract allows for `digest` (its class, `None` for not learned):
    /// the winner of the safe words, and each at-risk word that would beat it.
    pub fn allowed(&self, digest: &Digest) -> BTreeSet<Option<Class>> {
        let Some(words) = self.words.get(digest) else {
            return BTreeSet::from([None]);
        };
        let all = || words.iter().map(|(n, w)| (n.as_str(), w));
        let safe = best(all().filter(|(_, w)| !w.at_risk));
        let floor = safe.map(|(n, w)| (w.stamp_ms, n));
        let mut allowed = BTreeSet::from([safe.and_then(|(_, w)| w.class)]);
        for (node, word) in all().filter(|(_, w)| w.at_risk) {
            if floor.is_none_or(|f| (word.stamp_ms, node) > f) {
                allowed.insert(word.class);
            }
        }
        allowed
    }

    /// Each word on `digest`, readable (`mx2 spam @1767225601234 (at risk)`), for messages.
    pub fn describe(&self, digest: &Digest) -> String {
        let Some(words) = self.words.get(digest) else {
            return "no words".into();
        };
        let each = words.iter().map(|(node, w)| {
            let what = w.class.map_or("forget", Class::as_str);
            let risk = if w.at_risk { " (at risk)" } else { "" };
            format!("{node} {what} @{}{risk}", w.stamp_ms)
        });
        each.collect::<Vec<_>>().join(", ")
    }
}

/// The word with the greatest `(stamp, node id)`.
fn best<'a>(words: impl Iterator<Item = (&'a str, &'a Word)>) -> Option<(&'a str, &'a Word)> {
    words.max_by(|(a, x), (b, y)| (x.stamp_ms, a).cmp(&(y.stamp_ms, b)))
}

/// The classifier's counts for a learned set, as one node that learned exactly these
/// messages would have them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recount {
    /// Messages per class.
    pub learned: ClassCounts,
    /// Per token, the learned messages of each class that contain it (no zero entries).
    pub tokens: BTreeMap<u64, ClassCounts>,
}

/// Counts `set` (digest → class), with each message's tokens from `tokens_of`.
pub fn recount<'a>(
    set: &BTreeMap<Digest, Class>,
    tokens_of: impl Fn(&Digest) -> &'a [u64],
) -> Recount {
    let mut out = Recount::default();
    for (digest, class) in set {
        bump(&mut out.learned, *class);
        let distinct: BTreeSet<u64> = tokens_of(digest).iter().copied().collect();
        for token in distinct {
            bump(out.tokens.entry(token).or_default(), *class);
        }
    }
    out
}

fn bump(counts: &mut ClassCounts, class: Class) {
    match class {
        Class::Spam => counts.spam += 1,
        Class::Ham => counts.ham += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest([n; 32])
    }

    fn w(stamp_ms: u64, class: Option<Class>) -> Word {
        Word {
            stamp_ms,
            class,
            at_risk: false,
        }
    }

    #[test]
    fn the_greatest_stamp_wins_and_equal_stamps_go_to_the_greater_id() {
        let mut m = Model::default();
        m.write("mx1", d(1), w(10, Some(Class::Spam)));
        m.write("mx2", d(1), w(9, Some(Class::Ham)));
        assert_eq!(m.class_of(&d(1)), Some(Class::Spam));
        m.write("mx2", d(1), w(10, Some(Class::Ham)));
        assert_eq!(m.winner(&d(1)).map(|(n, _)| n), Some("mx2"));
        assert_eq!(m.class_of(&d(1)), Some(Class::Ham));
        // "mx10" < "mx2" as byte strings.
        m.write("mx10", d(1), w(10, None));
        assert_eq!(m.winner(&d(1)).map(|(n, _)| n), Some("mx2"));
    }

    #[test]
    fn a_later_forget_wins_and_a_later_learn_brings_the_message_back() {
        let mut m = Model::default();
        m.write("mx1", d(1), w(10, Some(Class::Spam)));
        m.write("mx3", d(1), w(11, None));
        assert_eq!(m.class_of(&d(1)), None);
        m.write("mx1", d(1), w(12, Some(Class::Ham)));
        assert_eq!(m.class_of(&d(1)), Some(Class::Ham));
        assert_eq!(m.writers(&d(1)).collect::<Vec<_>>(), ["mx1", "mx3"]);
    }

    #[test]
    fn a_node_s_new_word_replaces_its_old_one() {
        let mut m = Model::default();
        m.write("mx1", d(1), w(20, Some(Class::Spam)));
        m.write("mx2", d(1), w(15, Some(Class::Ham)));
        // mx1's clock stepped back: its new word is stamped lower, and replaces the old.
        m.write("mx1", d(1), w(12, None));
        assert_eq!(m.class_of(&d(1)), Some(Class::Ham));
    }

    #[test]
    fn at_risk_words_widen_the_allowed_outcomes_only_where_they_would_win() {
        let mut m = Model::default();
        m.write("mx1", d(1), w(10, Some(Class::Spam)));
        m.write("mx2", d(1), w(20, Some(Class::Ham)));
        m.write("mx3", d(1), w(5, None));
        m.wiped("mx2");
        m.wiped("mx3");
        let allowed = m.allowed(&d(1));
        assert_eq!(
            allowed,
            BTreeSet::from([Some(Class::Spam), Some(Class::Ham)])
        );
        assert_eq!(m.allowed(&d(9)), BTreeSet::from([None]));
        // A word of mx2's new life is safe again.
        m.write("mx2", d(1), w(30, None));
        assert_eq!(m.allowed(&d(1)), BTreeSet::from([None]));
        assert!(m.describe(&d(1)).contains("mx3 forget @5 (at risk)"));
    }

    #[test]
    fn the_recount_counts_each_message_once_and_each_token_once_per_message() {
        let set = BTreeMap::from([(d(1), Class::Spam), (d(2), Class::Spam), (d(3), Class::Ham)]);
        let tokens = BTreeMap::from([(d(1), vec![7, 7, 8]), (d(2), vec![7]), (d(3), vec![8, 9])]);
        let r = recount(&set, |digest| tokens[digest].as_slice());
        assert_eq!((r.learned.spam, r.learned.ham), (2, 1));
        let c = |t: u64| (r.tokens[&t].spam, r.tokens[&t].ham);
        assert_eq!((c(7), c(8), c(9)), ((2, 0), (1, 1), (0, 1)));
        assert_eq!(r.tokens.len(), 3);
    }
}
