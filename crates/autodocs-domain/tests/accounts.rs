//! Accounts on the in-memory adapter: registration, login, password
//! changes and staff edits of users, with the activities they record and
//! the sessions they revoke.

mod support;

use autodocs_domain::admin_session::{AdminSession, SessionDigest};
use autodocs_domain::error::AccountError;
use autodocs_domain::events::EventPayload;
use autodocs_domain::usecases::auth::{
    RegisterInput, Registration, USERNAME_IS_AN_EMAIL, USERNAME_TAKEN,
};
use autodocs_domain::usecases::users::WRONG_OLD_PASSWORD;
use autodocs_domain::user::{Email, PersonName, UserChanges, UserId, UserQuery};
use autodocs_memory::{MemoryServices, PlainPasswordHasher};
use support::{PASSWORD, field_errors, kinds, register, staff};

const NEW_PASSWORD: &str = "amber-Lantern-2044";

fn registration(username: &str, email: &str) -> Registration {
    Registration::parse(&RegisterInput {
        username: username.into(),
        email: email.into(),
        password: PASSWORD.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    })
    .expect("a valid registration")
}

fn user_count(memory: &MemoryServices) -> u64 {
    let root = autodocs_domain::user::Principal {
        user_id: UserId(0),
        is_staff: true,
    };
    memory
        .services
        .accounts()
        .list_users(root, &UserQuery::default())
        .expect("listed")
        .count
}

fn revoked(memory: &MemoryServices) -> Vec<UserId> {
    memory
        .events
        .events()
        .into_iter()
        .filter_map(|event| match event.payload {
            EventPayload::SessionsRevoked(user) => {
                assert_eq!(event.user, user, "addressed to the revoked user");
                Some(user)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn registering_records_the_user_and_opens_a_session() {
    let memory = autodocs_memory::services();

    let session = memory
        .services
        .accounts()
        .register(registration("alice", "alice@example.com"))
        .expect("registered");

    let alice = session.user.id;
    assert_eq!(session.user.username, "alice");
    assert!(!session.user.is_staff && !session.user.is_superuser);
    let principal = memory
        .services
        .accounts()
        .authenticate(&session.tokens.access)
        .expect("a valid access token");
    assert_eq!(principal.user_id, alice);
    memory
        .services
        .accounts()
        .refresh(&session.tokens.refresh)
        .expect("a stored refresh token");
    assert_eq!(kinds(&memory, principal), vec!["user_registered"]);
}

#[test]
fn register_with_a_taken_username_creates_nothing() {
    let memory = autodocs_memory::services();
    register(&memory, "alice");

    let error = memory
        .services
        .accounts()
        .register(registration("ALICE", "other@example.com"))
        .expect_err("username taken");

    assert_eq!(field_errors(&error, "username"), vec![USERNAME_TAKEN]);
    assert!(field_errors(&error, "email").is_empty());
    assert_eq!(user_count(&memory), 1);
}

#[test]
fn register_with_a_username_that_is_another_users_email_creates_nothing() {
    let memory = autodocs_memory::services();
    register(&memory, "bob");

    let error = memory
        .services
        .accounts()
        .register(registration("Bob@Example.com", "mallory@example.com"))
        .expect_err("username is an email");

    assert_eq!(field_errors(&error, "username"), vec![USERNAME_IS_AN_EMAIL]);
    assert!(field_errors(&error, "email").is_empty());
    assert_eq!(user_count(&memory), 1);
}

#[test]
fn login_records_the_login_and_touches_last_login() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    assert_eq!(
        memory.services.accounts().me(anna).expect("me").last_login,
        None
    );
    memory.clock.advance(chrono::Duration::minutes(3));

    let session = memory
        .services
        .accounts()
        .login(" ANNA ", PASSWORD)
        .expect("logged in");

    assert_eq!(session.user.id, anna.user_id);
    assert_eq!(session.user.last_login, Some(memory.services.now()));
    assert_eq!(
        memory.services.accounts().me(anna).expect("me").last_login,
        Some(memory.services.now())
    );
    assert_eq!(
        kinds(&memory, anna),
        vec!["user_registered", "user_logged_in"]
    );
}

#[test]
fn login_with_a_wrong_password_or_as_an_inactive_user_fails_and_records_nothing() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let root = staff(&memory, "root");

    assert!(matches!(
        memory.services.accounts().login("anna", "not-the-password"),
        Err(AccountError::AuthenticationFailed)
    ));
    assert!(matches!(
        memory.services.accounts().login("ghost", PASSWORD),
        Err(AccountError::AuthenticationFailed)
    ));
    memory
        .services
        .accounts()
        .update_user(
            root,
            anna.user_id,
            UserChanges {
                is_active: Some(false),
                ..UserChanges::default()
            },
        )
        .expect("deactivated");
    assert!(matches!(
        memory.services.accounts().login("anna", PASSWORD),
        Err(AccountError::AuthenticationFailed)
    ));

    assert_eq!(
        memory.services.accounts().me(anna).expect("me").last_login,
        None
    );
    assert_eq!(kinds(&memory, anna), vec!["user_registered"]);
}

#[test]
fn refresh_rotates_the_token() {
    let memory = autodocs_memory::services();
    register(&memory, "anna");
    let session = memory
        .services
        .accounts()
        .login("anna", PASSWORD)
        .expect("logged in");

    let rotated = memory
        .services
        .accounts()
        .refresh(&session.tokens.refresh)
        .expect("rotated");

    assert_ne!(rotated.refresh, session.tokens.refresh);
    assert_ne!(rotated.refresh_jti, session.tokens.refresh_jti);
    memory
        .services
        .accounts()
        .refresh(&rotated.refresh)
        .expect("the new token rotates in turn");
}

#[test]
fn change_password_with_a_wrong_old_password_writes_nothing() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");

    let error = memory
        .services
        .accounts()
        .change_password(anna, "not-my-password", NEW_PASSWORD)
        .expect_err("wrong old password");

    assert_eq!(
        field_errors(&error, "old_password"),
        vec![WRONG_OLD_PASSWORD]
    );
    assert!(field_errors(&error, "new_password").is_empty());
    memory
        .services
        .accounts()
        .login("anna", PASSWORD)
        .expect("the old password still works");
    assert!(!kinds(&memory, anna).contains(&"password_changed".to_owned()));
    assert!(revoked(&memory).is_empty());
}

#[test]
fn change_password_sets_the_hash_revokes_tokens_and_records_it() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let session = memory
        .services
        .accounts()
        .login("anna", PASSWORD)
        .expect("logged in");

    memory
        .services
        .accounts()
        .change_password(anna, PASSWORD, NEW_PASSWORD)
        .expect("changed");

    assert!(matches!(
        memory.services.accounts().login("anna", PASSWORD),
        Err(AccountError::AuthenticationFailed)
    ));
    memory
        .services
        .accounts()
        .login("anna", NEW_PASSWORD)
        .expect("the new password works");
    assert!(
        memory
            .services
            .accounts()
            .refresh(&session.tokens.refresh)
            .is_err(),
        "every refresh token died"
    );
    assert!(kinds(&memory, anna).contains(&"password_changed".to_owned()));
    assert_eq!(revoked(&memory), vec![anna.user_id]);
}

