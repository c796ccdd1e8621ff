//! A DKIM signing key loaded from a file, and signing with it.

use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

/// The headers an outbound signature covers (RFC 6376 §5.4.1's recommended set, From first).
pub const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "MIME-Version",
    "Content-Type",
];

/// Errors of DKIM key generation, loading and signing; each names the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// A key or record file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The key file holds no PEM private key, or one that is neither Ed25519 nor RSA.
    #[error(
        "{path}: not a DKIM private key (want Ed25519 PKCS#8, or RSA PKCS#8/PKCS#1 PEM): {reason}"
    )]
    BadKey {
        /// The file at fault.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A selector or domain that is not a valid DNS name.
    #[error(
        "{what} {name:?} is not a DNS name (labels of letters, digits and '-', at most 63 each)"
    )]
    BadName {
        /// `selector` or `domain`.
        what: &'static str,
        /// The value given.
        name: String,
    },
    /// The key generator failed.
    #[error("generating the DKIM key: {0}")]
    Generate(String),
    /// Signing failed (for example a message with none of the signed headers).
    #[error("DKIM signing for {domain} (selector {selector}): {reason}")]
    Sign {
        /// The signing domain.
        domain: String,
        /// The selector.
        selector: String,
        /// mail-auth's reason.
        reason: String,
    },
}

impl DkimError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DkimError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A loaded DKIM private key.
pub enum DkimKey {
    /// Ed25519 (RFC 8463), as `mxmesh dkim keygen` writes.
    Ed25519(Ed25519Key),
    /// RSA with SHA-256 (for example from `openssl genrsa 2048`).
    Rsa(RsaKey<Sha256>),
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DkimKey::Ed25519(_) => "DkimKey::Ed25519(..)",
            DkimKey::Rsa(_) => "DkimKey::Rsa(..)",
        })
    }
}

impl DkimKey {
    /// Loads a PEM private key file.
    pub fn load(path: &Path) -> Result<Self, DkimError> {
        let pem = std::fs::read(path).map_err(|e| DkimError::io(path, e))?;
        let bad = |reason: String| DkimError::BadKey {
            path: path.to_path_buf(),
            reason,
        };
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
        match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                match Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()) {
                    Ok(key) => Ok(DkimKey::Ed25519(key)),
                    Err(_) => RsaKey::<Sha256>::from_key_der(der.clone_key())
                        .map(DkimKey::Rsa)
                        .map_err(|e| bad(e.to_string())),
                }
            }
            PrivateKeyDer::Pkcs1(_) => RsaKey::<Sha256>::from_key_der(der.clone_key())
                .map(DkimKey::Rsa)
                .map_err(|e| bad(e.to_string())),
            _ => Err(bad("SEC1 (EC) keys are not DKIM keys".into())),
        }
    }

    /// The public key as published in the `p=` tag (raw for Ed25519, PKCS#1 DER for RSA).
    pub fn public_key(&self) -> Vec<u8> {
        match self {
            DkimKey::Ed25519(k) => k.public_key(),
            DkimKey::Rsa(k) => k.public_key(),
        }
    }

    /// Signs `message` (headers and body, CRLF) for `domain` with `selector`; returns the
    /// `DKIM-Signature:` header line(s), CRLF-terminated, to prepend to the message.
    pub fn sign(&self, domain: &str, selector: &str, message: &[u8]) -> Result<String, DkimError> {
        let signed = match self {
            DkimKey::Ed25519(k) => sign_with(k, domain, selector, message),
            DkimKey::Rsa(k) => sign_with(k, domain, selector, message),
        };
        signed.map_err(|e| DkimError::Sign {
            domain: domain.to_string(),
            selector: selector.to_string(),
            reason: e.to_string(),
        })
    }
}

