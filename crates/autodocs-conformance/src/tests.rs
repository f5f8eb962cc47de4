//! The behaviours every adapter of the ports must show, one function each.
//!
//! Every function gets a unit of work over a fresh, empty database. Where
//! the diesel adapter and the port documentation leave a choice, the
//! diesel adapter (what production runs) is the reference.

use autodocs_domain::RepoError;
use autodocs_domain::activity_log::ActivityQuery;
use autodocs_domain::admin_session::SessionDigest;
use autodocs_domain::document::{
    DocumentChanges, DocumentOrderField, DocumentQuery, DocumentSortKey, DocumentStatus,
    DocumentType, DocumentVerification, StorageKey,
};
use autodocs_domain::jobs::{JobKey, JobKind, JobQuery, JobStatus, NewJob};
use autodocs_domain::mission::{
    Description, MissionAction, MissionOrderField, MissionQuery, MissionSortKey, MissionStatus,
    MissionTransition, MissionType, Priority, Progress,
};
use autodocs_domain::paging::{PageRequest, PastEnd};
use autodocs_domain::plan_step::{StepChanges, StepQuery, StepStatus};
use autodocs_domain::ports::{UnitOfWork, recorded_transaction};
use autodocs_domain::user::{
    Email, IdentityKey, UserChanges, UserId, UserOrderField, UserQuery, UserSortKey,
};
use autodocs_domain::{Error, mission::Title};
use autodocs_domain::{JobId, MissionId, StepId};
use chrono::Duration;

use crate::support::*;

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// A created user reads back whole, active, with the default profile.
pub fn users_create_and_find_round_trip(uow: &dyn UnitOfWork) {
    let created = user(uow, "anna");
    assert_eq!(created.username, "anna");
    assert_eq!(created.email, "anna@example.com");
    assert!(created.is_active && !created.is_staff);
    assert_eq!(created.date_joined, t0());
    assert_eq!(created.last_login, None);
    let found = get(uow, |r| Ok(r.users().find(created.id)?)).expect("the user exists");
    assert_eq!(found, created);
    let access = get(uow, |r| Ok(r.users().access(created.id)?)).expect("access");
    assert!(access.is_active && !access.is_staff);
    assert_eq!(
        get(uow, |r| Ok(r.users().password_hash(created.id)?)),
        Some("hash-of-anna".to_owned())
    );
    assert_eq!(get(uow, |r| Ok(r.users().find(UserId(9_999))?)), None);
    tx(uow, |r| {
        Ok(r.users().touch_last_login(created.id, at(60))?)
    });
    let found = get(uow, |r| Ok(r.users().find(created.id)?)).expect("the user exists");
    assert_eq!(found.last_login, Some(at(60)));
}

/// Usernames are unique by their identity key: `Anna` is `anna`.
pub fn users_refuse_a_second_account_with_the_same_username_key(uow: &dyn UnitOfWork) {
    user(uow, "anna");
    let error = repo_error(uow, |r| {
        Ok(r.users()
            .create(&new_user("ANNA", "other@example.com"), t0())?)
    });
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
    let all = get(uow, |r| {
        Ok(r.users().list(&UserQuery::default())?.found()?)
    });
    assert_eq!(all.count, 1);
}

/// Emails are unique by their identity key too.
pub fn users_refuse_a_second_account_with_the_same_email_key(uow: &dyn UnitOfWork) {
    user(uow, "anna");
    let error = repo_error(uow, |r| {
        Ok(r.users()
            .create(&new_user("bob", "Anna@Example.com"), t0())?)
    });
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
}

/// A login matching one user's email and another's username signs in the
/// email's owner.
pub fn users_find_credentials_prefers_the_email_owner(uow: &dyn UnitOfWork) {
    let squatter = tx(uow, |r| {
        Ok(r.users()
            .create(&new_user("carol@example.com", "x@example.com"), t0())?)
    });
    let carol = tx(uow, |r| {
        Ok(r.users()
            .create(&new_user("carol", "carol@example.com"), t0())?)
    });
    let found = get(uow, |r| {
        Ok(r.users()
            .find_credentials(&IdentityKey::of("Carol@Example.com"))?)
    })
    .expect("a match");
    assert_eq!(found.user.id, carol.id);
    assert_eq!(found.password_hash, "hash-of-carol");
    let by_username = get(uow, |r| {
        Ok(r.users().find_credentials(&IdentityKey::of("CAROL"))?)
    })
    .expect("a match");
    assert_eq!(by_username.user.id, carol.id);
    let by_email = get(uow, |r| {
        Ok(r.users()
            .find_credentials(&IdentityKey::of("x@example.com"))?)
    });
    assert_eq!(by_email.map(|c| c.user.id), Some(squatter.id));
    assert_eq!(
        get(uow, |r| Ok(r
            .users()
            .find_credentials(&IdentityKey::of("nobody"))?)),
        None
    );
}

/// The existence checks compare keys; the email check can leave a user out.
pub fn users_exists_checks_fold_case_and_except_one_user(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let key = IdentityKey::of;
    assert!(get(uow, |r| Ok(r.users().username_exists(&key("ANNA"))?)));
    assert!(!get(uow, |r| Ok(r.users().username_exists(&key("bob"))?)));
    assert!(get(uow, |r| Ok(r
        .users()
        .email_exists(&key("ANNA@example.com"), None)?)));
    assert!(!get(uow, |r| Ok(r
        .users()
        .email_exists(&key("anna@example.com"), Some(anna.id))?)));
    assert!(get(uow, |r| Ok(r
        .users()
        .email_exists(&key("anna@example.com"), Some(UserId(9_999)))?)));
}

/// A password hash is replaced only while it is the one expected.
pub fn users_replace_password_hash_is_conditional(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    assert!(tx(uow, |r| Ok(r.users().replace_password_hash(
        anna.id,
        "hash-of-anna",
        "new"
    )?)));
    assert!(!tx(uow, |r| Ok(r.users().replace_password_hash(
        anna.id,
        "hash-of-anna",
        "newer"
    )?)));
    assert_eq!(
        get(uow, |r| Ok(r.users().password_hash(anna.id)?)),
        Some("new".to_owned())
    );
    tx(uow, |r| {
        Ok(r.users().set_password_hash(anna.id, "forced")?)
    });
    assert_eq!(
        get(uow, |r| Ok(r.users().password_hash(anna.id)?)),
        Some("forced".to_owned())
    );
}

/// An account change touches only the fields given; a taken email is refused.
pub fn users_update_account_is_partial_and_refuses_a_taken_email(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    user(uow, "bob");
    let changes = UserChanges {
        is_staff: Some(true),
        ..UserChanges::default()
    };
    tx(uow, |r| Ok(r.users().update_account(anna.id, &changes)?));
    let found = get(uow, |r| Ok(r.users().find(anna.id)?)).expect("anna");
    assert!(found.is_staff && found.is_active);
    assert_eq!(found.email, "anna@example.com");
    assert_eq!(found.first_name, "Ada");
    let taken = UserChanges {
        email: Some(Email::parse("BOB@example.com").expect("email")),
        ..UserChanges::default()
    };
    let error = repo_error(uow, |r| Ok(r.users().update_account(anna.id, &taken)?));
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
    let fresh = UserChanges {
        email: Some(Email::parse("ada@example.org").expect("email")),
        ..UserChanges::default()
    };
    tx(uow, |r| Ok(r.users().update_account(anna.id, &fresh)?));
    assert!(get(uow, |r| Ok(r
        .users()
        .email_exists(&IdentityKey::of("ADA@example.org"), None)?)));
    assert!(!get(uow, |r| Ok(r
        .users()
        .email_exists(&IdentityKey::of("anna@example.com"), None)?)));
}

/// The staff list searches the keys, filters by flags, orders and pages.
pub fn users_list_searches_filters_and_pages(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let annette = user(uow, "annette");
    let staff = UserChanges {
        is_staff: Some(true),
        ..UserChanges::default()
    };
    tx(uow, |r| Ok(r.users().update_account(bob.id, &staff)?));
    let list = |query: UserQuery| get(uow, move |r| Ok(r.users().list(&query)?.found()?));
    let found = list(UserQuery {
        search: Some("ANN".into()),
        ..UserQuery::default()
    });
    assert_eq!(ids(&found.items, |u| u.id.0), vec![anna.id.0, annette.id.0]);
    let found = list(UserQuery {
        is_staff: Some(true),
        ..UserQuery::default()
    });
    assert_eq!(ids(&found.items, |u| u.id.0), vec![bob.id.0]);
    let found = list(UserQuery {
        ordering: vec![UserOrderField {
            field: UserSortKey::Username,
            descending: true,
        }],
        ..UserQuery::default()
    });
    assert_eq!(
        ids(&found.items, |u| u.id.0),
        vec![bob.id.0, annette.id.0, anna.id.0]
    );
    let second = list(UserQuery {
        page: PageRequest::new(2, 2),
        ..UserQuery::default()
    });
    assert_eq!((second.count, second.page), (3, 2));
    assert_eq!(ids(&second.items, |u| u.id.0), vec![annette.id.0]);
    let past = get(uow, |r| {
        Ok(r.users().list(&UserQuery {
            page: PageRequest::new(3, 2),
            ..UserQuery::default()
        })?)
    });
    assert_eq!(past.found().map(drop), Err(PastEnd { count: 3 }));
}

/// A saved profile reads back whole, preferences included.
pub fn users_profile_is_saved_whole(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    assert_eq!(anna.profile, autodocs_domain::user::UserProfile::default());
    let mut profile = anna.profile.clone();
    profile.phone = "+33 1 23 45 67 89".into();
    profile.organization = "Analytical Engines".into();
    profile.bio = "Notes on the engine.".into();
    profile.timezone = "Europe/Paris".into();
    profile.preferences.insert(
        "theme".into(),
        serde_json::json!({"dark": true, "size": [1, 2]}),
    );
    tx(uow, |r| {
        Ok(r.users().save_profile(anna.id, &profile, at(5))?)
    });
    let found = get(uow, |r| Ok(r.users().find(anna.id)?)).expect("anna");
    assert_eq!(found.profile, profile);
    let listed = get(uow, |r| {
        Ok(r.users().list(&UserQuery::default())?.found()?)
    });
    assert_eq!(listed.items[0].profile, profile);
}

