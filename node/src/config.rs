//! The per-node config file (TOML, README "Config"): plain structs plus validation whose
//! errors name the file and the key at fault.
//!
//! Per-node settings live here; filter rules are cluster-wide and live in the rule book.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod edge;
pub mod filter;
pub mod outbound;
mod validate;
pub use filter::{FilterSection, OnFailure};
use validate::{must_exist, validate_host_port};
pub use validate::{read_tsig_secret, validate_node_id};

/// Default maximum message size (25 MiB), advertised as SIZE.
pub const MESSAGE_SIZE_MAX_DEFAULT_BYTES: u64 = 25 * 1024 * 1024;
/// Default recipients per message.
pub const RECIPIENTS_MAX_DEFAULT: usize = 1000;

/// A config error: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the config's shape.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A key's value is not allowed; the message says why.
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[node]`: who this node is and where it keeps its data.
    pub node: NodeSection,
    /// `[smtp]`: the SMTP listener.
    pub smtp: SmtpSection,
    /// `[[domains]]`: the accepted domains and their downstream servers.
    #[serde(default)]
    pub domains: Vec<DomainSection>,
    /// `[mesh]`: join a mesh; absent = a node on its own.
    #[serde(default)]
    pub mesh: Option<MeshSection>,
    /// `[admin]`: the admin API and console listener.
    pub admin: AdminSection,
    /// `[dns]`: publish the healthy nodes' A/AAAA set; absent = nothing published.
    #[serde(default)]
    pub dns: Option<DnsSection>,
    /// `[filter]`; absent = no network lookups before the verdict.
    #[serde(default)]
    pub filter: Option<FilterSection>,
    /// `[relay]`: delivery to the downstream servers.
    #[serde(default)]
    pub relay: RelaySection,
    /// `[quarantine]`: how long quarantined messages are kept.
    #[serde(default)]
    pub quarantine: QuarantineSection,
    /// `[submission]`: the outbound role's AUTH listener; absent = none.
    #[serde(default)]
    pub submission: Option<outbound::SubmissionSection>,
    /// The node's wall clock: the system clock, unless the simulator sets another.
    #[serde(skip)]
    pub clock: crate::clock::Clock,
}

/// `[node]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Unique, stable node id; the mesh certificate is bound to it.
    pub id: String,
    /// RocksDB and everything durable lives here.
    pub data_dir: PathBuf,
}

/// `[smtp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// Address the SMTP server listens on (port 0: the kernel picks one).
    pub listen: SocketAddr,
    /// Banner and EHLO name.
    pub hostname: String,
    /// Largest message accepted, in bytes; advertised as `SIZE` (default 25 MiB).
    #[serde(default = "default_message_size")]
    pub max_message_size: u64,
    /// Recipients accepted per message; at least 100 (RFC 5321); default 1000.
    #[serde(default = "default_recipients")]
    pub max_recipients: usize,
    /// STARTTLS is offered when both are set.
    pub tls_cert: Option<PathBuf>,
    /// The STARTTLS private key (PEM); see `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Concurrent SMTP connections; beyond this new ones get 421.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// Wait this long before the banner; a client that talks first is refused.
    #[serde(default = "default_greet_pause")]
    pub greet_pause_ms: u64,
    /// Idle time allowed per command (RFC 5321 §4.5.3.2 suggests minutes).
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// Upper bound on one whole session.
    #[serde(default = "default_session_timeout")]
    pub session_timeout_secs: u64,
}

/// `[[domains]]`: an accepted domain and its downstream server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    /// The domain's name (the first entry also receives `RCPT TO:<postmaster>`).
    pub name: String,
    /// `host:port` of the organisation's own mail server.
    pub relay_to: String,
    /// Greylist mail to this domain (settings cluster-wide: `/api/v1/settings/greylist`).
    #[serde(default)]
    pub greylist: bool,
    /// How unknown recipients are refused at RCPT: `off`, `callout` or `list`.
    #[serde(default)]
    pub verify_recipients: edge::VerifyMode,
    /// With `verify_recipients = "list"`: addresses and wildcards, one a line.
    pub recipients_file: Option<PathBuf>,
    /// With `callout`: `tempfail` (451) or `accept` when `relay_to` can't be asked.
    #[serde(default)]
    pub verify_unreachable: edge::Unreachable,
    /// Seconds a callout's "exists" is cached (mesh-wide).
    #[serde(default = "edge::default_positive_ttl")]
    pub callout_positive_ttl_secs: u64,
    /// Seconds a callout's "unknown" is cached (mesh-wide).
    #[serde(default = "edge::default_negative_ttl")]
    pub callout_negative_ttl_secs: u64,
    /// This node's DKIM selector for outbound mail from this domain.
    pub dkim_selector: Option<String>,
    /// This node's DKIM private key (PEM) for `dkim_selector`.
    pub dkim_key: Option<PathBuf>,
}

