//! The facts phase: everything that does I/O before the (pure) verdict — DNSBL, SPF, DKIM,
//! DMARC (DNS) and virus scanning (clamd) — each bounded in time. The filter reads only
//! what lands in [`MessageFacts`]. The pure parsing side (archive inspection, the
//! `Authentication-Results` header) lives in [`crate::message`].
//!
//! Layout: [`dns`] (the one resolver), [`dnsbl`], [`uribl`] (the domains of body URLs),
//! [`rdns`] (the client's forward-confirmed reverse name), [`auth`] (SPF/DKIM/DMARC with
//! mail-auth), [`clamd`] (INSTREAM client).
//!
//! Bounds: each DNS query waits at most `dns_timeout_ms` (one attempt); all DNS work of
//! one message together at most [`DNS_DEADLINE_QUERIES`] times that; one clamd scan at
//! most `clamd_timeout_ms`. A failure takes the configured path (`skip` → the facts say
//! `temperror` / not listed / unscanned; `tempfail` → 451), so a session never hangs.

pub mod auth;
pub mod clamd;
pub mod dns;
pub mod dnsbl;
pub mod rdns;
pub mod uribl;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use mail_auth::MessageAuthenticator;

use crate::config::{Config, FilterSection, OnFailure};
use crate::filter::{Direction, MessageFacts, ReverseName, UriblListing, is_public_client};
use crate::message::archive::ArchiveLimits;
use auth::AuthFacts;
use dnsbl::Listing;

/// All DNS work for one message is bounded by this many query timeouts (the queries of
/// one kind run concurrently; SPF includes run one after another).
pub const DNS_DEADLINE_QUERIES: u32 = 4;
/// DNSBL zones queried per message at most (configured zones first, then rule zones).
pub const DNSBL_QUERIES_MAX: usize = 64;

/// Why the facts phase asks the client to retry later (`451`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    /// A DNS lookup the verdict needs failed.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// The virus scan failed.
    #[error("virus scan failed: {0}")]
    Scan(String),
}

/// Gathers the facts that need I/O; built once per node from `[filter]`.
pub struct Gatherer {
    /// `[filter]`, when present (absent = no lookups, no scans).
    settings: Option<FilterSection>,
    /// The facts resolver (when `[filter]` is present).
    resolver: Option<MessageAuthenticator>,
    /// This node's name: SPF's `%{r}` and the authserv-id of `Authentication-Results`.
    hostname: String,
}

/// What the facts phase adds besides the rule facts.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// SPF/DKIM/DMARC, when checked (for the `Authentication-Results` header).
    pub auth: Option<AuthFacts>,
}

impl Gatherer {
    /// Builds the resolver from `[filter]`; the error names what is at fault.
    pub fn new(config: &Config) -> Result<Gatherer, String> {
        let settings = config.filter.clone();
        let resolver = match &settings {
            Some(f) => Some(
                dns::authenticator(f.resolver, Duration::from_millis(f.dns_timeout_ms))
                    .map_err(|e| format!("filter.resolver: {e}"))?,
            ),
            None => None,
        };
        Ok(Gatherer {
            settings,
            resolver,
            hostname: config.smtp.hostname.clone(),
        })
    }

    /// Whether SPF passes for `mail_from` (of `helo` for the null sender) from `client`;
    /// `false` without `[filter]` (no resolver) or on any other result.
    pub async fn spf_pass(&self, client: IpAddr, helo: &str, mail_from: &str) -> bool {
        let Some(resolver) = &self.resolver else {
            return false;
        };
        let env = auth::Envelope {
            client_ip: client,
            helo,
            mail_from,
            hostname: &self.hostname,
        };
        auth::spf(resolver, &env).await.result() == mail_auth::SpfResult::Pass
    }

    /// This node's authserv-id.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The archive limits for message parsing.
    pub fn archive_limits(&self) -> ArchiveLimits {
        let f = self.settings.clone().unwrap_or_default();
        ArchiveLimits {
            depth_max: f.archive_max_depth,
            entries_max: f.archive_max_entries,
            expanded_bytes_max: f.archive_max_expanded_bytes,
            ratio_max: f.archive_max_ratio,
        }
    }

