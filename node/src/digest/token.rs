//! Signed, expiring link tokens: `base64url(payload) "." base64url(HMAC-SHA256)`. The
//! payload names one recipient, one action, the message (for item actions), the expiry
//! and the generation of the cluster key that signed it. Pure: keys and time are
//! parameters; the keys live in the rule book (`super::keys`).
//!
//! A token verifies when its MAC is right under the key of its generation, the key is
//! still accepted (the newest, or one replaced less than a link lifetime ago — so rotating
//! keeps the links already sent working until they expire) and it has not expired.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest token accepted, in bytes (a longer one is refused before any work).
pub const TOKEN_BYTES_MAX: usize = 1024;
/// Bytes of a key's secret.
pub const SECRET_BYTES: usize = 32;
/// Payload format version.
const FORMAT: &str = "v1";
/// Slack on a replaced key's acceptance: a node may sign with the old key until the new
/// one reaches it.
pub const ROTATION_SLACK_MS: u64 = 3_600_000;

type HmacSha256 = Hmac<Sha256>;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Release one message.
    Release,
    /// Release one message and always allow its sender for this recipient.
    Allow,
    /// Delete one message.
    Delete,
    /// Show all of the recipient's quarantined mail.
    Show,
}

impl Action {
    /// Its name in tokens and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Allow => "allow",
            Action::Delete => "delete",
            Action::Show => "show",
        }
    }

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Action> {
        [Action::Release, Action::Allow, Action::Delete, Action::Show]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The action.
    pub action: Action,
    /// The recipient (lowercase) the link was sent to.
    pub recipient: String,
    /// The quarantined message, for every action but [`Action::Show`].
    pub entry: Option<String>,
    /// When the link stops working, ms since the epoch.
    pub expires_ms: u64,
}

/// One cluster key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Generation: the first key is 1, each rotation adds one.
    pub generation: u64,
    /// The secret.
    pub secret: Vec<u8>,
    /// When it was made, ms since the epoch.
    pub created_ms: u64,
}

/// The keys a node knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    /// By generation, any order.
    pub keys: Vec<Key>,
}

/// Why a token was refused. The portal shows one plain message for all of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed link")]
    Malformed,
    /// Signed by a key this mesh does not have (or no longer accepts).
    #[error("link signed by an unknown or retired key")]
    UnknownKey,
    /// The MAC does not match: changed, or made elsewhere.
    #[error("link signature does not match")]
    BadSignature,
    /// Past its expiry.
    #[error("link expired")]
    Expired,
    /// The recipient or message id cannot go into a token.
    #[error("cannot sign: {0}")]
    Unsignable(String),
}

impl KeyRing {
    /// The newest key (signs new links).
    pub fn current(&self) -> Option<&Key> {
        self.keys.iter().max_by_key(|k| k.generation)
    }

    /// The key of `generation` if it is still accepted at `now_ms`.
    fn accepted(&self, generation: u64, now_ms: u64, lifetime_ms: u64) -> Option<&Key> {
        let key = self.keys.iter().find(|k| k.generation == generation)?;
        let successor = self
            .keys
            .iter()
            .filter(|k| k.generation > generation)
            .map(|k| k.created_ms)
            .min();
        match successor {
            None => Some(key),
            Some(replaced_ms) => {
                let until = replaced_ms
                    .saturating_add(lifetime_ms)
                    .saturating_add(ROTATION_SLACK_MS);
                (now_ms < until).then_some(key)
            }
        }
    }
}

/// Signs `claim` with `key`.
pub fn sign(key: &Key, claim: &Claim) -> Result<String, TokenError> {
    let entry = claim.entry.as_deref().unwrap_or("");
    let plain =
        |s: &str| !s.is_empty() && s.len() <= 320 && s.bytes().all(|b| b.is_ascii_graphic());
    if !plain(&claim.recipient) || (!entry.is_empty() && !plain(entry)) {
        return Err(TokenError::Unsignable(format!(
            "{:?} / {entry:?}",
            claim.recipient
        )));
    }
    let payload = format!(
        "{FORMAT}\n{}\n{}\n{}\n{}\n{entry}",
        key.generation,
        claim.action.as_str(),
        claim.expires_ms,
        claim.recipient
    );
    let mac = mac_of(&key.secret, payload.as_bytes());
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(mac)
    ))
}

/// Checks `token` against `ring` at `now_ms` (`lifetime_ms`: the link lifetime setting).
pub fn verify(
    ring: &KeyRing,
    token: &str,
    now_ms: u64,
    lifetime_ms: u64,
) -> Result<Claim, TokenError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::Malformed);
    }
    let (payload_b64, mac_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| TokenError::Malformed)?;
    let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let fields: Vec<&str> = text.split('\n').collect();
    let [format, generation, action, expires, recipient, entry] = fields[..] else {
        return Err(TokenError::Malformed);
    };
    if format != FORMAT {
        return Err(TokenError::Malformed);
    }
    let generation: u64 = generation.parse().map_err(|_| TokenError::Malformed)?;
    let key = ring
        .accepted(generation, now_ms, lifetime_ms)
        .ok_or(TokenError::UnknownKey)?;
    let mut check = HmacSha256::new_from_slice(&key.secret).map_err(|_| TokenError::UnknownKey)?;
    check.update(text.as_bytes());
    check
        .verify_slice(&mac)
        .map_err(|_| TokenError::BadSignature)?;
    let action = Action::parse(action).ok_or(TokenError::Malformed)?;
    let expires_ms: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    if now_ms >= expires_ms {
        return Err(TokenError::Expired);
    }
    let entry = (!entry.is_empty()).then(|| entry.to_string());
    if entry.is_some() == (action == Action::Show) {
        return Err(TokenError::Malformed);
    }
    Ok(Claim {
        action,
        recipient: recipient.to_string(),
        entry,
        expires_ms,
    })
}

