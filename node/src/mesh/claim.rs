//! Signed identity claims: how a node proves its `(id, address)` to nodes it has never
//! exchanged a message with.
//!
//! Without them a node lists a peer only after a direct authenticated exchange
//! ([`super::gossip::Verified`]), and gossip (3 peers a round) needs O(N log N / 3) rounds to
//! bring every pair together: about 5 minutes at 1,000 nodes, during which a node's admin
//! API cannot forward to most owners and its DNS set misses most peers. So every node
//! publishes, under [`super::members::keys::IDENTITY`], its certificate and a signature by
//! its key over `(cluster, node id, generation, gossip address)`. A node that reads the
//! claim in gossip checks that the certificate chains to the cluster CA and names that node
//! id, and that the signature is right; then the incarnation counts as verified, exactly
//! as if it had talked to us. A member gossiping someone else's state cannot forge one:
//! it would need that node's key. (A deployment whose certificates need intermediates
//! publishes no usable claim and falls back to direct exchanges.)
//!
//! Checking costs two ECDSA verifications, so results are kept: per node, which
//! incarnations were refused; per process, the outcome for each exact claim (a pure
//! function of the CA, the claimed incarnation and the claim text), which lets the
//! simulator's 1,000 nodes check each claim once instead of 1,000 times.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chitchat::{Chitchat, ChitchatId};
use rustls::SignatureScheme;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};

use super::gossip::Verified;
use super::members::keys;
use super::tls::{Identity, TlsError, provider};
use super::tls_verify::ClusterClientVerifier;
use super::transport::Peer;
use crate::ca;

/// Refused incarnations remembered per node; beyond this the memory starts over.
pub const REFUSED_MAX: usize = 10_000;
/// Claim outcomes remembered per process; beyond this the memory starts over.
pub const OUTCOMES_MAX: usize = 100_000;
/// Longest claim text looked at (a P-256 certificate and signature take about 800 bytes).
pub const CLAIM_BYTES_MAX: usize = 8 * 1024;

/// The schemes a claim may be signed with, in order of preference.
const SCHEMES: [SignatureScheme; 3] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
];

/// Outcomes of exact claims, by SHA-256 of (CA, signed text, claim).
static OUTCOMES: LazyLock<Mutex<HashMap<[u8; 32], bool>>> = LazyLock::new(Default::default);

/// A node's claims: its own, and the checking of everyone else's.
pub struct Claims {
    identity: Identity,
    cluster_id: String,
    verifier: Arc<ClusterClientVerifier>,
    ca_fingerprint: [u8; 32],
    /// Incarnations whose claim was refused, with a hash of the refused text.
    refused: Mutex<HashSet<(ChitchatId, [u8; 32])>>,
}

impl Claims {
    pub fn new(identity: Identity, cluster_id: &str) -> Result<Claims, TlsError> {
        let verifier = super::tls::client_verifier(&identity)?;
        let ca_fingerprint = Sha256::digest(identity.ca_cert()).into();
        Ok(Claims {
            identity,
            cluster_id: cluster_id.to_owned(),
            verifier,
            ca_fingerprint,
            refused: Mutex::new(HashSet::new()),
        })
    }

    /// This node's claim for its incarnation `me`: the value it publishes under
    /// [`keys::IDENTITY`] (`scheme.certificate.signature`, base64).
    pub fn own(&self, me: &ChitchatId) -> Result<String, TlsError> {
        let (scheme, signature) = self.identity.sign(&SCHEMES, &self.signed_text(me))?;
        Ok(format!(
            "{}.{}.{}",
            u16::from(scheme),
            B64.encode(self.identity.leaf()),
            B64.encode(signature)
        ))
    }

    /// Whether `claim` proves incarnation `id` (see the module docs).
    pub fn proves(&self, id: &ChitchatId, claim: &str) -> bool {
        if claim.len() > CLAIM_BYTES_MAX {
            return false;
        }
        let text = self.signed_text(id);
        let key: [u8; 32] = Sha256::new()
            .chain_update(self.ca_fingerprint)
            .chain_update(&text)
            .chain_update(claim.as_bytes())
            .finalize()
            .into();
        if let Some(known) = lock(&OUTCOMES).get(&key) {
            return *known;
        }
        let outcome = self.check(id, &text, claim).is_ok();
        let mut outcomes = lock(&OUTCOMES);
        if outcomes.len() >= OUTCOMES_MAX {
            outcomes.clear();
        }
        outcomes.insert(key, outcome);
        outcome
    }