    /// Adds DNSBL, SPF/DKIM/DMARC, reverse-name and virus facts to `facts` (already parsed
    /// from `raw`).
    /// `rule_zones` are the DNSBL zones the rules read, queried with the configured ones.
    pub async fn gather(
        &self,
        facts: &mut MessageFacts,
        raw: &[u8],
        rule_zones: &BTreeSet<String>,
    ) -> Result<Gathered, FactsError> {
        let (Some(settings), Some(resolver)) = (&self.settings, &self.resolver) else {
            return Ok(Gathered::default());
        };
        let zones = zones_to_query(&settings.dnsbl, rule_zones);
        let deadline = Duration::from_millis(settings.dns_timeout_ms) * DNS_DEADLINE_QUERIES;
        let url_domains = match settings.uribl.is_empty() {
            true => Vec::new(),
            false => uribl::domains(facts),
        };
        let reverse = reverse_name(resolver, facts, deadline);
        let dns_work = async {
            tokio::join!(
                dnsbl::check(resolver, facts.client_ip, &zones),
                self.authenticate(settings, resolver, raw, facts),
                uribl::check(resolver, &url_domains, &settings.uribl)
            )
        };
        let scan = self.scan(settings, raw);
        let (dns, virus, reverse) =
            tokio::join!(tokio::time::timeout(deadline, dns_work), scan, reverse);
        if let Some(name) = reverse {
            facts.reverse_name = name;
        }
        let (listings, auth, uribl_answers) = dns.unwrap_or_else(|_| {
            let failed = Listing::Failed(format!("no answer within {} ms", deadline.as_millis()));
            let all_failed = zones.iter().map(|z| (z.clone(), failed.clone())).collect();
            let uribl_failed = settings
                .uribl
                .iter()
                .flat_map(|zone| url_domains.iter().map(move |domain| (zone, domain)))
                .take(uribl::URIBL_QUERIES_MAX)
                .map(|(zone, domain)| uribl::Answer {
                    zone: zone.clone(),
                    domain: domain.clone(),
                    listing: failed.clone(),
                })
                .collect();
            (
                all_failed,
                settings.authentication.then(AuthFacts::timed_out),
                uribl_failed,
            )
        });
        let dns_failure = record_dnsbl(facts, listings);
        let dns_failure = dns_failure.or(record_uribl(facts, uribl_answers));
        let dns_failure = dns_failure.or_else(|| {
            auth.as_ref()
                .filter(|a| a.dns_failed())
                .map(|_| "SPF/DKIM/DMARC temperror".to_string())
        });
        if let Some(why) = dns_failure {
            tracing::info!(client = %facts.client_ip, %why, "DNS failure in the facts phase");
            if settings.on_dns_failure == OnFailure::Tempfail {
                return Err(FactsError::Dns(why));
            }
        }
        if let Some(a) = &auth {
            facts.spf = Some(a.spf.result.to_string());
            facts.dkim = Some(a.dkim_summary().to_string());
            facts.dmarc = Some(a.dmarc.result.to_string());
            facts.dmarc_policy = a.dmarc_policy.map(str::to_string);
        }
        facts.virus = virus?;
        Ok(Gathered { auth })
    }

    async fn authenticate(
        &self,
        settings: &FilterSection,
        resolver: &MessageAuthenticator,
        raw: &[u8],
        facts: &MessageFacts,
    ) -> Option<AuthFacts> {
        if !settings.authentication {
            return None;
        }
        let env = auth::Envelope {
            client_ip: crate::filter::canonical_ip(facts.client_ip),
            helo: &facts.helo,
            mail_from: &facts.from,
            hostname: &self.hostname,
        };
        Some(auth::check(resolver, raw, &env).await)
    }

    /// The signature clamd found, `None` when clean or unscanned (`skip` on failure).
    async fn scan(
        &self,
        settings: &FilterSection,
        raw: &[u8],
    ) -> Result<Option<String>, FactsError> {
        let Some(addr) = &settings.clamd else {
            return Ok(None);
        };
        let timeout = Duration::from_millis(settings.clamd_timeout_ms);
        match clamd::scan(addr, raw, timeout).await {
            Ok(found) => Ok(found),
            Err(e) if settings.on_clamd_failure == OnFailure::Skip => {
                tracing::warn!(error = %e, "virus scan skipped");
                Ok(None)
            }
            Err(e) => Err(FactsError::Scan(e.to_string())),
        }
    }
}

