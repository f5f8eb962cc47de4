//! Signed download links: a short-lived URL that serves one document's
//! bytes without an `Authorization` header, so a browser can follow it from
//! `<a href>` or `<img src>`.
//!
//! A link is the download route with one opaque query parameter,
//! `/api/documents/{id}/download/?link=<token>`. The token is 48 bytes,
//! base64url without padding (64 characters):
//!
//! ```text
//! user id (i64, big-endian) | expiry (unix seconds, i64, big-endian) | HMAC-SHA256 (32 bytes)
//! ```
//!
//! The MAC covers `"autodocs download-link v1" 0x00 | document id | user id
//! | expiry` (each an i64, big-endian), so a token names the document it
//! was made for without carrying it. It is keyed with a subkey derived from
//! the server's secret key (`HMAC(secret, "autodocs download-link key")`),
//! so no link can pass for a JWT, nor a JWT signature for a link, and every
//! process sharing the secret (and every restart) accepts the same links.
//! Nothing is stored: a link dies when it expires, or earlier when its user
//! is deactivated or deleted, loses access to the document, or the document
//! is deleted (the serving side checks all of those on every request).

use autodocs_domain::DocumentId;
use autodocs_domain::user::UserId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The query parameter that carries a link's token.
pub const LINK_PARAMETER: &str = "link";

/// Separates the link MAC's input from every other use of the key.
const MESSAGE_DOMAIN: &[u8] = b"autodocs download-link v1\0";

/// Derives the links' key from the server's secret.
const KEY_LABEL: &[u8] = b"autodocs download-link key";

/// Bytes of a decoded token.
const TOKEN_BYTES: usize = 8 + 8 + 32;

/// Characters of an encoded token (48 bytes in base64url, no padding).
const TOKEN_CHARS: usize = 64;

/// The shortest lifetime a link may be configured with.
pub const MIN_LIFETIME_SECONDS: u64 = 1;

/// The longest lifetime a link may be configured with: a link is a bearer
/// credential that lands in browser history and server logs elsewhere, so
/// "short-lived" is held to a day at most.
pub const MAX_LIFETIME_SECONDS: u64 = 86_400;

type HmacSha256 = Hmac<Sha256>;

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Malformed, tampered with, made for another document, or signed with
    /// another key: nothing says which, on purpose.
    #[error("This download link is not valid.")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("This download link has expired.")]
    Expired,
}

impl LinkError {
    /// The machine-readable `code` of the error body.
    pub fn code(self) -> &'static str {
        match self {
            LinkError::Invalid => "link_invalid",
            LinkError::Expired => "link_expired",
        }
    }
}

/// A lifetime outside [`MIN_LIFETIME_SECONDS`]..=[`MAX_LIFETIME_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "uploads.link_seconds must be between {} and {} seconds (got {})",
    MIN_LIFETIME_SECONDS,
    MAX_LIFETIME_SECONDS,
    .0
)]
pub struct LifetimeOutOfRange(pub u64);

/// A link just made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLink {
    /// The value of the `link` query parameter.
    pub token: String,
    /// When the link stops working (whole seconds).
    pub expires_at: DateTime<Utc>,
}

/// Makes and checks download links.
pub struct LinkSigner {
    key: [u8; 32],
    lifetime_seconds: i64,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner")
            .field("lifetime_seconds", &self.lifetime_seconds)
            .finish_non_exhaustive()
    }
}

impl LinkSigner {
    /// A signer keyed from the server's `secret`, making links that live
    /// `lifetime_seconds`.
    ///
    /// # Errors
    ///
    /// [`LifetimeOutOfRange`] unless `lifetime_seconds` is within
    /// [`MIN_LIFETIME_SECONDS`]..=[`MAX_LIFETIME_SECONDS`].
    pub fn new(secret: &[u8], lifetime_seconds: u64) -> Result<Self, LifetimeOutOfRange> {
        check_lifetime(lifetime_seconds)?;
        let mut derive = mac_with(secret);
        derive.update(KEY_LABEL);
        Ok(Self {
            key: derive.finalize().into_bytes().into(),
            // In range, so it fits.
            lifetime_seconds: i64::try_from(lifetime_seconds)
                .map_err(|_| LifetimeOutOfRange(lifetime_seconds))?,
        })
    }

