//! SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) with mail-auth, over the facts
//! resolver. mail-auth enforces the 10-lookup limit of RFC 7208 §4.6.4; the 2-void-lookup
//! limit is enforced here by counting, per check, the lookups that found nothing.

use std::borrow::Borrow;
use std::hash::Hash;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MX, MessageAuthenticator, Parameters, RecordSet,
    ResolverCache, SpfResult, Txt,
};

/// RFC 7208 §4.6.4: more than this many void lookups is a `permerror`.
pub const SPF_VOID_LOOKUPS_MAX: u32 = 2;

pub use crate::message::auth_results::{AuthFacts, Check, TEMPERROR};

/// The envelope side of the checks.
pub struct Envelope<'a> {
    /// The client's IP address (SPF's `%{i}`).
    pub client_ip: IpAddr,
    /// The name the client gave in HELO/EHLO.
    pub helo: &'a str,
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: &'a str,
    /// This node's name (SPF `%{r}`).
    pub hostname: &'a str,
}

/// Runs SPF, DKIM and DMARC for `raw`.
pub async fn check(resolver: &MessageAuthenticator, raw: &[u8], env: &Envelope<'_>) -> AuthFacts {
    let spf_output = spf(resolver, env).await;
    let spf = spf_check(&spf_output, env);
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        let none = Check {
            result: "none",
            props: Vec::new(),
        };
        return AuthFacts {
            spf,
            dkim: Vec::new(),
            dmarc: none,
            dmarc_policy: None,
        };
    };
    let dkim_output = resolver.verify_dkim(&message).await;
    let dkim = dkim_output.iter().map(dkim_check).collect();
    let mail_from_domain = domain_of(env.mail_from).unwrap_or(env.helo);
    let dmarc_output = resolver
        .verify_dmarc(DmarcParameters::new(
            &message,
            &dkim_output,
            mail_from_domain,
            &spf_output,
        ))
        .await;
    let dmarc = Check {
        result: dmarc_word(&dmarc_output.result()),
        props: header_from(&message),
    };
    let dmarc_policy = match dmarc_output.result() {
        DmarcResult::None | DmarcResult::TempError(_) => None,
        _ => policy_word(dmarc_output.policy()),
    };
    AuthFacts {
        spf,
        dkim,
        dmarc,
        dmarc_policy,
    }
}

/// The policy keyword (RFC 7489 §6.3 `p=`), `None` when unspecified.
fn policy_word(policy: mail_auth::dmarc::Policy) -> Option<&'static str> {
    match policy {
        mail_auth::dmarc::Policy::None => Some("none"),
        mail_auth::dmarc::Policy::Quarantine => Some("quarantine"),
        mail_auth::dmarc::Policy::Reject => Some("reject"),
        mail_auth::dmarc::Policy::Unspecified => None,
    }
}

/// SPF of MAIL FROM (of HELO for the null sender, RFC 7208 §2.4), with the void-lookup
/// limit counted for that one check.
pub(crate) async fn spf(
    resolver: &MessageAuthenticator,
    env: &Envelope<'_>,
) -> mail_auth::SpfOutput {
    let counter = VoidCounter::default();
    let params = if env.mail_from.is_empty() {
        SpfParameters::verify_ehlo(env.client_ip, env.helo, env.hostname)
    } else {
        SpfParameters::verify_mail_from(env.client_ip, env.helo, env.hostname, env.mail_from)
    };
    let params = Parameters::new(params)
        .with_txt_cache(&counter.txt)
        .with_mx_cache(&counter.mx)
        .with_ipv4_cache(&counter.ipv4)
        .with_ipv6_cache(&counter.ipv6);
    let output = resolver.check_host(params).await;
    if output.result() != SpfResult::TempError && counter.voids() > SPF_VOID_LOOKUPS_MAX {
        return output.with_result(SpfResult::PermError);
    }
    output
}

fn spf_check(output: &mail_auth::SpfOutput, env: &Envelope<'_>) -> Check {
    let props = if env.mail_from.is_empty() {
        vec![("smtp.helo", env.helo.to_string())]
    } else {
        vec![("smtp.mailfrom", env.mail_from.to_string())]
    };
    Check {
        result: spf_word(output.result()),
        props,
    }
}

fn dkim_check(output: &mail_auth::DkimOutput<'_>) -> Check {
    let props = output.signature().map_or_else(Vec::new, |s| {
        vec![("header.d", s.d.clone()), ("header.s", s.s.clone())]
    });
    Check {
        result: dkim_word(output.result()),
        props,
    }
}

fn header_from(message: &AuthenticatedMessage<'_>) -> Vec<(&'static str, String)> {
    message
        .from
        .first()
        .and_then(|from| domain_of(from))
        .map(|d| vec![("header.from", d.to_string())])
        .unwrap_or_default()
}

fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// RFC 8601 result keyword of an SPF result.
pub fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => TEMPERROR,
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        // mail-auth says neutral; RFC 6376 §6.1.3 makes a body hash mismatch a PERMFAIL
        // of the signature, which RFC 8601 §2.7.1 reports as `fail` (as OpenDKIM does).
        DkimResult::Neutral(mail_auth::Error::Dkim(
            mail_auth::dkim::DkimError::FailedBodyHashMatch,
        )) => "fail",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => TEMPERROR,
        DkimResult::None => "none",
    }
}

fn dmarc_word(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => TEMPERROR,
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

/// Counts an SPF check's lookups: mail-auth asks the cache before every lookup (`get`)
/// and stores every answer it got (`insert`); a lookup with no stored answer, or an empty
/// one, found nothing (NXDOMAIN or no records) — a void lookup.
#[derive(Default)]
struct VoidCounter {
    txt: Counting<Box<str>, Txt>,
    mx: Counting<Box<str>, RecordSet<MX>>,
    ipv4: Counting<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Counting<Box<str>, RecordSet<Ipv6Addr>>,
}

impl VoidCounter {
    fn voids(&self) -> u32 {
        self.txt.voids() + self.mx.voids() + self.ipv4.voids() + self.ipv6.voids()
    }
}

/// A cache that stores nothing and counts lookups and non-empty answers.
struct Counting<K, V> {
    lookups: AtomicU32,
    answered: AtomicU32,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Default for Counting<K, V> {
    fn default() -> Self {
        Counting {
            lookups: AtomicU32::new(0),
            answered: AtomicU32::new(0),
            _types: PhantomData,
        }
    }
}

impl<K, V> Counting<K, V> {
    fn voids(&self) -> u32 {
        let lookups = self.lookups.load(Ordering::Relaxed);
        lookups.saturating_sub(self.answered.load(Ordering::Relaxed))
    }
}

/// Whether a stored answer has records.
trait Answer {
    fn is_empty_answer(&self) -> bool;
}

impl Answer for Txt {
    /// A stored TXT answer had records (an empty one is an error, never stored).
    fn is_empty_answer(&self) -> bool {
        false
    }
}

impl<T> Answer for RecordSet<T> {
    fn is_empty_answer(&self) -> bool {
        self.rrset.is_empty()
    }
}

impl<K: Hash + Eq, V: Answer> ResolverCache<K, V> for Counting<K, V> {
    fn get<Q>(&self, _name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        None
    }

    fn remove<Q>(&self, _name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: K, value: V, _valid_until: std::time::Instant) {
        if !value.is_empty_answer() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
