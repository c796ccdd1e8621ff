//! Quarantine digests (README, "Digests and the recipient portal"): once per period each
//! recipient with newly held mail gets one mail listing it, with signed links to release,
//! release and always allow the sender, delete, or see everything held for them.
//!
//! - [`settings`]: the cluster-wide settings (rule book) and the daily schedule;
//! - [`choice`]: pure — which node sends which recipient's digest (rendezvous order over
//!   the members, majority side only);
//! - [`ledger`]: the replicated watermarks ("sent up to") and run requests;
//! - [`run`]: one pass: collect, decide, queue, record;
//! - [`mail`]: pure — the digest message;
//! - [`token`], [`keys`]: the signed link tokens and the cluster keys behind them.
//!
//! Every node runs [`Digest::run`]: every [`TICK`] it works out the due period (the last
//! scheduled boundary or the latest run request, whichever is later) and, until every
//! recipient of that period is done as far as it can see, runs a pass.

pub mod choice;
pub mod keys;
pub mod ledger;
pub mod mail;
pub mod run;
pub mod settings;
pub mod token;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::custody::Custody;
use crate::health::Health;
use crate::mesh::Mesh;
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use choice::{Member, View};
use ledger::Ledger;
use settings::DigestSettings;

/// How often the loop looks for a due period.
pub const TICK: Duration = Duration::from_secs(1);
/// A node waits this long after start before it sends, so the peers' watermarks reach it
/// first (many digest-sync intervals).
pub const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// How long a period stays due: a period not sent within a day is left to the next one
/// (whose window starts at each recipient's watermark, so its mail is not lost).
pub const PERIOD_DUE_MS: u64 = 86_400_000;
/// How long the member at rank `i` of a recipient's order waits per rank before it (see
/// [`choice`]).
pub const TAKEOVER_MS: u64 = 30_000;

/// The parts the digest works with.
pub struct DigestParts {
    /// This node's id.
    pub node_id: String,
    /// The SMTP hostname (for Message-IDs).
    pub hostname: String,
    /// The node's clock.
    pub clock: Clock,
    /// The rule book (settings, keys).
    pub rules: Arc<Rules>,
    /// The mesh-wide quarantine index and this node's quarantine.
    pub quarantine: Quarantine,
    /// The relay queue the digests go into.
    pub relay: Relay,
    /// The watermarks.
    pub ledger: Ledger,
    /// The departed nodes.
    pub custody: Custody,
    /// This node's health.
    pub health: Health,
    /// The mesh, when configured.
    pub mesh: Option<Arc<Mesh>>,
    /// The domains this mesh receives mail for (`[[domains]]`): only their recipients get
    /// digests, so outbound mail held for outside recipients never produces one.
    pub domains: Vec<String>,
}

/// What this node last did about digests (`GET /api/v1/digest`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The due period (ms), if any.
    pub period_ms: Option<u64>,
    /// Every recipient of that period is done, as far as this node sees.
    pub complete: bool,
    /// Why this node is not sending, when it waits.
    pub waiting: Option<String>,
    /// Recipients with new held mail in the period, at the last pass.
    pub recipients: usize,
    /// Digests this node queued since it started.
    pub sent_total: u64,
}

/// The digest side of one node. Cheap to clone.
#[derive(Clone)]
pub struct Digest {
    parts: Arc<DigestParts>,
    status: Arc<Mutex<Status>>,
    started: Instant,
}

impl Digest {
    /// The digest over `parts`; nothing runs until [`Digest::run`].
    pub fn new(parts: DigestParts) -> Digest {
        Digest {
            parts: Arc::new(parts),
            status: Arc::default(),
            started: Instant::now(),
        }
    }

    /// The current settings (defaults when unset).
    pub fn settings(&self) -> DigestSettings {
        crate::edge::setting_of(&self.parts.rules, settings::SETTING)
    }

