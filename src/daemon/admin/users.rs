//! Who may use the admin page: a users file of names, argon2id password hashes and roles.
//!
//! ```yaml
//! users:
//!   - name: alice
//!     password_hash: "$argon2id$v=19$m=19456,t=2,p=1$..."   # rewind admin hash-password
//!     role: operator                                         # or viewer (the default)
//! ```
//! A user behind a trusted proxy (`--trust-proxy`) needs no hash; the file only gives their role.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything; runs and restores nothing.
    #[default]
    Viewer,
    /// Also runs jobs and restores snapshots.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<UserEntry>,
}

pub struct User {
    pub role: Role,
    /// A PHC string, checked when the file is read.
    hash: Option<String>,
}

#[derive(Default)]
pub struct Users {
    by_name: BTreeMap<String, User>,
}

/// A hash verified against when the name is unknown, so that a wrong name takes as long as a wrong
/// password and the answer time does not tell which names exist.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy").unwrap_or_default())
}

impl Users {
    /// Reads a users file; every problem is named with the file and the entry.
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Users::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Users, String> {
        let file: UsersFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name = BTreeMap::new();
        for u in file.users {
            if u.name.is_empty() || u.name.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "user name {:?} is empty or has control characters",
                    u.name
                ));
            }
            if let Some(h) = &u.password_hash {
                let parsed = PasswordHash::new(h).map_err(|e| {
                    format!("user {}: password_hash is not a PHC string ({e})", u.name)
                })?;
                if parsed.algorithm.as_str() != "argon2id" {
                    return Err(format!(
                        "user {}: password_hash uses {}, not argon2id (make one with `rewind admin hash-password`)",
                        u.name, parsed.algorithm
                    ));
                }
            }
            let name = u.name.clone();
            if by_name
                .insert(
                    u.name,
                    User {
                        role: u.role,
                        hash: u.password_hash,
                    },
                )
                .is_some()
            {
                return Err(format!("user {name} is listed twice"));
            }
        }
        Ok(Users { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// The user's role when the password is right.
    pub fn check(&self, name: &str, password: &str) -> Option<Role> {
        let user = self.by_name.get(name);
        let hash = user.and_then(|u| u.hash.as_deref()).unwrap_or(decoy());
        let ok = PasswordHash::new(hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        match user {
            Some(u) if ok && u.hash.is_some() => Some(u.role),
            _ => None,
        }
    }
}

/// An argon2id hash (PHC string) of `password` with a fresh salt and the argon2 crate's defaults
/// (OWASP's: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_its_password_only() {
        let h = hash_password("s3cret pass").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let users = Users::parse(&format!(
            "users:\n  - name: alice\n    password_hash: '{h}'\n    role: operator\n  - name: bob\n"
        ))
        .unwrap();
        assert_eq!(users.check("alice", "s3cret pass"), Some(Role::Operator));
        assert_eq!(users.check("alice", "wrong"), None);
        assert_eq!(users.check("nobody", "s3cret pass"), None);
        // bob has no hash: he can only come through a trusted proxy.
        assert_eq!(users.check("bob", ""), None);
        assert_eq!(users.get("bob").unwrap().role, Role::Viewer);
    }

    #[test]
    fn an_unknown_name_takes_as_long_as_a_wrong_password() {
        let h = hash_password("pw").unwrap();
        let users = Users::parse(&format!(
            "users:\n  - name: alice\n    password_hash: '{h}'\n"
        ))
        .unwrap();
        let time = |name: &str| {
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    assert_eq!(users.check(name, "wrong"), None);
                    t.elapsed()
                })
                .min()
                .unwrap()
        };
        let _ = time("nobody"); // the decoy hash is made on first use
        let (known, unknown) = (time("alice"), time("nobody"));
        // Without the decoy an unknown name would answer in microseconds, argon2 takes milliseconds.
        assert!(
            unknown * 4 > known,
            "unknown name {unknown:?} vs wrong password {known:?}"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let e = Users::parse("users:\n  - name: a\n    password_hash: plain\n")
            .err()
            .unwrap();
        assert!(
            e.contains("user a: password_hash is not a PHC string"),
            "{e}"
        );
        let e = Users::parse("users:\n  - name: a\n    role: admin\n")
            .err()
            .unwrap();
        assert!(e.contains("admin"), "{e}");
        let e = Users::parse("users:\n  - name: a\n  - name: a\n")
            .err()
            .unwrap();
        assert!(e.contains("listed twice"), "{e}");
    }
}
