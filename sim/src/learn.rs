//! The workload's Bayes operations and the final check of the learned corpus.
//!
//! Learns and forgets go through the admin API's routes (`POST /api/v1/learn/{spam|ham}`,
//! `DELETE /api/v1/learn/{digest}`) on random running nodes, during partitions too, with
//! messages generated from the run's seeded RNG ([`Message`]). After each operation the
//! node's own record of the message tells the model ([`crate::learned`]) whether a word was
//! written and with which stamp; the model decides what wins. After the heal,
//! [`check`] holds every node to the model.

use std::collections::BTreeMap;

use mxmesh_crdt::bayes::{Class, Digest, Record};
use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::learned::{self, Model, Word};
use crate::world::World;

/// Distinct messages the workload generates per run at most; later operations reuse them.
pub const LEARN_MESSAGES_MAX: usize = 48;
/// Words of a generated body at most.
const BODY_WORDS_MAX: usize = 40;
/// Words of a generated body at least.
const BODY_WORDS_MIN: usize = 8;
/// Words of a generated subject at most.
const SUBJECT_WORDS_MAX: usize = 4;
/// Syllables of the generated words: two make a word, the first drawn skewed towards the
/// start of the list, so a few hundred words with a few common ones, and messages share
/// tokens (counts above one) while differing.
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bar", "dor", "fen", "gil", "hap",
    "jus",
];
/// Sender domains of the generated messages.
const DOMAINS: [&str; 4] = ["alpha.test", "beta.test", "gamma.test", "delta.test"];
/// Mismatched messages a violation lists at most.
const SHOWN_MAX: usize = 3;

/// One generated message.
pub struct Message {
    /// `learn-007`: its Message-ID's local part, for reports.
    pub name: String,
    /// The raw message the API learns.
    pub raw: Vec<u8>,
    /// Its digest, as the node computes it.
    pub digest: Digest,
    /// Its tokens, as the node's tokenizer gives them.
    pub tokens: Vec<u64>,
}

/// What a learn operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A new message, learned as a random class on a random node.
    New,
    /// A known message learned on a node that has not written it (one cut off from a node
    /// that has, when there is one), as the class the model has it as.
    Again,
    /// A known message learned as the other class than the model's, on a random node.
    Relearn,
    /// A known message forgotten on a node other than the one whose learn wins.
    Forget,
}

/// The Bayes side of the workload: its messages, the model, and what it saw.
#[derive(Default)]
pub struct Book {
    /// The messages generated so far (index = the order they were made).
    pub messages: Vec<Message>,
    by_digest: BTreeMap<Digest, usize>,
    /// Every word the workload made the nodes write, by message.
    pub model: Model,
    /// Learn and forget operations made.
    pub ops: usize,
    /// Of them, on a node cut off from a node that had written the message.
    pub ops_across_cut: usize,
    /// Broken promises seen while operating (an answer or a stamp).
    pub violations: Vec<String>,
}

/// The learned corpus after the run, as the model and the first node agree on it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Learn and forget operations made.
    pub ops: usize,
    /// Of them, on a node cut off from a node that had written the message.
    pub ops_across_cut: usize,
    /// Distinct messages the workload generated.
    pub messages: usize,
    /// Messages learned as spam in the end (recounted from the first running node's set).
    pub spam: u32,
    /// Messages learned as ham in the end (recounted likewise).
    pub ham: u32,
    /// Distinct tokens of the learned messages (recounted likewise).
    pub tokens: usize,
}

/// One learn or forget on a random running node: (node, "learn" or "forget").
pub async fn step(
    world: &World,
    rng: &mut StdRng,
    book: &mut Book,
) -> Option<(usize, &'static str)> {
    let up = world.up();
    if up.is_empty() {
        return None;
    }
    let op = pick_op(rng, book.messages.len());
    let m = match op {
        Op::New => book.generate(rng),
        _ => rng.random_range(0..book.messages.len()),
    };
    let digest = book.messages[m].digest;
    let node = pick_node(world, rng, book, op, &digest, &up);
    if cut_from_a_writer(world, &book.model, &digest, node) {
        book.ops_across_cut += 1;
    }
    book.ops += 1;
    let modelled = book.model.class_of(&digest);
    let class = match (op, modelled) {
        (Op::Forget, _) => None,
        (Op::Again, Some(c)) => Some(c),
        (Op::Relearn, Some(c)) => Some(other(c)),
        _ => Some(random_class(rng)),
    };
    match class {
        Some(class) => learn(world, node, book, m, class).await,
        None => forget(world, node, book, m).await,
    }
    Some((node, if class.is_some() { "learn" } else { "forget" }))
}

