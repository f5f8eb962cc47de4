//! The ports that are not repositories: clock, password hashing, tokens,
//! URL fetching and live events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use autodocs_domain::events::{Event, EventPublisher};
use autodocs_domain::plan_step::HttpUrl;
use autodocs_domain::ports::{
    AccessClaims, Clock, FetchError, Fetched, IssuedTokens, PasswordCheck, PasswordHasher,
    RefreshClaims, TokenError, TokenService, UploadSink, UrlFetcher,
};
use autodocs_domain::user::UserId;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::state::{hex, random_hex};

/// A [`Clock`] that stands still until it is set or advanced.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// A clock showing the current time of the system (then standing
    /// still), in whole microseconds like the production clock (the
    /// precision PostgreSQL stores).
    pub fn starting_now() -> Self {
        use chrono::SubsecRound;
        Self::new(Utc::now().trunc_subsecs(6))
    }

    /// Sets the time (it may go back).
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// Moves the time forward to `at` (never back).
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        if at > *now {
            *now = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A password "hasher" for tests and demos: `plain$<salt>$<sha256 of salt
/// and password>`.
///
/// **NOT FOR PRODUCTION.** A single unsalted-cost SHA-256 is brute-forced
/// in no time; production uses PBKDF2 (`pbkdf2_sha256`). It exists so
/// that tests run fast and need no secrets.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainPasswordHasher;

impl PlainPasswordHasher {
    fn digest(salt: &str, password: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(salt.as_bytes());
        hasher.update(b"$");
        hasher.update(password.as_bytes());
        hex(&hasher.finalize())
    }
}

impl PasswordHasher for PlainPasswordHasher {
    fn hash(&self, password: &str) -> String {
        let salt = random_hex(8);
        let digest = Self::digest(&salt, password);
        format!("plain${salt}${digest}")
    }

    fn verify(&self, password: &str, encoded: &str) -> PasswordCheck {
        let mut parts = encoded.splitn(3, '$');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("plain"), Some(salt), Some(digest)) => {
                let expected = Self::digest(salt, password);
                // Constant time is moot for a test hasher, but cheap.
                let same = expected.len() == digest.len()
                    && expected
                        .bytes()
                        .zip(digest.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0;
                if same {
                    PasswordCheck::Match
                } else {
                    PasswordCheck::Mismatch
                }
            }
            _ => PasswordCheck::Mismatch,
        }
    }

    fn burn(&self, password: &str) {
        let _ = Self::digest("burn", password);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
struct Issued {
    kind: TokenKind,
    user: UserId,
    jti: String,
    expires_at: DateTime<Utc>,
}

/// A [`TokenService`] issuing random opaque tokens and remembering them
/// (with their expiry) in a map. Expiry is judged with the given clock.
pub struct MemoryTokenService {
    clock: Arc<dyn Clock>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    issued: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for MemoryTokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenService")
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .finish_non_exhaustive()
    }
}

impl MemoryTokenService {
    /// Access tokens live 5 minutes and refresh tokens a day, as in production.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_lifetimes(clock, Duration::minutes(5), Duration::days(1))
    }

    /// Tokens with the given lifetimes.
    pub fn with_lifetimes(
        clock: Arc<dyn Clock>,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Self {
        Self {
            clock,
            access_lifetime,
            refresh_lifetime,
            issued: Mutex::new(HashMap::new()),
        }
    }

    fn decode(&self, token: &str, kind: TokenKind) -> Result<Issued, TokenError> {
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
            .ok_or(TokenError::Invalid)?;
        if issued.kind != kind {
            return Err(TokenError::WrongType);
        }
        if self.clock.now() >= issued.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(issued)
    }
}

impl TokenService for MemoryTokenService {
    fn issue(&self, user: UserId, now: DateTime<Utc>) -> IssuedTokens {
        let access = format!("access.{}", random_hex(16));
        let refresh = format!("refresh.{}", random_hex(16));
        let refresh_jti = random_hex(16);
        let refresh_expires_at = now + self.refresh_lifetime;
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        issued.insert(
            access.clone(),
            Issued {
                kind: TokenKind::Access,
                user,
                jti: random_hex(16),
                expires_at: now + self.access_lifetime,
            },
        );
        issued.insert(
            refresh.clone(),
            Issued {
                kind: TokenKind::Refresh,
                user,
                jti: refresh_jti.clone(),
                expires_at: refresh_expires_at,
            },
        );
        IssuedTokens {
            access,
            refresh,
            refresh_jti,
            refresh_expires_at,
        }
    }

    fn decode_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        let issued = self.decode(token, TokenKind::Refresh)?;
        Ok(RefreshClaims {
            user: issued.user,
            jti: issued.jti,
        })
    }

    fn decode_access(&self, token: &str) -> Result<UserId, TokenError> {
        Ok(self.decode(token, TokenKind::Access)?.user)
    }

    fn decode_access_claims(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let issued = self.decode(token, TokenKind::Access)?;
        Ok(AccessClaims {
            user: issued.user,
            expires_at: issued.expires_at,
        })
    }
}

