//! The one DNS resolver every fact lookup uses: `[filter] resolver` when set (UDP, then TCP
//! for truncated answers), the system configuration otherwise. Each query is bounded by
//! `dns_timeout_ms` and tried once, so a dead server costs one timeout, never a hang.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::system_conf::read_system_conf;

/// Answers cached by the resolver at most (it honours the records' TTLs).
pub const DNS_CACHE_ENTRIES_MAX: u64 = 4096;
/// Attempts per query (each bounded by the timeout).
pub const DNS_ATTEMPTS: usize = 1;

/// Builds the resolver; the error names the setting at fault.
pub fn authenticator(
    server: Option<SocketAddr>,
    timeout: Duration,
) -> Result<MessageAuthenticator, String> {
    let (config, mut opts) = match server {
        Some(addr) => (single_server(addr), ResolverOpts::default()),
        None => read_system_conf()
            .map_err(|e| format!("system resolver configuration (/etc/resolv.conf): {e}"))?,
    };
    opts.timeout = timeout;
    opts.attempts = DNS_ATTEMPTS;
    opts.cache_size = DNS_CACHE_ENTRIES_MAX;
    opts.try_tcp_on_error = true;
    MessageAuthenticator::new(config, opts).map_err(|e| format!("DNS resolver: {e}"))
}

fn single_server(addr: SocketAddr) -> ResolverConfig {
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut server.connections {
        connection.port = addr.port();
    }
    ResolverConfig::from_parts(None, Vec::new(), vec![server])
}