fn pick_op(rng: &mut StdRng, known: usize) -> Op {
    let roll = rng.random_range(0..100);
    match roll {
        _ if known == 0 => Op::New,
        0..45 if known < LEARN_MESSAGES_MAX => Op::New,
        0..65 => Op::Again,
        65..85 => Op::Relearn,
        _ => Op::Forget,
    }
}

/// The node an operation runs on (see [`Op`]).
fn pick_node(
    world: &World,
    rng: &mut StdRng,
    book: &Book,
    op: Op,
    digest: &Digest,
    up: &[usize],
) -> usize {
    let id = |i: &usize| world.nodes[*i].id.as_str();
    let writers: Vec<&str> = book.model.writers(digest).collect();
    let candidates: Vec<usize> = match op {
        Op::New | Op::Relearn => up.to_vec(),
        Op::Again => {
            let fresh: Vec<usize> = up
                .iter()
                .copied()
                .filter(|i| !writers.contains(&id(i)))
                .collect();
            let cut: Vec<usize> = fresh
                .iter()
                .copied()
                .filter(|i| cut_from_a_writer(world, &book.model, digest, *i))
                .collect();
            if cut.is_empty() { fresh } else { cut }
        }
        Op::Forget => {
            let learner = book.model.winner(digest).map(|(node, _)| node);
            let others = up.iter().copied().filter(|i| Some(id(i)) != learner);
            others.collect()
        }
    };
    let from = if candidates.is_empty() {
        up
    } else {
        &candidates
    };
    from[rng.random_range(0..from.len())]
}

/// Whether running node `node` is cut off from a running node that wrote on `digest`.
fn cut_from_a_writer(world: &World, model: &Model, digest: &Digest, node: usize) -> bool {
    let to = world.nodes[node].mesh_addr;
    model.writers(digest).any(|writer| {
        world
            .nodes
            .iter()
            .position(|n| n.id == writer)
            .is_some_and(|w| {
                world.handle(w).is_some() && !world.net.reachable(world.nodes[w].mesh_addr, to)
            })
    })
}

fn other(class: Class) -> Class {
    match class {
        Class::Spam => Class::Ham,
        Class::Ham => Class::Spam,
    }
}

fn random_class(rng: &mut StdRng) -> Class {
    if rng.random_bool(0.5) {
        Class::Spam
    } else {
        Class::Ham
    }
}

impl Book {
    /// Generates the next message from `rng`; its index.
    fn generate(&mut self, rng: &mut StdRng) -> usize {
        let n = self.messages.len();
        let name = format!("learn-{n:03}");
        let words = |rng: &mut StdRng, count: usize| -> String {
            let w: Vec<String> = (0..count).map(|_| word(rng)).collect();
            w.join(" ")
        };
        let sender = format!("{} {}", capitalised(&word(rng)), capitalised(&word(rng)));
        let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
        let subject_words = rng.random_range(1..=SUBJECT_WORDS_MAX);
        let subject = words(rng, subject_words);
        let body_words = rng.random_range(BODY_WORDS_MIN..=BODY_WORDS_MAX);
        let body = words(rng, body_words);
        let raw = format!(
            "From: {sender} <s{n}@{domain}>\r\nTo: user@example.com\r\nSubject: {subject}\r\n\
             Message-ID: <{name}@sim.test>\r\n\r\n{body}\r\n"
        )
        .into_bytes();
        let digest = Digest(mxmesh_node::bayes::digest(&raw));
        let tokens = mxmesh_node::bayes::tokenize(&raw);
        self.by_digest.insert(digest, n);
        self.messages.push(Message {
            name,
            raw,
            digest,
            tokens,
        });
        n
    }

    /// The name of the message with `digest` (its hex digits if unknown).
    fn name(&self, digest: &Digest) -> String {
        match self.by_digest.get(digest) {
            Some(m) => self.messages[*m].name.clone(),
            None => digest.to_hex(),
        }
    }

