//! The cluster CA: `mxmesh ca init` and `mxmesh ca issue` (README, "Command line" and `[mesh]`).
//!
//! The CA certificate is the cluster's identity: a node trusts exactly the certificates it
//! signed. Every node certificate is bound to one node id by a DNS subject alternative name
//! `<id>.node.mxmesh` (also the subject CN); [`node_id_of`] reads it back. The mesh's TLS
//! layer (`mesh::tls`) verifies chains against the CA and takes a peer's id from that name,
//! never from anything the peer says later.
//!
//! Everything is ECDSA P-256 (rcgen with ring), except the simulator's certificates
//! ([`Origin::Reproducible`]: Ed25519). Private keys are PKCS#8 PEM files with mode 0600.
//! Nothing here overwrites an existing file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Subject CN of every cluster CA made by [`init`].
pub const CA_COMMON_NAME: &str = "mxmesh cluster CA";
/// DNS suffix of the subject alternative name that binds a node certificate to its id.
pub const NODE_NAME_SUFFIX: &str = ".node.mxmesh";
/// Longest node id (README, `[node] id`: 1-64 characters of `[A-Za-z0-9._-]`).
pub const NODE_ID_BYTES_MAX: usize = 64;
/// File names inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";

const DAY_SECS: u64 = 24 * 60 * 60;
/// Validity of a cluster CA certificate.
const CA_VALIDITY_DAYS: u64 = 10 * 365;
/// Validity of a node certificate.
const NODE_VALIDITY_DAYS: u64 = 2 * 365;
/// Certificates start one day in the past so that a peer whose clock lags still accepts them.
const CLOCK_SKEW_DAYS: u64 = 1;

/// Where the keys, serial numbers and validity of new certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Fresh ECDSA P-256 keys and serial numbers from the OS's randomness, valid from
    /// yesterday: every real cluster.
    Random,
    /// The simulator, whose runs must repeat byte for byte: Ed25519 keys and serial numbers
    /// derived from `seed` and the subject's name, valid for a century from `since_day`
    /// (days since 1970-01-01). ECDSA will not do: ring draws each signature's nonce from
    /// getrandom(2) directly, past the simulator's seeded source, and the signatures'
    /// lengths vary with it; Ed25519 signs deterministically.
    Reproducible { seed: u64, since_day: u64 },
}

/// Validity of a certificate made with [`Origin::Reproducible`].
const REPRODUCIBLE_VALIDITY_DAYS: u64 = 100 * 365;
/// PKCS#8 v1 (RFC 8410) wrapping of a 32-byte Ed25519 private key: this prefix, then the key.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file to be written exists already.
    #[error("{path}: already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// The node id is not allowed (see the README's `[node] id`).
    #[error("node id {id:?}: {reason}")]
    BadNodeId { id: String, reason: String },
    /// A certificate or key cannot be used: not PEM, not parseable, or not the CA's.
    #[error("certificate: {reason}")]
    BadCertificate { reason: String },
    /// Making a key or certificate failed.
    #[error("generating {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
}

/// A CA certificate and its key, in PEM, as [`generate_ca`] makes them and [`init`] writes them.
#[derive(Clone)]
pub struct CaPem {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA's private key, PEM.
    pub key_pem: String,
}

