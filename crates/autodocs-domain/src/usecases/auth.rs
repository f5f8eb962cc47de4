//! Registration, login, token rotation and logout.

use crate::activity::SystemActivity;
use crate::activity_log::NewActivity;
use crate::error::{AccountError, RepoError, TokenRefusal};
use crate::password_policy::{NewPassword, PasswordAttributes};
use crate::ports::{
    self, Credentials, IssuedTokens, PasswordCheck, PasswordHasher, Repositories, TokenError,
};
use crate::user::{Email, IdentityKey, NewUser, PersonName, Principal, User, UserId, Username};
use crate::validation::{InvalidValue, ValidationErrors};

/// The raw fields of a registration, as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    /// Desired username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Password in clear.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// A registration whose every field was parsed.
#[derive(Debug, Clone)]
pub struct Registration {
    username: Username,
    email: Email,
    password: NewPassword,
    first_name: PersonName,
    last_name: PersonName,
}

impl Registration {
    /// Parses every field, collecting all errors.
    pub fn parse(input: &RegisterInput) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let username = errors.check("username", Username::parse(&input.username));
        let email = errors.check("email", Email::parse(&input.email));
        let first_name = errors.check("first_name", PersonName::parse(&input.first_name));
        let last_name = errors.check("last_name", PersonName::parse(&input.last_name));
        let attributes = PasswordAttributes {
            username: &input.username,
            email: &input.email,
            first_name: &input.first_name,
            last_name: &input.last_name,
        };
        let password = match NewPassword::parse(&input.password, &attributes) {
            Ok(password) => Some(password),
            Err(messages) => {
                for message in messages {
                    errors.add("password", message);
                }
                None
            }
        };
        match (username, email, password, first_name, last_name) {
            (Some(username), Some(email), Some(password), Some(first_name), Some(last_name))
                if errors.is_empty() =>
            {
                Ok(Self {
                    username,
                    email,
                    password,
                    first_name,
                    last_name,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A registration whose password is hashed, ready to be stored by
/// [`AccountService::register_hashed`].
#[derive(Debug, Clone)]
pub struct HashedRegistration(NewUser);

impl Registration {
    /// Hashes the password: PBKDF2, slow on purpose, so callers run this
    /// where it holds up no other request, never inside a transaction.
    pub fn hash(self, hasher: &dyn PasswordHasher) -> HashedRegistration {
        let password_hash = hasher.hash(self.password.as_str());
        HashedRegistration(NewUser {
            username: self.username,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            password_hash,
            is_staff: false,
            is_superuser: false,
        })
    }
}

/// What a login is checked against: the account its username or email
/// names, if any (read by [`AccountService::login_candidate`]).
#[derive(Debug, Clone)]
pub struct LoginCandidate {
    credentials: Option<Credentials>,
}

impl LoginCandidate {
    /// The account the login names, if it exists: failed logins are
    /// counted per account, however the account was named.
    pub fn account(&self) -> Option<UserId> {
        self.credentials
            .as_ref()
            .map(|credentials| credentials.user.id)
    }

    /// Checks the password (PBKDF2: run it where it holds up no other
    /// request). Unknown users cost one hash like wrong passwords, so
    /// timing does not tell which usernames exist; a hash with outdated
    /// parameters is renewed.
    pub fn check(
        self,
        hasher: &dyn PasswordHasher,
        password: &str,
    ) -> Result<VerifiedLogin, AccountError> {
        let Some(credentials) = self.credentials else {
            hasher.burn(password);
            return Err(AccountError::AuthenticationFailed);
        };
        let check = hasher.verify(password, &credentials.password_hash);
        if check == PasswordCheck::Mismatch || !credentials.user.is_active {
            return Err(AccountError::AuthenticationFailed);
        }
        let upgrade = (check == PasswordCheck::MatchNeedsRehash).then(|| HashUpgrade {
            hash: hasher.hash(password),
            checked: credentials.password_hash,
        });
        Ok(VerifiedLogin {
            user: credentials.user.id,
            upgrade,
        })
    }
}

/// A login whose password matched, for [`AccountService::complete_login`]; only
/// [`LoginCandidate::check`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedLogin {
    user: UserId,
    upgrade: Option<HashUpgrade>,
}

impl VerifiedLogin {
    /// The account whose password was checked.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// Records the login in the caller's transaction: an upgraded hash
    /// (only if the password was not changed meanwhile), `last_login` and
    /// the `user_logged_in` activity.
    pub(crate) fn record(
        &self,
        repos: &mut dyn Repositories,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), RepoError> {
        if let Some(upgrade) = &self.upgrade {
            // A stale upgrade (the password changed since it was checked)
            // is dropped: the newer hash stays.
            repos
                .users()
                .replace_password_hash(self.user, &upgrade.checked, &upgrade.hash)?;
        }
        repos.users().touch_last_login(self.user, now)?;
        repos.activities().record(
            &NewActivity::system(SystemActivity::UserLoggedIn, self.user),
            now,
        )?;
        Ok(())
    }
}

/// A renewed hash, and the stored one the password was checked against.
#[derive(Debug, Clone)]
struct HashUpgrade {
    hash: String,
    checked: String,
}

/// A user together with a fresh token pair.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: User,
    /// Its tokens.
    pub tokens: IssuedTokens,
}

/// The message for a username already taken.
pub const USERNAME_TAKEN: &str = "A user with that username already exists.";
/// The message given for an email already in use.
pub const EMAIL_TAKEN: &str = "A user with that email already exists.";
/// The message given for a username equal to another user's email.
pub const USERNAME_IS_AN_EMAIL: &str = "A user with that email address already exists.";

super::service!(
    /// Accounts: registration, login, tokens, one's own account, staff user management.
    ///
    /// ```
    /// # let memory = autodocs_memory::services();
    /// # let services = &memory.services;
    /// # let session = services.accounts().register(
    /// #     autodocs_domain::usecases::auth::Registration::parse(
    /// #         &autodocs_domain::usecases::auth::RegisterInput {
    /// #             username: "anna".into(),
    /// #             email: "anna@example.com".into(),
    /// #             password: "violet-Harbor-1987".into(),
    /// #             first_name: "Anna".into(),
    /// #             last_name: "Berg".into(),
    /// #         },
    /// #     )?,
    /// # )?;
    /// # let anna = autodocs_domain::user::Principal { user_id: session.user.id, is_staff: false };
    /// let tokens = services.accounts().login("anna", "violet-Harbor-1987")?.tokens;
    /// let principal = services.accounts().authenticate(&tokens.access)?;
    /// assert_eq!(principal.user_id, session.user.id);
    /// // A refresh token is rotated once; its reuse is refused.
    /// let rotated = services.accounts().refresh(&tokens.refresh)?;
    /// assert!(services.accounts().refresh(&tokens.refresh).is_err());
    /// assert!(services.accounts().login("anna", "wrong password").is_err());
    /// # drop(rotated);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    AccountService
);

impl AccountService {
    /// Creates an account, records `user_registered`, and logs it in,
    /// hashing the password on the calling thread.
    pub fn register(&self, registration: Registration) -> Result<Session, AccountError> {
        self.register_hashed(registration.hash(&*self.context.hasher))
    }

    /// Creates an account whose password was hashed beforehand (see
    /// [`Registration::hash`]), records `user_registered`, and logs it in.
    pub fn register_hashed(
        &self,
        registration: HashedRegistration,
    ) -> Result<Session, AccountError> {
        let new_user = registration.0;
        let now = self.context.clock.now();
        self.context.write(|repos| {
            ensure_unique(repos, &new_user, None)?;
            let user = repos
                .users()
                .create(&new_user, now)
                .map_err(unique_violation_as_field)?;
            repos.activities().record(
                &NewActivity::system(SystemActivity::UserRegistered, user.id),
                now,
            )?;
            let tokens = self.issue_tokens(repos, user.id)?;
            Ok(Session { user, tokens })
        })
    }

    /// Creates a staff superuser, as `createsuperuser` does; the password
    /// still has to pass the policy.
    pub fn create_superuser(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<User, AccountError> {
        let input = RegisterInput {
            username: username.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            ..RegisterInput::default()
        };
        let registration = Registration::parse(&input)?;
        let new_user = NewUser {
            username: registration.username,
            email: registration.email,
            first_name: registration.first_name,
            last_name: registration.last_name,
            password_hash: self.context.hasher.hash(registration.password.as_str()),
            is_staff: true,
            is_superuser: true,
        };
        let now = self.context.clock.now();
        self.context.write(|repos| {
            ensure_unique(repos, &new_user, None)?;
            let user = repos
                .users()
                .create(&new_user, now)
                .map_err(unique_violation_as_field)?;
            repos.activities().record(
                &NewActivity::system(SystemActivity::UserRegistered, user.id),
                now,
            )?;
            Ok(user)
        })
    }

    /// Checks credentials (username or email) and issues a token pair,
    /// hashing on the calling thread: [`AccountService::login_candidate`], then
    /// [`LoginCandidate::check`], then [`AccountService::complete_login`].
    pub fn login(&self, login: &str, password: &str) -> Result<Session, AccountError> {
        let verified = self
            .login_candidate(login)?
            .check(&*self.context.hasher, password)?;
        self.complete_login(verified)
    }

    /// The first step of a login: the account the login names (username or
    /// email) and its stored hash, for [`LoginCandidate::check`].
    pub fn login_candidate(&self, login: &str) -> Result<LoginCandidate, AccountError> {
        let credentials = ports::read(&*self.context.uow, |repos| {
            repos.users().find_credentials(&IdentityKey::of(login))
        })?;
        Ok(LoginCandidate { credentials })
    }

    /// The last step of a login: stores an upgraded hash (only if the
    /// password was not changed meanwhile), records the login and issues a
    /// token pair.
    pub fn complete_login(&self, verified: VerifiedLogin) -> Result<Session, AccountError> {
        let now = self.context.clock.now();
        let user_id = verified.user;
        self.context.write(|repos| {
            verified.record(repos, now)?;
            let tokens = self.issue_tokens(repos, user_id)?;
            let user = repos
                .users()
                .find(user_id)?
                .filter(|user| user.is_active)
                .ok_or(AccountError::AuthenticationFailed)?;
            Ok(Session { user, tokens })
        })
    }

    /// Rotates a refresh token: the old one dies, a new pair is issued.
    ///
    /// Presenting a token that was already rotated or revoked is taken as
    /// theft: every refresh token of its user is revoked.
    pub fn refresh(&self, refresh_token: &str) -> Result<IssuedTokens, AccountError> {
        let claims = self
            .context
            .tokens
            .decode_refresh(refresh_token)
            .map_err(token_error)?;
        let now = self.context.clock.now();
        enum Outcome {
            Rotated(IssuedTokens),
            Reused,
            Refused,
        }
        let outcome = self.context.write(|repos| -> Result<_, RepoError> {
            let Some(record) = repos.refresh_tokens().find(&claims.jti)? else {
                return Ok(Outcome::Refused);
            };
            if record.user != claims.user {
                return Ok(Outcome::Refused);
            }
            let active = repos
                .users()
                .find(record.user)?
                .is_some_and(|user| user.is_active);
            if !active {
                return Ok(Outcome::Refused);
            }
            if record.revoked_at.is_some() && record.replaced_by.is_none() {
                // Logged out: dead, but not a sign of theft.
                return Ok(Outcome::Refused);
            }
            let tokens = self.context.tokens.issue(record.user, now);
            // Conditional revoke: of two racing rotations only one wins; the
            // loser is treated as a reuse.
            if record.revoked_at.is_some()
                || !repos
                    .refresh_tokens()
                    .revoke(&claims.jti, Some(&tokens.refresh_jti), now)?
            {
                repos.refresh_tokens().revoke_all(record.user, now)?;
                return Ok(Outcome::Reused);
            }
            repos.refresh_tokens().insert(
                record.user,
                &tokens.refresh_jti,
                now,
                tokens.refresh_expires_at,
            )?;
            Ok(Outcome::Rotated(tokens))
        })?;
        match outcome {
            Outcome::Rotated(tokens) => Ok(tokens),
            Outcome::Reused => Err(AccountError::TokenInvalid(TokenRefusal::Revoked)),
            Outcome::Refused => Err(AccountError::TokenInvalid(TokenRefusal::InvalidOrExpired)),
        }
    }

    /// Checks any token (access or refresh) as SimpleJWT's verify view does;
    /// a refresh token must also still be live.
    pub fn verify_token(&self, token: &str) -> Result<(), AccountError> {
        match self.context.tokens.decode_access(token) {
            Ok(_) => Ok(()),
            Err(TokenError::WrongType) => {
                let claims = self
                    .context
                    .tokens
                    .decode_refresh(token)
                    .map_err(token_error)?;
                let record = ports::read(&*self.context.uow, |repos| {
                    repos.refresh_tokens().find(&claims.jti)
                })?;
                match record {
                    Some(record) if record.revoked_at.is_none() => Ok(()),
                    Some(_) => Err(AccountError::TokenInvalid(TokenRefusal::Revoked)),
                    None => Err(AccountError::TokenInvalid(TokenRefusal::InvalidOrExpired)),
                }
            }
            Err(error) => Err(token_error(error)),
        }
    }

    /// Kills a refresh token.
    pub fn logout(&self, refresh_token: &str) -> Result<(), AccountError> {
        let claims = self
            .context
            .tokens
            .decode_refresh(refresh_token)
            .map_err(token_error)?;
        let now = self.context.clock.now();
        let revoked = self
            .context
            .write(|repos| repos.refresh_tokens().revoke(&claims.jti, None, now))?;
        if revoked {
            Ok(())
        } else {
            Err(AccountError::TokenInvalid(TokenRefusal::Revoked))
        }
    }

    /// Resolves an access token to the principal behind it; the user must
    /// still exist and be active.
    pub fn authenticate(&self, access_token: &str) -> Result<Principal, AccountError> {
        let user_id = self.caller(access_token)?;
        self.principal(user_id)
    }

    /// Like [`AccountService::authenticate`], also returning when the token
    /// expires: for connections that outlive a request (WebSocket), which
    /// must end when their credentials do.
    pub fn authenticate_until(
        &self,
        access_token: &str,
    ) -> Result<(Principal, chrono::DateTime<chrono::Utc>), AccountError> {
        let claims = self
            .context
            .tokens
            .decode_access_claims(access_token)
            .map_err(token_error)?;
        Ok((self.principal(claims.user)?, claims.expires_at))
    }

    /// The user an access token names, from its signature and claims
    /// alone (cheap: no storage access). [`AccountService::principal`] must
    /// still confirm the user before anything is done for them.
    pub fn caller(&self, access_token: &str) -> Result<UserId, AccountError> {
        self.context
            .tokens
            .decode_access(access_token)
            .map_err(token_error)
    }

    /// Confirms the user behind a token still exists and is active: one
    /// indexed read, made on the same blocking call as the use case.
    pub fn principal(&self, user_id: UserId) -> Result<Principal, AccountError> {
        let access = ports::read(&*self.context.uow, |repos| repos.users().access(user_id))?;
        match access {
            Some(access) if access.is_active => Ok(Principal {
                user_id,
                is_staff: access.is_staff,
            }),
            Some(_) => Err(AccountError::TokenInvalid(TokenRefusal::UserInactive)),
            None => Err(AccountError::TokenInvalid(TokenRefusal::UserNotFound)),
        }
    }

    pub(crate) fn issue_tokens(
        &self,
        repos: &mut dyn Repositories,
        user: UserId,
    ) -> Result<IssuedTokens, AccountError> {
        let now = self.context.clock.now();
        let tokens = self.context.tokens.issue(user, now);
        repos
            .refresh_tokens()
            .insert(user, &tokens.refresh_jti, now, tokens.refresh_expires_at)?;
        Ok(tokens)
    }
}

/// Refuses a new user whose username or email is taken (compared by their
/// [`IdentityKey`]s), or whose username is shaped like another user's email.
fn ensure_unique(
    repos: &mut dyn Repositories,
    user: &NewUser,
    except: Option<UserId>,
) -> Result<(), AccountError> {
    let mut errors = ValidationErrors::new();
    let username = IdentityKey::of(user.username.as_str());
    if repos.users().username_exists(&username)? {
        errors.add("username", USERNAME_TAKEN);
    } else if username.looks_like_email() && repos.users().email_exists(&username, except)? {
        // Logins with `@` match emails first, so such an account could never
        // sign in by its username, and would look like the email's owner.
        errors.add("username", USERNAME_IS_AN_EMAIL);
    }
    if repos
        .users()
        .email_exists(&IdentityKey::of(user.email.as_str()), except)?
    {
        errors.add("email", EMAIL_TAKEN);
    }
    Ok(errors.into_result()?)
}

/// A unique index that fired after the explicit checks (a racing request)
/// becomes the same field error the checks give.
pub(crate) fn unique_violation_as_field(error: RepoError) -> AccountError {
    match &error {
        RepoError::UniqueViolation(constraint) if constraint.contains("username") => {
            AccountError::field("username", USERNAME_TAKEN)
        }
        RepoError::UniqueViolation(constraint) if constraint.contains("email") => {
            AccountError::field("email", EMAIL_TAKEN)
        }
        _ => AccountError::Repository(error),
    }
}

fn token_error(error: TokenError) -> AccountError {
    AccountError::TokenInvalid(match error {
        TokenError::Expired => TokenRefusal::Expired,
        TokenError::WrongType => TokenRefusal::WrongType,
        TokenError::Invalid => TokenRefusal::Invalid,
    })
}

/// Parses a login's two fields, as SimpleJWT's serializer requires them.
pub fn require_credentials(
    login: Option<&str>,
    password: Option<&str>,
) -> Result<(String, String), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut required = |field: &str, value: Option<&str>| match value {
        Some(value) if !value.trim().is_empty() => Some(value.to_owned()),
        Some(_) => {
            errors.add(field, InvalidValue::blank());
            None
        }
        None => {
            errors.add(field, InvalidValue::required());
            None
        }
    };
    let login = required("username", login);
    let password = required("password", password);
    match (login, password) {
        (Some(login), Some(password)) => Ok((login, password)),
        _ => Err(errors),
    }
}
