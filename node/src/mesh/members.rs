//! The membership view: who is in the mesh, live or not, and what each node publishes.
//!
//! Each node publishes key-values in its own chitchat state: the mesh's own ([`keys`]) and
//! the application's ([`super::app::MeshApp::published`], the replicas' digests). The view
//! combines them with chitchat's failure detector and with [`super::gossip::Verified`]:
//! only nodes whose `(id, address)` was proven by a direct authenticated exchange or by
//! their signed identity claim ([`super::claim`]) are members.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

use chitchat::{Chitchat, ChitchatId, NodeState};

use super::gossip::Verified;

/// Keys the mesh itself publishes in every node's chitchat state.
pub mod keys {
    /// Build version (`CARGO_PKG_VERSION`), for rolling upgrades.
    pub const VERSION: &str = "version";
    /// Wire protocol version of the mesh messages.
    pub const PROTOCOL: &str = "protocol";
    /// The node's signed identity claim (`super::super::claim`), when it has a certificate.
    pub const IDENTITY: &str = "identity";
}

/// One member: who it is, whether it is live, and what it publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node id (from its certificate, proven; see the module docs).
    pub id: String,
    /// Held live by the failure detector (always true for this node).
    pub live: bool,
    /// The build version it publishes.
    pub version: String,
    /// Its mesh address (what peers dial).
    pub mesh_addr: String,
    /// Milliseconds since its heartbeat last moved, as seen here (0 for this node).
    pub last_seen_ms: u64,
    /// Everything else it publishes (the application's keys), by key.
    published: Arc<BTreeMap<String, String>>,
}

impl Member {
    /// A member as built by hand (a node without a mesh describing itself).
    pub fn new(id: &str, version: &str, published: BTreeMap<String, String>) -> Member {
        Member {
            id: id.to_string(),
            live: true,
            version: version.to_string(),
            mesh_addr: String::new(),
            last_seen_ms: 0,
            published: Arc::new(published),
        }
    }

    /// The value it publishes under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.published.get(key).map(String::as_str)
    }

    /// Every key-value it publishes besides the mesh's own.
    pub fn published(&self) -> &BTreeMap<String, String> {
        &self.published
    }
}

/// What the view keeps between builds: when each node's heartbeat last moved, as seen
/// here, and each incarnation's member as last built. The view is built several times a
/// second per node, over every node in the mesh; a member is rebuilt (its keys looked up,
/// its key-values copied) only when its node's state has a new version.
#[derive(Default)]
pub struct ViewCache {
    seen: HashMap<String, (u64, Instant)>,
    built: HashMap<ChitchatId, Built>,
}

/// One member as built from its node's state at `version` (`live` and `last_seen_ms` are
/// set at every build).
struct Built {
    version: u64,
    member: Member,
}

impl ViewCache {
    /// Records the current heartbeats of every known node.
    pub fn observe(&mut self, chitchat: &Chitchat) {
        let now = Instant::now();
        for (id, state) in chitchat.node_states() {
            let hb = u64::from(state.heartbeat());
            match self.seen.get_mut(&*id.node_id) {
                Some(e) if e.0 != hb => *e = (hb, now),
                Some(_) => {}
                None => {
                    self.seen.insert(id.node_id.to_string(), (hb, now));
                }
            }
        }
    }

    /// The member for incarnation `id`, rebuilt from `state` only if it changed since.
    fn member(&mut self, id: &ChitchatId, state: &NodeState) -> &mut Member {
        let version = state.max_version();
        let built = self.built.entry(id.clone()).or_insert_with(|| Built {
            version,
            member: member_of(id, state),
        });
        if built.version != version {
            *built = Built {
                version,
                member: member_of(id, state),
            };
        }
        &mut built.member
    }

    /// Drops the members of incarnations chitchat no longer holds.
    fn forget_gone(&mut self, chitchat: &Chitchat) {
        if self.built.len() > chitchat.node_states().len() {
            let states = chitchat.node_states();
            self.built.retain(|id, _| states.contains_key(id));
        }
    }

    fn ms_since(&self, node_id: &str) -> u64 {
        self.seen
            .get(node_id)
            .map(|(_, t)| t.elapsed().as_millis() as u64)
            .unwrap_or(u64::MAX)
    }
}

