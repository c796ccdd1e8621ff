//! Mutual TLS between nodes, trusting the cluster CA and nothing else.
//!
//! **Design.** Both sides present their node certificate and verify the other's chain with
//! webpki against a root store that holds only the cluster CA (no web PKI, no system roots).
//!
//! - *Server side* ([`server_config`]): rustls' `WebPkiClientVerifier` with the CA as the only
//!   root, client certificates mandatory, wrapped so that a certificate must also carry a valid
//!   `<id>.node.mxmesh` name. A client without a certificate, or with one from another CA, fails
//!   the handshake: quinn never yields the connection, so no handler runs.
//! - *Client side* ([`client_config`]): a node dials seed addresses without knowing who answers,
//!   so the verifier reads the node id from the presented certificate's `<id>.node.mxmesh` name
//!   and asks webpki to verify the chain (CA root, serverAuth EKU, validity) *for that name*.
//!   Any valid cluster node is accepted. When the dialler does know the id, it dials with the
//!   server name `<id>.node.mxmesh` and the verifier then also requires that id; the generic
//!   name [`DIAL_SERVER_NAME`] means "any node of this cluster".
//! - After the handshake, [`peer_node_id`] reads the id from the peer's certificate. The mesh
//!   uses only that id as the sender of a message, never an id from a payload.
//! - TLS 1.3 only, ALPN [`ALPN`], no 0-RTT, no client-side session resumption (every
//!   connection proves its identity with a full handshake).
//! - No revocation: removing a node means rotating the CA (or waiting for expiry).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::tls_verify::{ClusterClientVerifier, ClusterServerVerifier};
use crate::ca;