    /// The tokens of the message with `digest` (none if unknown).
    fn tokens(&self, digest: &Digest) -> &[u64] {
        self.by_digest
            .get(digest)
            .map_or(&[], |m| &self.messages[*m].tokens)
    }

    /// Notes a record `node` wrote, after checking its stamp: not before the node's clock
    /// read `now_ms`, and later than the winner the node held before (`held_ms`).
    fn wrote(&mut self, world: &World, node: usize, record: Record, now_ms: u64, held_ms: u64) {
        let id = &world.nodes[node].id;
        let name = self.name(&record.digest);
        if record.stamp_ms < now_ms || (held_ms > 0 && record.stamp_ms <= held_ms) {
            self.violations.push(format!(
                "{id}: its record of {name} is stamped {}, not at or after its clock ({now_ms}) \
                 and after the record it held ({held_ms})",
                record.stamp_ms
            ));
        }
        let word = Word {
            stamp_ms: record.stamp_ms,
            class: record.op.class(),
            at_risk: false,
        };
        self.model.write(id, record.digest, word);
    }
}

/// A generated word: two syllables, the first skewed towards the common ones.
fn word(rng: &mut StdRng) -> String {
    let first = rng
        .random_range(0..SYLLABLES.len())
        .min(rng.random_range(0..SYLLABLES.len()));
    let second = rng.random_range(0..SYLLABLES.len());
    format!("{}{}", SYLLABLES[first], SYLLABLES[second])
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// Node `node`'s own record of `digest`, if it holds one.
fn own_record(world: &World, node: usize, digest: &Digest) -> Option<Record> {
    let id = &world.nodes[node].id;
    let h = world.handle(node)?;
    h.bayes
        .read(|c| c.records().find(|r| r.owner == *id && r.digest == *digest))
}

/// The stamp of the winning record of `digest` node `node` holds (0 if none).
fn held_ms(world: &World, node: usize, digest: &Digest) -> u64 {
    world.handle(node).map_or(0, |h| {
        h.bayes
            .read(|c| c.winner_of(digest).map_or(0, |r| r.stamp_ms))
    })
}

async fn learn(world: &World, node: usize, book: &mut Book, m: usize, class: Class) {
    let digest = book.messages[m].digest;
    let (before, held, now_ms) = (
        own_record(world, node, &digest),
        held_ms(world, node, &digest),
        world.nodes[node].clock.now_ms(),
    );
    let path = format!("/api/v1/learn/{class}");
    let raw = book.messages[m].raw.clone();
    let (status, answer) = world.api_raw(node, "POST", &path, raw).await;
    let after = own_record(world, node, &digest);
    let wrote = after.is_some() && after != before;
    if status == 200 && answer["learned"].as_bool() != Some(wrote) {
        book.violations.push(format!(
            "{}: learn of {} as {class} answered {answer}, but it {} a record",
            world.nodes[node].id,
            book.messages[m].name,
            if wrote { "wrote" } else { "wrote no" }
        ));
    }
    if let Some(record) = after.filter(|_| wrote) {
        book.wrote(world, node, record, now_ms, held);
    }
}

async fn forget(world: &World, node: usize, book: &mut Book, m: usize) {
    let digest = book.messages[m].digest;
    let (before, held, now_ms) = (
        own_record(world, node, &digest),
        held_ms(world, node, &digest),
        world.nodes[node].clock.now_ms(),
    );
    let path = format!("/api/v1/learn/{}", digest.to_hex());
    world.api(node, "DELETE", &path, None).await;
    let after = own_record(world, node, &digest);
    if let Some(record) = after.filter(|r| before.as_ref() != Some(r)) {
        book.wrote(world, node, record, now_ms, held);
    }
}

/// A running node's classifier state, as the check compares it.
struct View {
    id: String,
    fingerprint: String,
    /// The class of every message the model knows, as this node has it.
    classes: BTreeMap<Digest, Option<Class>>,
}

/// The final check, once the mesh has healed and settled: every running node's corpus
/// passes its own audit, has the same fingerprint as the first node's, gives each message
/// an outcome the model allows, and has exactly the counts of a recount of its learned set
/// (messages per class, and per token). Returns the summary of the first node's corpus.
pub fn check(world: &World, book: &Book, violations: &mut Vec<String>) -> Summary {
    violations.extend(book.violations.iter().cloned());
    let mut first: Option<View> = None;
    let mut summary = Summary {
        ops: book.ops,
        ops_across_cut: book.ops_across_cut,
        messages: book.messages.len(),
        ..Summary::default()
    };
    for i in world.up() {
        let Some(h) = world.handle(i) else { continue };
        let id = world.nodes[i].id.clone();
        if let Err(e) = h.bayes.audit() {
            violations.push(format!(
                "{id}: the Bayes corpus's counts fail its own audit: {e}"
            ));
        }
        let classes = book
            .model
            .digests()
            .map(|d| (*d, h.bayes.read(|c| c.class_of(d))))
            .collect();
        let view = View {
            id,
            fingerprint: h.bayes.fingerprint(),
            classes,
        };
        let set = against_model(&view, book, violations);
        let recount = learned::recount(&set, |d| book.tokens(d));
        against_recount(h, &view.id, &recount, violations);
        match &first {
            None => {
                summary.spam = recount.learned.spam;
                summary.ham = recount.learned.ham;
                summary.tokens = recount.tokens.len();
                first = Some(view);
            }
            Some(reference) => against_first(&view, reference, book, violations),
        }
    }
    summary
}

/// Checks each message's class against the model's allowed outcomes; the learned set to
/// recount (where a class is not allowed, the model's own winner).
fn against_model(
    view: &View,
    book: &Book,
    violations: &mut Vec<String>,
) -> BTreeMap<Digest, Class> {
    let mut set = BTreeMap::new();
    let mut wrong = Vec::new();
    for (digest, class) in &view.classes {
        let allowed = book.model.allowed(digest);
        let expected = if allowed.contains(class) {
            *class
        } else {
            wrong.push(format!(
                "{} is {}, the model allows {} ({})",
                book.name(digest),
                shown(*class),
                allowed
                    .iter()
                    .map(|c| shown(*c))
                    .collect::<Vec<_>>()
                    .join(" or "),
                book.model.describe(digest)
            ));
            book.model.class_of(digest)
        };
        if let Some(class) = expected {
            set.insert(*digest, class);
        }
    }
    if !wrong.is_empty() {
        violations.push(format!(
            "{}: {} learned messages differ from the model: {}",
            view.id,
            wrong.len(),
            wrong[..wrong.len().min(SHOWN_MAX)].join("; ")
        ));
    }
    set
}

fn shown(class: Option<Class>) -> &'static str {
    class.map_or("not learned", Class::as_str)
}

