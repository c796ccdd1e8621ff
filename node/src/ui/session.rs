//! Console sessions: a sign-in with an admin token gets a random session id (sent back only
//! as an `HttpOnly; SameSite=Strict` cookie) and a CSRF token (given to the page, sent back
//! in the [`CSRF_HEADER`] header on every state change). Sessions live in this node's
//! memory: a restart signs everyone out, and signing out ends the session at once.
//!
//! Only SHA-256 hashes of the ids are kept, so a memory dump does not hand out sessions.
//! A session ends [`SESSION_IDLE_MS`] after its last use; at most [`SESSIONS_MAX`] live at
//! once (the least recently used goes first).

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mxmesh_session";
/// The request header that carries the CSRF token on state changes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused this long is over (8 hours).
pub const SESSION_IDLE_MS: u64 = 8 * 60 * 60 * 1000;
/// Sessions kept at most; the least recently used is dropped for a new one.
pub const SESSIONS_MAX: usize = 1_000;
/// Random bytes in a session id and in a CSRF token.
const SECRET_BYTES: usize = 32;

/// Why a request's session does not let it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    /// No such session (never existed, signed out, expired, or the node restarted).
    #[error("no valid console session (sign in again)")]
    Unknown,
    /// A state change without the session's CSRF token.
    #[error("missing or wrong {CSRF_HEADER} header")]
    Csrf,
}

/// A session just created: the id goes in the cookie, the CSRF token to the page.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The secret session id (cookie value).
    pub id: String,
    /// The CSRF token the page must echo in [`CSRF_HEADER`].
    pub csrf: String,
}

/// What a valid session tells about its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The admin name of the token used to sign in.
    pub admin: String,
    /// The session's CSRF token (for the page to read again after a reload).
    pub csrf: String,
}

#[derive(Debug, Clone)]
struct Session {
    admin: String,
    csrf: String,
    last_used_ms: u64,
}

/// This node's console sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Starts a session for `admin` (already authenticated by its token).
    pub fn create(&self, admin: &str, now_ms: u64) -> NewSession {
        let new = NewSession {
            id: random_secret(),
            csrf: random_secret(),
        };
        let mut table = self.lock();
        table.retain(|_, s| !expired(s, now_ms));
        while table.len() >= SESSIONS_MAX {
            let oldest = table
                .iter()
                .min_by_key(|(_, s)| s.last_used_ms)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => table.remove(&k),
                None => break,
            };
        }
        table.insert(
            hash(&new.id),
            Session {
                admin: admin.to_string(),
                csrf: new.csrf.clone(),
                last_used_ms: now_ms,
            },
        );
        new
    }

    /// Checks session `id` for a request; `state_change` requests must carry the session's
    /// CSRF token as `csrf`. A valid use keeps the session alive.
    pub fn check(
        &self,
        id: &str,
        state_change: bool,
        csrf: Option<&str>,
        now_ms: u64,
    ) -> Result<SessionInfo, SessionRefusal> {
        let mut table = self.lock();
        let key = hash(id);
        let session = match table.get_mut(&key) {
            Some(s) if !expired(s, now_ms) => s,
            Some(_) => {
                table.remove(&key);
                return Err(SessionRefusal::Unknown);
            }
            None => return Err(SessionRefusal::Unknown),
        };
        if state_change && !csrf.is_some_and(|c| same(c, &session.csrf)) {
            return Err(SessionRefusal::Csrf);
        }
        session.last_used_ms = now_ms;
        Ok(SessionInfo {
            admin: session.admin.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends session `id` (sign-out); unknown ids are ignored.
    pub fn end(&self, id: &str) {
        self.lock().remove(&hash(id));
    }

    /// Live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.by_hash.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that stores session `id` (`None`: the one that deletes it).
pub fn set_cookie(id: Option<&str>) -> String {
    match id {
        Some(id) => format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_IDLE_MS / 1000
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

fn expired(s: &Session, now_ms: u64) -> bool {
    now_ms.saturating_sub(s.last_used_ms) >= SESSION_IDLE_MS
}

fn random_secret() -> String {
    hex::encode(rand::random::<[u8; SECRET_BYTES]>())
}

fn hash(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_freely_and_changes_state_only_with_its_csrf_token() {
        let s = Sessions::new();
        let new = s.create("alice", 1_000);
        let info = s.check(&new.id, false, None, 2_000).unwrap();
        assert_eq!(info.admin, "alice");
        assert_eq!(info.csrf, new.csrf);
        assert_eq!(
            s.check(&new.id, true, None, 2_000),
            Err(SessionRefusal::Csrf)
        );
        assert_eq!(
            s.check(&new.id, true, Some("wrong"), 2_000),
            Err(SessionRefusal::Csrf)
        );
        let other = s.create("bob", 1_000);
        assert_eq!(
            s.check(&new.id, true, Some(&other.csrf), 2_000),
            Err(SessionRefusal::Csrf),
            "another session's token does not do"
        );
        assert!(s.check(&new.id, true, Some(&new.csrf), 2_000).is_ok());
        assert_eq!(
            s.check(&new.csrf, false, None, 2_000),
            Err(SessionRefusal::Unknown),
            "the CSRF token is not a session id"
        );
    }

    #[test]
    fn sign_out_and_idle_time_end_a_session() {
        let s = Sessions::new();
        let a = s.create("alice", 0);
        let b = s.create("alice", 0);
        assert_ne!(a.id, b.id);
        s.end(&a.id);
        assert_eq!(s.check(&a.id, false, None, 1), Err(SessionRefusal::Unknown));
        assert!(s.check(&b.id, false, None, SESSION_IDLE_MS - 1).is_ok());
        assert!(
            s.check(&b.id, false, None, 2 * SESSION_IDLE_MS - 2).is_ok(),
            "use keeps it alive"
        );
        assert_eq!(
            s.check(&b.id, false, None, 3 * SESSION_IDLE_MS),
            Err(SessionRefusal::Unknown)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_drops_the_least_recently_used() {
        let s = Sessions::new();
        let first = s.create("a", 0);
        let kept = s.create("a", 0);
        s.check(&kept.id, false, None, 5).unwrap();
        for i in 0..SESSIONS_MAX {
            s.create("a", 10 + i as u64);
        }
        assert_eq!(s.len(), SESSIONS_MAX);
        assert_eq!(
            s.check(&first.id, false, None, 20),
            Err(SessionRefusal::Unknown)
        );
    }

    #[test]
    fn cookies_are_found_and_set_strictly() {
        assert_eq!(
            cookie("a=1; mxmesh_session=abc; b=2", SESSION_COOKIE),
            Some("abc")
        );
        assert_eq!(cookie("xmxmesh_session=abc", SESSION_COOKIE), None);
        assert_eq!(cookie("", SESSION_COOKIE), None);
        let c = set_cookie(Some("abc"));
        for part in [
            "mxmesh_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(set_cookie(None).contains("Max-Age=0"));
    }
}
