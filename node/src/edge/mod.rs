//! The SMTP edge: decisions on each recipient at RCPT time, before any message text is
//! read. Mesh-wide greylisting ([`greylist`]). The SMTP session asks through
//! [`crate::smtp::MessageSink::check_rcpt`]; `inbound::Inbound` forwards to [`Edge`].

pub mod greylist;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::facts::Gatherer;
use crate::rules::Rules;
use crate::smtp::reply::Reply;
use crate::smtp::state::RcptCheck;

pub use greylist::{Greylist, GreylistSettings};

/// What the edge does for one accepted domain.
#[derive(Debug, Clone, Copy, Default)]
struct DomainEdge {
    greylist: bool,
}

/// The RCPT-time decisions of this node.
pub struct Edge {
    domains: HashMap<String, DomainEdge>,
    greylist: Greylist,
    rules: Arc<Rules>,
    facts: Arc<Gatherer>,
}

impl Edge {
    /// The edge for `config`'s domains over the replicated greylist.
    pub fn new(config: &Config, greylist: Greylist, rules: Arc<Rules>, facts: Arc<Gatherer>) -> Edge {
        let domains = config
            .domains
            .iter()
            .map(|d| {
                let name = d.name.trim_end_matches('.').to_ascii_lowercase();
                (name, DomainEdge { greylist: d.greylist })
            })
            .collect();
        Edge {
            domains,
            greylist,
            rules,
            facts,
        }
    }

    /// The cluster's greylist settings (defaults when unset or unreadable).
    pub fn greylist_settings(&self) -> GreylistSettings {
        setting_of(&self.rules, greylist::SETTING)
    }

    /// Decides on one recipient: `None` accepts it, a reply refuses it.
    pub async fn check_rcpt(&self, check: &RcptCheck, client: IpAddr) -> Option<Reply> {
        let domain = check
            .rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let policy = self.domains.get(&domain).copied().unwrap_or_default();
        if policy.greylist {
            return self.greylist(check, client).await;
        }
        None
    }

    async fn greylist(&self, check: &RcptCheck, client: IpAddr) -> Option<Reply> {
        let settings = self.greylist_settings();
        let spf = self.facts.spf_pass(client, &check.helo, &check.mail_from);
        match self
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
                Some(Reply::new(451, Some("4.3.0"), "Temporary failure, please try again"))
            }
        }
    }
}

/// The cluster-wide setting `name` from the rule book: its defaults when unset, and
/// (logged) when it does not read or validate.
fn setting_of<T>(rules: &Rules, name: &str) -> T
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
