//! This node's DKIM keys by domain (`[[domains]] dkim_selector`, `dkim_key`), and the
//! choice of key for one outbound message.

use std::collections::HashMap;

use super::key::{DkimError, DkimKey};
use crate::config::Config;

/// One domain's selector and key.
struct DomainKey {
    selector: String,
    key: DkimKey,
}

/// The DKIM keys of this node, by lowercase domain.
#[derive(Default)]
pub struct Signer {
    keys: HashMap<String, DomainKey>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("domains", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Signer {
    /// Loads the key of every `[[domains]]` entry that names one.
    pub fn from_config(config: &Config) -> Result<Signer, DkimError> {
        let mut keys = HashMap::new();
        for d in &config.domains {
            let (Some(selector), Some(path)) = (&d.dkim_selector, &d.dkim_key) else {
                continue;
            };
            let key = DkimKey::load(path)?;
            let domain = d.name.trim_end_matches('.').to_ascii_lowercase();
            let selector = selector.clone();
            keys.insert(domain, DomainKey { selector, key });
        }
        Ok(Signer { keys })
    }

    /// Whether any domain has a key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `DKIM-Signature:` header for an outbound `message`: signed for the domain of
    /// the From header when this node has its key (the DMARC-aligned choice), else for
    /// the envelope sender's domain; `None` when neither has a key or signing fails (the
    /// message then goes unsigned, and the failure is logged).
    pub fn sign(
        &self,
        header_from: Option<&str>,
        mail_from: &str,
        message: &[u8],
    ) -> Option<String> {
        let (domain, entry) = [header_from, Some(mail_from)]
            .into_iter()
            .flatten()
            .filter_map(domain_of)
            .find_map(|d| self.keys.get(&d).map(|k| (d, k)))?;
        match entry.key.sign(&domain, &entry.selector, message) {
            Ok(header) => Some(header),
            Err(e) => {
                tracing::warn!(error = %e, "outbound message relayed without a DKIM signature");
                None
            }
        }
    }
}

/// The lowercase domain of an address.
fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches(['.', '>']).to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer_for(domain: &str) -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::dkim::keygen(domain, "mx2", dir.path()).unwrap();
        let key = DkimKey::load(&out.key_path).unwrap();
        let mut keys = HashMap::new();
        keys.insert(
            domain.to_string(),
            DomainKey {
                selector: "mx2".into(),
                key,
            },
        );
        (dir, Signer { keys })
    }

    const MESSAGE: &[u8] = b"From: a@Example.COM\r\nSubject: x\r\n\r\nx\r\n";

    #[test]
    fn the_from_domain_is_preferred_then_the_envelope_sender() {
        let (_dir, signer) = signer_for("example.com");
        let header = signer
            .sign(Some("a@Example.COM"), "bounce@other.test", MESSAGE)
            .unwrap();
        assert!(header.contains("d=example.com"), "{header}");
        assert!(header.contains("s=mx2"), "{header}");
        let by_envelope = signer.sign(None, "a@example.com", MESSAGE).unwrap();
        assert!(by_envelope.contains("d=example.com"), "{by_envelope}");
        assert!(signer.sign(Some("a@other.test"), "", MESSAGE).is_none());
    }
}
