//! The identity of a database, which ties a media root to it.
//!
//! Every database gets a random identity when it is first migrated. The
//! first `migrate` writes it into a marker in the media root; from then on
//! the storage sweep only runs when the marker names the database it is
//! connected to, so a server pointed at an empty or wrong database (a typo
//! in `DATABASE_URL` plus auto-migrate) cannot take the files of another
//! database for garbage.

use std::fmt;

/// The random identity of one database (created by its migrations, never
/// changed): 1–64 characters of `A–Z a–z 0–9 -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatabaseIdentity(String);

/// Why a text is not a database identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a database identity: {0:?}")]
pub struct InvalidIdentity(pub String);

impl DatabaseIdentity {
    /// The most characters an identity may have.
    pub const MAX_CHARS: usize = 64;

    /// Checks an identity's characters and length (surrounding whitespace,
    /// such as a marker file's final newline, is ignored).
    pub fn parse(raw: &str) -> Result<Self, InvalidIdentity> {
        let trimmed = raw.trim();
        let valid = !trimmed.is_empty()
            && trimmed.len() <= Self::MAX_CHARS
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(InvalidIdentity(raw.chars().take(80).collect()))
        }
    }

    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse() {
        let id = DatabaseIdentity::parse(" 0f1e2d3c4b5a69788796a5b4c3d2e1f0\n").expect("valid");
        assert_eq!(id.as_str(), "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
        assert!(DatabaseIdentity::parse("3f2504e0-4f89-41d3-9a0c-0305e82c3301").is_ok());
        for bad in ["", "  ", "a/b", "../x", "é", &"a".repeat(65)] {
            assert!(DatabaseIdentity::parse(bad).is_err(), "{bad:?}");
        }
    }
}