/// A node certificate (leaf, then the CA certificate) and its key, in PEM.
#[derive(Clone)]
pub struct NodePem {
    /// The node id the certificate names.
    pub node_id: String,
    /// The node's certificate, then the CA certificate, PEM.
    pub chain_pem: String,
    /// The node's private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NodePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePem")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// `mxmesh ca init --out DIR`: creates `DIR/ca.pem` and `DIR/ca.key` (0600). `DIR` is created
/// when missing; existing files are never overwritten.
pub fn init(out: &Path) -> Result<(), CaError> {
    let cert_path = out.join(CA_CERT_FILE);
    let key_path = out.join(CA_KEY_FILE);
    refuse_existing(&[&cert_path, &key_path])?;
    create_dir(out)?;
    let ca = generate_ca()?;
    write_pair(&key_path, &ca.key_pem, &cert_path, &ca.cert_pem)
}

/// `mxmesh ca issue --ca CA_DIR --node ID --out DIR`: issues a certificate for node `node_id`
/// signed by the CA in `ca_dir`; writes `DIR/ID.pem` (leaf, then CA) and `DIR/ID.key` (0600).
pub fn issue(ca_dir: &Path, node_id: &str, out: &Path) -> Result<(), CaError> {
    validate_node_id(node_id)?;
    let cert_path = out.join(format!("{node_id}.pem"));
    let key_path = out.join(format!("{node_id}.key"));
    refuse_existing(&[&cert_path, &key_path])?;
    let ca = load_ca(ca_dir)?;
    let node = issue_pem(&ca, node_id)?;
    create_dir(out)?;
    write_pair(&key_path, &node.key_pem, &cert_path, &node.chain_pem)
}

/// Reads `ca_dir/ca.pem` and `ca_dir/ca.key`.
pub fn load_ca(ca_dir: &Path) -> Result<CaPem, CaError> {
    let cert_path = ca_dir.join(CA_CERT_FILE);
    let key_path = ca_dir.join(CA_KEY_FILE);
    Ok(CaPem {
        cert_pem: read_text(&cert_path)?,
        key_pem: read_text(&key_path)?,
    })
}

/// Makes a new cluster CA in memory (what [`init`] writes; also used by `demo` and tests).
pub fn generate_ca() -> Result<CaPem, CaError> {
    generate_ca_with(Origin::Random)
}

/// [`generate_ca`] with keys, serial and validity from `origin`.
pub fn generate_ca_with(origin: Origin) -> Result<CaPem, CaError> {
    let generate = |source| CaError::Generate {
        what: "the cluster CA".into(),
        source,
    };
    let key = new_key(origin, CA_COMMON_NAME).map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial(origin, CA_COMMON_NAME));
    set_validity(&mut params, CA_VALIDITY_DAYS, origin);
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok(CaPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a node certificate for `node_id` signed by `ca`, in memory (what [`issue`] writes).
pub fn issue_pem(ca: &CaPem, node_id: &str) -> Result<NodePem, CaError> {
    issue_pem_with(ca, node_id, Origin::Random)
}

/// [`issue_pem`] with the node's key, serial and validity from `origin`.
pub fn issue_pem_with(ca: &CaPem, node_id: &str, origin: Origin) -> Result<NodePem, CaError> {
    validate_node_id(node_id)?;
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).map_err(|e| {
        CaError::BadCertificate {
            reason: format!("CA certificate is not PEM: {e}"),
        }
    })?;
    let (_, ca_cert) = parse(&ca_der)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CaError::BadCertificate {
        reason: format!("CA key is not a PKCS#8 PEM key: {e}"),
    })?;
    if ca_key.public_key_raw() != ca_cert.public_key().subject_public_key.data.as_ref() {
        return Err(CaError::BadCertificate {
            reason: "the CA key does not belong to the CA certificate".into(),
        });
    }
    let issuer = Issuer::new(issuer_params(&ca_cert)?, ca_key);

    let generate = |source| CaError::Generate {
        what: format!("the certificate of node {node_id:?}"),
        source,
    };
    let key = new_key(origin, node_id).map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, node_id);
    let san = node_dns_name(node_id);
    params.subject_alt_names = vec![SanType::DnsName(san.try_into().map_err(generate)?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial(origin, node_id));
    set_validity(&mut params, NODE_VALIDITY_DAYS, origin);
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;

    let (_, leaf) = parse(cert.der())?;
    if leaf.issuer().as_raw() != ca_cert.subject().as_raw() {
        return Err(CaError::BadCertificate {
            reason: "cannot reproduce the CA certificate's subject name exactly".into(),
        });
    }
    Ok(NodePem {
        node_id: node_id.to_owned(),
        chain_pem: format!("{}{}", cert.pem(), ca.cert_pem),
        key_pem: key.serialize_pem(),
    })
}

/// The node id a certificate (DER) is bound to, from its `<id>.node.mxmesh` DNS name.
/// Exactly one such name must be present and the id must be valid.
pub fn node_id_of(cert_der: &[u8]) -> Result<String, CaError> {
    let (_, cert) = parse(cert_der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CaError::BadCertificate {
            reason: format!("unreadable subject alternative names: {e}"),
        })?;
    let mut ids = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => node_id_from_dns_name(dns),
            _ => None,
        });
    let Some(id) = ids.next() else {
        return Err(CaError::BadCertificate {
            reason: format!("no subject alternative name of the form <id>{NODE_NAME_SUFFIX}"),
        });
    };
    if ids.next().is_some() {
        return Err(CaError::BadCertificate {
            reason: format!("more than one <id>{NODE_NAME_SUFFIX} name"),
        });
    }
    validate_node_id(id)?;
    Ok(id.to_owned())
}

/// `<id>.node.mxmesh`: the DNS name a node certificate carries.
pub fn node_dns_name(node_id: &str) -> String {
    format!("{node_id}{NODE_NAME_SUFFIX}")
}

/// The node id in a `<id>.node.mxmesh` name (case-insensitive suffix), if it is one.
pub fn node_id_from_dns_name(dns: &str) -> Option<&str> {
    let cut = dns.len().checked_sub(NODE_NAME_SUFFIX.len())?;
    let (id, suffix) = (dns.get(..cut)?, dns.get(cut..)?);
    (suffix.eq_ignore_ascii_case(NODE_NAME_SUFFIX) && !id.is_empty()).then_some(id)
}