    /// What this node last did.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The rule book.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.parts.rules
    }

    /// The watermarks and run requests.
    pub fn ledger(&self) -> &Ledger {
        &self.parts.ledger
    }

    /// The node's clock.
    pub fn clock(&self) -> &Clock {
        &self.parts.clock
    }

    /// The relay queue.
    pub fn relay(&self) -> &Relay {
        &self.parts.relay
    }

    /// The SMTP hostname.
    pub fn hostname(&self) -> &str {
        &self.parts.hostname
    }

    /// Runs passes every [`TICK`] until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => self.pass().await,
                _ = shutdown.changed() => break,
            }
        }
    }

    /// One look at the due period; a pass when it is not complete yet.
    pub async fn pass(&self) {
        let now = self.parts.clock.now_ms();
        let settings = self.settings();
        let Some(period) = self.due_period(&settings, now) else {
            return;
        };
        {
            let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if status.period_ms == Some(period) && status.complete {
                return;
            }
        }
        let outcome = self.pass_for(&settings, period, now).await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.period_ms = Some(period);
        match outcome {
            Ok(report) => {
                status.complete = report.open == 0;
                status.waiting = None;
                status.recipients = report.recipients;
                status.sent_total += report.sent as u64;
                if report.sent > 0 {
                    tracing::info!(
                        period,
                        sent = report.sent,
                        open = report.open,
                        "digests queued"
                    );
                }
            }
            Err(why) => {
                status.complete = false;
                status.waiting = Some(why);
            }
        }
    }

    /// The period due at `now_ms`: the later of the last scheduled boundary (when
    /// scheduled digests are on) and the latest run request, if less than a day old. A
    /// run's time is its requesting node's clock: it is due here at once even when this
    /// node's clock is behind it.
    fn due_period(&self, settings: &DigestSettings, now_ms: u64) -> Option<u64> {
        let scheduled = match settings.enabled {
            true => settings.last_boundary(now_ms).ok(),
            false => None,
        };
        let requested = Some(self.parts.ledger.run_requested(now_ms)).filter(|r| *r > 0);
        scheduled
            .max(requested)
            .filter(|p| now_ms.abs_diff(*p) < PERIOD_DUE_MS)
    }

    async fn pass_for(
        &self,
        settings: &DigestSettings,
        period: u64,
        now: u64,
    ) -> Result<run::PassReport, String> {
        if self.started.elapsed() < STARTUP_WAIT {
            return Err("just started: waiting for the peers' watermarks".into());
        }
        if !settings.ready() {
            return Err("the digest settings lack public_url or sender".into());
        }
        let ring = keys::ring(&self.parts.rules);
        let Some(key) = ring.current().cloned() else {
            return Err("no link key yet (PUT /api/v1/settings/digest makes one)".into());
        };
        let view = self.view().await;
        let quarantine = self.parts.quarantine.clone();
        let ledger = self.parts.ledger.clone();
        let items_max = settings.items_max;
        let parts = self.parts.clone();
        let ours = move |rcpt: &str| run::in_domains(rcpt, &parts.domains);
        let found = crate::rt::blocking(move || {
            run::collect(quarantine.index(), &ledger, &ours, period, items_max, now)
        })
        .await
        .map_err(|e| format!("reading the quarantine index: {e}"))?;
        run::send_due(self, &view, &key, settings, period, found)
            .await
            .map_err(|e| format!("queueing digests: {e}"))
    }

    /// The members as the sender choice sees them (departed nodes left out).
    async fn view(&self) -> View {
        let me = self.parts.node_id.clone();
        let own = Member {
            id: me.clone(),
            live: true,
            healthy: self.parts.health.get() == "ok",
        };
        let members = match &self.parts.mesh {
            None => vec![own],
            Some(mesh) => {
                let book = self.parts.custody.book();
                mesh.members_recent()
                    .await
                    .iter()
                    .filter(|m| !book.is_departed(&m.id))
                    .map(|m| match m.id == me {
                        true => own.clone(),
                        false => Member {
                            id: m.id.clone(),
                            live: m.live,
                            healthy: crate::cluster::view::health(m) == "ok",
                        },
                    })
                    .collect()
            }
        };
        View {
            me,
            members,
            takeover_ms: TAKEOVER_MS,
        }
    }
}
