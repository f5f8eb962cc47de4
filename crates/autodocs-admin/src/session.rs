//! The staff session cookie and the CSRF tokens.
//!
//! The browser holds a random session key in `sessionid` (`HttpOnly`,
//! `SameSite=Lax`, `Secure` behind https, scoped to `/admin/`); the
//! database keeps only its SHA-256. Each state-changing form carries a
//! CSRF token derived from the key (an HMAC of it), which a page of another
//! site can neither read nor compute. The login form, which has no session
//! yet, uses Django's double-submit cookie `csrftoken` instead.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use autodocs_domain::AccountError;
use autodocs_domain::admin_session::SessionDigest;
use autodocs_domain::user::Principal;
use autodocs_http::AppState;
use hmac::{Hmac, KeyInit, Mac};
use rand::distr::{Alphanumeric, SampleString as _};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AdminError;

/// The session cookie, named as Django names it.
pub const SESSION_COOKIE: &str = "sessionid";
/// The login form's double-submit cookie, named as Django names it.
pub const CSRF_COOKIE: &str = "csrftoken";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrfmiddlewaretoken";
/// Where the cookies are sent: the admin pages only.
const COOKIE_PATH: &str = "/admin/";
/// How long a session lives (Django's admin keeps two weeks; staff
/// sessions here end sooner).
pub const SESSION_LIFETIME_HOURS: i64 = 12;

/// 43 alphanumeric characters: about 256 bits.
const KEY_CHARS: usize = 43;

/// A session key as the browser holds it.
#[derive(Clone)]
pub struct SessionKey(String);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(random_token(KEY_CHARS))
    }

    /// The key a request's cookie holds, if it looks like one.
    fn from_request(request: &HttpRequest) -> Option<Self> {
        let cookie = request.cookie(SESSION_COOKIE)?;
        let value = cookie.value();
        (value.len() == KEY_CHARS && value.bytes().all(|byte| byte.is_ascii_alphanumeric()))
            .then(|| Self(value.to_owned()))
    }

    /// What the database keeps: the key's SHA-256.
    pub fn digest(&self) -> SessionDigest {
        let hex = to_hex(&Sha256::digest(self.0.as_bytes()));
        match SessionDigest::parse(&hex) {
            Ok(digest) => digest,
            Err(_) => unreachable!("a SHA-256 in lowercase hex is a session digest"),
        }
    }

    /// The CSRF token of this session's forms.
    pub fn csrf_token(&self) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(b"autodocs admin csrf");
        to_hex(&mac.finalize().into_bytes())
    }

    /// The cookie that hands the key to the browser.
    pub fn cookie(&self, secure: bool) -> Cookie<'static> {
        Cookie::build(SESSION_COOKIE, self.0.clone())
            .path(COOKIE_PATH)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(CookieDuration::hours(SESSION_LIFETIME_HOURS))
            .finish()
    }
}

/// The cookie that makes the browser forget its session.
pub fn expired_session_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, "")
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .finish();
    cookie.make_removal();
    cookie
}

/// The login form's token: the request's `csrftoken` cookie, or a new one
/// (then also returned as the cookie to set).
pub fn login_csrf(request: &HttpRequest, secure: bool) -> (String, Option<Cookie<'static>>) {
    if let Some(token) = request
        .cookie(CSRF_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| token.len() == 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return (token, None);
    }
    let token = random_token(32);
    let cookie = Cookie::build(CSRF_COOKIE, token.clone())
        .path(COOKIE_PATH)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(CookieDuration::days(365))
        .finish();
    (token, Some(cookie))
}

/// Whether a login form's token matches the request's `csrftoken` cookie.
pub fn login_csrf_matches(request: &HttpRequest, submitted: Option<&str>) -> bool {
    match (request.cookie(CSRF_COOKIE), submitted) {
        (Some(cookie), Some(submitted)) => tokens_match(cookie.value(), submitted),
        _ => false,
    }
}

/// Compares two tokens in constant time.
pub fn tokens_match(expected: &str, submitted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// Whether the cookies must be `Secure`: the public URL is https.
pub fn secure_cookies(request: &HttpRequest, state: &AppState) -> bool {
    state.client.base_url(request).starts_with("https://")
}

fn random_token(chars: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), chars)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A signed-in staff member: the extractor of every admin page but the
/// login. Without a live session (none, expired, logged out, or its account
/// deactivated or no longer staff) the browser is sent to the login page,
/// which brings it back here afterwards.
#[derive(Debug, Clone)]
pub struct Staff {
    /// Who acts.
    pub principal: Principal,
    /// Their username, for the page header.
    pub username: String,
    /// Their session's key (for its CSRF token and logout).
    pub key: SessionKey,
}

impl Staff {
    /// The CSRF token of this session's forms.
    pub fn csrf_token(&self) -> String {
        self.key.csrf_token()
    }

    /// Refuses a form whose CSRF token is not this session's (403).
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), AdminError> {
        match submitted {
            Some(token) if tokens_match(&self.csrf_token(), token) => Ok(()),
            _ => Err(AdminError::CsrfFailed),
        }
    }
}

impl FromRequest for Staff {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let key = SessionKey::from_request(request);
        let next = request.uri().path_and_query().map(ToString::to_string);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| AdminError::Internal("application state missing".into()))?;
            let login_required = || AdminError::LoginRequired(next.clone());
            let key = key.ok_or_else(login_required)?;
            let digest = key.digest();
            let services = state.services.clone();
            let signed_in = state
                .lane
                .run(move || services.accounts().admin_principal(&digest))
                .await
                .map_err(AdminError::from)?;
            match signed_in {
                Ok(signed_in) => Ok(Staff {
                    principal: signed_in.principal,
                    username: signed_in.username,
                    key,
                }),
                Err(AccountError::AuthenticationFailed) => Err(login_required()),
                Err(error) => Err(AdminError::from(autodocs_http::error::ApiError::from(
                    error,
                ))),
            }
        })
    }
}