/// Node ids are 1–64 of `[A-Za-z0-9._-]`, and since `<id>.node.mxmesh` must be a DNS name,
/// dot-separated parts are non-empty and do not start or end with `-`.
pub fn validate_node_id(id: &str) -> Result<(), CaError> {
    let bad = |reason: &str| CaError::BadNodeId {
        id: id.to_owned(),
        reason: reason.to_owned(),
    };
    if id.is_empty() || id.len() > NODE_ID_BYTES_MAX {
        return Err(bad("expected 1-64 characters of [A-Za-z0-9._-]"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("expected 1-64 characters of [A-Za-z0-9._-]"));
    }
    if id
        .split('.')
        .any(|part| part.is_empty() || part.starts_with('-') || part.ends_with('-'))
    {
        return Err(bad(
            "dot-separated parts must be non-empty and must not start or end with '-' \
             (the id is used in the DNS name <id>.node.mxmesh)",
        ));
    }
    Ok(())
}

fn parse(der: &[u8]) -> Result<(&[u8], X509Certificate<'_>), CaError> {
    x509_parser::parse_x509_certificate(der).map_err(|e| CaError::BadCertificate {
        reason: format!("not an X.509 certificate: {e}"),
    })
}

/// The issuer side of rcgen from a parsed CA certificate: its subject name (string types
/// preserved, so that chains build byte-exactly) and key usages.
fn issuer_params(ca: &X509Certificate<'_>) -> Result<CertificateParams, CaError> {
    let unsupported = |what: String| CaError::BadCertificate {
        reason: format!("CA subject name: {what}"),
    };
    let mut dn = DistinguishedName::new();
    for rdn in ca.subject().iter_rdn() {
        let [attr] = rdn.iter().collect::<Vec<_>>()[..] else {
            return Err(unsupported(
                "multi-valued name parts are not supported".into(),
            ));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("attribute type out of range".into()))?
            .collect();
        let value = attr.attr_value();
        let text = std::str::from_utf8(value.data)
            .map_err(|_| unsupported("attribute value is not text".into()))?;
        let value = match value.header.tag() {
            x509_parser::der_parser::asn1_rs::Tag::Utf8String => DnValue::Utf8String(text.into()),
            x509_parser::der_parser::asn1_rs::Tag::PrintableString => DnValue::PrintableString(
                text.try_into()
                    .map_err(|_| unsupported(format!("bad PrintableString {text:?}")))?,
            ),
            tag => return Err(unsupported(format!("unsupported string type {tag}"))),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// Valid from a day ago (clock skew) for `days` days, or as `origin` fixes it.
fn set_validity(params: &mut CertificateParams, days: u64, origin: Origin) {
    let (since_day, days) = match origin {
        Origin::Random => {
            let now_secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (now_secs / DAY_SECS, days)
        }
        Origin::Reproducible { since_day, .. } => (since_day, REPRODUCIBLE_VALIDITY_DAYS),
    };
    let (year, month, day) = civil_from_days(since_day.saturating_sub(CLOCK_SKEW_DAYS));
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = params.not_before + Duration::from_secs((days + CLOCK_SKEW_DAYS) * DAY_SECS);
}

/// Gregorian (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (i32, u8, u8) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// A new key for the certificate of `name`.
fn new_key(origin: Origin, name: &str) -> Result<KeyPair, rcgen::Error> {
    match origin {
        Origin::Random => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        Origin::Reproducible { seed, .. } => {
            let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
            pkcs8.extend_from_slice(&derived(seed, "key", name));
            KeyPair::try_from(pkcs8.as_slice())
        }
    }
}

/// 32 bytes that depend only on `seed`, `purpose` and `name`.
fn derived(seed: u64, purpose: &str, name: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        &seed.to_be_bytes()[..],
        purpose.as_bytes(),
        b"\0",
        name.as_bytes(),
    ] {
        h.update(part);
    }
    h.finalize().into()
}

fn serial(origin: Origin, name: &str) -> SerialNumber {
    let mut bytes: [u8; 16] = match origin {
        Origin::Random => rand::random(),
        Origin::Reproducible { seed, .. } => {
            let d = derived(seed, "serial", name);
            d[..16].try_into().unwrap_or_default()
        }
    };
    bytes[0] &= 0x7f; // positive INTEGER
    bytes[0] |= 0x01; // no leading zero byte
    SerialNumber::from_slice(&bytes)
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CaError> {
    match paths.iter().find(|p| p.exists()) {
        Some(path) => Err(CaError::Exists {
            path: path.to_path_buf(),
        }),
        None => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a private key (0600) and its certificate; if the second write fails, the key is
/// removed again so that a retry does not stumble over half of the pair.
fn write_pair(
    key_path: &Path,
    key_pem: &str,
    cert_path: &Path,
    cert_pem: &str,
) -> Result<(), CaError> {
    write_new(key_path, key_pem.as_bytes(), true)?;
    write_new(cert_path, cert_pem.as_bytes(), false).inspect_err(|_| {
        let _ = std::fs::remove_file(key_path);
    })
}

/// Creates `path` (never replacing an existing file), mode 0600 when `private`.
fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => CaError::Exists {
            path: path.to_path_buf(),
        },
        _ => CaError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_cert(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn init_then_issue_writes_files_and_binds_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let out = dir.path().join("certs");
        init(&ca_dir).unwrap();
        issue(&ca_dir, "mx1", &out).unwrap();

        let chain = std::fs::read_to_string(out.join("mx1.pem")).unwrap();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs.len(), 2, "leaf, then the CA");
        let ca_pem = std::fs::read_to_string(ca_dir.join(CA_CERT_FILE)).unwrap();
        assert_eq!(certs[1], first_cert(&ca_pem));
        assert_eq!(node_id_of(&certs[0]).unwrap(), "mx1");

        let (_, leaf) = parse(&certs[0]).unwrap();
        let (_, ca) = parse(&certs[1]).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(ca.issuer().as_raw(), ca.subject().as_raw(), "self-signed");
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let cn = leaf.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "mx1");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        issue(dir.path(), "mx2", dir.path()).unwrap();
        for key in ["ca.key", "mx2.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600, "{key}");
        }
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let err = init(dir.path()).unwrap_err();
        assert!(matches!(err, CaError::Exists { .. }));
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), before);

        issue(dir.path(), "mx1", dir.path()).unwrap();
        let err = issue(dir.path(), "mx1", dir.path()).unwrap_err();
        assert!(err.to_string().contains("mx1.pem"), "{err}");

        std::fs::remove_file(dir.path().join("mx1.pem")).unwrap();
        let err = issue(dir.path(), "mx1", dir.path()).unwrap_err();
        assert!(err.to_string().contains("mx1.key"), "{err}");
    }

    #[test]
    fn missing_ca_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = issue(dir.path(), "mx1", dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn bad_node_ids_are_named() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        let long = "a".repeat(65);
        for id in [
            "",
            "mx 1",
            "mx/1",
            "../x",
            ".mx",
            "mx.",
            "a..b",
            "-mx",
            "mx-",
            long.as_str(),
        ] {
            let err = issue(dir.path(), id, dir.path()).unwrap_err();
            assert!(matches!(err, CaError::BadNodeId { .. }), "{id:?}: {err}");
            assert!(err.to_string().contains(&format!("{id:?}")), "{err}");
        }
        for id in ["mx1", "MX-1", "eu.mx_1", "a", &"b".repeat(64)] {
            assert!(validate_node_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn node_id_of_rejects_certificates_without_a_node_name() {
        let ca = generate_ca().unwrap();
        let err = node_id_of(&first_cert(&ca.cert_pem)).unwrap_err();
        assert!(err.to_string().contains("node.mxmesh"), "{err}");
        assert!(node_id_of(b"not a certificate").is_err());

        let other = rcgen::generate_simple_self_signed(vec!["x.example.com".to_owned()]).unwrap();
        assert!(node_id_of(other.cert.der()).is_err());
        let two = rcgen::generate_simple_self_signed(vec![
            "a.node.mxmesh".to_owned(),
            "b.node.mxmesh".to_owned(),
        ])
        .unwrap();
        assert!(node_id_of(two.cert.der()).is_err());
    }

    #[test]
    fn issue_refuses_a_key_that_is_not_the_cas() {
        let a = generate_ca().unwrap();
        let b = generate_ca().unwrap();
        let mixed = CaPem {
            cert_pem: a.cert_pem,
            key_pem: b.key_pem,
        };
        let err = issue_pem(&mixed, "mx1").unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");
    }

    #[test]
    fn dns_name_helpers() {
        assert_eq!(node_dns_name("mx1"), "mx1.node.mxmesh");
        assert_eq!(node_id_from_dns_name("mx1.node.mxmesh"), Some("mx1"));
        assert_eq!(node_id_from_dns_name("mx1.NODE.mxmesh"), Some("mx1"));
        assert_eq!(node_id_from_dns_name(".node.mxmesh"), None);
        assert_eq!(node_id_from_dns_name("mx1.example.com"), None);
        assert_eq!(node_id_from_dns_name("é"), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