    /// Records in `verified` every incarnation in `chitchat`'s state that is not verified
    /// yet and whose published claim proves it. Incarnations already verified cost one
    /// lookup; refused ones are not checked again until their claim text changes.
    pub fn verify_published(&self, chitchat: &Chitchat, verified: &Verified) {
        let me = chitchat.self_chitchat_id();
        for (id, state) in chitchat.node_states() {
            if id == me || verified.is_verified(&id.node_id, id.gossip_advertise_addr) {
                continue;
            }
            let Some(claim) = state.get(keys::IDENTITY) else {
                continue;
            };
            let refusal = (id.clone(), Sha256::digest(claim.as_bytes()).into());
            if lock(&self.refused).contains(&refusal) {
                continue;
            }
            if self.proves(id, claim) {
                verified.record(&Peer {
                    node_id: id.node_id.to_string(),
                    addr: id.gossip_advertise_addr,
                });
            } else {
                tracing::warn!(node = %id.node_id, addr = %id.gossip_advertise_addr, "identity claim refused");
                let mut refused = lock(&self.refused);
                if refused.len() >= REFUSED_MAX {
                    refused.clear();
                }
                refused.insert(refusal);
            }
        }
    }

    fn signed_text(&self, id: &ChitchatId) -> Vec<u8> {
        format!(
            "mxmesh identity claim v1\ncluster {}\nnode {}\ngeneration {}\naddress {}\n",
            self.cluster_id, id.node_id, id.generation_id, id.gossip_advertise_addr
        )
        .into_bytes()
    }

    fn check(&self, id: &ChitchatId, text: &[u8], claim: &str) -> Result<(), String> {
        let mut parts = claim.split('.');
        let (Some(scheme), Some(cert), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not scheme.certificate.signature".into());
        };
        let scheme = SignatureScheme::from(scheme.parse::<u16>().map_err(|e| e.to_string())?);
        let cert = CertificateDer::from(B64.decode(cert).map_err(|e| e.to_string())?);
        let signature = B64.decode(signature).map_err(|e| e.to_string())?;
        self.verifier
            .verify_client_cert(&cert, &[], UnixTime::now())
            .map_err(|e| format!("certificate: {e}"))?;
        let named = ca::node_id_of(&cert).map_err(|e| e.to_string())?;
        if named != *id.node_id {
            return Err(format!(
                "certificate names {named}, claim is for {}",
                id.node_id
            ));
        }
        verify_signature(&cert, scheme, text, &signature)
    }
}

