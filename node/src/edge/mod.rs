//! The SMTP edge: decisions on each recipient at RCPT time, before any message text is
//! read, in this order:
//!
//! 1. recipient verification per domain ([`recipients`]: a list file; [`callout`]: a
//!    null-sender probe of `relay_to`, cached mesh-wide): unknown → `550 5.1.1`;
//! 2. greylisting per domain ([`greylist`], mesh-wide): first sighting → `451 4.7.1`;
//! 3. mesh-wide rate limits ([`ratelimit`]), once per transaction at its first accepted
//!    recipient: over → `451 4.7.0`.
//!
//! The SMTP session asks through [`crate::smtp::MessageSink::check_rcpt`];
//! `inbound::Inbound` forwards to [`Edge`]. The greylist, the callout cache and the rate
//! counters are replicated types synced by the mesh (`cluster::owned`).

pub mod callout;
pub mod greylist;
pub mod ratelimit;
pub mod recipients;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::config::edge::{Unreachable, VerifyMode};
use crate::facts::Gatherer;
use crate::rules::Rules;
use crate::smtp::reply::Reply;
use crate::smtp::state::RcptCheck;

pub use callout::CalloutCache;
pub use greylist::{Greylist, GreylistSettings};
pub use ratelimit::{RateLimiter, RateSettings};
pub use recipients::RecipientList;

/// How one domain's recipients are verified.
enum Verify {
    Off,
    List(RecipientList),
    Callout {
        server: String,
        unreachable: Unreachable,
        positive_ttl: Duration,
        negative_ttl: Duration,
    },
}

/// What the edge does for one accepted domain.
struct DomainEdge {
    greylist: bool,
    verify: Verify,
}

/// Why the edge could not be built; names the domain and key.
#[derive(Debug, thiserror::Error)]
#[error("domains[{index}] ({domain}): {source}")]
pub struct EdgeError {
    /// Index in `[[domains]]`.
    pub index: usize,
    /// The domain.
    pub domain: String,
    /// What failed.
    #[source]
    pub source: recipients::ListError,
}

/// The replicated parts of the edge, for the mesh.
#[derive(Clone)]
pub struct EdgeState {
    /// Greylist sightings.
    pub greylist: Greylist,
    /// Callout answers.
    pub callout: CalloutCache,
    /// Rate counters.
    pub rates: RateLimiter,
}

/// The RCPT-time decisions of this node.
pub struct Edge {
    domains: HashMap<String, DomainEdge>,
    state: EdgeState,
    rules: Arc<Rules>,
    facts: Arc<Gatherer>,
    hostname: String,
}

impl Edge {
    /// The edge for `config`'s domains; reads every recipients file.
    pub fn new(
        config: &Config,
        state: EdgeState,
        rules: Arc<Rules>,
        facts: Arc<Gatherer>,
    ) -> Result<Edge, EdgeError> {
        let mut domains = HashMap::new();
        for (index, d) in config.domains.iter().enumerate() {
            let name = d.name.trim_end_matches('.').to_ascii_lowercase();
            let verify = match (d.verify_recipients, &d.recipients_file) {
                (VerifyMode::List, Some(path)) => {
                    Verify::List(RecipientList::open(path).map_err(|source| EdgeError {
                        index,
                        domain: name.clone(),
                        source,
                    })?)
                }
                (VerifyMode::Callout, _) => Verify::Callout {
                    server: d.relay_to.clone(),
                    unreachable: d.verify_unreachable,
                    positive_ttl: Duration::from_secs(d.callout_positive_ttl_secs),
                    negative_ttl: Duration::from_secs(d.callout_negative_ttl_secs),
                },
                _ => Verify::Off,
            };
            let edge = DomainEdge {
                greylist: d.greylist,
                verify,
            };
            domains.insert(name, edge);
        }
        Ok(Edge {
            domains,
            state,
            rules,
            facts,
            hostname: config.smtp.hostname.clone(),
        })
    }

    /// The replicated parts.
    pub fn state(&self) -> &EdgeState {
        &self.state
    }

    /// The cluster's greylist settings (defaults when unset or unreadable).
    pub fn greylist_settings(&self) -> GreylistSettings {
        setting_of(&self.rules, greylist::SETTING)
    }

    /// The cluster's rate limits (defaults when unset or unreadable).
    pub fn rate_settings(&self) -> RateSettings {
        setting_of(&self.rules, ratelimit::SETTING)
    }

