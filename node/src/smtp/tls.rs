//! STARTTLS server configuration from `[smtp] tls_cert` / `tls_key`.
//!
//! The server's cipher order wins over the client's (rustls's order: AES-GCM before
//! ChaCha20, ECDSA before RSA, forward secrecy only), and sessions resume both ways: by
//! session id from an in-memory cache and by stateless tickets (keys rotated by rustls).

use std::path::Path;
use std::sync::Arc;

use rustls::server::ServerSessionMemoryCache;
use tokio_rustls::TlsAcceptor;

/// TLS sessions remembered for resumption by session id.
pub const TLS_SESSION_CACHE_ENTRIES: usize = 4096;

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
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("smtp.tls_cert/tls_key: certificate and key do not match")?;
    config.ignore_client_order = true;
    config.session_storage = ServerSessionMemoryCache::new(TLS_SESSION_CACHE_ENTRIES);
    config.ticketer = rustls::crypto::ring::Ticketer::new().context("TLS session ticket keys")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
