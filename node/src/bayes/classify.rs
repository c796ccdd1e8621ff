//! Token counts → the probability that a message is spam.
//!
//! The classifier is the one SpamBayes arrived at after measuring the alternatives on
//! large corpora (Robinson, "A Statistical Approach to the Spam Problem", 2003; Meyer &
//! Whateley, "SpamBayes: Effective open-source, Bayesian based, email classification
//! system", CEAS 2004):
//!
//! 1. **Per-token probability**, Robinson's smoothed f(w). With `b`, `g` the spam and ham
//!    messages a token occurred in and `nspam`, `nham` the messages learned,
//!    `p = (b/nspam) / (b/nspam + g/nham)` (ratios, so unequal class sizes do not bias
//!    it), then `f = (s·x + n·p) / (s + n)` with `n = b + g`, prior `x = 0.5` and strength
//!    `s = 0.45`. A token seen once cannot claim certainty; an unknown token gets exactly
//!    `x` and so never votes, which is Robinson's answer to unknown words (Graham's fixed
//!    0.4 guess biases new vocabulary towards ham).
//! 2. **Selection** (Graham's insight kept): only the [`CLUES_MAX`] tokens farthest from
//!    0.5, and only those at least [`CLUE_STRENGTH_MIN`] away. Long messages do not win by
//!    volume, and the near-neutral bulk of ordinary words adds no noise.
//! 3. **Combining**, Fisher's method: `S = 1 − χ²Q(−2 Σ ln(1−f), 2k)` measures how
//!    unlikely the clues are if the message were ham, `H = 1 − χ²Q(−2 Σ ln f, 2k)` the
//!    same for spam, and the result is `(1 + S − H) / 2`. Unlike Graham's product (which
//!    says 0 or 1 for nearly everything) it says 0.5 when the evidence is strong both
//!    ways, so a mixed message lands in the middle instead of at an extreme, which is what
//!    keeps false positives rare at a high cut.
//!
//! Below [`MIN_LEARNED_PER_CLASS`] learned messages of either class the classifier does
//! not vote ([`classify`] returns `None`).

/// Learned messages of each class needed before the classifier votes. 200 is where
/// SpamAssassin (`bayes_min_ham_num`/`bayes_min_spam_num`) and Rspamd (`min_learns`) start
/// trusting their Bayes: below it, most token counts are 0 or 1 and `p` is noise.
pub const MIN_LEARNED_PER_CLASS: u64 = 200;

/// Robinson's prior for a token never seen.
const UNKNOWN_PROB: f64 = 0.5;

/// Robinson's strength of the prior, in messages (SpamBayes' measured default).
const PRIOR_STRENGTH: f64 = 0.45;

/// Tokens whose f(w) is closer to 0.5 than this are not clues.
pub const CLUE_STRENGTH_MIN: f64 = 0.1;

/// Clues combined at most (the strongest).
pub const CLUES_MAX: usize = 150;

/// Messages learned and per-token counts, wherever they live (a map in memory, a CRDT).
pub trait TokenCounts {
    /// Messages learned as (spam, ham).
    fn learned(&self) -> (u64, u64);
    /// Learned (spam, ham) messages that contained `token`.
    fn counts(&self, token: u64) -> (u32, u32);
}

/// One learned class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Unwanted mail.
    Spam,
    /// Wanted mail.
    Ham,
}

/// The probability (0..=1) that a message with these distinct `tokens` is spam, or `None`
/// while fewer than [`MIN_LEARNED_PER_CLASS`] messages of either class are learned. A
/// message with no clue gets 0.5.
pub fn classify(counts: &impl TokenCounts, tokens: &[u64]) -> Option<f64> {
    let clues = clues(counts, tokens)?;
    let probs: Vec<f64> = clues.iter().map(|&(_, f)| f).collect();
    Some(combine(&probs))
}

