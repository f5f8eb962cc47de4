//! One account per person, whatever the letters (issue 12, item 3):
//! usernames and emails are compared by their normalised form (NFKC and
//! Unicode case folding) on both databases, and a username shaped like an
//! email never shadows that email's owner.

use serde_json::{Value, json};

use crate::harness::{Registered, TestApp, describe, strong_password};

const REGISTER: &str = "/api/auth/register/";
const TOKEN: &str = "/api/auth/token/";
const ME: &str = "/api/users/me/";
const USERS: &str = "/api/users/";

backend_tests!(
    unicode_usernames_are_one_account_in_any_case,
    compatibility_forms_and_full_case_folding_are_one_account,
    emails_with_non_ascii_letters_are_one_account_in_any_case,
    username_shaped_like_an_email_never_shadows_its_owner,
    racing_registrations_of_one_name_give_one_account_and_400s,
    staff_search_folds_non_ascii_letters,
    createsuperuser_uses_the_same_uniqueness,
);

async fn register(app: &TestApp, username: &str, email: &str) -> crate::harness::Resp {
    app.post_json(
        REGISTER,
        &json!({"username": username, "email": email, "password": strong_password()}),
        None,
    )
    .await
}

/// The id of the user a login with `login` and `password` signs in as.
async fn login_id(app: &TestApp, login: &str, password: &str) -> i64 {
    let r = app.login(login, password).await;
    r.assert_status(200);
    r.body["user"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("user.id: {}", r.describe()))
}

async fn unicode_usernames_are_one_account_in_any_case(app: TestApp) {
    let aerger = app.register_with("Ärger", "aerger@example.com").await;
    for login in ["Ärger", "ärger", "ÄRGER", "A\u{308}rger"] {
        assert_eq!(
            login_id(&app, login, &aerger.password).await,
            aerger.id,
            "{login}"
        );
        let r = app
            .post_json(
                TOKEN,
                &json!({"username": login, "password": aerger.password}),
                None,
            )
            .await;
        r.assert_status(200);
    }
    for (i, name) in ["ärger", "ÄRGER", "Ärger", "A\u{308}rger"]
        .iter()
        .enumerate()
    {
        let r = register(&app, name, &format!("second{i}@example.com")).await;
        r.assert_field_errors(&["username"]);
        r.assert_field_message("username", "A user with that username already exists.");
    }
    // A different letter is a different account.
    app.register_with("arger", "arger@example.com").await;
}

async fn compatibility_forms_and_full_case_folding_are_one_account(app: TestApp) {
    let strasse = app.register_with("Straße", "strasse@example.com").await;
    for name in ["STRASSE", "strasse", "STRAẞE"] {
        register(&app, name, &format!("{}@example.org", name.len()))
            .await
            .assert_field_errors(&["username"]);
    }
    assert_eq!(
        login_id(&app, "STRASSE", &strasse.password).await,
        strasse.id
    );

    // The ligature `ﬁ` (U+FB01) is `fi` under NFKC, both ways round.
    let ligature = app
        .register_with("\u{FB01}sh", "ligature@example.com")
        .await;
    register(&app, "fish", "fish@example.com")
        .await
        .assert_field_errors(&["username"]);
    register(&app, "FISH", "fish@example.com")
        .await
        .assert_field_errors(&["username"]);
    assert_eq!(
        login_id(&app, "Fish", &ligature.password).await,
        ligature.id
    );
    let plain = app.register_with("file", "file@example.com").await;
    register(&app, "\u{FB01}le", "ligature2@example.com")
        .await
        .assert_field_errors(&["username"]);
    assert_eq!(
        login_id(&app, "\u{FB01}LE", &plain.password).await,
        plain.id
    );
}

async fn emails_with_non_ascii_letters_are_one_account_in_any_case(app: TestApp) {
    let juergen = app.register_with("juergen", "Jürgen@Bücher.de").await;
    for (i, email) in [
        "jürgen@bücher.de",
        "JÜRGEN@BÜCHER.DE",
        "Ju\u{308}rgen@bücher.de",
    ]
    .into_iter()
    .enumerate()
    {
        let r = register(&app, &format!("other{i}"), email).await;
        r.assert_field_errors(&["email"]);
        assert_eq!(
            login_id(&app, email, &juergen.password).await,
            juergen.id,
            "{email}"
        );
    }
    // Non-ASCII letters in the domain alone.
    let anna = app.register_with("anna", "anna@Ärger.example").await;
    register(&app, "anna2", "ANNA@ärger.EXAMPLE")
        .await
        .assert_field_errors(&["email"]);
    assert_eq!(
        login_id(&app, "Anna@ÄRGER.example", &anna.password).await,
        anna.id
    );

    // Changing an email to another user's, in another case, is refused,
    // for the user and for staff alike.
    let staff = app.create_superuser("root").await;
    for (path, token) in [
        (ME.to_owned(), &anna.access),
        (format!("{USERS}{}/", anna.id), &staff.access),
    ] {
        let r = app
            .patch_json(&path, &json!({"email": "JÜRGEN@bücher.DE"}), Some(token))
            .await;
        r.assert_field_errors(&["email"]);
    }
    // A change to a fresh address moves the login with it.
    let r = app
        .put_json(
            ME,
            &json!({"email": "Zoë@Example.com", "first_name": "", "last_name": ""}),
            Some(&anna.access),
        )
        .await;
    r.assert_status(200);
    assert_eq!(
        login_id(&app, "ZOË@example.com", &anna.password).await,
        anna.id
    );
    app.login("anna@ärger.example", &anna.password)
        .await
        .assert_status(401);
    // ... and frees the old one.
    app.register_with("anna3", "ANNA@ärger.example").await;
}