/// Sorted by last login, users who never logged in come last both ways.
pub fn users_list_puts_never_logged_in_last(uow: &dyn UnitOfWork) {
    let never = user(uow, "never");
    let early = user(uow, "early");
    let late = user(uow, "late");
    tx(uow, |r| {
        r.users().touch_last_login(early.id, at(10))?;
        Ok(r.users().touch_last_login(late.id, at(20))?)
    });
    let order = |descending| {
        let query = UserQuery {
            ordering: vec![UserOrderField {
                field: UserSortKey::LastLogin,
                descending,
            }],
            ..UserQuery::default()
        };
        let page = get(uow, move |r| Ok(r.users().list(&query)?.found()?));
        ids(&page.items, |u| u.id.0)
    };
    assert_eq!(order(false), vec![early.id.0, late.id.0, never.id.0]);
    assert_eq!(order(true), vec![late.id.0, early.id.0, never.id.0]);
}

/// Deleting a user deletes their missions, steps, documents, tokens and
/// activities; other users' rows stay.
pub fn users_delete_cascades_to_everything_they_own(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let mission = mission(uow, anna.id, "Taxes");
    let first = step(uow, mission.id, None, 0);
    step(uow, mission.id, Some(&first), 0);
    let document = document_at(
        uow,
        new_document(anna.id, Some(mission.id), "w2", "key-anna"),
        t0(),
    );
    tx(uow, |r| {
        r.refresh_tokens()
            .insert(anna.id, "jti-anna", t0(), at(3_600))?;
        r.refresh_tokens()
            .insert(bob.id, "jti-bob", t0(), at(3_600))?;
        Ok(r.jobs().enqueue(
            &NewJob::now(
                JobKind::AdvanceMission {
                    mission: mission.id,
                },
                t0(),
            ),
            t0(),
        )?)
    });
    activity_at(uow, note(Some(anna.id), "note", "anna's"), t0());
    let kept = activity_at(uow, note(Some(bob.id), "note", "bob's"), t0());
    assert!(tx(uow, |r| Ok(r.users().delete(anna.id)?)));
    assert!(!tx(uow, |r| Ok(r.users().delete(anna.id)?)));
    get(uow, |r| {
        assert_eq!(r.users().find(anna.id)?, None);
        assert!(r.users().find(bob.id)?.is_some());
        assert_eq!(r.missions().find(mission.id, None)?, None);
        assert!(r.steps().list(mission.id)?.is_empty());
        assert_eq!(r.documents().find(document.id, None)?, None);
        assert_eq!(r.refresh_tokens().find("jti-anna")?, None);
        assert!(r.refresh_tokens().find("jti-bob")?.is_some());
        assert_eq!(r.jobs().count(JobStatus::Queued)?, 0);
        let left = r.activities().list(&ActivityQuery::default())?.found()?;
        assert_eq!(ids(&left.items, |a| a.id), vec![kept.id]);
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------

/// A token is revoked once: the second revocation (a racing rotation) loses.
pub fn refresh_tokens_revoke_only_once(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    tx(uow, |r| {
        Ok(r.refresh_tokens().insert(anna.id, "one", t0(), at(3_600))?)
    });
    let error = repo_error(uow, |r| {
        Ok(r.refresh_tokens().insert(anna.id, "one", t0(), at(3_600))?)
    });
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
    assert!(tx(uow, |r| Ok(r.refresh_tokens().revoke(
        "one",
        Some("two"),
        at(10)
    )?)));
    assert!(!tx(uow, |r| Ok(r.refresh_tokens().revoke(
        "one",
        Some("three"),
        at(20)
    )?)));
    assert!(!tx(uow, |r| Ok(r.refresh_tokens().revoke(
        "missing",
        None,
        at(20)
    )?)));
    let record = get(uow, |r| Ok(r.refresh_tokens().find("one")?)).expect("the token");
    assert_eq!(record.user, anna.id);
    assert_eq!(record.expires_at, at(3_600));
    assert_eq!(record.revoked_at, Some(at(10)));
    assert_eq!(record.replaced_by.as_deref(), Some("two"));
}

/// `revoke_all` revokes a user's live tokens only; purging deletes the
/// expired ones.
pub fn refresh_tokens_revoke_all_and_purge_expired(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    tx(uow, |r| {
        let tokens = r.refresh_tokens();
        tokens.insert(anna.id, "a1", t0(), at(100))?;
        tokens.insert(anna.id, "a2", t0(), at(1_000))?;
        tokens.insert(anna.id, "a3", t0(), at(1_000))?;
        tokens.insert(bob.id, "b1", t0(), at(50))?;
        tokens.revoke("a3", None, at(1))?;
        Ok(())
    });
    assert_eq!(
        tx(uow, |r| Ok(r
            .refresh_tokens()
            .revoke_all(anna.id, at(5))?)),
        2
    );
    let a3 = get(uow, |r| Ok(r.refresh_tokens().find("a3")?)).expect("a3");
    assert_eq!(a3.revoked_at, Some(at(1)));
    let b1 = get(uow, |r| Ok(r.refresh_tokens().find("b1")?)).expect("b1");
    assert_eq!(b1.revoked_at, None);
    // Expired strictly before `now`.
    assert_eq!(
        tx(uow, |r| Ok(r.refresh_tokens().purge_expired(at(100))?)),
        1
    );
    assert_eq!(get(uow, |r| Ok(r.refresh_tokens().find("b1")?)), None);
    assert!(get(uow, |r| Ok(r.refresh_tokens().find("a1")?)).is_some());
}

/// Usernames are read for many users at once; unknown ids are left out.
pub fn users_usernames_are_read_in_one_batch(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let names = get(uow, |r| {
        Ok(r.users().usernames(&[bob.id, anna.id, UserId(999_999)])?)
    });
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec![(anna.id, "anna".to_owned()), (bob.id, "bob".to_owned())]
    );
    assert!(get(uow, |r| Ok(r.users().usernames(&[])?)).is_empty());
}

/// A step names its mission; an unknown step names none.
pub fn steps_name_their_mission(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let other = mission(uow, anna.id, "Passport");
    let first = step(uow, taxes.id, None, 0);
    let second = step(uow, other.id, None, 0);
    assert_eq!(
        get(uow, |r| Ok(r.steps().mission_of(first.id)?)),
        Some(taxes.id)
    );
    assert_eq!(
        get(uow, |r| Ok(r.steps().mission_of(second.id)?)),
        Some(other.id)
    );
    assert_eq!(
        get(uow, |r| Ok(r.steps().mission_of(StepId(999_999))?)),
        None
    );
}

/// A search across missions: newest mission first, then depth, order
/// and id; filtered by owner, mission, status and title, and paged.
pub fn steps_search_across_missions(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let taxes = mission(uow, anna.id, "Taxes");
    let passport = mission(uow, bob.id, "Passport");
    let s1 = step(uow, taxes.id, None, 0);
    let c1 = step(uow, taxes.id, Some(&s1), 0);
    let s2 = step(uow, taxes.id, None, 1);
    let p1 = step(uow, passport.id, None, 0);
    tx(uow, |r| {
        Ok(r.steps().update(
            s2.id,
            &StepChanges {
                status: Some(StepStatus::Completed),
                ..StepChanges::default()
            },
            at(1),
        )?)
    });
    let search = |query: StepQuery| get(uow, move |r| Ok(r.steps().search(&query)?));
    let found = |query: StepQuery| {
        let page = search(query).found().expect("a page");
        (page.count, ids(&page.items, |step| step.id))
    };
    assert_eq!(
        found(StepQuery::default()),
        (4, vec![p1.id, s1.id, s2.id, c1.id])
    );
    let of_anna = StepQuery {
        owner: Some(anna.id),
        ..StepQuery::default()
    };
    assert_eq!(found(of_anna), (3, vec![s1.id, s2.id, c1.id]));
    let of_passport = StepQuery {
        mission: Some(passport.id),
        ..StepQuery::default()
    };
    assert_eq!(found(of_passport), (1, vec![p1.id]));
    let completed = StepQuery {
        statuses: vec![StepStatus::Completed],
        ..StepQuery::default()
    };
    assert_eq!(found(completed), (1, vec![s2.id]));
    // Case-insensitive, and `%` is a character, not a wildcard.
    let titled = StepQuery {
        search: Some("STEP 1".into()),
        ..StepQuery::default()
    };
    assert_eq!(found(titled), (1, vec![s2.id]));
    let wildcard = StepQuery {
        search: Some("%".into()),
        ..StepQuery::default()
    };
    assert_eq!(found(wildcard), (0, vec![]));
    let second_page = StepQuery {
        page: PageRequest::new(2, 3),
        ..StepQuery::default()
    };
    assert_eq!(found(second_page), (4, vec![c1.id]));
    let past_end = StepQuery {
        page: PageRequest::new(3, 3),
        ..StepQuery::default()
    };
    assert_eq!(search(past_end).found(), Err(PastEnd { count: 4 }));
}

/// The digest of an admin session key, made from one letter.
fn digest(letter: char) -> SessionDigest {
    SessionDigest::parse(&letter.to_string().repeat(64)).expect("a digest")
}

/// An admin session is found by its digest while live (its expiry
/// excluded), and a digest opens one session only.
pub fn admin_sessions_are_found_while_live_and_unique(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    tx(uow, |r| {
        Ok(r.admin_sessions()
            .open(&digest('a'), anna.id, t0(), at(600))?)
    });
    let live = get(uow, |r| {
        Ok(r.admin_sessions().find_live(&digest('a'), at(599))?)
    })
    .expect("live just before its expiry");
    assert_eq!(live.user, anna.id);
    assert_eq!(live.created_at, t0());
    assert_eq!(live.expires_at, at(600));
    assert_eq!(
        get(uow, |r| Ok(r
            .admin_sessions()
            .find_live(&digest('a'), at(600))?)),
        None
    );
    assert_eq!(
        get(uow, |r| Ok(r
            .admin_sessions()
            .find_live(&digest('b'), t0())?)),
        None
    );
    let error = repo_error(uow, |r| {
        Ok(r.admin_sessions()
            .open(&digest('a'), anna.id, t0(), at(600))?)
    });
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
    let error = repo_error(uow, |r| {
        Ok(r.admin_sessions()
            .open(&digest('c'), UserId(9_999), t0(), at(600))?)
    });
    assert!(
        matches!(error, RepoError::ConstraintViolation(_)),
        "a session of no user: {error:?}"
    );
}

/// Logout closes one session, deactivation all of a user's, and the
/// purge drops those expired strictly before `now`; a user's deletion
/// takes their sessions with it.
pub fn admin_sessions_close_purge_and_cascade(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    tx(uow, |r| {
        let sessions = r.admin_sessions();
        sessions.open(&digest('a'), anna.id, t0(), at(100))?;
        sessions.open(&digest('b'), anna.id, t0(), at(1_000))?;
        sessions.open(&digest('c'), bob.id, t0(), at(50))?;
        sessions.open(&digest('d'), bob.id, t0(), at(1_000))?;
        Ok(())
    });
    assert!(tx(uow, |r| Ok(r.admin_sessions().close(&digest('a'))?)));
    assert!(!tx(uow, |r| Ok(r.admin_sessions().close(&digest('a'))?)));
    assert_eq!(tx(uow, |r| Ok(r.admin_sessions().close_all(anna.id)?)), 1);
    assert_eq!(
        get(uow, |r| Ok(r
            .admin_sessions()
            .find_live(&digest('b'), t0())?)),
        None
    );
    assert_eq!(
        tx(uow, |r| Ok(r.admin_sessions().purge_expired(at(50))?)),
        0
    );
    assert_eq!(
        tx(uow, |r| Ok(r.admin_sessions().purge_expired(at(51))?)),
        1
    );
    assert!(
        get(uow, |r| Ok(r
            .admin_sessions()
            .find_live(&digest('d'), t0())?))
        .is_some()
    );
    assert!(tx(uow, |r| Ok(r.users().delete(bob.id)?)));
    assert_eq!(
        get(uow, |r| Ok(r
            .admin_sessions()
            .find_live(&digest('d'), t0())?)),
        None
    );
    // The cascade left nothing behind: the digest can be used again.
    tx(uow, |r| {
        Ok(r.admin_sessions()
            .open(&digest('d'), anna.id, t0(), at(1_000))?)
    });
}

// ---------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------

/// The log lists newest first; equal timestamps by id, newest first.
pub fn activities_list_newest_first(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let old = activity_at(uow, note(Some(anna.id), "note", "old"), at(0));
    let new = activity_at(uow, note(Some(anna.id), "note", "new"), at(20));
    let tie_a = activity_at(uow, note(Some(anna.id), "note", "tie a"), at(10));
    let tie_b = activity_at(uow, note(Some(anna.id), "note", "tie b"), at(10));
    let page = get(uow, |r| {
        Ok(r.activities().list(&ActivityQuery::default())?.found()?)
    });
    assert_eq!(page.count, 4);
    assert_eq!(
        ids(&page.items, |a| a.id),
        vec![new.id, tie_b.id, tie_a.id, old.id]
    );
    assert_eq!(page.items[0].timestamp, at(20));
    assert_eq!(page.items[0].message, "new");
    let second = get(uow, |r| {
        Ok(r.activities()
            .list(&ActivityQuery {
                page: PageRequest::new(2, 3),
                ..ActivityQuery::default()
            })?
            .found()?)
    });
    assert_eq!(ids(&second.items, |a| a.id), vec![old.id]);
}

/// The list filters by user, type, mission, time and message; `find`
/// sees only the owner's activities when an owner is given.
pub fn activities_list_filters_and_find_respects_owner(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let taxes = mission(uow, anna.id, "Taxes");
    let mut on_mission = note(Some(anna.id), "mission_started", "Started the Taxes");
    on_mission.mission = Some(taxes.id);
    on_mission
        .details
        .insert("step".into(), serde_json::json!(3));
    let started = activity_at(uow, on_mission, at(10));
    let login = activity_at(uow, note(Some(anna.id), "login", "Logged in"), at(20));
    let bobs = activity_at(uow, note(Some(bob.id), "login", "Logged in"), at(30));
    let list = |query: ActivityQuery| {
        let page = get(uow, move |r| Ok(r.activities().list(&query)?.found()?));
        ids(&page.items, |a| a.id)
    };
    assert_eq!(
        list(ActivityQuery {
            user: Some(anna.id),
            ..ActivityQuery::default()
        }),
        vec![login.id, started.id]
    );
    assert_eq!(
        list(ActivityQuery {
            kinds: vec!["login".into()],
            ..ActivityQuery::default()
        }),
        vec![bobs.id, login.id]
    );
    assert_eq!(
        list(ActivityQuery {
            mission: Some(taxes.id),
            ..ActivityQuery::default()
        }),
        vec![started.id]
    );
    assert_eq!(
        list(ActivityQuery {
            since: Some(at(10)),
            until: Some(at(20)),
            ..ActivityQuery::default()
        }),
        vec![login.id, started.id]
    );
    assert_eq!(
        list(ActivityQuery {
            search: Some("the TAXES".into()),
            ..ActivityQuery::default()
        }),
        vec![started.id]
    );
    let found = get(uow, |r| {
        Ok(r.activities().find(started.id, Some(anna.id))?)
    })
    .expect("found");
    assert_eq!(found.details.get("step"), Some(&serde_json::json!(3)));
    assert_eq!(found.mission, Some(taxes.id));
    assert_eq!(
        get(uow, |r| Ok(r
            .activities()
            .find(started.id, Some(bob.id))?)),
        None
    );
    assert!(get(uow, |r| Ok(r.activities().find(started.id, None)?)).is_some());
}

// ---------------------------------------------------------------------------
// Missions
// ---------------------------------------------------------------------------

/// A mission is found by its owner (or without an owner), not by others.
pub fn missions_find_respects_owner(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let created = mission(uow, anna.id, "Taxes");
    assert_eq!(created.status, MissionStatus::Pending);
    assert_eq!(created.progress, Progress::ZERO);
    assert_eq!((created.created_at, created.updated_at), (t0(), t0()));
    let found = get(uow, |r| Ok(r.missions().find(created.id, Some(anna.id))?));
    assert_eq!(found.as_ref(), Some(&created));
    assert_eq!(
        get(uow, |r| Ok(r.missions().find(created.id, Some(bob.id))?)),
        None
    );
    assert!(get(uow, |r| Ok(r.missions().find(created.id, None)?)).is_some());
    let locked = tx(uow, |r| Ok(r.missions().lock(created.id, Some(anna.id))?));
    assert_eq!(locked.as_ref(), Some(&created));
    assert_eq!(
        tx(uow, |r| Ok(r.missions().lock(created.id, Some(bob.id))?)),
        None
    );
}

/// The list filters by owner, status, type and priority.
pub fn missions_list_filters_by_status_kind_and_priority(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let pending = mission(uow, anna.id, "Pending one");
    let running = mission(uow, anna.id, "Running one");
    let mut urgent = new_mission("Urgent form");
    urgent.priority = Priority::Urgent;
    urgent.kind = MissionType::FormSubmission;
    let urgent = mission_at(uow, anna.id, urgent, t0());
    let bobs = mission(uow, bob.id, "Bob's");
    let start =
        MissionTransition::for_action(MissionAction::Start, MissionStatus::InProgress, at(5));
    assert!(tx(uow, |r| Ok(r.missions().transition(
        running.id,
        &[MissionStatus::Pending],
        &start,
        at(5)
    )?)));
    let list = |query: MissionQuery| {
        let page = get(uow, move |r| Ok(r.missions().list(&query)?.found()?));
        let mut found = ids(&page.items, |m| m.id);
        found.sort_unstable();
        found
    };
    assert_eq!(
        list(MissionQuery {
            statuses: vec![MissionStatus::Pending],
            ..MissionQuery::default()
        }),
        vec![pending.id, urgent.id, bobs.id]
    );
    assert_eq!(
        list(MissionQuery {
            owner: Some(anna.id),
            statuses: vec![MissionStatus::InProgress, MissionStatus::Paused],
            ..MissionQuery::default()
        }),
        vec![running.id]
    );
    assert_eq!(
        list(MissionQuery {
            kinds: vec![MissionType::FormSubmission],
            ..MissionQuery::default()
        }),
        vec![urgent.id]
    );
    assert_eq!(
        list(MissionQuery {
            priorities: vec![Priority::Urgent, Priority::High],
            ..MissionQuery::default()
        }),
        vec![urgent.id]
    );
    assert_eq!(
        list(MissionQuery {
            owner: Some(bob.id),
            ..MissionQuery::default()
        }),
        vec![bobs.id]
    );
}

/// The search matches the title or the description, in any case.
pub fn missions_list_searches_title_and_description(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let by_title = mission(uow, anna.id, "Retrieve TAX documents");
    let mut described = new_mission("Bank statements");
    described.description = Description::parse("For the tax office, 100% complete_ish").expect("d");
    let by_description = mission_at(uow, anna.id, described, t0());
    mission(uow, anna.id, "Unrelated");
    let search = |term: &str| {
        let query = MissionQuery {
            owner: Some(anna.id),
            search: Some(term.to_owned()),
            ..MissionQuery::default()
        };
        let page = get(uow, move |r| Ok(r.missions().list(&query)?.found()?));
        let mut found = ids(&page.items, |m| m.id);
        found.sort_unstable();
        found
    };
    assert_eq!(search("Tax"), vec![by_title.id, by_description.id]);
    assert_eq!(search("100%"), vec![by_description.id]);
    // Wildcards in the term are matched literally.
    assert_eq!(search("1_0"), Vec::<MissionId>::new());
    assert_eq!(search("e_i"), vec![by_description.id]);
    assert_eq!(search("nothing like it"), Vec::<MissionId>::new());
}

/// Pages are cut from the whole filtered list, whose size is the count;
/// a page past the end is reported as such.
pub fn missions_list_pages_and_counts(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let created: Vec<MissionId> = (0..5)
        .map(|i| mission_at(uow, anna.id, new_mission(&format!("Mission {i}")), at(i)).id)
        .collect();
    let page = |number: u32| {
        let query = MissionQuery {
            owner: Some(anna.id),
            page: PageRequest::new(number, 2),
            ..MissionQuery::default()
        };
        get(uow, move |r| Ok(r.missions().list(&query)?.found()?))
    };
    let first = page(1);
    assert_eq!((first.count, first.page, first.page_size), (5, 1, 2));
    // Newest first by default.
    assert_eq!(ids(&first.items, |m| m.id), vec![created[4], created[3]]);
    assert!(first.has_next());
    let third = page(3);
    assert_eq!(ids(&third.items, |m| m.id), vec![created[0]]);
    assert!(!third.has_next());
    let last = page(u32::MAX);
    assert_eq!(last.page, 3);
    let past = get(uow, |r| {
        Ok(r.missions().list(&MissionQuery {
            owner: Some(anna.id),
            page: PageRequest::new(4, 2),
            ..MissionQuery::default()
        })?)
    });
    assert_eq!(past.found().map(drop), Err(PastEnd { count: 5 }));
    let empty = get(uow, |r| {
        Ok(r.missions()
            .list(&MissionQuery {
                owner: Some(UserId(9_999)),
                ..MissionQuery::default()
            })?
            .found()?)
    });
    assert_eq!((empty.count, empty.page, empty.items.len()), (0, 1, 0));
}

/// Sorting by a key with ties breaks them by id, in the first key's direction.
pub fn missions_list_orders_with_ties_broken_by_id(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let with = |title: &str, priority: Priority| {
        let mut new = new_mission(title);
        new.priority = priority;
        mission_at(uow, anna.id, new, t0()).id
    };
    let low = with("a", Priority::Low);
    let high_1 = with("b", Priority::High);
    let urgent = with("c", Priority::Urgent);
    let high_2 = with("d", Priority::High);
    let order = |ordering: Vec<MissionOrderField>| {
        let query = MissionQuery {
            ordering,
            ..MissionQuery::default()
        };
        let page = get(uow, move |r| Ok(r.missions().list(&query)?.found()?));
        ids(&page.items, |m| m.id)
    };
    let by = |field, descending| MissionOrderField { field, descending };
    assert_eq!(
        order(vec![by(MissionSortKey::Priority, true)]),
        vec![urgent, high_2, high_1, low]
    );
    assert_eq!(
        order(vec![by(MissionSortKey::Priority, false)]),
        vec![low, high_1, high_2, urgent]
    );
    // Equal creation times: the default order falls back to the newest id.
    assert_eq!(order(Vec::new()), vec![high_2, urgent, high_1, low]);
    tx(uow, |r| {
        r.missions()
            .set_progress(
                high_1,
                Progress::parse(50).map_err(|_| Error::NotFound)?,
                at(9),
            )
            .map_err(Into::into)
    });
    assert_eq!(
        order(vec![
            by(MissionSortKey::Progress, true),
            by(MissionSortKey::Priority, true)
        ]),
        vec![high_1, urgent, high_2, low]
    );
    assert_eq!(
        order(vec![by(MissionSortKey::UpdatedAt, true)]),
        vec![high_1, high_2, urgent, low]
    );
}

/// Missions without a deadline come last ascending and first descending.
pub fn missions_list_puts_missing_deadlines_last_ascending(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let with = |deadline: Option<i64>| {
        let mut new = new_mission("Deadline");
        new.deadline = deadline.map(at);
        mission_at(uow, anna.id, new, t0()).id
    };
    let none = with(None);
    let late = with(Some(2_000));
    let early = with(Some(1_000));
    let order = |descending| {
        let query = MissionQuery {
            ordering: vec![MissionOrderField {
                field: MissionSortKey::Deadline,
                descending,
            }],
            ..MissionQuery::default()
        };
        let page = get(uow, move |r| Ok(r.missions().list(&query)?.found()?));
        ids(&page.items, |m| m.id)
    };
    assert_eq!(order(false), vec![early, late, none]);
    assert_eq!(order(true), vec![none, late, early]);
}

/// A transition applies only from one of the given statuses, once.
pub fn missions_transition_is_conditional(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let start =
        MissionTransition::for_action(MissionAction::Start, MissionStatus::InProgress, at(5));
    let from = MissionStatus::allowed_from(MissionAction::Start);
    assert!(tx(uow, |r| Ok(r.missions().transition(
        taxes.id,
        from,
        &start,
        at(5)
    )?)));
    // The second racer finds the status changed.
    assert!(!tx(uow, |r| Ok(r.missions().transition(
        taxes.id,
        &[MissionStatus::Pending],
        &start,
        at(6)
    )?)));
    assert!(!tx(uow, |r| Ok(r.missions().transition(
        taxes.id,
        &[],
        &start,
        at(6)
    )?)));
    assert!(!tx(uow, |r| Ok(r.missions().transition(
        MissionId(9_999),
        from,
        &start,
        at(6)
    )?)));
    let found = get(uow, |r| Ok(r.missions().find(taxes.id, None)?)).expect("taxes");
    assert_eq!(found.status, MissionStatus::InProgress);
    assert_eq!(found.started_at, Some(at(5)));
    assert_eq!(found.updated_at, at(5));
    let complete =
        MissionTransition::for_action(MissionAction::Complete, MissionStatus::Completed, at(9));
    let from = MissionStatus::allowed_from(MissionAction::Complete);
    assert!(tx(uow, |r| Ok(r.missions().transition(
        taxes.id,
        from,
        &complete,
        at(9)
    )?)));
    let found = get(uow, |r| Ok(r.missions().find(taxes.id, None)?)).expect("taxes");
    assert_eq!(found.status, MissionStatus::Completed);
    assert_eq!(found.started_at, Some(at(5)));
    assert_eq!(found.completed_at, Some(at(9)));
    assert_eq!(found.progress, Progress::COMPLETE);
}

/// A mission carries its step totals and document count, kept as steps
/// and documents come, change status and go.
pub fn missions_carry_step_and_document_counts(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let other = mission(uow, anna.id, "Other");
    let first = step(uow, taxes.id, None, 0);
    let child = step(uow, taxes.id, Some(&first), 0);
    step(uow, taxes.id, None, 1);
    let done = StepChanges::status(StepStatus::Pending, StepStatus::Completed, at(3));
    tx(uow, |r| Ok(r.steps().update(child.id, &done, at(3))?));
    let document = document_at(
        uow,
        new_document(anna.id, Some(taxes.id), "w2", "key-1"),
        t0(),
    );
    document_at(uow, new_document(anna.id, None, "loose", "key-2"), t0());
    let counts = |id: MissionId| {
        let m = get(uow, move |r| Ok(r.missions().find(id, None)?)).expect("the mission");
        (m.steps_total, m.steps_completed, m.document_count)
    };
    assert_eq!(counts(taxes.id), (3, 1, 1));
    assert_eq!(counts(other.id), (0, 0, 0));
    let listed = get(uow, |r| {
        Ok(r.missions()
            .list(&MissionQuery {
                owner: Some(anna.id),
                statuses: vec![MissionStatus::Pending],
                ..MissionQuery::default()
            })?
            .found()?)
    });
    let listed = listed
        .items
        .iter()
        .find(|m| m.id == taxes.id)
        .expect("listed");
    assert_eq!(
        (
            listed.steps_total,
            listed.steps_completed,
            listed.document_count
        ),
        (3, 1, 1)
    );
    let moved = DocumentChanges {
        mission: Some(Some(other.id)),
        ..DocumentChanges::default()
    };
    tx(uow, |r| {
        Ok(r.documents().update(document.id, &moved, at(4))?)
    });
    tx(uow, |r| Ok(r.steps().delete(first.id)?));
    assert_eq!(counts(taxes.id), (1, 0, 0));
    assert_eq!(counts(other.id), (0, 0, 1));
}

/// Open missions past their deadline are listed until flagged, and are
/// flagged once.
pub fn missions_overdue_are_flagged_once(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let with = |deadline: i64| {
        let mut new = new_mission("Due");
        new.deadline = Some(at(deadline));
        mission_at(uow, anna.id, new, t0()).id
    };
    let late = with(100);
    let later = with(500);
    let closed = with(50);
    let cancel =
        MissionTransition::for_action(MissionAction::Cancel, MissionStatus::Cancelled, at(1));
    assert!(tx(uow, |r| Ok(r.missions().transition(
        closed,
        &[MissionStatus::Pending],
        &cancel,
        at(1)
    )?)));
    let overdue = |now: i64| {
        let missions = tx(uow, move |r| Ok(r.missions().overdue(at(now))?));
        ids(&missions, |m| m.id)
    };
    assert_eq!(overdue(100), Vec::<MissionId>::new());
    assert_eq!(overdue(101), vec![late]);
    assert!(tx(uow, |r| Ok(r.missions().mark_overdue(late, at(101))?)));
    assert!(!tx(uow, |r| Ok(r
        .missions()
        .mark_overdue(late, at(102))?)));
    assert_eq!(overdue(1_000), vec![later]);
}

/// A mission in the protected status is not deleted; deleting another
/// takes its steps and jobs along and detaches its documents and activities.
pub fn missions_delete_spares_the_protected_status_and_cascades(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let running = mission(uow, anna.id, "Running");
    let start =
        MissionTransition::for_action(MissionAction::Start, MissionStatus::InProgress, at(1));
    assert!(tx(uow, |r| Ok(r.missions().transition(
        running.id,
        &[MissionStatus::Pending],
        &start,
        at(1)
    )?)));
    assert!(!tx(uow, |r| Ok(r
        .missions()
        .delete(running.id, MissionStatus::InProgress)?)));
    let first = step(uow, taxes.id, None, 0);
    let document = document_at(
        uow,
        new_document(anna.id, Some(taxes.id), "w2", "key-1"),
        t0(),
    );
    let mut about = note(Some(anna.id), "note", "about taxes");
    about.mission = Some(taxes.id);
    let activity = activity_at(uow, about, t0());
    tx(uow, |r| {
        Ok(r.jobs().enqueue(
            &NewJob::now(JobKind::AdvanceMission { mission: taxes.id }, t0()),
            t0(),
        )?)
    });
    assert!(tx(uow, |r| Ok(r
        .missions()
        .delete(taxes.id, MissionStatus::InProgress)?)));
    assert!(!tx(uow, |r| Ok(r
        .missions()
        .delete(taxes.id, MissionStatus::InProgress)?)));
    get(uow, |r| {
        assert_eq!(r.missions().find(taxes.id, None)?, None);
        assert!(r.missions().find(running.id, None)?.is_some());
        assert_eq!(r.steps().find(taxes.id, first.id)?, None);
        assert_eq!(r.jobs().count(JobStatus::Queued)?, 0);
        let document = r
            .documents()
            .find(document.id, None)?
            .expect("the document stays");
        assert_eq!(document.mission, None);
        let activity = r
            .activities()
            .find(activity.id, None)?
            .expect("the activity stays");
        assert_eq!(activity.mission, None);
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Plan steps
// ---------------------------------------------------------------------------

/// A mission's steps come flat, by `order` then id, at every depth.
pub fn steps_list_by_order_then_id(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let other = mission(uow, anna.id, "Other");
    let second = step(uow, taxes.id, None, 1);
    let first = step(uow, taxes.id, None, 0);
    let child = step(uow, taxes.id, Some(&second), 0);
    step(uow, other.id, None, 0);
    let listed = get(uow, |r| Ok(r.steps().list(taxes.id)?));
    assert_eq!(ids(&listed, |s| s.id), vec![first.id, child.id, second.id]);
    assert_eq!(listed[1].parent, Some(second.id));
    assert_eq!(listed[1].depth, 2);
    assert_eq!(listed[1].status, StepStatus::Pending);
    assert_eq!(
        get(uow, |r| Ok(r.steps().find(taxes.id, child.id)?)).as_ref(),
        Some(&child)
    );
    // A step is found only within its mission.
    assert_eq!(get(uow, |r| Ok(r.steps().find(other.id, child.id)?)), None);
}

/// Deleting a step deletes its whole subtree and says how many rows went.
pub fn steps_delete_removes_the_subtree(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let root = step(uow, taxes.id, None, 0);
    let child = step(uow, taxes.id, Some(&root), 0);
    step(uow, taxes.id, Some(&child), 0);
    step(uow, taxes.id, Some(&root), 1);
    let sibling = step(uow, taxes.id, None, 1);
    assert_eq!(tx(uow, |r| Ok(r.steps().delete(root.id)?)), 4);
    assert_eq!(tx(uow, |r| Ok(r.steps().delete(root.id)?)), 0);
    let left = get(uow, |r| Ok(r.steps().list(taxes.id)?));
    assert_eq!(ids(&left, |s| s.id), vec![sibling.id]);
}

/// A new last child gets the order after its siblings' highest.
pub fn steps_next_order_appends(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    assert_eq!(get(uow, |r| Ok(r.steps().next_order(taxes.id, None)?)), 0);
    let root = step(uow, taxes.id, None, 0);
    step(uow, taxes.id, None, 7);
    assert_eq!(get(uow, |r| Ok(r.steps().next_order(taxes.id, None)?)), 8);
    assert_eq!(
        get(uow, |r| Ok(r
            .steps()
            .next_order(taxes.id, Some(root.id))?)),
        0
    );
    step(uow, taxes.id, Some(&root), 2);
    assert_eq!(
        get(uow, |r| Ok(r
            .steps()
            .next_order(taxes.id, Some(root.id))?)),
        3
    );
}

/// Only a pending step starts, so two runs cannot both start it.
pub fn steps_start_pending_is_conditional(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let first = step(uow, taxes.id, None, 0);
    assert!(tx(uow, |r| Ok(r.steps().start_pending(first.id, at(5))?)));
    assert!(!tx(uow, |r| Ok(r
        .steps()
        .start_pending(first.id, at(6))?)));
    assert!(!tx(uow, |r| Ok(r
        .steps()
        .start_pending(StepId(9_999), at(6))?)));
    let found = get(uow, |r| Ok(r.steps().find(taxes.id, first.id)?)).expect("the step");
    assert_eq!(found.status, StepStatus::InProgress);
    assert_eq!(found.started_at, Some(at(5)));
    assert_eq!(found.completed_at, None);
    assert_eq!(found.updated_at, at(5));
}

/// Closing a mission skips its pending, running and failed steps only.
pub fn steps_skip_open_skips_only_open_steps(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let other = mission(uow, anna.id, "Other");
    let steps: Vec<_> = (0..4).map(|i| step(uow, taxes.id, None, i)).collect();
    let elsewhere = step(uow, other.id, None, 0);
    let set = |id: StepId, status: StepStatus| {
        let changes = StepChanges {
            status: Some(status),
            ..StepChanges::default()
        };
        tx(uow, move |r| Ok(r.steps().update(id, &changes, at(1))?));
    };
    set(steps[1].id, StepStatus::InProgress);
    set(steps[2].id, StepStatus::Failed);
    set(steps[3].id, StepStatus::Completed);
    assert_eq!(tx(uow, |r| Ok(r.steps().skip_open(taxes.id, at(9))?)), 3);
    let listed = get(uow, |r| Ok(r.steps().list(taxes.id)?));
    let statuses: Vec<_> = listed.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::Skipped,
            StepStatus::Skipped,
            StepStatus::Skipped,
            StepStatus::Completed
        ]
    );
    assert_eq!(listed[0].completed_at, Some(at(9)));
    assert_eq!(listed[3].completed_at, None);
    let untouched = get(uow, |r| Ok(r.steps().find(other.id, elsewhere.id)?)).expect("step");
    assert_eq!(untouched.status, StepStatus::Pending);
}

/// A step update changes the fields given and nothing else.
pub fn steps_update_applies_only_the_changes(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let root = step(uow, taxes.id, None, 0);
    let moving = step(uow, taxes.id, None, 1);
    let changes = StepChanges {
        title: Some(Title::parse("Renamed").expect("title")),
        parent: Some((Some(root.id), 2)),
        order: Some(4),
        last_error: Some(Some("boom".into())),
        ..StepChanges::default()
    };
    tx(uow, |r| Ok(r.steps().update(moving.id, &changes, at(7))?));
    let found = get(uow, |r| Ok(r.steps().find(taxes.id, moving.id)?)).expect("the step");
    assert_eq!(found.title.as_str(), "Renamed");
    assert_eq!(
        (found.parent, found.depth, found.order),
        (Some(root.id), 2, 4)
    );
    assert_eq!(found.last_error.as_deref(), Some("boom"));
    assert_eq!(found.status, StepStatus::Pending);
    assert_eq!(found.description, moving.description);
    assert_eq!((found.created_at, found.updated_at), (t0(), at(7)));
    tx(uow, |r| Ok(r.steps().set_depth(moving.id, 3)?));
    let found = get(uow, |r| Ok(r.steps().find(taxes.id, moving.id)?)).expect("the step");
    assert_eq!((found.depth, found.updated_at), (3, at(7)));
    let clear = StepChanges {
        last_error: Some(None),
        ..StepChanges::default()
    };
    tx(uow, |r| Ok(r.steps().update(moving.id, &clear, at(8))?));
    let found = get(uow, |r| Ok(r.steps().find(taxes.id, moving.id)?)).expect("the step");
    assert_eq!(found.last_error, None);
}

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

/// A document is found by its owner (or without one), not by others.
pub fn documents_find_respects_owner(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let created = document_at(uow, new_document(anna.id, None, "w2", "key-1"), at(3));
    assert_eq!(created.status, DocumentStatus::Uploaded);
    assert_eq!(created.content_type, "application/pdf");
    assert_eq!((created.uploaded_at, created.updated_at), (at(3), at(3)));
    assert!(!created.verified());
    let found = get(uow, |r| {
        Ok(r.documents().find(created.id, Some(anna.id))?)
    });
    assert_eq!(found.as_ref(), Some(&created));
    assert_eq!(
        get(uow, |r| Ok(r.documents().find(created.id, Some(bob.id))?)),
        None
    );
    assert!(get(uow, |r| Ok(r.documents().find(created.id, None)?)).is_some());
    assert!(tx(uow, |r| Ok(r.documents().delete(created.id)?)));
    assert!(!tx(uow, |r| Ok(r.documents().delete(created.id)?)));
}

/// Deleting a document keeps its activities, without the reference.
pub fn documents_delete_keeps_its_activities_detached(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let created = document_at(uow, new_document(anna.id, None, "w2", "key-1"), t0());
    let mut about = note(Some(anna.id), "document_uploaded", "Document uploaded");
    about.document = Some(created.id);
    let activity = activity_at(uow, about, t0());
    let listed = get(uow, |r| {
        Ok(r.activities()
            .list(&ActivityQuery {
                document: Some(created.id),
                ..ActivityQuery::default()
            })?
            .found()?)
    });
    assert_eq!(ids(&listed.items, |a| a.id), vec![activity.id]);
    assert!(tx(uow, |r| Ok(r.documents().delete(created.id)?)));
    let kept = get(uow, |r| Ok(r.activities().find(activity.id, None)?)).expect("kept");
    assert_eq!(kept.document, None);
    assert!(!get(uow, |r| Ok(r.documents().any_exist()?)));
}

/// The document list filters, searches, orders (ties by id) and pages.
pub fn documents_list_filters_orders_and_pages(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let taxes = mission(uow, anna.id, "Taxes");
    let mut big = new_document(anna.id, Some(taxes.id), "w2 form", "key-1");
    big.size = 9_000;
    big.kind = DocumentType::TaxReturn;
    let big = document_at(uow, big, at(1));
    let small = document_at(uow, new_document(anna.id, None, "receipt", "key-2"), at(2));
    let newest = document_at(uow, new_document(anna.id, None, "W2 copy", "key-3"), at(2));
    let bobs = document_at(uow, new_document(bob.id, None, "w2 bob", "key-4"), at(3));
    let list = |query: DocumentQuery| {
        let page = get(uow, move |r| Ok(r.documents().list(&query)?.found()?));
        ids(&page.items, |d| d.id)
    };
    let mine = |query: DocumentQuery| {
        list(DocumentQuery {
            owner: Some(anna.id),
            ..query
        })
    };
    assert_eq!(
        mine(DocumentQuery::default()),
        vec![newest.id, small.id, big.id]
    );
    assert_eq!(list(DocumentQuery::default())[0], bobs.id);
    assert_eq!(
        mine(DocumentQuery {
            missions: vec![taxes.id],
            ..DocumentQuery::default()
        }),
        vec![big.id]
    );
    assert_eq!(
        mine(DocumentQuery {
            kinds: vec![DocumentType::TaxReturn],
            ..DocumentQuery::default()
        }),
        vec![big.id]
    );
    assert_eq!(
        mine(DocumentQuery {
            search: Some("w2".into()),
            ..DocumentQuery::default()
        }),
        vec![newest.id, big.id]
    );
    assert_eq!(
        mine(DocumentQuery {
            ordering: vec![DocumentOrderField {
                field: DocumentSortKey::Size,
                descending: false,
            }],
            ..DocumentQuery::default()
        }),
        vec![small.id, newest.id, big.id]
    );
    let verification = DocumentVerification {
        status: DocumentStatus::Verified,
        verified_at: Some(at(5)),
        error: String::new(),
    };
    tx(uow, |r| {
        Ok(r.documents()
            .set_verification(small.id, &verification, at(5))?)
    });
    assert_eq!(
        mine(DocumentQuery {
            verified: Some(true),
            ..DocumentQuery::default()
        }),
        vec![small.id]
    );
    assert_eq!(
        mine(DocumentQuery {
            statuses: vec![DocumentStatus::Uploaded],
            ..DocumentQuery::default()
        }),
        vec![newest.id, big.id]
    );
    let second = get(uow, |r| {
        Ok(r.documents()
            .list(&DocumentQuery {
                owner: Some(anna.id),
                page: PageRequest::new(2, 2),
                ..DocumentQuery::default()
            })?
            .found()?)
    });
    assert_eq!((second.count, second.page), (3, 2));
    assert_eq!(ids(&second.items, |d| d.id), vec![big.id]);
    let for_mission = get(uow, |r| Ok(r.documents().list_for_mission(taxes.id)?));
    assert_eq!(ids(&for_mission, |d| d.id), vec![big.id]);
}

/// Storage keys are unique; the sweep can ask which keys are referenced.
pub fn documents_storage_keys_are_unique(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    assert!(!get(uow, |r| Ok(r.documents().any_exist()?)));
    document_at(uow, new_document(anna.id, None, "w2", "key-1"), t0());
    let error = repo_error(uow, |r| {
        Ok(r.documents()
            .create(&new_document(anna.id, None, "again", "key-1"), t0())?)
    });
    assert!(matches!(error, RepoError::UniqueViolation(_)), "{error:?}");
    assert!(get(uow, |r| Ok(r.documents().any_exist()?)));
    let keys: Vec<StorageKey> = ["key-1", "key-9"]
        .iter()
        .map(|key| StorageKey::parse(key).expect("key"))
        .collect();
    let found = get(uow, |r| Ok(r.documents().existing_storage_keys(&keys)?));
    assert_eq!(found, vec![keys[0].clone()]);
    assert!(get(uow, |r| Ok(r.documents().existing_storage_keys(&[])?)).is_empty());
}

/// A verification's status, time and error are stored; edits change only
/// the fields given.
pub fn documents_verification_is_stored(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let created = document_at(uow, new_document(anna.id, None, "w2", "key-1"), t0());
    let rejected = DocumentVerification {
        status: DocumentStatus::Rejected,
        verified_at: None,
        error: "Checksum mismatch.".into(),
    };
    tx(uow, |r| {
        Ok(r.documents()
            .set_verification(created.id, &rejected, at(5))?)
    });
    let found = get(uow, |r| Ok(r.documents().find(created.id, None)?)).expect("document");
    assert_eq!(found.status, DocumentStatus::Rejected);
    assert_eq!(found.verification_error, "Checksum mismatch.");
    assert_eq!((found.verified_at, found.updated_at), (None, at(5)));
    let renamed = DocumentChanges {
        kind: Some(DocumentType::Invoice),
        ..DocumentChanges::default()
    };
    tx(uow, |r| {
        Ok(r.documents().update(created.id, &renamed, at(6))?)
    });
    let found = get(uow, |r| Ok(r.documents().find(created.id, None)?)).expect("document");
    assert_eq!(found.kind, DocumentType::Invoice);
    assert_eq!(found.name, created.name);
    assert_eq!(found.status, DocumentStatus::Rejected);
    assert_eq!(found.updated_at, at(6));
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

const LEASE: Duration = Duration::seconds(60);

fn advance(mission: MissionId, run_at: i64) -> NewJob {
    NewJob::now(JobKind::AdvanceMission { mission }, at(run_at))
}

/// A period key is refused while its job is kept, whatever its state; a
/// pending key is released when its job is claimed.
pub fn jobs_unique_key_refuses_a_second_live_job(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let periodic = NewJob::now(JobKind::PurgeRefreshTokens, t0()).unique("purge:2026-12-01");
    let first = tx(uow, |r| Ok(r.jobs().enqueue(&periodic, t0())?));
    assert!(first.is_some());
    assert_eq!(tx(uow, |r| Ok(r.jobs().enqueue(&periodic, t0())?)), None);
    let coalesced = advance(taxes.id, 0).coalesced();
    let waiting = tx(uow, |r| Ok(r.jobs().enqueue(&coalesced, t0())?)).expect("queued");
    assert_eq!(tx(uow, |r| Ok(r.jobs().enqueue(&coalesced, t0())?)), None);
    // Claim both (the periodic job first: same run_at, lower id).
    let claimed = tx(uow, |r| Ok(r.jobs().claim("w", at(1), LEASE, false)?)).expect("a job");
    assert_eq!(Some(claimed.id), first);
    assert!(tx(uow, |r| Ok(r.jobs().finish(claimed.id, "w", at(2))?)));
    assert_eq!(tx(uow, |r| Ok(r.jobs().enqueue(&periodic, at(3))?)), None);
    let claimed = tx(uow, |r| Ok(r.jobs().claim("w", at(3), LEASE, false)?)).expect("a job");
    assert_eq!(claimed.id, waiting);
    assert_eq!(
        claimed.kind,
        Some(JobKind::AdvanceMission { mission: taxes.id })
    );
    // Running, it no longer holds the key: a change queues another look.
    let again = tx(uow, |r| Ok(r.jobs().enqueue(&coalesced, at(4))?));
    assert!(again.is_some_and(|id| id != waiting));
    assert_eq!(get(uow, |r| Ok(r.jobs().count(JobStatus::Queued)?)), 1);
}

/// Claims take due jobs by `run_at` then id, never a job not yet due.
pub fn jobs_claim_takes_due_jobs_in_order(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let (later, sooner, tie) = tx(uow, |r| {
        let jobs = r.jobs();
        Ok((
            jobs.enqueue(&advance(taxes.id, 20), t0())?,
            jobs.enqueue(&advance(taxes.id, 10), t0())?,
            jobs.enqueue(&advance(taxes.id, 10), t0())?,
        ))
    });
    assert_eq!(
        tx(uow, |r| Ok(r.jobs().claim("w", at(9), LEASE, false)?)),
        None
    );
    let claim = |now: i64| {
        tx(uow, move |r| {
            Ok(r.jobs().claim("w", at(now), LEASE, false)?)
        })
        .map(|job| job.id)
    };
    assert_eq!(claim(15), sooner);
    assert_eq!(claim(15), tie);
    assert_eq!(claim(15), None);
    let job = tx(uow, |r| Ok(r.jobs().claim("w", at(20), LEASE, false)?)).expect("due now");
    assert_eq!(Some(job.id), later);
    assert_eq!(
        (job.attempt, job.max_attempts),
        (1, NewJob::DEFAULT_MAX_ATTEMPTS)
    );
    assert_eq!(job.kind_name, "advance_mission");
    assert_eq!(job.lease, LEASE);
}

/// A job under a live lease is not claimed again, and only its holder can
/// renew or finish it.
pub fn jobs_claim_skips_leased_jobs(uow: &dyn UnitOfWork) {
    tx(uow, |r| {
        Ok(r.jobs()
            .enqueue(&NewJob::now(JobKind::SweepFiles, t0()), t0())?)
    });
    let job = tx(uow, |r| Ok(r.jobs().claim("a", t0(), LEASE, false)?)).expect("a job");
    assert_eq!(
        tx(uow, |r| Ok(r.jobs().claim("b", at(30), LEASE, false)?)),
        None
    );
    assert!(!tx(uow, |r| Ok(r.jobs().renew(
        job.id,
        "b",
        at(90),
        at(30)
    )?)));
    assert!(!tx(uow, |r| Ok(r.jobs().finish(job.id, "b", at(30))?)));
    assert!(tx(uow, |r| Ok(r.jobs().renew(
        job.id,
        "a",
        at(120),
        at(30)
    )?)));
    // Renewed: still leased past the first lease's end.
    assert_eq!(
        tx(uow, |r| Ok(r.jobs().claim("b", at(90), LEASE, false)?)),
        None
    );
    assert!(tx(uow, |r| Ok(r.jobs().finish(job.id, "a", at(91))?)));
    assert!(!tx(uow, |r| Ok(r.jobs().finish(job.id, "a", at(92))?)));
    assert_eq!(get(uow, |r| Ok(r.jobs().count(JobStatus::Done)?)), 1);
}

/// A job whose lease lapsed (its worker died) is claimed again, as a new
/// attempt; the old holder can no longer end it.
pub fn jobs_expired_lease_can_be_reclaimed(uow: &dyn UnitOfWork) {
    tx(uow, |r| {
        Ok(r.jobs()
            .enqueue(&NewJob::now(JobKind::SweepFiles, t0()), t0())?)
    });
    let first = tx(uow, |r| Ok(r.jobs().claim("a", t0(), LEASE, false)?)).expect("a job");
    // Due only once the lease is over (strictly).
    assert_eq!(
        tx(uow, |r| Ok(r.jobs().claim("b", at(60), LEASE, false)?)),
        None
    );
    let again = tx(uow, |r| Ok(r.jobs().claim("b", at(61), LEASE, false)?)).expect("reclaimed");
    assert_eq!(again.id, first.id);
    assert_eq!(again.attempt, 2);
    assert!(!tx(uow, |r| Ok(r.jobs().finish(first.id, "a", at(62))?)));
    assert!(tx(uow, |r| Ok(r.jobs().finish(first.id, "b", at(62))?)));
}

/// With `spare_busy_users`, a user with a job running waits while others'
/// jobs and maintenance jobs are taken.
pub fn jobs_claim_spares_busy_users(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let bob = user(uow, "bob");
    let first = mission(uow, anna.id, "First");
    let second = mission(uow, anna.id, "Second");
    let bobs = mission(uow, bob.id, "Bob's");
    let (running, annas, maintenance, bobs_job) = tx(uow, |r| {
        let jobs = r.jobs();
        Ok((
            jobs.enqueue(&advance(first.id, 0), t0())?,
            jobs.enqueue(&advance(second.id, 1), t0())?,
            jobs.enqueue(&NewJob::now(JobKind::FlagOverdueMissions, at(2)), t0())?,
            jobs.enqueue(&advance(bobs.id, 3), t0())?,
        ))
    });
    let claim = |spare: bool| {
        tx(uow, move |r| {
            Ok(r.jobs().claim("w", at(10), LEASE, spare)?)
        })
        .map(|job| job.id)
    };
    assert_eq!(claim(true), running);
    assert_eq!(claim(true), maintenance);
    assert_eq!(claim(true), bobs_job);
    assert_eq!(claim(true), None);
    assert_eq!(claim(false), annas);
}

/// At most one running job holds a step; a holder whose lease lapsed, or
/// that left `running`, loses it to whoever asks.
pub fn jobs_take_step_allows_one_holder(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let first = step(uow, taxes.id, None, 0);
    tx(uow, |r| {
        r.jobs().enqueue(&advance(taxes.id, 0), t0())?;
        Ok(r.jobs().enqueue(&advance(taxes.id, 0), t0())?)
    });
    let a = tx(uow, |r| Ok(r.jobs().claim("a", t0(), LEASE, false)?)).expect("job a");
    let b = tx(uow, |r| Ok(r.jobs().claim("b", t0(), LEASE, false)?)).expect("job b");
    assert!(tx(uow, |r| Ok(r.jobs().take_step(
        a.id,
        first.id,
        at(1)
    )?)));
    assert!(tx(uow, |r| Ok(r.jobs().take_step(
        a.id,
        first.id,
        at(2)
    )?)));
    assert!(!tx(uow, |r| Ok(r.jobs().take_step(
        b.id,
        first.id,
        at(2)
    )?)));
    // `a` keeps renewing: still its step.
    assert!(tx(uow, |r| Ok(r.jobs().renew(
        a.id,
        "a",
        at(200),
        at(50)
    )?)));
    assert!(tx(uow, |r| Ok(r.jobs().renew(
        b.id,
        "b",
        at(400),
        at(50)
    )?)));
    assert!(!tx(uow, |r| Ok(r.jobs().take_step(
        b.id,
        first.id,
        at(150)
    )?)));
    // `a`'s lease lapses: `b` takes the step over.
    assert!(tx(uow, |r| Ok(r.jobs().take_step(
        b.id,
        first.id,
        at(201)
    )?)));
    assert!(!tx(uow, |r| Ok(r.jobs().take_step(
        a.id,
        first.id,
        at(202)
    )?)));
    // Finishing releases it; a job that is not running cannot take one.
    assert!(tx(uow, |r| Ok(r.jobs().finish(b.id, "b", at(203))?)));
    assert!(!tx(uow, |r| Ok(r.jobs().take_step(
        b.id,
        first.id,
        at(204)
    )?)));
}

/// `next_due` is the earliest queued `run_at` or running lease end.
pub fn jobs_next_due_sees_queued_runs_and_leases(uow: &dyn UnitOfWork) {
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), None);
    tx(uow, |r| {
        r.jobs()
            .enqueue(&NewJob::now(JobKind::SweepFiles, at(100)), t0())?;
        Ok(r.jobs()
            .enqueue(&NewJob::now(JobKind::PurgeRefreshTokens, at(0)), t0())?)
    });
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), Some(at(0)));
    let job = tx(uow, |r| Ok(r.jobs().claim("w", at(0), LEASE, false)?)).expect("a job");
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), Some(at(60)));
    assert!(tx(uow, |r| Ok(r.jobs().renew(
        job.id,
        "w",
        at(500),
        at(1)
    )?)));
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), Some(at(100)));
    assert!(tx(uow, |r| Ok(r.jobs().finish(job.id, "w", at(2))?)));
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), Some(at(100)));
}

