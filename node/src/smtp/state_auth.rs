//! The AUTH part of [`Protocol`] (RFC 4954): offered only on the submission port once the
//! connection is TLS; the mechanisms themselves are in [`super::auth`].

use super::super::auth::{self, Credentials, Step};
use super::super::command::LineEvent;
use super::super::reply::{ProtocolError, Reply};
use super::{Event, Phase, Protocol};

/// Credentials handed to the session, and whose they are.
#[derive(Debug)]
pub(super) struct AuthWait {
    user: String,
    credentials: Option<Credentials>,
}

impl Protocol {
    /// Finishes the credentials handed out by [`Event::Auth`]: `None` accepts them (`235`,
    /// and the client may now send mail anywhere), a reply refuses them (it counts as an
    /// error of the session). Continues with held input. Does nothing unless credentials
    /// are awaiting their check.
    pub fn auth_checked(&mut self, refusal: Option<Reply>) -> Vec<Event> {
        let Phase::AwaitingAuth(wait) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match refusal {
            None => {
                self.auth_user = Some(wait.user);
                out.push(Event::Reply(Reply::auth_ok()));
            }
            Some(reply) => {
                out.push(Event::Reply(reply));
                if self.count_error(&mut out) {
                    return out;
                }
            }
        }
        self.resume_held(&mut out);
        out
    }

    /// The user this session authenticated as.
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// Whether EHLO lists AUTH now.
    pub(super) fn auth_offered(&self) -> bool {
        self.config.submission && self.tls && self.auth_user.is_none()
    }

    /// `AUTH mechanism [initial-response]`.
    pub(super) fn auth(
        &mut self,
        mechanism: &str,
        initial: Option<&str>,
    ) -> Result<Reply, ProtocolError> {
        if !self.config.submission {
            return Err(ProtocolError::NotImplemented);
        }
        if self.helo.is_none() {
            return Err(ProtocolError::NeedHelo);
        }
        if !self.tls {
            return Err(ProtocolError::AuthNeedsTls);
        }
        if self.auth_user.is_some() || self.transaction.is_some() {
            return Err(ProtocolError::AuthBadSequence);
        }
        self.auth_step(auth::start(mechanism, initial)?)
    }

    /// A line answering a `334` challenge.
    pub(super) fn on_auth_line(
        &mut self,
        pending: auth::Pending,
        line: LineEvent,
        out: &mut Vec<Event>,
    ) {
        let result = match line {
            LineEvent::TooLong => Err(ProtocolError::AuthSyntax),
            LineEvent::Line(bytes) => auth::next(pending, &bytes).and_then(|s| self.auth_step(s)),
        };
        match result {
            Ok(_) if matches!(self.phase, Phase::AwaitingAuth(_)) => {
                if let Some(credentials) = self.take_credentials() {
                    out.push(Event::Auth(credentials));
                }
            }
            Ok(reply) => out.push(Event::Reply(reply)),
            Err(error) => self.refuse(error, out),
        }
    }

    /// Moves to the next phase of the exchange; the reply is the challenge (unused once
    /// the credentials are complete: the session's check gives the reply).
    fn auth_step(&mut self, step: Step) -> Result<Reply, ProtocolError> {
        match step {
            Step::Challenge(reply, pending) => {
                self.phase = Phase::Auth(pending);
                Ok(reply)
            }
            Step::Done(credentials) => {
                self.phase = Phase::AwaitingAuth(AuthWait {
                    user: credentials.user.clone(),
                    credentials: Some(credentials),
                });
                Ok(Reply::auth_ok())
            }
        }
    }

    /// The credentials awaiting their check, handed out once.
    pub(super) fn take_credentials(&mut self) -> Option<Credentials> {
        match &mut self.phase {
            Phase::AwaitingAuth(wait) => wait.credentials.take(),
            _ => None,
        }
    }
}