    /// Decides on one recipient: `None` accepts it, a reply refuses it.
    pub async fn check_rcpt(&self, check: &RcptCheck, client: IpAddr) -> Option<Reply> {
        let domain = check
            .rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        if let Some(policy) = self.domains.get(&domain) {
            if let Some(refusal) = self.verify(&policy.verify, &check.rcpt).await {
                return Some(refusal);
            }
            // Boxed, as the callout below: their state would otherwise sit inside this
            // future, which every RCPT builds and moves (8.5 KB copied per RCPT before).
            if policy.greylist
                && let Some(refusal) = Box::pin(self.greylist(check, client)).await
            {
                return Some(refusal);
            }
        }
        if check.accepted == 0 {
            return self.rate_limit(check, client);
        }
        None
    }

    async fn verify(&self, verify: &Verify, rcpt: &str) -> Option<Reply> {
        match verify {
            Verify::Off => None,
            Verify::List(list) => (!list.contains(rcpt)).then(unknown_user),
            Verify::Callout {
                server,
                unreachable,
                positive_ttl,
                negative_ttl,
            } => {
                let cache = &self.state.callout;
                if let Some(exists) = cache.lookup(rcpt) {
                    return (!exists).then(unknown_user);
                }
                match Box::pin(callout::probe(server, &self.hostname, rcpt)).await {
                    callout::Probe::Exists => {
                        cache.record(rcpt, true, *positive_ttl);
                        None
                    }
                    callout::Probe::Unknown => {
                        cache.record(rcpt, false, *negative_ttl);
                        Some(unknown_user())
                    }
                    callout::Probe::Unreachable(why) => {
                        tracing::warn!(%why, "recipient callout failed");
                        match unreachable {
                            Unreachable::Accept => None,
                            Unreachable::Tempfail => Some(Reply::new(
                                451,
                                Some("4.4.3"),
                                "Recipient verification unavailable, please try again later",
                            )),
                        }
                    }
                }
            }
        }
    }

    async fn greylist(&self, check: &RcptCheck, client: IpAddr) -> Option<Reply> {
        let settings = self.greylist_settings();
        let spf = self.facts.spf_pass(client, &check.helo, &check.mail_from);
        match self
            .state
            .greylist
            .check(&settings, client, &check.mail_from, &check.rcpt, spf)
            .await
        {
            Ok(greylist::Verdict::Defer(secs)) => Some(Reply::new(
                451,
                Some("4.7.1"),
                format!("Greylisted, please try again in {secs} seconds"),
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "greylist not recorded");
                Some(Reply::new(
                    451,
                    Some("4.3.0"),
                    "Temporary failure, please try again",
                ))
            }
        }
    }

    fn rate_limit(&self, check: &RcptCheck, client: IpAddr) -> Option<Reply> {
        let settings = self.rate_settings();
        match self.state.rates.admit(&settings, client, &check.mail_from) {
            ratelimit::RateVerdict::Counted => None,
            ratelimit::RateVerdict::Over { what, rate } => Some(Reply::new(
                451,
                Some("4.7.0"),
                format!("Rate limit exceeded for this {what} ({rate}/min), please slow down"),
            )),
        }
    }
}

fn unknown_user() -> Reply {
    Reply::new(
        550,
        Some("5.1.1"),
        "Recipient address rejected: user unknown",
    )
}

/// The cluster-wide setting `name` from the rule book: its defaults when unset, and
/// (logged) when it does not read or validate.
pub(crate) fn setting_of<T>(rules: &Rules, name: &str) -> T
where
    T: serde::de::DeserializeOwned + Default + Validate,
{
    let Some(text) = rules.setting_document(name) else {
        return T::default();
    };
    match serde_json::from_str::<T>(&text)
        .map_err(|e| e.to_string())
        .and_then(|s| s.check().map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(setting = name, error = %e, "setting unreadable; using defaults");
            T::default()
        }
    }
}

/// Settings that validate before use.
pub trait Validate {
    /// `Err` names the key at fault.
    fn check(&self) -> Result<(), String>;
}

impl Validate for GreylistSettings {
    fn check(&self) -> Result<(), String> {
        self.validate().map_err(|e| e.to_string())
    }
}

impl Validate for crate::digest::settings::DigestSettings {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

impl Validate for RateSettings {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}
