//! The `[submission]` listeners: `listen` (STARTTLS, or implicit TLS with
//! `tls = "implicit"`) and the optional `implicit_tls_listen`, both serving the
//! [`Submission`] sink with the submission protocol (AUTH after TLS, required for MAIL).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{AuthFailures, Submission, TrustedNetworks, Users};
use crate::config::outbound::{SubmissionSection, SubmissionTls};
use crate::inbound::Inbound;
use crate::smtp::listener;
use crate::smtp::session::SessionContext;
use crate::smtp::state::ProtocolConfig;

/// The bound submission sockets.
pub struct SubmissionListeners {
    /// `[submission] listen`.
    pub listen: TcpListener,
    /// `[submission] implicit_tls_listen`, when set.
    pub implicit: Option<TcpListener>,
}

/// The addresses the submission listeners bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmissionAddrs {
    /// `[submission] listen`, as bound.
    pub listen: Option<SocketAddr>,
    /// `[submission] implicit_tls_listen`, as bound.
    pub implicit: Option<SocketAddr>,
}

impl SubmissionListeners {
    /// Binds what `section` names.
    pub async fn bind(section: &SubmissionSection) -> anyhow::Result<SubmissionListeners> {
        let listen = TcpListener::bind(section.listen)
            .await
            .with_context(|| format!("submission.listen {}", section.listen))?;
        let implicit = match section.implicit_tls_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("submission.implicit_tls_listen {addr}"))?,
            ),
            None => None,
        };
        Ok(SubmissionListeners { listen, implicit })
    }

    /// The addresses bound.
    pub fn addrs(&self) -> SubmissionAddrs {
        SubmissionAddrs {
            listen: self.listen.local_addr().ok(),
            implicit: self.implicit.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }

    /// Serves both listeners with `base` (port 25's context: timeouts, health, TLS,
    /// shutdown) turned into the submission's: its own sink, protocol and no trusted
    /// networks (every client authenticates).
    pub fn serve(
        self,
        section: &SubmissionSection,
        inbound: Arc<Inbound>,
        base: &SessionContext,
        max_connections: usize,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let users = Users::load(&section.users_file).map_err(anyhow::Error::msg)?;
        if users.is_empty() {
            tracing::warn!(file = %section.users_file.display(), "submission: no users; every AUTH will fail");
        }
        let sink = Arc::new(Submission {
            inbound,
            users: Arc::new(users),
            failures: Arc::new(AuthFailures::default()),
        });
        let protocol = Arc::new(ProtocolConfig {
            submission: true,
            check_recipients: true,
            ..(*base.protocol).clone()
        });
        let ctx = |implicit_tls: bool| SessionContext {
            sink: sink.clone(),
            protocol: protocol.clone(),
            implicit_tls,
            trusted: Arc::new(TrustedNetworks::default()),
            ..base.clone()
        };
        let listen_implicit = section.tls == SubmissionTls::Implicit;
        let mut tasks = vec![tokio::spawn(listener::serve(
            self.listen,
            ctx(listen_implicit),
            max_connections,
        ))];
        if let Some(implicit) = self.implicit {
            tasks.push(tokio::spawn(listener::serve(
                implicit,
                ctx(true),
                max_connections,
            )));
        }
        Ok(tasks)
    }
}