async fn username_shaped_like_an_email_never_shadows_its_owner(app: TestApp) {
    let bob = app.register_with("bob", "bob@example.com").await;
    for name in ["bob@example.com", "Bob@Example.COM"] {
        let r = register(&app, name, "mallory@example.com").await;
        r.assert_field_errors(&["username"]);
    }
    assert_eq!(
        login_id(&app, "BOB@example.com", &bob.password).await,
        bob.id
    );

    // A username that came first (no one had that email yet): the email's
    // owner who registers later still signs in with the email, and the
    // username's holder never signs in with it in the owner's place.
    let mallory = app
        .register_with("carol@example.com", "mallory@example.com")
        .await;
    let carol = app.register_with("carol", "Carol@Example.com").await;
    assert_eq!(
        login_id(&app, "carol@example.com", &carol.password).await,
        carol.id
    );
    app.login("carol@example.com", &mallory.password)
        .await
        .assert_status(401);
    assert_eq!(
        login_id(&app, "mallory@example.com", &mallory.password).await,
        mallory.id
    );
    let r = app
        .post_json(
            TOKEN,
            &json!({"username": "CAROL@example.com", "password": carol.password}),
            None,
        )
        .await;
    r.assert_status(200);
    let me = app.get(ME, r.body["access"].as_str()).await;
    assert_eq!(me.body["id"], carol.id, "{}", me.describe());
}

async fn racing_registrations_of_one_name_give_one_account_and_400s(app: TestApp) {
    let names = ["Ärger", "ärger", "ÄRGER", "A\u{308}rger"];
    let attempts = names.iter().enumerate().map(|(i, name)| {
        let app = &app;
        async move { register(app, name, &format!("race{i}@example.com")).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.code() == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        results.iter().map(|r| r.describe()).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.code() != 201) {
        r.assert_field_errors(&["username"]);
    }
}

fn usernames(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|user| user["username"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn staff_search_folds_non_ascii_letters(app: TestApp) {
    let staff = app.create_superuser("root").await;
    app.register_with("Ärger", "aerger@example.com").await;
    app.register_with("Straße", "strasse@example.com").await;
    app.register_with("juergen", "jürgen@Bücher.de").await;
    app.register_with("plain", "plain@example.com").await;
    for (term, expected) in [
        ("ärg", &["Ärger"][..]),
        ("ÄRG", &["Ärger"]),
        ("rger", &["Ärger"]),
        ("STRASS", &["Straße"]),
        ("ße", &["Straße"]),
        ("BÜCHER", &["juergen"]),
        ("JÜRGEN%40", &["juergen"]),
    ] {
        let r = app
            .get(&format!("{USERS}?search={term}"), Some(&staff.access))
            .await;
        r.assert_status(200);
        assert_eq!(
            usernames(&r.body),
            expected,
            "search {term:?}: {}",
            r.describe()
        );
    }
}

async fn createsuperuser_uses_the_same_uniqueness(app: TestApp) {
    let aerger: Registered = app.register_with("Ärger", "aerger@example.com").await;
    let password = strong_password();
    for (username, email) in [
        ("ÄRGER", "root1@example.com"),
        ("root2", "AERGER@Example.com"),
        ("aerger@example.com", "root3@example.com"),
    ] {
        let out = app
            .cli(
                &["createsuperuser", "--username", username, "--email", email],
                &[("AUTODOCS_PASSWORD", &password)],
            )
            .await;
        assert!(
            !out.status.success(),
            "{username} {email}\n{}",
            describe(&out)
        );
    }
    assert_eq!(login_id(&app, "ärger", &aerger.password).await, aerger.id);
    let root = app.create_superuser("Wurzel").await;
    assert_eq!(login_id(&app, "WURZEL", &root.password).await, root.id);
}
