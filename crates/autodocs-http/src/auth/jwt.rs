//! HS256 JWTs shaped like djangorestframework-simplejwt's.
//!
//! Both tokens carry exactly SimpleJWT's claims: `token_type` (`"access"` or
//! `"refresh"`), `exp` and `iat` (integer seconds since the epoch), `jti` (a
//! UUID v4 as 32 hex digits) and `user_id` (the user's integer id). Only HS256
//! is accepted; `alg: none` and every other algorithm are refused.

use std::fmt;

use autodocs_domain::ports::{AccessClaims, IssuedTokens, RefreshClaims, TokenError, TokenService};
use autodocs_domain::user::UserId;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// `token_type` of an access token.
const ACCESS: &str = "access";
/// `token_type` of a refresh token.
const REFRESH: &str = "refresh";

/// The signing secret was empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the JWT signing secret must not be empty")]
pub struct EmptySecret;

/// Issues and checks SimpleJWT-compatible HS256 access and refresh tokens.
pub struct JwtTokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl JwtTokenService {
    /// A service signing with `secret`, issuing access tokens that live
    /// `access_ttl` and refresh tokens that live `refresh_ttl`.
    ///
    /// # Panics
    ///
    /// If `secret` is empty (see [`Self::try_new`] for the fallible form).
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        match Self::try_new(secret, access_ttl, refresh_ttl) {
            Ok(service) => service,
            Err(error) => panic!("{error}"),
        }
    }

    /// Like [`Self::new`], refusing an empty secret instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] if `secret` is empty.
    pub fn try_new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, EmptySecret> {
        let encoding = EncodingKey::from_secret(secret).map_err(|_| EmptySecret)?;
        let decoding = DecodingKey::from_secret(secret).map_err(|_| EmptySecret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Self {
            encoding,
            decoding,
            validation,
            access_ttl,
            refresh_ttl,
        })
    }

    /// Signs one token of the given type.
    fn sign(&self, token_type: &str, user: UserId, now: DateTime<Utc>, ttl: Duration) -> Signed {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let expires_at = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let claims = Claims {
            token_type: token_type.to_owned(),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            jti,
            user_id: UserIdClaim::Number(user.0),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("signing plain claims with an HMAC key cannot fail");
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires_at);
        Signed {
            token,
            jti: claims.jti,
            expires_at,
        }
    }

    /// Checks signature, algorithm, claims, expiry and type.
    fn check(&self, token: &str, expected_type: &str) -> Result<(UserId, String), TokenError> {
        self.check_with_exp(token, expected_type)
            .map(|(user, jti, _)| (user, jti))
    }

    /// [`Self::check`], also giving the `exp` claim.
    fn check_with_exp(
        &self,
        token: &str,
        expected_type: &str,
    ) -> Result<(UserId, String, i64), TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        // PyJWT, under SimpleJWT, counts a token as expired from its `exp`
        // second on; jsonwebtoken only after it.
        if claims.exp <= Utc::now().timestamp() {
            return Err(TokenError::Expired);
        }
        if claims.token_type != expected_type {
            return Err(TokenError::WrongType);
        }
        Ok((claims.user_id.user()?, claims.jti, claims.exp))
    }
}

impl fmt::Debug for JwtTokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokenService")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenService for JwtTokenService {
    fn issue(&self, user: UserId, now: DateTime<Utc>) -> IssuedTokens {
        let access = self.sign(ACCESS, user, now, self.access_ttl);
        let refresh = self.sign(REFRESH, user, now, self.refresh_ttl);
        IssuedTokens {
            access: access.token,
            refresh: refresh.token,
            refresh_jti: refresh.jti,
            refresh_expires_at: refresh.expires_at,
        }
    }

    fn decode_refresh(&self, token: &str) -> Result<RefreshClaims, TokenError> {
        let (user, jti) = self.check(token, REFRESH)?;
        Ok(RefreshClaims { user, jti })
    }

    fn decode_access(&self, token: &str) -> Result<UserId, TokenError> {
        self.check(token, ACCESS).map(|(user, _)| user)
    }

    fn decode_access_claims(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let (user, _, exp) = self.check_with_exp(token, ACCESS)?;
        let expires_at = DateTime::from_timestamp(exp, 0).ok_or(TokenError::Invalid)?;
        Ok(AccessClaims { user, expires_at })
    }
}

