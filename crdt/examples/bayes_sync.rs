//! Measures the Bayes corpus: learning, sync by deltas (bytes on the wire per learned
//! message, as JSON), applying, token lookups, and that a message learned on two replicas
//! counts once. Prints figures; asserts nothing about time.
//!
//! `cargo run -p mxmesh-crdt --release --example bayes_sync [MESSAGES] [TOKENS_PER_MESSAGE]`

use std::collections::BTreeMap;
use std::time::Instant;

use mxmesh_crdt::bayes::{BayesCorpus, Class, DELTA_RECORDS_MAX, Digest};

/// Distinct tokens the synthetic messages draw from.
const VOCABULARY: u64 = 200_000;

/// A deterministic pseudo-random sequence (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Message `n`: its digest, class and tokens (skewed towards common tokens, hashed).
fn message(n: u64, tokens_each: usize) -> (Digest, Class, Vec<u64>) {
    let mut mix = Mix(n);
    let mut digest = [0u8; 32];
    for chunk in digest.chunks_mut(8) {
        chunk.copy_from_slice(&mix.next().to_le_bytes());
    }
    let class = if n.is_multiple_of(2) {
        Class::Spam
    } else {
        Class::Ham
    };
    let tokens = (0..tokens_each)
        .map(|_| {
            let a = mix.next() % VOCABULARY;
            let b = mix.next() % VOCABULARY;
            let rank = a.min(b);
            Mix(rank).next()
        })
        .collect();
    (Digest(digest), class, tokens)
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let messages = arg(1, 10_000) as u64;
    let tokens_each = arg(2, 500);
    let inputs: Vec<_> = (0..messages).map(|n| message(n, tokens_each)).collect();

    let mut a = BayesCorpus::new();
    let start = Instant::now();
    for (n, (digest, class, tokens)) in inputs.iter().enumerate() {
        a.learn("n1", *digest, *class, tokens, 1_000 + n as u64)
            .expect("learn");
    }
    let learn_s = start.elapsed().as_secs_f64();
    println!(
        "learn: {messages} messages x {tokens_each} tokens on n1: {:.1} us/message; {} distinct tokens",
        learn_s * 1e6 / messages as f64,
        a.tokens()
    );

    // n2 learned the same messages during a partition: they must count once after sync.
    let mut b = BayesCorpus::new();
    for (n, (digest, class, tokens)) in inputs.iter().enumerate() {
        b.learn("n2", *digest, *class, tokens, 1_000 + n as u64)
            .expect("learn");
    }
    let (mut bytes, mut deltas, mut apply_s) = (0usize, 0usize, 0f64);
    let mut c = BayesCorpus::new();
    for target in [&mut b, &mut c] {
        loop {
            let delta = a.delta_since(&target.version_vector(), DELTA_RECORDS_MAX);
            if delta.record_count() == 0 {
                break;
            }
            let json = serde_json::to_vec(&delta).expect("serialise");
            bytes += json.len();
            deltas += 1;
            let start = Instant::now();
            let delta = serde_json::from_slice(&json).expect("parse");
            target.apply(delta).expect("apply");
            apply_s += start.elapsed().as_secs_f64();
        }
    }
    let sent = 2 * messages;
    println!(
        "sync n1 -> n2 (learned the same set concurrently) and n1 -> n3 (empty): {deltas} deltas of \
         <= {DELTA_RECORDS_MAX} records, {:.0} bytes of JSON per learned message, parse + apply \
         {:.1} us/message",
        bytes as f64 / sent as f64,
        apply_s * 1e6 / sent as f64
    );
    let learned = b.learned();
    println!(
        "n2 after sync: {} spam + {} ham learned (each message once), {} records held \
         (two contributions per message), fingerprint equal to n3: {}",
        learned.spam,
        learned.ham,
        b.record_count(),
        b.fingerprint() == {
            let mut full = c.clone();
            full.merge(&b).expect("merge");
            full.fingerprint()
        }
    );

    let probes: Vec<u64> = (0..1_000_000u64)
        .map(|n| Mix(n % VOCABULARY).next())
        .collect();
    let start = Instant::now();
    let mut hits = 0u64;
    for token in &probes {
        let counts = c.counts(*token);
        hits += u64::from(counts.spam + counts.ham > 0);
    }
    let lookup_s = start.elapsed().as_secs_f64();
    println!(
        "lookup: {:.0} ns per token ({hits} of {} probes known)",
        lookup_s * 1e9 / probes.len() as f64,
        probes.len()
    );

    let records: usize = c.records().map(|r| r.op.token_count()).sum();
    let persisted: usize = c
        .records()
        .map(|r| serde_json::to_vec(&r).expect("json").len())
        .sum();
    let by_owner: BTreeMap<_, _> = b.contributions().into_iter().collect();
    println!(
        "store: {records} token entries in records ({} MiB as u64), {:.1} MiB as JSON records; \
         contributions on n2: {by_owner:?}",
        records * 8 / (1 << 20),
        persisted as f64 / f64::from(1 << 20)
    );
}