#[test]
fn a_user_edits_their_own_account_but_not_their_flags() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let changes = UserChanges {
        first_name: Some(PersonName::parse("Anna").expect("a name")),
        email: Some(Email::parse("anna.b@example.com").expect("an email")),
        is_staff: Some(true),
        ..UserChanges::default()
    };

    let user = memory
        .services
        .accounts()
        .update_me(anna, changes)
        .expect("updated");

    assert_eq!(user.first_name, "Anna");
    assert_eq!(user.email, "anna.b@example.com");
    assert!(!user.is_staff, "the flags are staff-only");
    assert!(kinds(&memory, anna).contains(&"profile_updated".to_owned()));
    memory
        .services
        .accounts()
        .login("anna.b@example.com", PASSWORD)
        .expect("logs in with the new email");

    // Another user's email is taken.
    let error = memory
        .services
        .accounts()
        .update_me(
            bert,
            UserChanges {
                email: Some(Email::parse("Anna.B@example.com").expect("an email")),
                ..UserChanges::default()
            },
        )
        .expect_err("taken");
    assert!(!field_errors(&error, "email").is_empty());
    assert_eq!(
        memory.services.accounts().me(bert).expect("me").email,
        "bert@example.com"
    );
}

#[test]
fn staff_deactivating_or_deleting_a_user_revokes_their_sessions() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let root = staff(&memory, "root");
    let rename = UserChanges {
        first_name: Some(PersonName::parse("Ada").expect("a name")),
        is_active: Some(true),
        ..UserChanges::default()
    };
    memory
        .services
        .accounts()
        .update_user(root, anna.user_id, rename)
        .expect("updated");
    assert!(
        revoked(&memory).is_empty(),
        "no deactivation, no revocation"
    );

    let deactivate = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    let user = memory
        .services
        .accounts()
        .update_user(root, anna.user_id, deactivate)
        .expect("deactivated");
    assert!(!user.is_active);
    assert_eq!(revoked(&memory), vec![anna.user_id]);

    assert!(matches!(
        memory.services.accounts().delete_user(root, UserId(9999)),
        Err(AccountError::NotFound)
    ));
    assert_eq!(revoked(&memory), vec![anna.user_id], "nothing deleted");
    memory
        .services
        .accounts()
        .delete_user(root, anna.user_id)
        .expect("deleted");
    assert_eq!(revoked(&memory), vec![anna.user_id, anna.user_id]);
    assert!(matches!(
        memory.services.accounts().get_user(root, anna.user_id),
        Err(AccountError::NotFound)
    ));
}

