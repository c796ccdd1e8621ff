//! STARTTLS server configuration from `[smtp] tls_cert` / `tls_key`.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// Loads a PEM certificate chain and key into a TLS acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use anyhow::Context;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("smtp.tls_cert {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("smtp.tls_cert {}: not PEM", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("smtp.tls_cert {}: no certificate in file", cert.display());
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("smtp.tls_key {}", key.display()))?,
    ))
    .with_context(|| format!("smtp.tls_key {}: not PEM", key.display()))?
    .ok_or_else(|| anyhow::anyhow!("smtp.tls_key {}: no private key in file", key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("smtp.tls_cert/tls_key: certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