/// The client's reverse name, when the facts do not have it yet, the client is public and
/// the mail is inbound (the `client` symbols judge nothing else). `None` leaves it
/// unchecked, also when the lookup fails or outlasts `deadline`: a missing reverse name is
/// a weak sign, never a reason to make the client retry.
async fn reverse_name(
    resolver: &MessageAuthenticator,
    facts: &MessageFacts,
    deadline: Duration,
) -> Option<ReverseName> {
    if facts.reverse_name != ReverseName::NotChecked
        || facts.direction == Direction::Outbound
        || !is_public_client(facts.client_ip)
    {
        return None;
    }
    match tokio::time::timeout(deadline, rdns::lookup(resolver, facts.client_ip)).await {
        Ok(Ok(name)) => Some(name),
        Ok(Err(why)) => {
            tracing::debug!(client = %facts.client_ip, %why, "reverse name not checked");
            None
        }
        Err(_) => None,
    }
}

/// Configured zones, then the zones rules read; lowercase, no trailing dot, no repeats.
fn zones_to_query(configured: &[String], rule_zones: &BTreeSet<String>) -> Vec<String> {
    let mut zones: Vec<String> = Vec::new();
    for zone in configured.iter().chain(rule_zones) {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        if !zone.is_empty() && !zones.contains(&zone) && zones.len() < DNSBL_QUERIES_MAX {
            zones.push(zone);
        }
    }
    zones
}

/// Puts listings into the facts (`[]` = not listed); returns the first failure.
fn record_dnsbl(
    facts: &mut MessageFacts,
    listings: impl IntoIterator<Item = (String, Listing)>,
) -> Option<String> {
    let mut failure = None;
    for (zone, listing) in listings {
        let records = match listing {
            Listing::Listed(records) => records,
            Listing::NotListed => Vec::new(),
            Listing::Failed(why) => {
                failure.get_or_insert(format!("DNSBL {zone}: {why}"));
                Vec::new()
            }
        };
        facts.dnsbl.insert(zone, records);
    }
    failure
}

/// Puts URIBL listings into the facts; returns the first failure.
fn record_uribl(facts: &mut MessageFacts, answers: Vec<uribl::Answer>) -> Option<String> {
    let mut failure = None;
    for answer in answers {
        match answer.listing {
            Listing::Listed(records) => facts.uribl.push(UriblListing {
                zone: answer.zone.trim_end_matches('.').to_ascii_lowercase(),
                domain: answer.domain,
                records,
            }),
            Listing::NotListed => {}
            Listing::Failed(why) => {
                failure.get_or_insert(format!("URIBL {}: {why}", answer.zone));
            }
        }
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_normalised_and_bounded() {
        let rule_zones: BTreeSet<String> = ["bl.test".to_string(), "rule.test".to_string()].into();
        let zones = zones_to_query(&["BL.test.".into()], &rule_zones);
        assert_eq!(zones, ["bl.test", "rule.test"]);
        let many: Vec<String> = (0..100).map(|i| format!("z{i}.test")).collect();
        assert_eq!(
            zones_to_query(&many, &BTreeSet::new()).len(),
            DNSBL_QUERIES_MAX
        );
    }

    #[test]
    fn failures_are_not_listings() {
        let mut facts = MessageFacts::default();
        let failure = record_dnsbl(
            &mut facts,
            [
                (
                    "a.test".to_string(),
                    Listing::Listed(vec!["127.0.0.2".into()]),
                ),
                ("b.test".to_string(), Listing::Failed("timeout".into())),
            ],
        );
        assert_eq!(failure.as_deref(), Some("DNSBL b.test: timeout"));
        assert_eq!(facts.dnsbl["a.test"], ["127.0.0.2"]);
        assert!(facts.dnsbl["b.test"].is_empty());
    }
}