/// `[mesh]` (used by the mesh; validated here so `check` catches mistakes early).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSection {
    /// Address the mesh listens on (QUIC over UDP; port 0: the kernel picks one).
    pub listen: SocketAddr,
    /// The address peers dial; defaults to `listen` (with the bound port).
    pub advertise: Option<SocketAddr>,
    /// Mesh addresses (`host:port`) of nodes to join through.
    #[serde(default)]
    pub seeds: Vec<String>,
    /// The mesh's name; every node of a mesh has the same.
    pub cluster_id: String,
    /// The cluster CA's certificate (PEM, from `mxmesh ca init`).
    pub ca_cert: PathBuf,
    /// This node's certificate from the cluster CA; must name `[node] id`.
    pub cert: PathBuf,
    /// This node's private key for `cert`.
    pub key: PathBuf,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address the admin API and console listen on (plain HTTP; port 0: the kernel picks one).
    pub listen: SocketAddr,
    /// One token per line (`TOKEN`, `NAME TOKEN`, or `NAME sha256:HEX`).
    pub tokens_file: PathBuf,
    /// Whether `/metrics` needs a token too.
    #[serde(default)]
    pub metrics_auth: bool,
    /// Sustained requests per second one client address may make (the token bucket's
    /// refill rate); more get 429.
    #[serde(default = "default_api_rate")]
    pub rate_per_sec: f64,
    /// Requests one client address may make at once after being idle (the bucket's size).
    #[serde(default = "default_api_burst")]
    pub rate_burst: u32,
}

/// Largest `admin.rate_per_sec` and `admin.rate_burst`.
pub const API_RATE_SETTING_MAX: u32 = 1_000_000;

/// `[dns]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// The embedded authoritative server; none: no embedded server.
    pub listen: Option<SocketAddr>,
    /// The DNS name whose A/AAAA set holds the healthy nodes.
    pub name: String,
    /// This node's address in that set (IPv6 → AAAA).
    pub publish_address: IpAddr,
    /// TTL of the published records, in seconds (default 30).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// `rfc2136 = {…}`: keep the set on an external server too; absent = none.
    pub rfc2136: Option<Rfc2136Section>,
}

/// `[dns] rfc2136`: keep the set on an external authoritative server (RFC 2136 + TSIG).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rfc2136Section {
    /// `host:port` of the primary server for the zone.
    pub server: String,
    /// The zone that contains `[dns] name`, fully qualified.
    pub zone: String,
    /// The TSIG key's name as the server knows it.
    pub tsig_name: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_tsig_algorithm")]
    pub tsig_algorithm: String,
    /// The base64 secret, bare or as a BIND `key { secret "..."; };` file.
    pub tsig_secret_file: PathBuf,
}

/// The TSIG algorithms the publisher can sign with.
pub const TSIG_ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

fn default_tsig_algorithm() -> String {
    "hmac-sha256".into()
}

/// `[relay]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// First retry after a 4xx or a connection failure.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_secs: u64,
    /// Backoff doubles up to this.
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
    /// Then a DSN bounce to the sender.
    #[serde(default = "default_queue_lifetime")]
    pub queue_lifetime_hours: u64,
    /// Deliveries in flight at once.
    #[serde(default = "default_relay_concurrency")]
    pub max_concurrent_deliveries: usize,
    /// Optional smarthost for bounces to senders outside the accepted domains.
    pub bounce_relay: Option<String>,
    /// Per-command timeout talking to the downstream server.
    #[serde(default = "default_relay_timeout")]
    pub timeout_secs: u64,
    /// DNS server for MX lookups (DSNs to outside senders); `[filter] resolver`, else the
    /// system resolver, when absent.
    #[serde(default)]
    pub resolver: Option<SocketAddr>,
    /// Deliveries by MX to one destination domain at once.
    #[serde(default = "default_destination_concurrency")]
    pub destination_concurrency: usize,
    /// Client networks (CIDRs or addresses) that may relay to any domain without AUTH.
    #[serde(default)]
    pub trusted_networks: Vec<String>,
}