/// A failed attempt is requeued with its error (or gives the attempt
/// back), a spent job is buried, and an operator's retry revives it.
pub fn jobs_requeue_bury_and_retry(uow: &dyn UnitOfWork) {
    let id = tx(uow, |r| {
        Ok(r.jobs()
            .enqueue(&NewJob::now(JobKind::SweepFiles, t0()), t0())?)
    })
    .expect("queued");
    let claim = |now: i64| {
        tx(uow, move |r| {
            Ok(r.jobs().claim("w", at(now), LEASE, false)?)
        })
    };
    let job = claim(0).expect("a job");
    assert!(!tx(uow, |r| Ok(r.jobs().requeue(
        job.id,
        "x",
        at(5),
        None,
        true,
        at(1)
    )?)));
    assert!(tx(uow, |r| Ok(r.jobs().requeue(
        job.id,
        "w",
        at(5),
        Some("boom".into()),
        true,
        at(1)
    )?)));
    // Not retryable by an operator unless it failed: it did.
    let listed = get(uow, |r| Ok(r.jobs().list(Some(JobStatus::Queued), 10)?));
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].attempts), (id, 1));
    assert_eq!(listed[0].last_error.as_deref(), Some("boom"));
    assert_eq!(listed[0].run_at, at(5));
    assert_eq!(claim(4), None);
    let job = claim(5).expect("due again");
    assert_eq!(job.attempt, 2);
    // A requeue that does not count gives the attempt back.
    assert!(tx(uow, |r| Ok(r.jobs().requeue(
        job.id,
        "w",
        at(6),
        None,
        false,
        at(5)
    )?)));
    let job = claim(6).expect("due again");
    assert_eq!(job.attempt, 2);
    assert!(tx(uow, |r| Ok(r.jobs().bury(
        job.id,
        "w",
        "gave up",
        at(7)
    )?)));
    let dead = get(uow, |r| Ok(r.jobs().list(Some(JobStatus::Dead), 10)?));
    assert_eq!(dead[0].last_error.as_deref(), Some("gave up"));
    assert_eq!(get(uow, |r| Ok(r.jobs().next_due()?)), None);
    assert!(tx(uow, |r| Ok(r.jobs().retry(id, at(8))?)));
    assert!(!tx(uow, |r| Ok(r.jobs().retry(JobId(9_999), at(8))?)));
    let revived = get(uow, |r| Ok(r.jobs().list(None, 10)?));
    assert_eq!(revived[0].status, JobStatus::Queued);
    assert_eq!((revived[0].attempts, revived[0].run_at), (0, at(8)));
    // A queued job that never failed is not for an operator to retry.
    let fresh = tx(uow, |r| {
        Ok(r.jobs()
            .enqueue(&NewJob::now(JobKind::PurgeRefreshTokens, t0()), t0())?)
    })
    .expect("queued");
    assert!(!tx(uow, |r| Ok(r.jobs().retry(fresh, at(9))?)));
}