/// A value bound to `token` that only key holders can make: the portal's form field, so a
/// POST must come from a page this mesh served for that token.
pub fn form_check(key: &Key, token: &str) -> String {
    hex::encode(&mac_of(&key.secret, format!("form\n{token}").as_bytes())[..16])
}

fn mac_of(secret: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_768_460_400_000;
    const DAY: u64 = 86_400_000;
    const WEEK: u64 = 7 * DAY;

    fn key(generation: u64, byte: u8, created_ms: u64) -> Key {
        Key {
            generation,
            secret: vec![byte; SECRET_BYTES],
            created_ms,
        }
    }

    fn claim(action: Action, entry: Option<&str>) -> Claim {
        Claim {
            action,
            recipient: "alice@example.com".into(),
            entry: entry.map(str::to_string),
            expires_ms: NOW + WEEK,
        }
    }

    fn ring(keys: &[Key]) -> KeyRing {
        KeyRing {
            keys: keys.to_vec(),
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claim() {
        let k = key(1, 7, NOW);
        for c in [
            claim(Action::Release, Some("01J0ABC")),
            claim(Action::Show, None),
        ] {
            let t = sign(&k, &c).unwrap();
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{t}"
            );
            assert_eq!(
                verify(&ring(std::slice::from_ref(&k)), &t, NOW + DAY, WEEK),
                Ok(c)
            );
        }
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let k = key(1, 7, NOW);
        let t = sign(&k, &claim(Action::Release, Some("01J0ABC"))).unwrap();
        let (payload, mac) = t.split_once('.').unwrap();
        // Another recipient in the payload, same MAC.
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(text.replace("alice", "mallory"));
        assert_eq!(
            verify(
                &ring(std::slice::from_ref(&k)),
                &format!("{forged}.{mac}"),
                NOW,
                WEEK
            ),
            Err(TokenError::BadSignature)
        );
        // Every single-character change fails one way or another.
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != t {
                assert!(
                    verify(&ring(std::slice::from_ref(&k)), &changed, NOW, WEEK).is_err(),
                    "{i}"
                );
            }
        }
        for junk in ["", ".", "abc", "a.b.c", &"x".repeat(TOKEN_BYTES_MAX + 1)] {
            assert!(
                verify(&ring(std::slice::from_ref(&k)), junk, NOW, WEEK).is_err(),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_token_expires() {
        let k = key(1, 7, NOW);
        let t = sign(&k, &claim(Action::Delete, Some("01J0ABC"))).unwrap();
        assert!(verify(&ring(std::slice::from_ref(&k)), &t, NOW + WEEK - 1, WEEK).is_ok());
        assert_eq!(
            verify(&ring(&[k]), &t, NOW + WEEK, WEEK),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_foreign_key_is_refused() {
        let ours = key(1, 7, NOW);
        let theirs = key(1, 8, NOW);
        let t = sign(&theirs, &claim(Action::Release, Some("01J0ABC"))).unwrap();
        assert_eq!(
            verify(&ring(&[ours]), &t, NOW, WEEK),
            Err(TokenError::BadSignature)
        );
        let unknown_generation = sign(&key(9, 7, NOW), &claim(Action::Show, None)).unwrap();
        assert_eq!(
            verify(&ring(&[key(1, 7, NOW)]), &unknown_generation, NOW, WEEK),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn rotation_keeps_old_links_until_they_could_have_expired() {
        let old = key(1, 7, NOW);
        let t = sign(&old, &claim(Action::Show, None)).unwrap();
        let rotated_at = NOW + DAY;
        let new = key(2, 9, rotated_at);
        let keys = ring(&[old.clone(), new.clone()]);
        assert_eq!(keys.current(), Some(&new), "new links use the new key");
        assert!(
            verify(&keys, &t, rotated_at + 1, WEEK).is_ok(),
            "old link still works"
        );
        let late_old = Claim {
            expires_ms: u64::MAX,
            ..claim(Action::Show, None)
        };
        let t = sign(&old, &late_old).unwrap();
        let retired = rotated_at + WEEK + ROTATION_SLACK_MS;
        assert!(verify(&keys, &t, retired - 1, WEEK).is_ok());
        assert_eq!(
            verify(&keys, &t, retired, WEEK),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn the_form_check_is_bound_to_key_and_token() {
        let k = key(1, 7, NOW);
        let a = form_check(&k, "token-a");
        assert_eq!(a, form_check(&k, "token-a"));
        assert_ne!(a, form_check(&k, "token-b"));
        assert_ne!(a, form_check(&key(1, 8, NOW), "token-a"));
    }

    #[test]
    fn unsignable_claims_are_refused() {
        let k = key(1, 7, NOW);
        let mut c = claim(Action::Release, Some("01J0ABC"));
        c.recipient = "a\nb@example.com".into();
        assert!(matches!(sign(&k, &c), Err(TokenError::Unsignable(_))));
    }
}
