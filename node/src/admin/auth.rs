//! Bearer tokens for the admin API, from `[admin] tokens_file`.
//!
//! One entry per line: `TOKEN`, `NAME TOKEN`, or `NAME sha256:HEX` (the hex SHA-256 of the
//! token, so the file need not hold secrets). `#` starts a comment. The name is the admin
//! identity recorded in the rule audit trail; unnamed tokens get `token-<hash prefix>`.

use std::path::Path;

use sha2::{Digest, Sha256};

/// A token file with more entries than this is refused (it is certainly a mistake).
pub const TOKENS_MAX: usize = 10_000;

/// The accepted tokens, as hashes.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl Tokens {
    /// Reads a tokens file; errors name the file and line.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (name, secret) = match parts.as_slice() {
                [t] => (None, *t),
                [n, t] => (Some(n.to_string()), *t),
                _ => return Err(format!("line {}: expected `TOKEN` or `NAME TOKEN`", i + 1)),
            };
            let hash = match secret.strip_prefix("sha256:") {
                Some(hex_hash) => decode_hash(hex_hash)
                    .ok_or_else(|| format!("line {}: sha256: needs 64 hex digits", i + 1))?,
                None => hash(secret),
            };
            let name = name.unwrap_or_else(|| format!("token-{}", &hex::encode(hash)[..8]));
            entries.push((name, hash));
            if entries.len() > TOKENS_MAX {
                return Err(format!("more than {TOKENS_MAX} tokens"));
            }
        }
        Ok(Tokens { entries })
    }

    /// The first token of a tokens file written in plain text (not as `sha256:`), for a
    /// local client such as `mxmesh backup`; `None` when every entry is a hash.
    pub fn first_plain(text: &str) -> Option<String> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| l.split_whitespace().last())
            .find(|t| !t.starts_with("sha256:"))
            .map(str::to_string)
    }

    /// The identity behind a presented token, if it is valid.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let h = hash(presented);
        self.entries
            .iter()
            .find(|(_, e)| constant_time_eq(e, &h))
            .map(|(n, _)| n.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn hash(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn decode_hash(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_named_and_hashed_tokens() {
        let h = hex::encode(hash("s3cret"));
        let t = Tokens::parse(&format!("# admins\nabc\nalice def\nbob sha256:{h}\n")).unwrap();
        assert!(t.identify("abc").unwrap().starts_with("token-"));
        assert_eq!(t.identify("def"), Some("alice"));
        assert_eq!(t.identify("s3cret"), Some("bob"));
        assert_eq!(t.identify("nope"), None);
        assert_eq!(t.identify(""), None);
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(Tokens::parse("a b c").unwrap_err().contains("line 1"));
        assert!(
            Tokens::parse("\nx sha256:zz")
                .unwrap_err()
                .contains("line 2")
        );
    }
}