/// A job run again later waits under its pending key; when another job
/// already waits under it, that one takes the earlier appointment and this
/// one finishes.
pub fn jobs_reschedule_coalesces_with_a_waiting_job(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let kind = JobKind::AdvanceMission { mission: taxes.id };
    let key = kind.pending_key().expect("a pending key");
    let first = tx(uow, |r| {
        Ok(r.jobs().enqueue(&advance(taxes.id, 0).coalesced(), t0())?)
    })
    .expect("queued");
    let job = tx(uow, |r| Ok(r.jobs().claim("w", at(0), LEASE, false)?)).expect("a job");
    assert_eq!(job.id, first);
    assert!(tx(uow, |r| Ok(r.jobs().reschedule(
        job.id,
        "w",
        at(100),
        &key,
        at(1)
    )?)));
    let listed = get(uow, |r| Ok(r.jobs().list(None, 10)?));
    assert_eq!(
        (listed[0].status, listed[0].run_at, listed[0].attempts),
        (JobStatus::Queued, at(100), 0)
    );
    // It holds the key again.
    assert_eq!(
        tx(uow, |r| Ok(r
            .jobs()
            .enqueue(&advance(taxes.id, 50).coalesced(), at(2))?)),
        None
    );
    let job = tx(uow, |r| Ok(r.jobs().claim("w", at(100), LEASE, false)?)).expect("a job");
    let waiting = tx(uow, |r| {
        Ok(r.jobs()
            .enqueue(&advance(taxes.id, 500).coalesced(), at(101))?)
    })
    .expect("queued");
    assert!(tx(uow, |r| Ok(r.jobs().reschedule(
        job.id,
        "w",
        at(200),
        &key,
        at(102)
    )?)));
    let listed = get(uow, |r| Ok(r.jobs().list(None, 10)?));
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].id, listed[0].run_at), (waiting, at(200)));
    assert_eq!((listed[1].id, listed[1].status), (first, JobStatus::Done));
    assert!(!tx(uow, |r| Ok(r.jobs().reschedule(
        job.id,
        "w",
        at(300),
        &key,
        at(103)
    )?)));
    let _ = JobKey::Pending(String::new());
}