/// Checks a node's counts against the recount of its learned set.
fn against_recount(
    h: &mxmesh_node::node::NodeHandle,
    id: &str,
    recount: &learned::Recount,
    violations: &mut Vec<String>,
) {
    let (learned, tokens, differing) = h.bayes.read(|c| {
        let differing: Vec<(u64, _, _)> = recount
            .tokens
            .iter()
            .filter(|(t, want)| c.counts(**t) != **want)
            .map(|(t, want)| (*t, c.counts(*t), *want))
            .collect();
        (c.learned(), c.tokens(), differing)
    });
    let want = recount.learned;
    let mut what = Vec::new();
    if learned != want {
        what.push(format!(
            "learned spam {} ham {}, the recount spam {} ham {}",
            learned.spam, learned.ham, want.spam, want.ham
        ));
    }
    if tokens != recount.tokens.len() {
        what.push(format!(
            "{tokens} tokens counted, the recount {}",
            recount.tokens.len()
        ));
    }
    if let Some((token, got, want)) = differing.first() {
        what.push(format!(
            "{} token counts differ (first: {token:#018x} spam {} ham {}, the recount spam {} ham {})",
            differing.len(),
            got.spam,
            got.ham,
            want.spam,
            want.ham
        ));
    }
    if !what.is_empty() {
        violations.push(format!(
            "{id}: the Bayes counts differ from a recount of the {} learned messages: {}",
            want.spam + want.ham,
            what.join("; ")
        ));
    }
}

