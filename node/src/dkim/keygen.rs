//! `mxmesh dkim keygen --domain D --selector S --out DIR`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{KeyPair, PKCS_ED25519};

use super::key::DkimError;

/// What [`keygen`] wrote and what to publish.
#[derive(Debug, Clone)]
pub struct KeygenOutput {
    /// The private key file, `DIR/SELECTOR.DOMAIN.key` (PKCS#8 PEM, mode 0600).
    pub key_path: PathBuf,
    /// The DNS name of the record: `SELECTOR._domainkey.DOMAIN.`
    pub record_name: String,
    /// The TXT record's text: `v=DKIM1; k=ed25519; p=…`.
    pub record_text: String,
}

impl KeygenOutput {
    /// The record as a zone-file line (also written to `DIR/SELECTOR.DOMAIN.txt`).
    pub fn zone_line(&self) -> String {
        format!("{} IN TXT \"{}\"", self.record_name, self.record_text)
    }
}

/// Longest DNS label (RFC 1035 §2.3.4): a selector or domain label above it cannot be published.
const MAX_LABEL_LEN: usize = 63;

/// Generates an Ed25519 DKIM key (RFC 8463) for `selector` of `domain`, writes it to
/// `out/SELECTOR.DOMAIN.key` (0600; refuses to overwrite) and the record to
/// `out/SELECTOR.DOMAIN.txt`.
pub fn keygen(domain: &str, selector: &str, out: &Path) -> Result<KeygenOutput, DkimError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    check_name("domain", &domain)?;
    check_name("selector", selector)?;
    let pair =
        KeyPair::generate_for(&PKCS_ED25519).map_err(|e| DkimError::Generate(e.to_string()))?;
    let public = base64::engine::general_purpose::STANDARD.encode(pair.public_key_raw());
    let output = KeygenOutput {
        key_path: out.join(format!("{selector}.{domain}.key")),
        record_name: format!("{selector}._domainkey.{domain}."),
        record_text: format!("v=DKIM1; k=ed25519; p={public}"),
    };
    std::fs::create_dir_all(out).map_err(|e| DkimError::io(out, e))?;
    write_new(&output.key_path, pair.serialize_pem().as_bytes(), 0o600)?;
    let txt = out.join(format!("{selector}.{domain}.txt"));
    std::fs::write(&txt, format!("{}\n", output.zone_line()))
        .map_err(|e| DkimError::io(&txt, e))?;
    Ok(output)
}

/// A selector or domain: dot-separated labels of letters, digits and hyphens.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), DkimError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(DkimError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DkimError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| DkimError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| DkimError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_loadable_key_and_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let out = keygen("Example.COM.", "mx1", dir.path()).unwrap();
        assert_eq!(out.record_name, "mx1._domainkey.example.com.");
        assert!(out.record_text.starts_with("v=DKIM1; k=ed25519; p="));
        let key = super::super::DkimKey::load(&out.key_path).unwrap();
        let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
        assert!(out.record_text.ends_with(&public));
        let again = keygen("example.com", "mx1", dir.path()).unwrap_err();
        assert!(again.to_string().contains("mx1.example.com.key"), "{again}");
    }

    #[test]
    fn keygen_refuses_a_name_that_cannot_be_published() {
        let dir = tempfile::tempdir().unwrap();
        let err = keygen("example.com", "bad selector", dir.path()).unwrap_err();
        assert!(err.to_string().contains("selector"), "{err}");
        assert!(keygen("exa..mple.com", "s", dir.path()).is_err());
    }
}