/// Checks `signature` over `text` with the public key of `cert`.
fn verify_signature(
    cert: &CertificateDer<'_>,
    scheme: SignatureScheme,
    text: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    if !SCHEMES.contains(&scheme) {
        return Err(format!("scheme {scheme:?} not accepted"));
    }
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| format!("certificate: {e}"))?;
    let public_key = parsed.public_key().subject_public_key.data.as_ref();
    let algorithms = provider().signature_verification_algorithms;
    let (_, candidates) = algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .ok_or_else(|| format!("scheme {scheme:?} not supported"))?;
    candidates
        .iter()
        .any(|alg| alg.verify_signature(public_key, text, signature).is_ok())
        .then_some(())
        .ok_or_else(|| "bad signature".to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(ca: &ca::CaPem, node: &str) -> Identity {
        let pem = ca::issue_pem(ca, node).unwrap();
        Identity::from_pem(&ca.cert_pem, &pem.chain_pem, &pem.key_pem).unwrap()
    }

    fn incarnation(node: &str, generation: u64, addr: &str) -> ChitchatId {
        ChitchatId::new(node.to_string(), generation, addr.parse().unwrap())
    }

    #[test]
    fn a_nodes_own_claim_proves_its_incarnation_and_nothing_else() {
        crate::install_crypto_provider();
        let ca = ca::generate_ca().unwrap();
        let mx1 = Claims::new(identity(&ca, "mx1"), "prod").unwrap();
        let mx2 = Claims::new(identity(&ca, "mx2"), "prod").unwrap();
        let me = incarnation("mx1", 7, "10.0.0.1:7946");
        let claim = mx1.own(&me).unwrap();
        assert!(mx2.proves(&me, &claim), "a peer accepts the genuine claim");
        for other in [
            incarnation("mx1", 7, "10.0.0.66:7946"),
            incarnation("mx1", 8, "10.0.0.1:7946"),
            incarnation("mx3", 7, "10.0.0.1:7946"),
        ] {
            assert!(!mx2.proves(&other, &claim), "{other:?} must not pass");
        }
        let elsewhere = Claims::new(identity(&ca, "mx2"), "staging").unwrap();
        assert!(!elsewhere.proves(&me, &claim), "another cluster id");
    }

    #[test]
    fn forged_or_foreign_claims_are_refused() {
        crate::install_crypto_provider();
        let ca = ca::generate_ca().unwrap();
        let mx2 = Claims::new(identity(&ca, "mx2"), "prod").unwrap();
        let mx3 = Claims::new(identity(&ca, "mx3"), "prod").unwrap();
        let victim = incarnation("mx1", 7, "10.0.0.1:7946");
        // mx3 signs a claim for mx1 with its own (cluster-signed) certificate and key.
        let forged = mx3.own(&victim).unwrap();
        assert!(!mx2.proves(&victim, &forged));
        // A certificate from another CA, for the right node id.
        let other_ca = ca::generate_ca().unwrap();
        let foreign = Claims::new(identity(&other_ca, "mx1"), "prod").unwrap();
        assert!(!mx2.proves(&victim, &foreign.own(&victim).unwrap()));
        // Garbage of every shape.
        let genuine = Claims::new(identity(&ca, "mx1"), "prod")
            .unwrap()
            .own(&victim)
            .unwrap();
        let (scheme, rest) = genuine.split_once('.').unwrap();
        let (cert, _sig) = rest.split_once('.').unwrap();
        for bad in [
            String::new(),
            "1027".into(),
            format!("{scheme}.{cert}"),
            format!("{scheme}.{cert}.AAAA"),
            format!("{scheme}.{cert}.{}", B64.encode([0u8; 72])),
            format!("65535.{rest}"),
            format!("{genuine}.extra"),
            "x".repeat(CLAIM_BYTES_MAX + 1),
        ] {
            assert!(!mx2.proves(&victim, &bad), "{bad:.40}");
        }
        assert!(mx2.proves(&victim, &genuine));
    }

    #[test]
    fn reproducible_certificates_make_the_same_claim_every_time_and_it_proves() {
        crate::install_crypto_provider();
        let origin = |seed| ca::Origin::Reproducible {
            seed,
            since_day: 20_454,
        };
        let claim_of = |seed| {
            let ca = ca::generate_ca_with(origin(seed)).unwrap();
            let pem = ca::issue_pem_with(&ca, "mx1", origin(seed)).unwrap();
            let id = Identity::from_pem(&ca.cert_pem, &pem.chain_pem, &pem.key_pem).unwrap();
            let mx2 = ca::issue_pem_with(&ca, "mx2", origin(seed)).unwrap();
            let checker = Identity::from_pem(&ca.cert_pem, &mx2.chain_pem, &mx2.key_pem).unwrap();
            let me = incarnation("mx1", 7, "10.0.0.1:7946");
            let claim = Claims::new(id, "sim").unwrap().own(&me).unwrap();
            let checker = Claims::new(checker, "sim").unwrap();
            assert!(checker.proves(&me, &claim), "an Ed25519 claim proves");
            (ca.cert_pem, claim)
        };
        let (ca_a, claim_a) = claim_of(1);
        let (ca_b, claim_b) = claim_of(1);
        assert_eq!(
            (&ca_a, &claim_a),
            (&ca_b, &claim_b),
            "same seed, same bytes"
        );
        let (ca_c, claim_c) = claim_of(2);
        assert_ne!(ca_a, ca_c, "another seed, another CA");
        assert_ne!(claim_a, claim_c);
    }
}