#[test]
fn staff_only_use_cases_refuse_other_users() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let bert = register(&memory, "bert");
    let promote = UserChanges {
        is_staff: Some(true),
        ..UserChanges::default()
    };
    let accounts = memory.services.accounts();

    assert!(matches!(
        accounts.list_users(anna, &UserQuery::default()),
        Err(AccountError::PermissionDenied)
    ));
    assert!(matches!(
        accounts.get_user(anna, bert.user_id),
        Err(AccountError::PermissionDenied)
    ));
    assert!(matches!(
        accounts.update_user(anna, bert.user_id, promote),
        Err(AccountError::PermissionDenied)
    ));
    assert!(matches!(
        accounts.delete_user(anna, bert.user_id),
        Err(AccountError::PermissionDenied)
    ));
    assert!(!accounts.me(bert).expect("bert").is_staff);
}

// ---------------------------------------------------------------------------
// Admin sessions
// ---------------------------------------------------------------------------

fn digest(letter: char) -> SessionDigest {
    SessionDigest::parse(&letter.to_string().repeat(64)).expect("a digest")
}

/// Checks `username`'s password and opens an admin session under `key`.
fn open_admin_session(
    memory: &MemoryServices,
    username: &str,
    key: char,
) -> Result<AdminSession, AccountError> {
    let accounts = memory.services.accounts();
    let verified = accounts
        .login_candidate(username)?
        .check(&PlainPasswordHasher, PASSWORD)?;
    accounts.open_admin_session(verified, &digest(key), chrono::Duration::hours(2))
}

#[test]
fn staff_open_an_admin_session_that_signs_them_in_until_it_expires() {
    let memory = autodocs_memory::services();
    let root = staff(&memory, "root");
    let session = open_admin_session(&memory, "root", 'a').expect("staff may sign in");
    assert_eq!(session.user, root.user_id);
    let accounts = memory.services.accounts();
    let signed_in = accounts.admin_principal(&digest('a')).expect("signed in");
    assert_eq!(signed_in.principal, root);
    assert_eq!(signed_in.username, "root");
    assert!(kinds(&memory, root).contains(&"user_logged_in".to_owned()));
    memory.clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        accounts.admin_principal(&digest('a')),
        Err(AccountError::AuthenticationFailed)
    );
}

#[test]
fn a_user_who_is_not_staff_opens_no_admin_session_and_no_login_is_recorded() {
    let memory = autodocs_memory::services();
    let anna = register(&memory, "anna");
    let before = kinds(&memory, anna);
    assert_eq!(
        open_admin_session(&memory, "anna", 'a'),
        Err(AccountError::PermissionDenied)
    );
    assert_eq!(kinds(&memory, anna), before);
    assert_eq!(
        memory.services.accounts().admin_principal(&digest('a')),
        Err(AccountError::AuthenticationFailed)
    );
}

#[test]
fn logout_deactivation_and_loss_of_staff_status_end_admin_sessions() {
    let memory = autodocs_memory::services();
    let root = staff(&memory, "root");
    let ada = staff(&memory, "ada");
    let accounts = memory.services.accounts();
    open_admin_session(&memory, "root", 'c').expect("root signs in");
    open_admin_session(&memory, "ada", 'a').expect("ada signs in");
    open_admin_session(&memory, "ada", 'b').expect("ada signs in twice");

    accounts.close_admin_session(&digest('c')).expect("logout");
    assert!(accounts.admin_principal(&digest('c')).is_err());
    accounts
        .close_admin_session(&digest('c'))
        .expect("a second logout is harmless");

    let demote = UserChanges {
        is_staff: Some(false),
        ..UserChanges::default()
    };
    open_admin_session(&memory, "root", 'c').expect("root signs in again");
    accounts
        .update_user(root, ada.user_id, demote)
        .expect("root demotes ada");
    assert!(accounts.admin_principal(&digest('a')).is_err());
    assert!(accounts.admin_principal(&digest('b')).is_err());
    assert_eq!(
        accounts
            .admin_principal(&digest('c'))
            .map(|staff| staff.principal),
        Ok(root)
    );
}