/// Application protocol of the mesh; bumped only if the framing itself changes incompatibly.
pub const ALPN: &[u8] = b"mxmesh/1";
/// Server name used when dialling an address whose node id is not known: any cluster node.
pub const DIAL_SERVER_NAME: &str = "any.mxmesh";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold a usable PEM certificate or key (or the key does not fit).
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// The certificate fails the checks peers make (the cluster CA, validity, node id).
    #[error("{path}: certificate is not valid for this cluster: {reason}")]
    NotFromCluster { path: PathBuf, reason: String },
    /// The certificate names another node than `[node] id`.
    #[error("{path}: certificate is issued for node {found:?}, not {expected:?}")]
    WrongNode {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The TLS configuration cannot be built.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A peer presented no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    /// A peer's certificate cannot be used.
    #[error("peer certificate: {0}")]
    PeerCertificate(#[from] ca::CaError),
}

/// This node's mesh identity: the cluster CA, its certificate chain and key.
pub struct Identity {
    /// The node id the certificate is bound to (its `<id>.node.mxmesh` name).
    pub node_id: String,
    ca_cert: CertificateDer<'static>,
    /// Leaf first, then intermediates (the CA root itself is not sent).
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            node_id: self.node_id.clone(),
            ca_cert: self.ca_cert.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The three files (or PEM texts) an identity is made of, with names for error messages.
struct Sources<'a> {
    ca: (&'a Path, &'a [u8]),
    cert: (&'a Path, &'a [u8]),
    key: (&'a Path, &'a [u8]),
}

impl Identity {
    /// Loads `[mesh] ca_cert`, `cert` and `key`; the node id is the one the certificate names.
    /// Fails unless the certificate chains to the CA, is valid now, and matches the key.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let (ca_pem, cert_pem, key_pem) = (read(ca)?, read(cert)?, read(key)?);
        Self::from_sources(Sources {
            ca: (ca, &ca_pem),
            cert: (cert, &cert_pem),
            key: (key, &key_pem),
        })
    }

    /// Like [`Identity::load`], and the certificate must be bound to `node_id`.
    pub fn load_for(
        node_id: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Identity, TlsError> {
        let identity = Self::load(ca, cert, key)?;
        identity.expect_node(node_id, cert)
    }

    /// An identity from PEM texts (the demo and tests keep them in memory).
    pub fn from_pem(ca_pem: &str, chain_pem: &str, key_pem: &str) -> Result<Identity, TlsError> {
        Self::from_sources(Sources {
            ca: (Path::new("<ca certificate>"), ca_pem.as_bytes()),
            cert: (Path::new("<node certificate>"), chain_pem.as_bytes()),
            key: (Path::new("<node key>"), key_pem.as_bytes()),
        })
    }

    fn expect_node(self, node_id: &str, cert: &Path) -> Result<Identity, TlsError> {
        if self.node_id != node_id {
            return Err(TlsError::WrongNode {
                path: cert.to_path_buf(),
                expected: node_id.to_owned(),
                found: self.node_id,
            });
        }
        Ok(self)
    }

    fn from_sources(src: Sources<'_>) -> Result<Identity, TlsError> {
        let bad = |path: &Path, reason: String| TlsError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let (ca_path, ca_pem) = src.ca;
        let ca_cert = CertificateDer::from_pem_slice(ca_pem)
            .map_err(|e| bad(ca_path, format!("no PEM certificate: {e}")))?;
        let (cert_path, cert_pem) = src.cert;
        let chain: Vec<_> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| bad(cert_path, format!("unreadable PEM: {e}")))?;
        let chain: Vec<_> = chain.into_iter().filter(|c| *c != ca_cert).collect();
        let Some(leaf) = chain.first() else {
            return Err(bad(cert_path, "no node certificate in the file".into()));
        };
        let (key_path, key_pem) = src.key;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| bad(key_path, format!("no PEM private key: {e}")))?;

        let node_id = ca::node_id_of(leaf).map_err(|e| TlsError::NotFromCluster {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let identity = Identity {
            node_id,
            ca_cert,
            chain,
            key,
        };
        identity.verify_own_certificate(cert_path)?;
        rustls::sign::CertifiedKey::from_der(
            identity.chain.clone(),
            identity.key.clone_key(),
            &provider(),
        )
        .map_err(|e| bad(key_path, format!("does not fit the certificate: {e}")))?;
        Ok(identity)
    }

    /// The cluster CA certificate this identity trusts.
    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    /// The node's own certificate (the leaf of its chain).
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Signs `message` with the node's key, with the first of `schemes` the key supports.
    pub fn sign(
        &self,
        schemes: &[rustls::SignatureScheme],
        message: &[u8],
    ) -> Result<(rustls::SignatureScheme, Vec<u8>), TlsError> {
        let key = provider()
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(config_error)?;
        let signer = key
            .choose_scheme(schemes)
            .ok_or_else(|| TlsError::Config(format!("the node key signs none of {schemes:?}")))?;
        let signature = signer.sign(message).map_err(config_error)?;
        Ok((signer.scheme(), signature))
    }

    /// The node's own chain must pass the very checks its peers will make, in both roles.
    fn verify_own_certificate(&self, cert_path: &Path) -> Result<(), TlsError> {
        let not_from_cluster = |e: rustls::Error| TlsError::NotFromCluster {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        };
        let (leaf, intermediates) = (&self.chain[0], &self.chain[1..]);
        let now = UnixTime::now();
        client_verifier(self)?
            .verify_client_cert(leaf, intermediates, now)
            .map_err(not_from_cluster)?;
        let name = ServerName::try_from(ca::node_dns_name(&self.node_id))
            .map_err(|e| TlsError::Config(e.to_string()))?;
        server_verifier(self)?
            .verify_server_cert(leaf, intermediates, &name, &[], now)
            .map_err(not_from_cluster)?;
        Ok(())
    }
}

/// The QUIC/TLS server side: requires a client certificate from the cluster CA.
pub fn server_config(identity: &Identity) -> Result<Arc<QuicServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(client_verifier(identity)?)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(config).map_err(config_error)?;
    Ok(Arc::new(quic))
}

/// The QUIC/TLS client side: presents the node certificate, trusts cluster nodes only.
pub fn client_config(identity: &Identity) -> Result<quinn::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier(identity)?)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(config).map_err(config_error)?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

/// The node id of the peer of an established connection, from its certificate.
pub fn peer_node_id(connection: &quinn::Connection) -> Result<String, TlsError> {
    let certs = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(TlsError::NoPeerCertificate)?;
    Ok(ca::node_id_of(leaf)?)
}

/// The verifier a node applies to servers it dials (tests build raw clients with it).
pub(crate) fn server_verifier(identity: &Identity) -> Result<Arc<ClusterServerVerifier>, TlsError> {
    super::tls_verify::server_verifier(&identity.ca_cert)
}

/// The verifier a node applies to clients.
pub(crate) fn client_verifier(identity: &Identity) -> Result<Arc<ClusterClientVerifier>, TlsError> {
    super::tls_verify::client_verifier(&identity.ca_cert)
}

pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub(crate) fn config_error(e: impl fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{CaPem, NodePem};

    fn identity(ca: &CaPem, node: &NodePem) -> Result<Identity, TlsError> {
        Identity::from_pem(&ca.cert_pem, &node.chain_pem, &node.key_pem)
    }

    fn leaf(node: &NodePem) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(node.chain_pem.as_bytes()).unwrap()
    }

    #[test]
    fn loads_files_written_by_ca_commands() {
        let dir = tempfile::tempdir().unwrap();
        ca::init(dir.path()).unwrap();
        ca::issue(dir.path(), "mx1", dir.path()).unwrap();
        let p = |f: &str| dir.path().join(f);
        let id = Identity::load(&p("ca.pem"), &p("mx1.pem"), &p("mx1.key")).unwrap();
        assert_eq!(id.node_id, "mx1");
        assert_eq!(id.chain.len(), 1, "the CA root is not sent");
        assert!(server_config(&id).is_ok());
        assert!(client_config(&id).is_ok());

        let err =
            Identity::load_for("mx2", &p("ca.pem"), &p("mx1.pem"), &p("mx1.key")).unwrap_err();
        assert!(matches!(err, TlsError::WrongNode { .. }), "{err}");
        assert!(err.to_string().contains("mx1.pem"), "{err}");
        Identity::load_for("mx1", &p("ca.pem"), &p("mx1.pem"), &p("mx1.key")).unwrap();

        let err = Identity::load(&p("nope.pem"), &p("mx1.pem"), &p("mx1.key")).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let ours = ca::generate_ca().unwrap();
        let theirs = ca::generate_ca().unwrap();
        let foreign = ca::issue_pem(&theirs, "mx9").unwrap();
        let err = identity(&ours, &foreign).unwrap_err();
        assert!(matches!(err, TlsError::NotFromCluster { .. }), "{err}");

        let mine = identity(&ours, &ca::issue_pem(&ours, "mx1").unwrap()).unwrap();
        let now = UnixTime::now();
        let name = ServerName::try_from(DIAL_SERVER_NAME).unwrap();
        let as_server = server_verifier(&mine).unwrap().verify_server_cert(
            &leaf(&foreign),
            &[],
            &name,
            &[],
            now,
        );
        assert!(as_server.is_err());
        let as_client =
            client_verifier(&mine)
                .unwrap()
                .verify_client_cert(&leaf(&foreign), &[], now);
        assert!(as_client.is_err());
    }

    #[test]
    fn server_verifier_accepts_any_node_or_the_dialled_one() {
        let ours = ca::generate_ca().unwrap();
        let me = identity(&ours, &ca::issue_pem(&ours, "mx1").unwrap()).unwrap();
        let peer = ca::issue_pem(&ours, "mx2").unwrap();
        let verifier = server_verifier(&me).unwrap();
        let now = UnixTime::now();
        let verify = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            verifier.verify_server_cert(&leaf(&peer), &[], &name, &[], now)
        };
        assert!(verify(DIAL_SERVER_NAME).is_ok());
        assert!(verify("mx2.node.mxmesh").is_ok());
        assert!(verify("mx3.node.mxmesh").is_err());
        let client = client_verifier(&me).unwrap();
        assert!(client.verify_client_cert(&leaf(&peer), &[], now).is_ok());
        assert!(client.client_auth_mandatory());
    }

    #[test]
    fn a_cluster_signed_certificate_without_a_node_name_is_refused() {
        let ours = ca::generate_ca().unwrap();
        let ca_key = rcgen::KeyPair::from_pem(&ours.key_pem).unwrap();
        let ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut cn = rcgen::DistinguishedName::new();
        cn.push(rcgen::DnType::CommonName, ca::CA_COMMON_NAME);
        let mut ca_params = ca_params;
        ca_params.distinguished_name = cn;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx1.example.com".to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();

        let me = identity(&ours, &ca::issue_pem(&ours, "mx1").unwrap()).unwrap();
        let err = client_verifier(&me)
            .unwrap()
            .verify_client_cert(cert.der(), &[], UnixTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("node.mxmesh"), "{err}");
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let ours = ca::generate_ca().unwrap();
        let a = ca::issue_pem(&ours, "mx1").unwrap();
        let b = ca::issue_pem(&ours, "mx2").unwrap();
        let err = Identity::from_pem(&ours.cert_pem, &a.chain_pem, &b.key_pem).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