/// Operators list jobs newest first, count them by status and purge the
/// finished ones (dead ones only when asked).
pub fn jobs_list_count_and_purge(uow: &dyn UnitOfWork) {
    let enqueue = |kind: JobKind| {
        tx(uow, move |r| {
            Ok(r.jobs().enqueue(&NewJob::now(kind, t0()), t0())?)
        })
        .expect("queued")
    };
    let a = enqueue(JobKind::SweepFiles);
    let b = enqueue(JobKind::PurgeRefreshTokens);
    let c = enqueue(JobKind::FlagOverdueMissions);
    let d = enqueue(JobKind::PurgeFinishedJobs { retain_seconds: 60 });
    let claim = || tx(uow, |r| Ok(r.jobs().claim("w", at(0), LEASE, false)?)).expect("a job");
    let first = claim();
    assert!(tx(uow, |r| Ok(r.jobs().finish(first.id, "w", at(10))?)));
    let second = claim();
    assert!(tx(uow, |r| Ok(r.jobs().bury(
        second.id,
        "w",
        "no",
        at(10)
    )?)));
    let third = claim();
    assert!(tx(uow, |r| Ok(r.jobs().finish(third.id, "w", at(30))?)));
    let all = get(uow, |r| Ok(r.jobs().list(None, 10)?));
    assert_eq!(ids(&all, |j| j.id), vec![d, c, b, a]);
    assert_eq!(all[3].kind, "sweep_files");
    assert_eq!(get(uow, |r| Ok(r.jobs().list(None, 2)?)).len(), 2);
    assert!(get(uow, |r| Ok(r.jobs().list(None, -1)?)).is_empty());
    let counts = get(uow, |r| {
        let jobs = r.jobs();
        Ok([
            jobs.count(JobStatus::Queued)?,
            jobs.count(JobStatus::Running)?,
            jobs.count(JobStatus::Done)?,
            jobs.count(JobStatus::Dead)?,
        ])
    });
    assert_eq!(counts, [1, 0, 2, 1]);
    // Finished strictly before `before`.
    assert_eq!(tx(uow, |r| Ok(r.jobs().purge(at(10), true)?)), 0);
    assert_eq!(tx(uow, |r| Ok(r.jobs().purge(at(20), false)?)), 1);
    assert_eq!(tx(uow, |r| Ok(r.jobs().purge(at(20), true)?)), 1);
    let left = get(uow, |r| Ok(r.jobs().list(None, 10)?));
    assert_eq!(ids(&left, |j| j.id), vec![d, c]);
}