/// Incarnation `id` as its state publishes it (not yet `live`, `last_seen_ms` unset).
fn member_of(id: &ChitchatId, state: &NodeState) -> Member {
    let published = state
        .key_values()
        .filter(|(k, _)| ![keys::VERSION, keys::PROTOCOL, keys::IDENTITY].contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Member {
        id: id.node_id.to_string(),
        live: false,
        version: state.get(keys::VERSION).unwrap_or_default().to_string(),
        mesh_addr: id.gossip_advertise_addr.to_string(),
        last_seen_ms: 0,
        published: Arc::new(published),
    }
}

/// One incarnation per node id among `(id, live)` candidates: a live one before a dead one,
/// then the newest generation.
fn one_per_node<'a>(
    candidates: impl Iterator<Item = (&'a ChitchatId, bool)>,
) -> BTreeMap<&'a str, &'a ChitchatId> {
    let mut chosen: BTreeMap<&str, (&ChitchatId, bool)> = BTreeMap::new();
    for (id, live) in candidates {
        let slot = chosen.entry(&*id.node_id).or_insert((id, live));
        if (live, id.generation_id) > (slot.1, slot.0.generation_id) {
            *slot = (id, live);
        }
    }
    chosen.into_iter().map(|(k, (id, _))| (k, id)).collect()
}

/// The members: this node first, then the verified others by id, one incarnation each: a
/// live one before a dead one, then the newest generation. (Generations come from the
/// node's clock at start; a node restarted with its clock stepped back has a lower one
/// than its dead past life, and must not hide behind it.)
pub fn view(chitchat: &Chitchat, verified: &Verified, cache: &mut ViewCache) -> Vec<Member> {
    let me = chitchat.self_chitchat_id().clone();
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    let candidates = chitchat.node_states().keys().filter(|id| {
        let is_me = id.node_id == me.node_id;
        if is_me {
            **id == me
        } else {
            verified.is_verified(&id.node_id, id.gossip_advertise_addr)
        }
    });
    let chosen = one_per_node(candidates.map(|id| (id, *id == me || live.contains(&id))));
    cache.forget_gone(chitchat);
    let mut out: Vec<Member> = chosen
        .into_values()
        .filter_map(|id| {
            let state = chitchat.node_state(id)?;
            let is_me = *id == me;
            let last_seen_ms = if is_me {
                0
            } else {
                cache.ms_since(&id.node_id)
            };
            let member = cache.member(id, state);
            member.live = is_me || live.contains(id);
            member.last_seen_ms = last_seen_ms;
            Some(member.clone())
        })
        .collect();
    out.sort_by(|a, b| {
        (a.id != me.node_id.as_ref(), &a.id).cmp(&(b.id != me.node_id.as_ref(), &b.id))
    });
    out
}

/// The mesh address of a live member, by id.
pub fn address_of(members: &[Member], node_id: &str) -> Option<SocketAddr> {
    members
        .iter()
        .find(|m| m.id == node_id)
        .and_then(|m| m.mesh_addr.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incarnation(generation: u64) -> ChitchatId {
        ChitchatId::new(
            "mx4".to_string(),
            generation,
            "10.77.0.4:7946".parse().unwrap(),
        )
    }

    fn chosen_generation(candidates: &[(ChitchatId, bool)]) -> u64 {
        let chosen = one_per_node(candidates.iter().map(|(id, live)| (id, *live)));
        assert_eq!(chosen.len(), 1);
        chosen["mx4"].generation_id
    }

    #[test]
    fn a_live_incarnation_wins_over_a_dead_newer_generation() {
        // Restarted with its clock stepped back: the live incarnation has the lower generation.
        let (old, new) = (incarnation(2_000), incarnation(1_000));
        assert_eq!(
            chosen_generation(&[(old.clone(), false), (new.clone(), true)]),
            1_000
        );
        assert_eq!(
            chosen_generation(&[(new.clone(), true), (old.clone(), false)]),
            1_000
        );
        assert_eq!(
            chosen_generation(&[(old.clone(), false), (new.clone(), false)]),
            2_000
        );
        assert_eq!(chosen_generation(&[(new, true), (old, true)]), 2_000);
    }

    #[test]
    fn a_member_is_rebuilt_only_when_its_state_has_a_new_version() {
        let mut state = NodeState::for_test();
        let id = state.chitchat_id().clone();
        state.set("health", "ok");
        state.set("counters", r#"{"accepted":7}"#);
        let mut cache = ViewCache::default();
        let built = cache.member(&id, &state);
        assert_eq!(
            (built.get("health"), built.get("counters")),
            (Some("ok"), Some(r#"{"accepted":7}"#))
        );
        built.version = "marked".into();
        assert_eq!(
            cache.member(&id, &state).version,
            "marked",
            "same version: the member built before is reused"
        );
        state.set("health", "draining");
        let rebuilt = cache.member(&id, &state);
        assert_eq!(
            (rebuilt.version.as_str(), rebuilt.get("health")),
            ("", Some("draining")),
            "new version: rebuilt from the state"
        );
    }
}