/// The clues [`classify`] combines: (token, f(w)) of the at most [`CLUES_MAX`] strongest
/// tokens, strongest first (ties by token); `None` while the classifier is not ready.
/// For explaining a classification.
pub fn clues(counts: &impl TokenCounts, tokens: &[u64]) -> Option<Vec<(u64, f64)>> {
    let (nspam, nham) = counts.learned();
    if nspam < MIN_LEARNED_PER_CLASS || nham < MIN_LEARNED_PER_CLASS {
        return None;
    }
    let mut clues: Vec<(u64, f64)> = tokens
        .iter()
        .map(|&t| (t, token_prob(counts.counts(t), nspam, nham)))
        .filter(|&(_, f)| strength(f) >= CLUE_STRENGTH_MIN)
        .collect();
    clues.sort_unstable_by(|a, b| strength(b.1).total_cmp(&strength(a.1)).then(a.0.cmp(&b.0)));
    clues.truncate(CLUES_MAX);
    Some(clues)
}

fn strength(f: f64) -> f64 {
    (f - UNKNOWN_PROB).abs()
}

/// Robinson's f(w) for a token seen in `spam` of `nspam` and `ham` of `nham` messages.
pub fn token_prob((spam, ham): (u32, u32), nspam: u64, nham: u64) -> f64 {
    // Counts can briefly exceed the learned totals while replicas converge; clamp.
    let b = f64::from(spam).min(nspam as f64);
    let g = f64::from(ham).min(nham as f64);
    let n = b + g;
    if n == 0.0 {
        return UNKNOWN_PROB;
    }
    let spam_ratio = b / nspam.max(1) as f64;
    let ham_ratio = g / nham.max(1) as f64;
    let p = spam_ratio / (spam_ratio + ham_ratio);
    (PRIOR_STRENGTH * UNKNOWN_PROB + n * p) / (PRIOR_STRENGTH + n)
}

/// Fisher/χ² combining of clue probabilities (each strictly inside 0..1).
fn combine(clues: &[f64]) -> f64 {
    if clues.is_empty() {
        return UNKNOWN_PROB;
    }
    let ln_spam: f64 = clues.iter().map(|f| f.ln()).sum();
    let ln_ham: f64 = clues.iter().map(|f| (1.0 - f).ln()).sum();
    let dof = 2 * clues.len();
    let s = 1.0 - chi2_q(-2.0 * ln_ham, dof);
    let h = 1.0 - chi2_q(-2.0 * ln_spam, dof);
    ((1.0 + s - h) / 2.0).clamp(0.0, 1.0)
}