/// An operator's pages of jobs (newest first, by status, by kind), and
/// deleting one by hand: only a finished (done or dead) job goes.
pub fn jobs_search_pages_and_delete_finished(uow: &dyn UnitOfWork) {
    let enqueue = |kind| {
        tx(uow, |r| {
            Ok(r.jobs().enqueue(&NewJob::now(kind, t0()), t0())?)
        })
        .expect("queued")
    };
    let a = enqueue(JobKind::SweepFiles);
    let b = enqueue(JobKind::PurgeRefreshTokens);
    let c = enqueue(JobKind::FlagOverdueMissions);
    let claim = || tx(uow, |r| Ok(r.jobs().claim("w", at(0), LEASE, false)?)).expect("a job");
    let first = claim();
    assert_eq!(first.id, a);
    assert!(tx(uow, |r| Ok(r.jobs().finish(a, "w", at(1))?)));
    let second = claim();
    assert_eq!(second.id, b);
    let search = |query: JobQuery| get(uow, move |r| Ok(r.jobs().search(&query)?));
    let found = |query: JobQuery| {
        let page = search(query).found().expect("a page");
        (page.count, ids(&page.items, |job| job.id))
    };
    assert_eq!(found(JobQuery::default()), (3, vec![c, b, a]));
    let done = JobQuery {
        status: Some(JobStatus::Done),
        ..JobQuery::default()
    };
    assert_eq!(found(done), (1, vec![a]));
    let by_kind = JobQuery {
        search: Some("REFRESH".into()),
        ..JobQuery::default()
    };
    assert_eq!(found(by_kind), (1, vec![b]));
    let second_page = JobQuery {
        page: PageRequest::new(2, 2),
        ..JobQuery::default()
    };
    assert_eq!(found(second_page), (3, vec![a]));
    let past_end = JobQuery {
        page: PageRequest::new(3, 2),
        ..JobQuery::default()
    };
    assert_eq!(search(past_end).found(), Err(PastEnd { count: 3 }));
    let delete = |id| tx(uow, move |r| Ok(r.jobs().delete_finished(id)?));
    assert!(!delete(b), "a running job stays");
    assert!(!delete(c), "a queued job stays");
    assert!(delete(a), "a done job goes");
    assert!(!delete(a), "and only once");
    assert!(!delete(JobId(9_999)));
    assert!(tx(uow, |r| Ok(r.jobs().bury(b, "w", "no", at(2))?)));
    assert!(delete(b), "a dead job goes");
    assert_eq!(found(JobQuery::default()), (1, vec![c]));
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// A transaction that fails leaves no trace in any repository, and what
/// committed before it stays.
pub fn transaction_rolls_back_every_repository_on_error(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    let outcome: Result<(), Error> = autodocs_domain::ports::transaction(uow, |r| {
        let bob = r
            .users()
            .create(&new_user("bob", "bob@example.com"), t0())?;
        let other = r.missions().create(bob.id, &new_mission("Other"), t0())?;
        let changes = autodocs_domain::mission::MissionChanges {
            title: Some(Title::parse("Renamed").expect("title")),
            ..Default::default()
        };
        r.missions().update(taxes.id, &changes, at(1))?;
        r.steps().create(
            &autodocs_domain::plan_step::NewPlanStep {
                mission: other.id,
                parent: None,
                title: Title::parse("Step").expect("title"),
                description: Description::default(),
                order: 0,
                depth: 1,
                action: autodocs_domain::plan_step::StepAction::Manual,
            },
            t0(),
        )?;
        r.documents()
            .create(&new_document(anna.id, Some(taxes.id), "w2", "key-1"), t0())?;
        r.activities()
            .record(&note(Some(anna.id), "note", "rolled back"), t0())?;
        r.refresh_tokens().insert(anna.id, "jti", t0(), at(60))?;
        r.jobs().enqueue(&advance(taxes.id, 0), t0())?;
        r.users().touch_last_login(anna.id, at(1))?;
        Err(Error::NotFound)
    });
    assert!(matches!(outcome, Err(Error::NotFound)), "{outcome:?}");
    get(uow, |r| {
        assert_eq!(r.users().list(&UserQuery::default())?.found()?.count, 1);
        assert_eq!(r.users().find(anna.id)?.expect("anna").last_login, None);
        let missions = r.missions().list(&MissionQuery::default())?.found()?;
        assert_eq!(ids(&missions.items, |m| m.id), vec![taxes.id]);
        let kept = r.missions().find(taxes.id, None)?.expect("taxes");
        assert_eq!(kept.title.as_str(), "Taxes");
        assert_eq!((kept.steps_total, kept.document_count), (0, 0));
        assert!(!r.documents().any_exist()?);
        assert_eq!(
            r.activities()
                .list(&ActivityQuery::default())?
                .found()?
                .count,
            0
        );
        assert_eq!(r.refresh_tokens().find("jti")?, None);
        assert_eq!(r.jobs().count(JobStatus::Queued)?, 0);
        assert_eq!(r.jobs().next_due()?, None);
        Ok(())
    });
    // The same unit of work still commits afterwards.
    user(uow, "bob");
}

/// A transaction whose body panics leaves no trace, and the unit of work
/// goes on working.
pub fn transaction_that_panics_rolls_back(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), Error> = autodocs_domain::ports::transaction(uow, |r| {
            r.users()
                .create(&new_user("bob", "bob@example.com"), t0())?;
            r.missions().create(anna.id, &new_mission("Doomed"), t0())?;
            panic!("the transaction body panics");
        });
    }));
    assert!(outcome.is_err(), "the panic reached the caller");
    get(uow, |r| {
        assert_eq!(r.users().list(&UserQuery::default())?.found()?.count, 1);
        assert_eq!(
            r.missions().list(&MissionQuery::default())?.found()?.count,
            0
        );
        Ok(())
    });
    user(uow, "bob");
}