/// A token just signed.
struct Signed {
    token: String,
    jti: String,
    expires_at: DateTime<Utc>,
}

/// SimpleJWT's claims, in its order.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    token_type: String,
    exp: i64,
    iat: i64,
    jti: String,
    user_id: UserIdClaim,
}

/// `user_id`: written as a number; read as a number or a string of digits,
/// since recent SimpleJWT versions write the id as a string.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum UserIdClaim {
    Number(i64),
    Text(String),
}

impl UserIdClaim {
    fn user(&self) -> Result<UserId, TokenError> {
        match self {
            Self::Number(id) => Ok(UserId(*id)),
            Self::Text(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().map(UserId).map_err(|_| TokenError::Invalid)
            }
            Self::Text(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";

    fn service() -> JwtTokenService {
        JwtTokenService::new(SECRET, Duration::minutes(5), Duration::days(1))
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The decoded payload of a token, unchecked.
    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).expect("token has a payload");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("payload is base64"))
            .expect("payload is JSON")
    }

    /// A token signed with `secret` under the given header and claims.
    fn hand_signed(header: &Value, claims: &Value, algorithm: Algorithm, secret: &[u8]) -> String {
        let mut header_obj = Header::new(algorithm);
        if let Some(typ) = header.get("typ").and_then(Value::as_str) {
            header_obj.typ = Some(typ.to_owned());
        }
        jsonwebtoken::encode(
            &header_obj,
            claims,
            &EncodingKey::from_secret(secret).expect("secret"),
        )
        .expect("signing works")
    }

    fn live_claims(token_type: &str) -> Value {
        let now = Utc::now().timestamp();
        json!({"token_type": token_type, "exp": now + 300, "iat": now, "jti": "0123456789abcdef0123456789abcdef", "user_id": 7})
    }

    #[test]
    fn access_round_trip() {
        let tokens = service().issue(UserId(42), Utc::now());
        assert_eq!(service().decode_access(&tokens.access), Ok(UserId(42)));
    }

    #[test]
    fn access_claims_tell_the_expiry() {
        let now = Utc::now();
        let tokens = service().issue(UserId(42), now);
        let claims = service()
            .decode_access_claims(&tokens.access)
            .expect("access token is valid");
        assert_eq!(claims.user, UserId(42));
        assert_eq!(
            claims.expires_at.timestamp(),
            (now + Duration::minutes(5)).timestamp()
        );
        assert_eq!(
            service().decode_access_claims(&tokens.refresh),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn refresh_round_trip() {
        let tokens = service().issue(UserId(42), Utc::now());
        let claims = service()
            .decode_refresh(&tokens.refresh)
            .expect("refresh token is valid");
        assert_eq!(
            claims,
            RefreshClaims {
                user: UserId(42),
                jti: tokens.refresh_jti.clone()
            }
        );
    }

    #[test]
    fn claims_are_simplejwts() {
        let now = DateTime::from_timestamp(1_900_000_000, 500_000_000).expect("valid time");
        let tokens = service().issue(UserId(3), now);

        let access = payload(&tokens.access);
        let keys: Vec<&str> = access
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "{access}");
        assert_eq!(access["token_type"], "access");
        assert_eq!(access["iat"], 1_900_000_000);
        assert_eq!(access["exp"], 1_900_000_300);
        assert_eq!(access["user_id"], 3);
        let jti = access["jti"].as_str().expect("jti is a string");
        assert_eq!(jti.len(), 32);
        assert!(
            jti.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{jti}"
        );

        let refresh = payload(&tokens.refresh);
        assert_eq!(refresh["token_type"], "refresh");
        assert_eq!(refresh["iat"], 1_900_000_000);
        assert_eq!(refresh["exp"], 1_900_086_400);
        assert_eq!(refresh["jti"], tokens.refresh_jti.as_str());
        assert_ne!(refresh["jti"], access["jti"]);
        assert_eq!(tokens.refresh_expires_at.timestamp(), 1_900_086_400);

        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(tokens.access.split('.').next().expect("header"))
                .expect("base64"),
        )
        .expect("JSON");
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let tokens = service().issue(UserId(1), Utc::now());
        assert_eq!(
            service().decode_access(&tokens.refresh),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn an_access_token_is_not_a_refresh_token() {
        let tokens = service().issue(UserId(1), Utc::now());
        assert_eq!(
            service().decode_refresh(&tokens.access),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let tokens = service().issue(UserId(1), Utc::now());
        let mut parts: Vec<String> = tokens.access.split('.').map(str::to_owned).collect();
        let mut claims = payload(&tokens.access);
        claims["user_id"] = json!(2);
        parts[1] = b64(claims.to_string().as_bytes());
        assert_eq!(
            service().decode_access(&parts.join(".")),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_tampered_signature_is_invalid() {
        let tokens = service().issue(UserId(1), Utc::now());
        let (message, signature) = tokens.access.rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        bytes[0] ^= 1;
        let forged = format!("{message}.{}", b64(&bytes));
        assert_eq!(service().decode_access(&forged), Err(TokenError::Invalid));
    }

    #[test]
    fn another_secret_is_invalid() {
        let other =
            JwtTokenService::new(b"another-secret", Duration::minutes(5), Duration::days(1));
        let tokens = other.issue(UserId(1), Utc::now());
        assert_eq!(
            service().decode_access(&tokens.access),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            service().decode_refresh(&tokens.refresh),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_expired_token_is_expired() {
        let tokens = service().issue(UserId(1), Utc::now() - Duration::days(1));
        assert_eq!(
            service().decode_access(&tokens.access),
            Err(TokenError::Expired)
        );
        // The refresh token lived exactly one day: it expires now or just did.
        assert_eq!(
            service().decode_refresh(&tokens.refresh),
            Err(TokenError::Expired)
        );
        let older = service().issue(UserId(1), Utc::now() - Duration::days(2));
        assert_eq!(
            service().decode_refresh(&older.refresh),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn expiry_has_no_leeway() {
        let tokens = service().issue(
            UserId(1),
            Utc::now() - Duration::minutes(5) - Duration::seconds(1),
        );
        assert_eq!(
            service().decode_access(&tokens.access),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        for alg in ["none", "None", "NONE"] {
            let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
            let claims = b64(live_claims(ACCESS).to_string().as_bytes());
            for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
                assert_eq!(
                    service().decode_access(&token),
                    Err(TokenError::Invalid),
                    "{token}"
                );
            }
        }
    }

    #[test]
    fn other_algorithms_are_refused() {
        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = hand_signed(&json!({}), &live_claims(ACCESS), algorithm, SECRET);
            assert_eq!(
                service().decode_access(&token),
                Err(TokenError::Invalid),
                "{algorithm:?}"
            );
        }
        // The right algorithm still passes, so the refusals above are about it.
        let token = hand_signed(&json!({}), &live_claims(ACCESS), Algorithm::HS256, SECRET);
        assert_eq!(service().decode_access(&token), Ok(UserId(7)));
    }

    #[test]
    fn missing_claims_are_invalid() {
        for missing in ["token_type", "exp", "iat", "jti", "user_id"] {
            let mut claims = live_claims(ACCESS);
            claims.as_object_mut().expect("object").remove(missing);
            let token = hand_signed(&json!({}), &claims, Algorithm::HS256, SECRET);
            assert_eq!(
                service().decode_access(&token),
                Err(TokenError::Invalid),
                "without {missing}"
            );
        }
    }

    #[test]
    fn a_string_user_id_is_read() {
        let mut claims = live_claims(REFRESH);
        claims["user_id"] = json!("12");
        let token = hand_signed(&json!({}), &claims, Algorithm::HS256, SECRET);
        let read = service().decode_refresh(&token).map(|claims| claims.user);
        assert_eq!(read, Ok(UserId(12)));
        claims["user_id"] = json!("12abc");
        let token = hand_signed(&json!({}), &claims, Algorithm::HS256, SECRET);
        assert_eq!(service().decode_refresh(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn garbage_is_invalid() {
        for token in [
            "",
            ".",
            "..",
            "a.b.c",
            "not a token",
            "eyJhbGciOiJIUzI1NiJ9..",
            "\u{0}",
        ] {
            assert_eq!(
                service().decode_access(token),
                Err(TokenError::Invalid),
                "{token:?}"
            );
        }
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert_eq!(
            JwtTokenService::try_new(b"", Duration::minutes(5), Duration::days(1)).err(),
            Some(EmptySecret)
        );
    }
}
