//! SMTP AUTH (RFC 4954), sans I/O: the `PLAIN` (RFC 4616) and `LOGIN` mechanisms as
//! steps from a command (and its optional initial response) through `334` challenges to
//! the [`Credentials`] the session checks. Nothing here decides whether AUTH is allowed
//! (the state machine does: submission only, after TLS) or whether a password is right
//! (the sink does).

use base64::Engine;

use super::reply::{ProtocolError, Reply};

/// Longest user name accepted, in bytes.
pub const AUTH_USER_MAX_BYTES: usize = 256;
/// Longest password accepted, in bytes (longer ones are refused without a check).
pub const AUTH_PASSWORD_MAX_BYTES: usize = 1024;
/// The mechanisms offered in the EHLO reply.
pub const AUTH_MECHANISMS: &str = "PLAIN LOGIN";

/// A user name and password to check.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity (the user name).
    pub user: String,
    /// The password as the client sent it.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Where a mechanism is between challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// `PLAIN` without an initial response: waiting for it.
    Plain,
    /// `LOGIN`: waiting for the user name.
    LoginUser,
    /// `LOGIN`: waiting for the password of this user.
    LoginPassword(String),
}

/// What one step of an exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this `334` challenge, then read one more line.
    Challenge(Reply, Pending),
    /// The exchange is complete: check these.
    Done(Credentials),
}

/// Starts `AUTH MECHANISM [initial-response]`.
pub fn start(mechanism: &str, initial: Option<&str>) -> Result<Step, ProtocolError> {
    match (mechanism.to_ascii_uppercase().as_str(), initial) {
        ("PLAIN", None) => Ok(Step::Challenge(challenge(""), Pending::Plain)),
        ("PLAIN", Some(response)) => plain(&decode(response.as_bytes())?),
        ("LOGIN", None) => Ok(Step::Challenge(challenge("Username:"), Pending::LoginUser)),
        ("LOGIN", Some(response)) => login_user(&decode(response.as_bytes())?),
        _ => Err(ProtocolError::AuthMechanism),
    }
}

/// Takes the client's answer to a challenge (`*` cancels, RFC 4954 §4).
pub fn next(pending: Pending, line: &[u8]) -> Result<Step, ProtocolError> {
    if line == b"*" {
        return Err(ProtocolError::AuthCancelled);
    }
    let decoded = decode(line)?;
    match pending {
        Pending::Plain => plain(&decoded),
        Pending::LoginUser => login_user(&decoded),
        Pending::LoginPassword(user) => credentials(user, decoded),
    }
}

/// `334` with the base64 of `prompt`.
fn challenge(prompt: &str) -> Reply {
    let text = base64::engine::general_purpose::STANDARD.encode(prompt);
    Reply::new(334, None, text)
}

/// Base64 of a response; `=` is the empty response (RFC 4954 §4).
fn decode(response: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    if response == b"=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(response)
        .map_err(|_| ProtocolError::AuthSyntax)
}

/// `authzid NUL authcid NUL passwd`; an authorization identity other than the user's own
/// is refused (nobody may act as someone else).
fn plain(message: &[u8]) -> Result<Step, ProtocolError> {
    let mut fields = message.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(ProtocolError::AuthSyntax);
    };
    if !authzid.is_empty() && authzid != authcid {
        return Err(ProtocolError::AuthInvalid);
    }
    let user = user_name(authcid)?;
    credentials(user, password.to_vec())
}

fn login_user(name: &[u8]) -> Result<Step, ProtocolError> {
    let user = user_name(name)?;
    Ok(Step::Challenge(
        challenge("Password:"),
        Pending::LoginPassword(user),
    ))
}

fn user_name(bytes: &[u8]) -> Result<String, ProtocolError> {
    if bytes.is_empty() || bytes.len() > AUTH_USER_MAX_BYTES {
        return Err(ProtocolError::AuthSyntax);
    }
    let name = std::str::from_utf8(bytes).map_err(|_| ProtocolError::AuthSyntax)?;
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ProtocolError::AuthSyntax);
    }
    Ok(name.to_string())
}

fn credentials(user: String, password: Vec<u8>) -> Result<Step, ProtocolError> {
    if password.len() > AUTH_PASSWORD_MAX_BYTES {
        return Err(ProtocolError::AuthInvalid);
    }
    Ok(Step::Done(Credentials { user, password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn done(user: &str, password: &str) -> Step {
        Step::Done(Credentials {
            user: user.into(),
            password: password.as_bytes().to_vec(),
        })
    }

    #[test]
    fn plain_with_and_without_an_initial_response() {
        let response = b64(b"\0alice\0s3cret");
        assert_eq!(start("plain", Some(&response)), Ok(done("alice", "s3cret")));
        let Ok(Step::Challenge(reply, pending)) = start("PLAIN", None) else {
            panic!("a challenge");
        };
        assert_eq!(reply.code, 334);
        assert_eq!(
            next(pending, response.as_bytes()),
            Ok(done("alice", "s3cret"))
        );
        let same = b64(b"alice\0alice\0pw");
        assert_eq!(start("PLAIN", Some(&same)), Ok(done("alice", "pw")));
    }

    #[test]
    fn login_asks_for_user_then_password() {
        let Ok(Step::Challenge(reply, pending)) = start("LOGIN", None) else {
            panic!("a challenge");
        };
        assert_eq!(reply.lines, vec![b64(b"Username:")]);
        let Ok(Step::Challenge(reply, pending)) = next(pending, b64(b"bob").as_bytes()) else {
            panic!("a second challenge");
        };
        assert_eq!(reply.lines, vec![b64(b"Password:")]);
        assert_eq!(next(pending, b64(b"pw").as_bytes()), Ok(done("bob", "pw")));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(start("CRAM-MD5", None), Err(ProtocolError::AuthMechanism));
        assert_eq!(start("PLAIN", Some("!!")), Err(ProtocolError::AuthSyntax));
        let no_nul = b64(b"alice");
        assert_eq!(
            start("PLAIN", Some(&no_nul)),
            Err(ProtocolError::AuthSyntax)
        );
        let other = b64(b"root\0alice\0pw");
        assert_eq!(
            start("PLAIN", Some(&other)),
            Err(ProtocolError::AuthInvalid)
        );
        assert_eq!(
            next(Pending::LoginUser, b"*"),
            Err(ProtocolError::AuthCancelled)
        );
        let long = b64(&[b'a'; AUTH_USER_MAX_BYTES + 1]);
        assert_eq!(start("LOGIN", Some(&long)), Err(ProtocolError::AuthSyntax));
        let empty = start("PLAIN", Some("="));
        assert_eq!(empty, Err(ProtocolError::AuthSyntax));
    }
}