/// Transactions from many threads at once all commit, none lost.
pub fn transactions_from_many_threads_all_commit(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let taxes = mission(uow, anna.id, "Taxes");
    std::thread::scope(|scope| {
        for thread in 0..4 {
            scope.spawn(move || {
                for i in 0..5 {
                    tx(uow, |r| {
                        let order = r.steps().next_order(taxes.id, None)?;
                        let mut new = note(Some(anna.id), "note", &format!("{thread}/{i}"));
                        new.mission = Some(taxes.id);
                        r.activities().record(&new, t0())?;
                        Ok(order)
                    });
                }
            });
        }
    });
    let page = get(uow, |r| {
        Ok(r.activities()
            .list(&ActivityQuery {
                mission: Some(taxes.id),
                page: PageRequest::new(1, 100),
                ..ActivityQuery::default()
            })?
            .found()?)
    });
    assert_eq!(page.count, 20);
}

/// A recorded transaction hands over the activities recorded through it,
/// in order, whatever the adapter; a rolled-back one hands over nothing
/// and keeps nothing.
pub fn recorded_transaction_returns_the_activities_of_a_commit(uow: &dyn UnitOfWork) {
    let anna = user(uow, "anna");
    let ((a, b), recorded) = recorded_transaction(uow, |r| -> Result<_, RepoError> {
        let a = r
            .activities()
            .record(&note(Some(anna.id), "note", "one"), at(1))?;
        let b = r.activities().record(&note(None, "system", "two"), at(2))?;
        Ok((a, b))
    })
    .expect("the transaction commits");
    assert_eq!(recorded, vec![a, b]);
    assert_eq!(recorded[1].user, None);
    assert_eq!(recorded[0].timestamp, at(1));
    let failed = recorded_transaction(uow, |r| {
        r.activities()
            .record(&note(Some(anna.id), "note", "lost"), at(3))?;
        Err::<(), _>(Error::NotFound)
    });
    assert!(matches!(failed, Err(Error::NotFound)), "{failed:?}");
    let kept = get(uow, |r| {
        Ok(r.activities().list(&ActivityQuery::default())?.found()?)
    });
    assert_eq!(kept.count, 2, "the rolled-back activity is gone");
}

/// The database has an identity, the same on every read.
pub fn instance_has_an_identity(uow: &dyn UnitOfWork) {
    let first = get(uow, |r| Ok(r.instance().database_identity()?)).expect("an identity");
    let second = get(uow, |r| Ok(r.instance().database_identity()?)).expect("an identity");
    assert_eq!(first, second);
    assert!(!first.as_str().is_empty());
}
