//! The certificate verifiers behind [`super::tls`]: webpki against the cluster CA as the
//! only root, plus the rule that a certificate must name exactly one node
//! (`<id>.node.mxmesh`). See the design notes in `tls.rs`.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::tls::{TlsError, config_error, provider};
use crate::ca;

fn roots(ca_cert: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca_cert.clone())
        .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
    Ok(Arc::new(roots))
}

pub(crate) fn client_verifier(
    ca_cert: &CertificateDer<'static>,
) -> Result<Arc<ClusterClientVerifier>, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(ca_cert)?, Arc::new(provider()))
        .build()
        .map_err(config_error)?;
    Ok(Arc::new(ClusterClientVerifier { inner }))
}

pub(crate) fn server_verifier(
    ca_cert: &CertificateDer<'static>,
) -> Result<Arc<ClusterServerVerifier>, TlsError> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_cert)?, Arc::new(provider()))
        .build()
        .map_err(config_error)?;
    Ok(Arc::new(ClusterServerVerifier { inner }))
}

/// A rustls error carrying why a certificate names no (valid) node.
fn not_a_node(e: ca::CaError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Verifies a server's chain against the cluster CA for the node name its certificate
/// carries; see the module documentation.
#[derive(Debug)]
pub(crate) struct ClusterServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let node_id = ca::node_id_of(end_entity).map_err(not_a_node)?;
        if let ServerName::DnsName(dialled) = server_name
            && let Some(expected) = ca::node_id_from_dns_name(dialled.as_ref())
            && expected != node_id
        {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        let name = ServerName::try_from(ca::node_dns_name(&node_id))
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki client verification against the cluster CA (certificate mandatory), plus: the
/// certificate must name a node.
#[derive(Debug)]
pub(crate) struct ClusterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        ca::node_id_of(end_entity).map_err(not_a_node)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