/// P(χ² ≥ `x2`) with `dof` (even) degrees of freedom: `e^(−m) Σ_{i<dof/2} m^i / i!`,
/// `m = x2/2`.
fn chi2_q(x2: f64, dof: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..dof / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// Counts in memory: for tests, the evaluation program, and as the reference the
/// replicated counts must agree with.
#[derive(Clone, Debug, Default)]
pub struct MemoryCounts {
    spam: u64,
    ham: u64,
    tokens: std::collections::HashMap<u64, (u32, u32)>,
}

impl MemoryCounts {
    /// Adds one message's distinct tokens as `class`.
    pub fn learn(&mut self, tokens: &[u64], class: Class) {
        match class {
            Class::Spam => self.spam += 1,
            Class::Ham => self.ham += 1,
        }
        for &t in tokens {
            let c = self.tokens.entry(t).or_default();
            match class {
                Class::Spam => c.0 = c.0.saturating_add(1),
                Class::Ham => c.1 = c.1.saturating_add(1),
            }
        }
    }

    /// Removes one message learned earlier as `class` with these tokens.
    pub fn unlearn(&mut self, tokens: &[u64], class: Class) {
        match class {
            Class::Spam => self.spam = self.spam.saturating_sub(1),
            Class::Ham => self.ham = self.ham.saturating_sub(1),
        }
        for &t in tokens {
            if let Some(c) = self.tokens.get_mut(&t) {
                match class {
                    Class::Spam => c.0 = c.0.saturating_sub(1),
                    Class::Ham => c.1 = c.1.saturating_sub(1),
                }
                if *c == (0, 0) {
                    self.tokens.remove(&t);
                }
            }
        }
    }

    /// Distinct tokens with a non-zero count.
    pub fn distinct_tokens(&self) -> usize {
        self.tokens.len()
    }
}

impl TokenCounts for MemoryCounts {
    fn learned(&self) -> (u64, u64) {
        (self.spam, self.ham)
    }

    fn counts(&self, token: u64) -> (u32, u32) {
        self.tokens.get(&token).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` spam messages with tokens 1..=3 plus a unique one, `n` ham with 10..=12.
    fn trained(n: u64) -> MemoryCounts {
        let mut c = MemoryCounts::default();
        for i in 0..n {
            c.learn(&[1, 2, 3, 1000 + i], Class::Spam);
            c.learn(&[10, 11, 12, 5000 + i], Class::Ham);
        }
        c
    }

    #[test]
    fn no_vote_below_the_minimum_of_either_class() {
        let mut c = trained(MIN_LEARNED_PER_CLASS - 1);
        assert_eq!(classify(&c, &[1, 2, 3]), None);
        c.learn(&[1], Class::Spam);
        assert_eq!(classify(&c, &[1, 2, 3]), None, "ham still below the minimum");
        c.learn(&[10], Class::Ham);
        assert!(classify(&c, &[1, 2, 3]).is_some());
    }

    #[test]
    fn obvious_spam_and_ham_after_training() {
        let c = trained(MIN_LEARNED_PER_CLASS);
        let spam = classify(&c, &[1, 2, 3, 99]).unwrap();
        let ham = classify(&c, &[10, 11, 12, 99]).unwrap();
        assert!(spam > 0.99, "spam {spam}");
        assert!(ham < 0.01, "ham {ham}");
    }

    #[test]
    fn unknown_tokens_and_mixed_evidence_give_one_half() {
        let c = trained(MIN_LEARNED_PER_CLASS);
        assert_eq!(classify(&c, &[77, 78]), Some(0.5));
        assert_eq!(classify(&c, &[]), Some(0.5));
        let mixed = classify(&c, &[1, 2, 3, 10, 11, 12]).unwrap();
        assert!((mixed - 0.5).abs() < 0.01, "mixed {mixed}");
    }

    #[test]
    fn probability_stays_within_bounds() {
        let c = trained(MIN_LEARNED_PER_CLASS);
        let many_spam: Vec<u64> = (0..5000).map(|i| if i % 2 == 0 { 1 } else { 1000 + i }).collect();
        for tokens in [&many_spam[..], &[10; 3000][..], &[1, 10][..]] {
            let p = classify(&c, tokens).unwrap();
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }

    #[test]
    fn token_prob_is_smoothed_and_class_size_neutral() {
        assert_eq!(token_prob((0, 0), 10, 10), 0.5);
        let once = token_prob((1, 0), 10, 10);
        let often = token_prob((9, 0), 10, 10);
        assert!(once < often && often < 1.0, "{once} {often}");
        // Same ratio in each class despite 5x more ham learned: neutral.
        assert!((token_prob((10, 50), 100, 500) - 0.5).abs() < 1e-9);
        // Counts above the learned totals (replicas mid-merge) are clamped, not NaN.
        assert!(token_prob((50, 0), 10, 10) < 1.0);
    }

    #[test]
    fn unlearn_reverses_learn() {
        let mut c = trained(3);
        c.learn(&[1, 42], Class::Ham);
        c.unlearn(&[1, 42], Class::Ham);
        assert_eq!(c.learned(), (3, 3));
        assert_eq!(c.counts(42), (0, 0));
        assert_eq!(c.counts(1), (3, 0));
    }
}
