//! SPF, DKIM and DMARC outcomes (gathered in the facts phase). A DMARC failure weighs
//! by the policy the From domain asked for: `p=reject` most.

use super::Hits;
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Adds the symbols of the three results that were checked.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    if let Some(spf) = facts.spf.as_deref() {
        let name = match spf {
            "pass" => SPF_PASS,
            "fail" => SPF_FAIL,
            "softfail" => SPF_SOFTFAIL,
            "neutral" => SPF_NEUTRAL,
            "none" => SPF_NONE,
            "permerror" => SPF_PERMERROR,
            _ => SPF_TEMPERROR,
        };
        hits.add(name, format!("spf={spf} smtp.mailfrom={}", facts.from));
    }
    if let Some(dkim) = facts.dkim.as_deref() {
        let name = match dkim {
            "pass" => Some(DKIM_PASS),
            "fail" => Some(DKIM_FAIL),
            "permerror" => Some(DKIM_PERMERROR),
            "none" => Some(DKIM_NONE),
            _ => None,
        };
        if let Some(name) = name {
            hits.add(name, format!("dkim={dkim}"));
        }
    }
    dmarc(facts, hits);
}

fn dmarc(facts: &MessageFacts, hits: &mut Hits) {
    let Some(result) = facts.dmarc.as_deref() else {
        return;
    };
    let policy = facts.dmarc_policy.as_deref().unwrap_or("none");
    let name = match (result, policy) {
        ("pass", _) => DMARC_PASS,
        ("fail", "reject") => DMARC_FAIL_REJECT,
        ("fail", "quarantine") => DMARC_FAIL_QUARANTINE,
        ("fail", _) => DMARC_FAIL,
        ("none", _) => DMARC_NONE,
        ("permerror", _) => DMARC_PERMERROR,
        _ => return,
    };
    hits.add(name, format!("dmarc={result} p={policy}"));
}

#[cfg(test)]
mod tests {
    use super::super::test_support::names;
    use super::*;

    fn auth(spf: &str, dkim: &str, dmarc: &str, policy: Option<&str>) -> MessageFacts {
        MessageFacts {
            spf: Some(spf.into()),
            dkim: Some(dkim.into()),
            dmarc: Some(dmarc.into()),
            dmarc_policy: policy.map(str::to_string),
            ..MessageFacts::default()
        }
    }

    #[test]
    fn results_map_to_symbols() {
        assert_eq!(
            names(check, &auth("pass", "pass", "pass", Some("reject"))),
            [SPF_PASS, DKIM_PASS, DMARC_PASS]
        );
        assert_eq!(
            names(check, &auth("fail", "fail", "fail", Some("reject"))),
            [SPF_FAIL, DKIM_FAIL, DMARC_FAIL_REJECT]
        );
        assert_eq!(
            names(check, &auth("softfail", "none", "fail", Some("quarantine"))),
            [SPF_SOFTFAIL, DKIM_NONE, DMARC_FAIL_QUARANTINE]
        );
        assert_eq!(
            names(check, &auth("neutral", "permerror", "fail", None)),
            [SPF_NEUTRAL, DKIM_PERMERROR, DMARC_FAIL]
        );
        assert_eq!(
            names(check, &auth("temperror", "temperror", "none", None)),
            [SPF_TEMPERROR, DMARC_NONE]
        );
    }

    #[test]
    fn unchecked_results_add_nothing() {
        assert!(names(check, &MessageFacts::default()).is_empty());
    }
}
