//! Staff sessions of the admin pages.
//!
//! A browser holds a random key in a cookie; the database keeps only the
//! key's SHA-256 ([`SessionDigest`]), so a copy of the database opens no
//! session. A session ends when it expires, when its staff member logs
//! out, or as soon as the account is deactivated or loses staff status
//! (checked on every request).

use chrono::{DateTime, Utc};

use crate::ids::UserId;
use crate::validation::InvalidValue;

/// The SHA-256 of a session key, as 64 lowercase hexadecimal digits: what
/// is stored and looked up (never the key itself).
///
/// ```
/// use autodocs_domain::admin_session::SessionDigest;
///
/// let digest = SessionDigest::parse(&"ab".repeat(32))?;
/// assert_eq!(digest.as_str().len(), 64);
/// assert!(SessionDigest::parse("not-a-digest").is_err());
/// # Ok::<(), autodocs_domain::validation::InvalidValue>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionDigest(String);

impl SessionDigest {
    /// Parses 64 lowercase hexadecimal digits.
    pub fn parse(hex: &str) -> Result<Self, InvalidValue> {
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if valid {
            Ok(Self(hex.to_owned()))
        } else {
            Err(InvalidValue::rule(
                "invalid_digest",
                "A session digest is 64 lowercase hexadecimal digits.",
            ))
        }
    }

    /// The digest as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A live admin session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// The staff member it signs in.
    pub user: UserId,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it ends, unless closed before.
    pub expires_at: DateTime<Utc>,
}

/// The staff member a live admin session signs in, as the admin pages
/// need them on every request: who acts, and the name to greet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInStaff {
    /// Who acts (always staff).
    pub principal: crate::user::Principal,
    /// Their username.
    pub username: String,
}
