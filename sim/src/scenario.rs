//! Named fault schedules, made from a seed alone (pure): the same seed and scenario give
//! the same timeline.

use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;

/// Every scenario `--scenario all` runs, in order.
pub const SCENARIOS: [&str; 8] = [
    "partition-halves",
    "isolate-one",
    "bridge",
    "majorities-ring",
    "flaky",
    "crash-restart",
    "clock-skew",
    "mixed",
];

/// Smallest skew `clock-skew` gives a node's clock.
const SKEW_MIN_MS: u64 = 1_000;
/// Largest skew `clock-skew` gives a node's clock (either way).
const SKEW_MAX_MS: u64 = 5 * 60_000;

/// One change to the network or to a node, at a time in ms from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// Cut these links (0-based node indices), both ways.
    Cut { links: Vec<(usize, usize)> },
    /// Every link loses, duplicates and delays messages (delays reorder them).
    Flaky {
        loss_pct: u32,
        duplicate_pct: u32,
        delay_max_ms: u64,
        seed: u64,
    },
    /// Restore every link.
    HealAll,
    /// Stop a node (SIGTERM path) and later start it again, optionally on a wiped store.
    Stop { node: usize },
    /// Abort a node mid-flight (nothing drained), to be started again later.
    Crash { node: usize },
    /// Start a stopped or crashed node again, on a wiped store when `wipe` is set.
    Start { node: usize, wipe: bool },
    /// Step a node's wall clock to run `skew_ms` ahead of true time (behind when negative);
    /// it stays so (across restarts) until another skew for that node. Heals do not reset
    /// it: the invariants must hold with clocks that disagree.
    Skew { node: usize, skew_ms: i64 },
}

/// One fault of a timeline and when it happens.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When, in ms of simulated time from the start of the fault phase.
    pub at_ms: u64,
    /// What happens then.
    #[serde(flatten)]
    pub fault: Fault,
}

/// The timeline of `scenario` for `n` nodes over `run_ms`; faults start at 20 % of the
/// run and are all healed by 70 %.
pub fn schedule(
    scenario: &str,
    n: usize,
    run_ms: u64,
    rng: &mut StdRng,
) -> anyhow::Result<Vec<Event>> {
    let (start, heal) = (run_ms / 5, run_ms * 7 / 10);
    let at = |ms: u64, fault: Fault| Event { at_ms: ms, fault };
    let mut events = match scenario {
        "partition-halves" => {
            let mut order: Vec<usize> = (0..n).collect();
            shuffle(&mut order, rng);
            let (a, b) = order.split_at(n / 2);
            vec![at(
                start,
                Fault::Cut {
                    links: across(a, b),
                },
            )]
        }
        "isolate-one" => {
            let lone = rng.random_range(0..n);
            let rest: Vec<usize> = (0..n).filter(|i| *i != lone).collect();
            vec![at(
                start,
                Fault::Cut {
                    links: across(&[lone], &rest),
                },
            )]
        }
        "bridge" => {
            // Two halves that only a bridge node can reach both of.
            let mut order: Vec<usize> = (0..n).collect();
            shuffle(&mut order, rng);
            // order[0] is the bridge: it keeps its links to both halves.
            let (a, b) = order[1..].split_at((n - 1) / 2);
            vec![at(
                start,
                Fault::Cut {
                    links: across(a, b),
                },
            )]
        }
        "majorities-ring" => {
            // Each node loses the nodes farthest from it on a ring: everyone still sees a
            // majority, nobody sees everyone.
            let k = (n / 2).div_ceil(2);
            let mut links = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    if (j - i).min(n - (j - i)) > k {
                        links.push((i, j));
                    }
                }
            }
            vec![at(start, Fault::Cut { links })]
        }
        "flaky" => vec![at(
            start,
            Fault::Flaky {
                loss_pct: rng.random_range(5..=30),
                duplicate_pct: rng.random_range(5..=20),
                delay_max_ms: rng.random_range(10..=200),
                seed: rng.random(),
            },
        )],
        "crash-restart" => {
            let victim = rng.random_range(0..n);
            let wipe = rng.random_bool(0.5);
            let down = if rng.random_bool(0.5) {
                Fault::Crash { node: victim }
            } else {
                Fault::Stop { node: victim }
            };
            vec![
                at(start, down),
                at((start + heal) / 2, Fault::Start { node: victim, wipe }),
            ]
        }
        "clock-skew" => clock_skew(n, start, heal, rng),
        "mixed" => {
            let mut v = Vec::new();
            let parts = [
                "clock-skew",
                "partition-halves",
                "flaky",
                "isolate-one",
                "crash-restart",
            ];
            let slot = (heal - start) / parts.len() as u64;
            for (k, p) in parts.iter().enumerate() {
                let sub = schedule(p, n, run_ms, rng)?;
                let base = start + k as u64 * slot;
                for e in sub.into_iter().filter(|e| e.fault != Fault::HealAll) {
                    let offset = e.at_ms.saturating_sub(start).min(slot / 2);
                    v.push(at(base + offset, e.fault));
                }
                v.push(at(base + slot - 1, Fault::HealAll));
            }
            v
        }
        other => anyhow::bail!("unknown scenario {other:?} (expected one of {SCENARIOS:?} or all)"),
    };
    if !events
        .iter()
        .any(|e| e.fault == Fault::HealAll && e.at_ms >= heal)
    {
        events.push(at(heal, Fault::HealAll));
    }
    events.sort_by_key(|e| e.at_ms);
    Ok(events)
}

