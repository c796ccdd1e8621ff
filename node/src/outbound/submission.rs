//! The `[submission]` sink: AUTH checked against the users file (argon2, off the async
//! threads), wrong passwords rate-limited per client address, and every message handed
//! to the inbound stage as outbound mail of the authenticated user.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::{AuthFailures, Users};
use crate::inbound::Inbound;
use crate::smtp::auth::Credentials;
use crate::smtp::reply::Reply;
use crate::smtp::session::{Client, MessageSink};
use crate::smtp::state::{Envelope, RcptCheck};

/// What the submission listener hands its sessions' messages and credentials to.
pub struct Submission {
    /// The mail path shared with port 25.
    pub inbound: Arc<Inbound>,
    /// Who may authenticate.
    pub users: Arc<Users>,
    /// Wrong passwords per client address.
    pub failures: Arc<AuthFailures>,
}

impl Submission {
    /// `None` when `credentials` are right and the client is not blocked; else the reply.
    pub async fn check(&self, credentials: Credentials, client: &Client) -> Option<Reply> {
        if !self.failures.allowed(client.ip, Instant::now()) {
            tracing::info!(client = %client.ip, "submission: AUTH refused, too many wrong passwords");
            return Some(Reply::auth_rate_limited());
        }
        let users = self.users.clone();
        let user = credentials.user.clone();
        let verified =
            crate::rt::blocking(move || users.verify(&credentials.user, &credentials.password))
                .await;
        match verified {
            Ok(true) => {
                self.failures.succeeded(client.ip);
                tracing::info!(client = %client.ip, %user, "submission: authenticated");
                None
            }
            Ok(false) => {
                self.failures.failed(client.ip, Instant::now());
                tracing::info!(client = %client.ip, %user, "submission: wrong user name or password");
                Some(Reply::auth_failed())
            }
            Err(_) => Some(Reply::auth_unavailable()),
        }
    }
}

impl MessageSink for Submission {
    fn deliver<'a>(
        &'a self,
        envelope: Envelope,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
        self.inbound.deliver(envelope, client)
    }

    fn check_rcpt<'a>(
        &'a self,
        check: RcptCheck,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>> {
        self.inbound.check_rcpt(check, client)
    }

    fn authenticate<'a>(
        &'a self,
        credentials: Credentials,
        client: &'a Client,
    ) -> Pin<Box<dyn Future<Output = Option<Reply>> + Send + 'a>> {
        Box::pin(self.check(credentials, client))
    }
}