/// Checks a node's fingerprint against the first node's; names what differs.
fn against_first(view: &View, first: &View, book: &Book, violations: &mut Vec<String>) {
    if view.fingerprint == first.fingerprint {
        return;
    }
    let differing: Vec<String> = view
        .classes
        .iter()
        .filter(|(d, c)| first.classes.get(*d) != Some(*c))
        .map(|(d, c)| {
            let theirs = first.classes.get(d).copied().flatten();
            format!("{} {} vs {}", book.name(d), shown(*c), shown(theirs))
        })
        .collect();
    violations.push(format!(
        "{}: the Bayes corpus differs from {}'s (fingerprint {} vs {}); {} messages classed \
         differently{}{}",
        view.id,
        first.id,
        &view.fingerprint[..view.fingerprint.len().min(12)],
        &first.fingerprint[..first.fingerprint.len().min(12)],
        differing.len(),
        if differing.is_empty() { "" } else { ": " },
        differing[..differing.len().min(SHOWN_MAX)].join(", ")
    ));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use rand::SeedableRng;

    use super::*;
    use crate::world::mesh_addr;

    fn generated(seed: u64, count: usize) -> Book {
        let mut book = Book::default();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..count {
            book.generate(&mut rng);
        }
        book
    }

    #[test]
    fn generated_messages_follow_the_seed_differ_and_share_tokens() {
        let (a, b) = (generated(4, 12), generated(4, 12));
        let raw = |book: &Book| {
            book.messages
                .iter()
                .map(|m| m.raw.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(raw(&a), raw(&b));
        assert_ne!(raw(&a), raw(&generated(5, 12)));
        let digests: BTreeSet<Digest> = a.messages.iter().map(|m| m.digest).collect();
        assert_eq!(digests.len(), 12);
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        for m in &a.messages {
            assert!(m.tokens.len() >= BODY_WORDS_MIN / 2, "{}", m.name);
            assert!(m.raw.len() < 1024, "{}", m.name);
            for t in &m.tokens {
                *seen.entry(*t).or_default() += 1;
            }
        }
        let shared = seen.values().filter(|n| **n >= 3).count();
        assert!(shared >= 5, "{shared} tokens in three messages or more");
    }

    /// One message learned as spam on one side of a cut and as ham on the other, one learned
    /// alike on both sides, one relearned and then forgotten by a node cut off from its
    /// learner: while cut, the check names the node that differs; after the heal every node
    /// holds what the model says.
    #[test]
    fn learns_on_both_sides_of_a_cut_end_as_the_model_says() {
        mxmesh_node::install_crypto_provider();
        mxmesh_node::rt::set_simulated(true);
        let rt = crate::sweep::paused_runtime().unwrap();
        rt.block_on(async {
            let world = World::start(3).await.unwrap();
            assert!(crate::run::formed(&world).await, "the mesh did not form");
            let mut book = Book::default();
            let mut rng = StdRng::seed_from_u64(1);
            let [a, b, c] = [0; 3].map(|_| book.generate(&mut rng));
            world.net.cut(mesh_addr(1), mesh_addr(3));
            world.net.cut(mesh_addr(2), mesh_addr(3));
            learn(&world, 0, &mut book, a, Class::Spam).await;
            learn(&world, 2, &mut book, a, Class::Ham).await;
            learn(&world, 0, &mut book, b, Class::Ham).await;
            learn(&world, 2, &mut book, b, Class::Ham).await;
            learn(&world, 1, &mut book, c, Class::Spam).await;
            learn(&world, 1, &mut book, c, Class::Ham).await;
            forget(&world, 2, &mut book, c).await;
            let writers = |m: usize| book.model.writers(&book.messages[m].digest).count();
            assert_eq!([writers(a), writers(b), writers(c)], [2, 2, 2]);

            let mut cut = Vec::new();
            check(&world, &book, &mut cut);
            assert!(
                cut.iter()
                    .any(|v| v.starts_with("mx3: the Bayes corpus differs from mx1's")),
                "{cut:#?}"
            );

            world.net.heal_all();
            let settled = crate::run::converge(&world, Duration::from_secs(30)).await;
            assert!(settled.is_some(), "the corpora did not converge");
            let mut healed = Vec::new();
            let summary = check(&world, &book, &mut healed);
            assert_eq!(healed, Vec::<String>::new());
            let learned = [a, b, c]
                .iter()
                .filter(|m| book.model.class_of(&book.messages[**m].digest).is_some())
                .count();
            assert_eq!((summary.spam + summary.ham) as usize, learned);
            assert_eq!(
                book.model.class_of(&book.messages[b].digest),
                Some(Class::Ham)
            );
            assert!(summary.tokens > 0);
            world.shutdown().await;
        });
    }
}