    /// How long a link lives.
    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime_seconds
    }

    /// A link to `document` for `user`, valid from `now` for the lifetime.
    pub fn issue(&self, document: DocumentId, user: UserId, now: DateTime<Utc>) -> SignedLink {
        let expires = now.timestamp().saturating_add(self.lifetime_seconds);
        SignedLink {
            token: self.sign(document, user, expires),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The token for `document`, `user`, expiring at `expires` (unix seconds).
    pub fn sign(&self, document: DocumentId, user: UserId, expires: i64) -> String {
        let mut token = [0u8; TOKEN_BYTES];
        token[..8].copy_from_slice(&user.0.to_be_bytes());
        token[8..16].copy_from_slice(&expires.to_be_bytes());
        let tag = self.tag(document, user.0, expires).finalize().into_bytes();
        token[16..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The user a `token` for `document` speaks for, if its MAC is genuine
    /// (compared in constant time) and it has not expired at `now`.
    ///
    /// # Errors
    ///
    /// [`LinkError::Invalid`] for anything not made by this key for this
    /// document; [`LinkError::Expired`] for a genuine link past its expiry.
    pub fn verify(
        &self,
        token: &str,
        document: DocumentId,
        now: DateTime<Utc>,
    ) -> Result<UserId, LinkError> {
        if token.len() != TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Invalid)?;
        let bytes: [u8; TOKEN_BYTES] = bytes.try_into().map_err(|_| LinkError::Invalid)?;
        let user = i64::from_be_bytes(word(&bytes, 0));
        let expires = i64::from_be_bytes(word(&bytes, 8));
        self.tag(document, user, expires)
            .verify_slice(&bytes[16..])
            .map_err(|_| LinkError::Invalid)?;
        // Judged only once genuine: a forger learns nothing from it.
        if now.timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        if user <= 0 {
            return Err(LinkError::Invalid);
        }
        Ok(UserId(user))
    }

    /// The MAC of a link, before finalising.
    fn tag(&self, document: DocumentId, user: i64, expires: i64) -> HmacSha256 {
        let mut mac = mac_with(&self.key);
        mac.update(MESSAGE_DOMAIN);
        mac.update(&document.0.to_be_bytes());
        mac.update(&user.to_be_bytes());
        mac.update(&expires.to_be_bytes());
        mac
    }
}

/// Checks a configured lifetime (also used by settings validation).
///
/// # Errors
///
/// [`LifetimeOutOfRange`] outside [`MIN_LIFETIME_SECONDS`]..=[`MAX_LIFETIME_SECONDS`].
pub fn check_lifetime(seconds: u64) -> Result<(), LifetimeOutOfRange> {
    if (MIN_LIFETIME_SECONDS..=MAX_LIFETIME_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(LifetimeOutOfRange(seconds))
    }
}

/// An HMAC-SHA256 keyed with `key` (HMAC takes a key of any length).
fn mac_with(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC pads or hashes any key to its block size; this cannot happen.
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// Eight bytes of `bytes` from `at`.
fn word(bytes: &[u8; TOKEN_BYTES], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &[u8]) -> LinkSigner {
        LinkSigner::new(secret, 300).expect("300 seconds is in range")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("a valid instant")
    }

    /// Replaces the character at `index` with another base64url character.
    fn flip(token: &str, index: usize) -> String {
        let mut chars: Vec<char> = token.chars().collect();
        chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    }

    #[test]
    fn a_link_verifies_for_its_document_until_it_expires() {
        let links = signer(b"a secret key of the server");
        let now = at(1_800_000_000);
        let link = links.issue(DocumentId(7), UserId(42), now);
        assert_eq!(link.token.len(), TOKEN_CHARS);
        assert_eq!(link.expires_at, at(1_800_000_300));
        assert_eq!(
            links.verify(&link.token, DocumentId(7), now),
            Ok(UserId(42))
        );
        assert_eq!(
            links.verify(&link.token, DocumentId(7), at(1_800_000_299)),
            Ok(UserId(42))
        );
        assert_eq!(
            links.verify(&link.token, DocumentId(7), at(1_800_000_300)),
            Err(LinkError::Expired)
        );
        // Another process with the same secret agrees.
        assert_eq!(
            signer(b"a secret key of the server").verify(&link.token, DocumentId(7), now),
            Ok(UserId(42))
        );
    }

    #[test]
    fn anything_else_is_invalid() {
        let links = signer(b"a secret key of the server");
        let now = at(1_800_000_000);
        let token = links.issue(DocumentId(7), UserId(42), now).token;
        // Another document, another key.
        assert_eq!(
            links.verify(&token, DocumentId(8), now),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            signer(b"another server's key").verify(&token, DocumentId(7), now),
            Err(LinkError::Invalid)
        );
        // One character changed in the user, the expiry and the MAC.
        for index in [3, 14, 40, 63] {
            assert_eq!(
                links.verify(&flip(&token, index), DocumentId(7), now),
                Err(LinkError::Invalid),
                "{index}"
            );
        }
        // Not base64url, too short, too long, padded, empty.
        for bad in [
            String::new(),
            token[..63].to_owned(),
            format!("{token}A"),
            format!("{}=", &token[..63]),
            token.replace(|c: char| c.is_ascii_alphanumeric(), "+"),
        ] {
            assert_eq!(
                links.verify(&bad, DocumentId(7), now),
                Err(LinkError::Invalid),
                "{bad}"
            );
        }
        // An expired forgery is invalid, not expired.
        let forged = signer(b"another server's key")
            .issue(DocumentId(7), UserId(42), at(0))
            .token;
        assert_eq!(
            links.verify(&forged, DocumentId(7), now),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn the_format_is_the_documented_one() {
        let secret = b"a secret key of the server";
        let links = signer(secret);
        let token = links.sign(DocumentId(7), UserId(42), 1_800_000_300);
        let bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
        assert_eq!(bytes[..8], 42i64.to_be_bytes());
        assert_eq!(bytes[8..16], 1_800_000_300i64.to_be_bytes());
        let mut derive = HmacSha256::new_from_slice(secret).expect("any key");
        derive.update(b"autodocs download-link key");
        let key = derive.finalize().into_bytes();
        let mut mac = HmacSha256::new_from_slice(&key).expect("any key");
        mac.update(b"autodocs download-link v1\0");
        mac.update(&7i64.to_be_bytes());
        mac.update(&42i64.to_be_bytes());
        mac.update(&1_800_000_300i64.to_be_bytes());
        assert_eq!(bytes[16..], mac.finalize().into_bytes()[..]);
    }

    #[test]
    fn lifetimes_are_bounded() {
        assert_eq!(
            LinkSigner::new(b"k", 0).map(|_| ()),
            Err(LifetimeOutOfRange(0))
        );
        assert_eq!(
            LinkSigner::new(b"k", MAX_LIFETIME_SECONDS + 1).map(|_| ()),
            Err(LifetimeOutOfRange(MAX_LIFETIME_SECONDS + 1))
        );
        assert!(LinkSigner::new(b"k", MIN_LIFETIME_SECONDS).is_ok());
        assert!(LinkSigner::new(b"k", MAX_LIFETIME_SECONDS).is_ok());
    }
}