impl Default for RelaySection {
    fn default() -> Self {
        RelaySection {
            retry_initial_secs: default_retry_initial(),
            retry_max_secs: default_retry_max(),
            queue_lifetime_hours: default_queue_lifetime(),
            max_concurrent_deliveries: default_relay_concurrency(),
            bounce_relay: None,
            timeout_secs: default_relay_timeout(),
            resolver: None,
            destination_concurrency: default_destination_concurrency(),
            trusted_networks: Vec::new(),
        }
    }
}

/// `[quarantine]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineSection {
    /// Days a quarantined message is kept before it expires (default 30).
    #[serde(default = "default_retention")]
    pub retention_days: u64,
}

impl Default for QuarantineSection {
    fn default() -> Self {
        QuarantineSection {
            retention_days: default_retention(),
        }
    }
}

fn default_message_size() -> u64 {
    MESSAGE_SIZE_MAX_DEFAULT_BYTES
}
fn default_recipients() -> usize {
    RECIPIENTS_MAX_DEFAULT
}
fn default_connections() -> usize {
    1000
}
fn default_greet_pause() -> u64 {
    0
}
fn default_command_timeout() -> u64 {
    300
}
fn default_session_timeout() -> u64 {
    1800
}
fn default_api_rate() -> f64 {
    200.0
}
fn default_api_burst() -> u32 {
    400
}
fn default_ttl() -> u32 {
    30
}
fn default_retry_initial() -> u64 {
    60
}
fn default_retry_max() -> u64 {
    3600
}
fn default_queue_lifetime() -> u64 {
    120
}
/// Smallest `[smtp] max_recipients`: RFC 5321 (section 4.5.3.1.8) requires a server to
/// accept at least 100 recipients per message.
pub const SMTP_RECIPIENTS_MIN: usize = 100;
/// Largest `[smtp] max_connections`: each session holds a task, a socket and its buffers,
/// and a node must stay within its file-descriptor limit with room for the store and mesh.
pub const SMTP_CONNECTIONS_MAX: usize = 100_000;
/// Largest `[relay] max_concurrent_deliveries`: each is an outbound connection with its
/// message in memory.
pub const RELAY_DELIVERIES_MAX: usize = 4_096;

fn default_relay_concurrency() -> usize {
    32
}
fn default_relay_timeout() -> u64 {
    60
}
/// Default `[relay] destination_concurrency` (Postfix's default destination limit).
pub const DESTINATION_CONCURRENCY_DEFAULT: usize = 20;
/// Largest accepted `[relay] destination_concurrency`.
pub const DESTINATION_CONCURRENCY_MAX: usize = 1000;
fn default_destination_concurrency() -> usize {
    DESTINATION_CONCURRENCY_DEFAULT
}
fn default_retention() -> u64 {
    30
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths inside it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate(&file)?;
        Ok(config)
    }

    /// Parses TOML text; `file` only names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.node.data_dir);
        fix(&mut self.admin.tokens_file);
        for d in &mut self.domains {
            if let Some(p) = d.recipients_file.as_mut() {
                fix(p);
            }
            if let Some(p) = d.dkim_key.as_mut() {
                fix(p);
            }
        }
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            fix(p);
        }
        if let Some(s) = self.submission.as_mut() {
            fix(&mut s.users_file);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            fix(p);
        }
        if let Some(mesh) = self.mesh.as_mut() {
            fix(&mut mesh.ca_cert);
            fix(&mut mesh.cert);
            fix(&mut mesh.key);
        }
        if let Some(r) = self.dns.as_mut().and_then(|d| d.rfc2136.as_mut()) {
            fix(&mut r.tsig_secret_file);
        }
    }

    /// The downstream server for a recipient domain (case-insensitive), if accepted.
    pub fn relay_for(&self, domain: &str) -> Option<&str> {
        let domain = domain.trim_end_matches('.');
        self.domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(domain))
            .map(|d| d.relay_to.as_str())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