/// A [`UrlFetcher`] serving bytes registered per URL; any other URL
/// answers HTTP 404 (a transient failure, as a real server's would be).
#[derive(Debug, Default)]
pub struct MemoryUrlFetcher {
    pages: Mutex<HashMap<String, (Vec<u8>, String)>>,
}

impl MemoryUrlFetcher {
    /// A fetcher that knows no URL yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `bytes` at `url` (as written in the step, e.g.
    /// `https://example.com/w2.pdf`), suggesting `filename`.
    pub fn register(&self, url: &str, bytes: impl Into<Vec<u8>>, filename: &str) {
        self.pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(url.to_owned(), (bytes.into(), filename.to_owned()));
    }
}

impl UrlFetcher for MemoryUrlFetcher {
    fn fetch(&self, url: &HttpUrl, sink: &mut dyn UploadSink) -> Result<Fetched, FetchError> {
        let page = self
            .pages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url.as_str())
            .cloned();
        let Some((bytes, filename)) = page else {
            return Err(FetchError::Status {
                status: 404,
                detail: format!("nothing registered at {url}"),
            });
        };
        for chunk in bytes.chunks(8 * 1024) {
            sink.write(chunk)?;
        }
        Ok(Fetched { filename })
    }
}

/// An [`EventPublisher`] that keeps every published event for inspection.
#[derive(Debug, Default)]
pub struct CollectingEvents {
    events: Mutex<Vec<Event>>,
}

impl CollectingEvents {
    /// A publisher that has published nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event published so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the events published so far out.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl EventPublisher for CollectingEvents {
    fn publish(&self, events: Vec<Event>) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_hashes_verify_only_their_password() {
        let hasher = PlainPasswordHasher;
        let hash = hasher.hash("secret");
        assert!(hash.starts_with("plain$"));
        assert_ne!(hash, hasher.hash("secret"), "salted");
        assert_eq!(hasher.verify("secret", &hash), PasswordCheck::Match);
        assert_eq!(hasher.verify("Secret", &hash), PasswordCheck::Mismatch);
        assert_eq!(
            hasher.verify("secret", "pbkdf2_sha256$1$x$y"),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn tokens_have_a_type_and_expire() {
        let clock = Arc::new(ManualClock::new(crate::epoch()));
        let tokens = MemoryTokenService::new(clock.clone());
        let issued = tokens.issue(UserId(7), clock.now());
        assert_eq!(tokens.decode_access(&issued.access), Ok(UserId(7)));
        let claims = tokens
            .decode_refresh(&issued.refresh)
            .expect("a refresh token");
        assert_eq!(
            (claims.user, claims.jti.as_str()),
            (UserId(7), issued.refresh_jti.as_str())
        );
        assert_eq!(
            tokens.decode_access(&issued.refresh),
            Err(TokenError::WrongType)
        );
        assert_eq!(tokens.decode_refresh("forged"), Err(TokenError::Invalid));
        clock.advance(Duration::minutes(5));
        assert_eq!(
            tokens.decode_access(&issued.access),
            Err(TokenError::Expired)
        );
        assert!(tokens.decode_refresh(&issued.refresh).is_ok());
    }
}
