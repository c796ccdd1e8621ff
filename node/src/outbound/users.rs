//! `[submission] users_file`: one `USER HASH` per line, the hash a PHC string
//! (`$argon2id$v=19$m=…,t=…,p=…$SALT$HASH`). `#` starts a comment line; blank lines are skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Most users in one file.
pub const USERS_MAX: usize = 100_000;
/// Longest line accepted (a PHC argon2 string is about 100 bytes).
pub const USERS_LINE_MAX_BYTES: usize = 1024;
/// Longest password checked (longer ones are wrong without running argon2 on them).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A users file error: the file, the line, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The users file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The users file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Hashing a new password failed.
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// The submission users: name → PHC hash string.
#[derive(Debug, Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl Users {
    /// Reads and parses a users file.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, message)| UsersError::Line {
            path: path.to_path_buf(),
            line,
            message,
        })
    }

    /// Parses the file's text; the error is (1-based line, message).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut hashes = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = parse_line(line).map_err(|m| (line_no, m))?;
            if hashes.len() >= USERS_MAX {
                return Err((line_no, format!("more than {USERS_MAX} users")));
            }
            if hashes.insert(user.to_string(), hash.to_string()).is_some() {
                return Err((line_no, format!("user {user:?} appears twice")));
            }
        }
        Ok(Users { hashes })
    }

    /// Whether `password` is `user`'s. Unknown users cost the same argon2 run as known ones,
    /// so the reply time does not tell which names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        if password.len() > PASSWORD_MAX_BYTES {
            return false;
        }
        let known = self.hashes.get(user);
        let hash: &str = match known {
            Some(h) => h,
            None => dummy_hash(),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let ok = Argon2::default().verify_password(password, &parsed).is_ok();
        ok && known.is_some()
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// No users.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Hashes `password` with argon2id (the crate's default parameters) into a PHC string for a
/// users file line.
pub fn hash_password(password: &[u8]) -> Result<String, UsersError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// An argon2id hash of a random password (made once), verified against for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut password = [0u8; 32];
        rand::fill(&mut password);
        hash_password(&password).unwrap_or_default()
    })
}

fn parse_line(line: &str) -> Result<(&str, &str), String> {
    if line.len() > USERS_LINE_MAX_BYTES {
        return Err(format!("line longer than {USERS_LINE_MAX_BYTES} bytes"));
    }
    let mut fields = line.split_whitespace();
    let (Some(user), Some(hash), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("want two fields: USER HASH".into());
    };
    if hash.starts_with("$2") {
        return Err(format!(
            "user {user:?}: bcrypt hashes are not supported; use argon2id"
        ));
    }
    let parsed = PasswordHash::new(hash)
        .map_err(|e| format!("user {user:?}: not a PHC hash string ({e})"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "user {user:?}: algorithm {} is not argon2",
            parsed.algorithm
        ));
    }
    Ok((user, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_others_do_not() {
        let hash = hash_password(b"s3cret").unwrap();
        let users = Users::parse(&format!("# submission users\n\nalice {hash}\n")).unwrap();
        assert_eq!(users.len(), 1);
        assert!(users.verify("alice", b"s3cret"));
        assert!(!users.verify("alice", b"wrong"));
        assert!(!users.verify("bob", b"s3cret"));
        assert!(!users.verify("alice", &[b'x'; PASSWORD_MAX_BYTES + 1]));
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(dummy_hash()).is_ok());
    }

    #[test]
    fn malformed_lines_are_named_by_number() {
        let err = Users::parse("alice\n").unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("USER HASH"), "{}", err.1);
        let err = Users::parse("\n# c\nbob nothash\n").unwrap_err();
        assert_eq!(err.0, 3);
        assert!(err.1.contains("bob"), "{}", err.1);
        let err = Users::parse("carol $2b$12$abcdefghijklmnopqrstuv\n").unwrap_err();
        assert!(err.1.contains("bcrypt"), "{}", err.1);
        let err =
            Users::parse("dave $pbkdf2-sha256$i=1000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA\n").unwrap_err();
        assert!(err.1.contains("not argon2"), "{}", err.1);
        let err = Users::parse("a b c\n").unwrap_err();
        assert!(err.1.contains("two fields"), "{}", err.1);
    }

    #[test]
    fn a_user_twice_is_refused_and_the_file_is_named() {
        let hash = hash_password(b"x").unwrap();
        let err = Users::parse(&format!("eve {hash}\neve {hash}\n")).unwrap_err();
        assert_eq!(err.0, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("submission.users");
        std::fs::write(&path, "zed\n").unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("submission.users:1"), "{err}");
    }
}
