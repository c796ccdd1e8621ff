//! Which hosts to try, in which order, for a destination domain (RFC 5321 §5.1, RFC 7505):
//! a pure function of the MX records found, so the rules are tested without DNS.
//!
//! - Lower preference first; hosts of equal preference in random order (spreads load).
//! - No MX records at all: the domain itself is the only host ("implicit MX").
//! - A single MX whose exchange is the root (`.`) is a null MX: the domain accepts no
//!   mail, so nothing is attempted. A root exchange among other MX records is ignored.
//! - At most [`MX_HOSTS_MAX`] hosts are kept, so a huge answer cannot make a huge loop.
//! - When our own host name is among the exchanges, it and every exchange of equal or
//!   higher preference go (RFC 5321 §5.1): delivering there would loop back to us.

use rand::Rng;
use rand::seq::SliceRandom;

/// Hosts of one domain tried per attempt at most (Postfix tries 5 by default).
pub const MX_HOSTS_MAX: usize = 10;

/// One MX record: preference and exchange host name (lowercase, no trailing dot; the
/// root is `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    /// Lower is tried first.
    pub preference: u16,
    /// The exchange's host name; `""` is the root (null MX).
    pub exchange: String,
}

/// What to do for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Try these hosts in this order.
    Hosts(Vec<String>),
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    NullMx,
}

/// The hosts to try for `domain` given its MX records (empty: the lookup found none);
/// `me` is our own host name (lowercase, no trailing dot).
pub fn order(domain: &str, records: &[MxRecord], me: &str, rng: &mut impl Rng) -> Plan {
    if records.is_empty() {
        return Plan::Hosts(vec![domain.to_string()]);
    }
    if records.len() == 1 && records[0].exchange.is_empty() {
        return Plan::NullMx;
    }
    let own = records
        .iter()
        .filter(|r| r.exchange == me)
        .map(|r| r.preference)
        .min();
    let mut usable: Vec<&MxRecord> = records
        .iter()
        .filter(|r| !r.exchange.is_empty() && own.is_none_or(|p| r.preference < p))
        .collect();
    usable.shuffle(rng);
    // A stable sort keeps the shuffled order within each preference.
    usable.sort_by_key(|r| r.preference);
    let mut hosts: Vec<String> = Vec::with_capacity(usable.len().min(MX_HOSTS_MAX));
    for r in usable {
        if hosts.len() >= MX_HOSTS_MAX {
            break;
        }
        if !hosts.contains(&r.exchange) {
            hosts.push(r.exchange.clone());
        }
    }
    Plan::Hosts(hosts)
}

/// A host name as found in DNS: lowercase, without the trailing dot (the root is `""`).
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const ME: &str = "mx1.ours.test";

    fn mx(preference: u16, exchange: &str) -> MxRecord {
        MxRecord {
            preference,
            exchange: exchange.into(),
        }
    }

    fn hosts(plan: Plan) -> Vec<String> {
        match plan {
            Plan::Hosts(h) => h,
            Plan::NullMx => panic!("unexpected null MX"),
        }
    }

    #[test]
    fn lower_preference_is_tried_first() {
        let records = [mx(30, "c.test"), mx(10, "a.test"), mx(20, "b.test")];
        for seed in 0..20 {
            let plan = order("d.test", &records, ME, &mut StdRng::seed_from_u64(seed));
            assert_eq!(hosts(plan), ["a.test", "b.test", "c.test"]);
        }
    }

    #[test]
    fn equal_preferences_are_shuffled_but_stay_in_their_rank() {
        let records = [mx(10, "a1.test"), mx(10, "a2.test"), mx(20, "b.test")];
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let h = hosts(order(
                "d.test",
                &records,
                ME,
                &mut StdRng::seed_from_u64(seed),
            ));
            assert_eq!(h[2], "b.test", "the higher preference stays last: {h:?}");
            firsts.insert(h[0].clone());
        }
        assert_eq!(firsts.len(), 2, "both equal hosts come first sometimes");
    }

    #[test]
    fn no_mx_records_means_the_domain_itself() {
        let plan = order("d.test", &[], ME, &mut StdRng::seed_from_u64(1));
        assert_eq!(hosts(plan), ["d.test"]);
    }

    #[test]
    fn a_lone_root_exchange_is_a_null_mx() {
        let plan = order("d.test", &[mx(0, "")], ME, &mut StdRng::seed_from_u64(1));
        assert_eq!(plan, Plan::NullMx);
    }

    #[test]
    fn a_root_exchange_among_others_is_ignored() {
        let records = [mx(0, ""), mx(10, "a.test")];
        let plan = order("d.test", &records, ME, &mut StdRng::seed_from_u64(1));
        assert_eq!(hosts(plan), ["a.test"]);
    }

    #[test]
    fn duplicates_go_and_the_list_is_bounded() {
        let mut records: Vec<MxRecord> = (0..50).map(|i| mx(i, &format!("h{i}.test"))).collect();
        records.push(mx(0, "h0.test"));
        let h = hosts(order("d.test", &records, ME, &mut StdRng::seed_from_u64(1)));
        assert_eq!(h.len(), MX_HOSTS_MAX);
        assert_eq!(h[0], "h0.test");
        assert_eq!(h[1], "h1.test", "the duplicate of h0 is dropped");
    }

    #[test]
    fn our_own_name_and_everything_after_it_go() {
        let records = [
            mx(10, "a.test"),
            mx(20, ME),
            mx(20, "b.test"),
            mx(30, "c.test"),
        ];
        let plan = order("d.test", &records, ME, &mut StdRng::seed_from_u64(1));
        assert_eq!(hosts(plan), ["a.test"]);
        let records = [mx(10, ME), mx(20, "b.test")];
        let plan = order("d.test", &records, ME, &mut StdRng::seed_from_u64(1));
        assert_eq!(plan, Plan::Hosts(Vec::new()), "only a loop is left");
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize("MX1.Example.COM."), "mx1.example.com");
        assert_eq!(normalize("."), "");
    }
}