/// Half the nodes (at least one), in seeded order, get their clocks stepped ahead or behind
/// by a seeded amount, one after another between `start` and `heal`; the first of them is
/// stepped once more, the other way, so a running clock also jumps back.
fn clock_skew(n: usize, start: u64, heal: u64, rng: &mut StdRng) -> Vec<Event> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, rng);
    let skewed = &order[..(n / 2).max(1)];
    let step = (heal - start) / (skewed.len() as u64 + 1);
    let mut events: Vec<Event> = skewed
        .iter()
        .enumerate()
        .map(|(k, node)| Event {
            at_ms: start + k as u64 * step,
            fault: Fault::Skew {
                node: *node,
                skew_ms: skew(rng),
            },
        })
        .collect();
    if let Some(Fault::Skew { node, skew_ms }) = events.first().map(|e| e.fault.clone()) {
        let back = rng.random_range(SKEW_MIN_MS..=SKEW_MAX_MS) as i64;
        events.push(Event {
            at_ms: start + skewed.len() as u64 * step,
            fault: Fault::Skew {
                node,
                skew_ms: if skew_ms > 0 { -back } else { back },
            },
        });
    }
    events
}

/// A seeded skew, ahead or behind, between [`SKEW_MIN_MS`] and [`SKEW_MAX_MS`].
fn skew(rng: &mut StdRng) -> i64 {
    let ms = rng.random_range(SKEW_MIN_MS..=SKEW_MAX_MS) as i64;
    if rng.random_bool(0.5) { ms } else { -ms }
}

/// Every link between a node of `a` and a node of `b`.
fn across(a: &[usize], b: &[usize]) -> Vec<(usize, usize)> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| ((*x).min(*y), (*x).max(*y))))
        .collect()
}

fn shuffle(v: &mut [usize], rng: &mut StdRng) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn same_seed_same_timeline() {
        for s in SCENARIOS {
            let a = schedule(s, 5, 10_000, &mut StdRng::seed_from_u64(7)).unwrap();
            let b = schedule(s, 5, 10_000, &mut StdRng::seed_from_u64(7)).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{s}");
            assert!(
                matches!(a.last().unwrap().fault, Fault::HealAll),
                "{s}: {a:?}"
            );
        }
    }

    #[test]
    fn clock_skew_steps_half_the_nodes_within_bounds_and_one_back() {
        let ev = schedule("clock-skew", 5, 10_000, &mut StdRng::seed_from_u64(3)).unwrap();
        let skews: Vec<(usize, i64)> = ev
            .iter()
            .filter_map(|e| match e.fault {
                Fault::Skew { node, skew_ms } => Some((node, skew_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(skews.len(), 3, "two nodes, the first stepped twice: {ev:?}");
        assert_eq!(skews[0].0, skews[2].0, "{ev:?}");
        assert!(skews[0].1.signum() != skews[2].1.signum(), "{ev:?}");
        for (_, ms) in &skews {
            assert!(
                (SKEW_MIN_MS..=SKEW_MAX_MS).contains(&ms.unsigned_abs()),
                "{ev:?}"
            );
        }
    }

    #[test]
    fn halves_cut_every_cross_link_and_only_those() {
        let ev = schedule("partition-halves", 4, 10_000, &mut StdRng::seed_from_u64(1)).unwrap();
        let Fault::Cut { links } = &ev[0].fault else {
            panic!("{ev:?}")
        };
        assert_eq!(links.len(), 4, "2 × 2 cross links: {links:?}");
    }
}