fn sign_with<K: SigningKey>(
    key: &K,
    domain: &str,
    selector: &str,
    message: &[u8],
) -> mail_auth::Result<String> {
    // DkimSigner owns its key; the mail-auth key types are not Clone, so borrow through a
    // reference wrapper.
    let signature = DkimSigner::from_key(KeyRef(key))
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(message)?;
    Ok(signature.to_header())
}

/// Lends a borrowed key to [`DkimSigner`], which takes its key by value.
struct KeyRef<'a, K>(&'a K);

impl<K: SigningKey> SigningKey for KeyRef<'_, K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

    #[test]
    fn signs_with_the_domain_and_selector_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::dkim::keygen("example.com", "mx2", dir.path()).unwrap();
        let key = DkimKey::load(&out.key_path).unwrap();
        let header = key.sign("example.com", "mx2", MESSAGE).unwrap();
        assert!(header.starts_with("DKIM-Signature:"), "{header}");
        assert!(header.contains("d=example.com"), "{header}");
        assert!(header.contains("s=mx2"), "{header}");
        assert!(header.contains("a=ed25519-sha256"), "{header}");
        assert!(header.ends_with("\r\n"), "{header:?}");
    }

    /// Answers TXT lookups of one name (trailing dot or not) with one DKIM key record.
    struct OneRecord {
        name: &'static str,
        record: mail_auth::Txt,
    }

    impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for OneRecord {
        fn get<Q>(&self, key: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            let owned: Box<str> = self.name.into();
            let dotted: Box<str> = format!("{}.", self.name).into();
            let hit = [owned, dotted]
                .iter()
                .any(|n| std::borrow::Borrow::<Q>::borrow(n) == key);
            hit.then(|| self.record.clone())
        }

        fn remove<Q>(&self, _: &Q) -> Option<mail_auth::Txt>
        where
            Box<str>: std::borrow::Borrow<Q>,
            Q: std::hash::Hash + Eq + ?Sized,
        {
            None
        }

        fn insert(&self, _: Box<str>, _: mail_auth::Txt, _: std::time::Instant) {}
    }

    #[tokio::test]
    async fn the_signature_verifies_against_the_printed_record() {
        use mail_auth::common::parse::TxtRecordParser;
        let dir = tempfile::tempdir().unwrap();
        let out = crate::dkim::keygen("example.com", "mx2", dir.path()).unwrap();
        let key = DkimKey::load(&out.key_path).unwrap();
        let header = key.sign("example.com", "mx2", MESSAGE).unwrap();
        let signed = [header.as_bytes(), MESSAGE].concat();
        let record =
            mail_auth::common::verify::DomainKey::parse(out.record_text.as_bytes()).unwrap();
        let cache = OneRecord {
            name: "mx2._domainkey.example.com",
            record: mail_auth::Txt::DomainKey(std::sync::Arc::new(record)),
        };
        // A resolver nobody serves: every lookup must be answered from the cache.
        let nobody = "127.37.0.1:53".parse().unwrap();
        let auth =
            crate::facts::dns::authenticator(Some(nobody), std::time::Duration::from_millis(200))
                .unwrap();
        let message = mail_auth::AuthenticatedMessage::parse(&signed).unwrap();
        let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
        let results = auth.verify_dkim(params).await;
        assert_eq!(results.len(), 1);
        assert_eq!(
            results[0].result(),
            &mail_auth::DkimResult::Pass,
            "{header}"
        );
        let tampered = [header.as_bytes(), &MESSAGE[..MESSAGE.len() - 3], b"X\r\n"].concat();
        let message = mail_auth::AuthenticatedMessage::parse(&tampered).unwrap();
        let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
        let results = auth.verify_dkim(params).await;
        assert_ne!(results[0].result(), &mail_auth::DkimResult::Pass);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let err = DkimKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("junk.key"), "{err}");
        let missing = DkimKey::load(&dir.path().join("absent.key")).unwrap_err();
        assert!(missing.to_string().contains("absent.key"), "{missing}");
    }
}
