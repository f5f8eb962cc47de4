//! `/api/auth/`: register, login, token, refresh, verify, logout, and how
//! protected endpoints treat credentials.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Backend, Registered, TestApp, assert_user_shape, claim_i64, django_hash_matches, forge_jwt,
    forge_jwt_with_header, jwt_claims, jwt_header, now_unix, random_secret, strong_password,
    tamper_signature,
};

const REGISTER: &str = "/api/auth/register/";
const LOGIN: &str = "/api/auth/login/";
const TOKEN: &str = "/api/auth/token/";
const REFRESH: &str = "/api/auth/token/refresh/";
const VERIFY: &str = "/api/auth/token/verify/";
const LOGOUT: &str = "/api/auth/logout/";
const ME: &str = "/api/users/me/";

const BAD_CREDENTIALS: &str = "No active account found with the given credentials";
const REQUIRED: &str = "This field is required.";

fn bad_credentials() -> Value {
    json!({"detail": BAD_CREDENTIALS, "code": "authentication_failed"})
}

fn register_body(username: &str, email: &str, password: &str) -> Value {
    json!({"username": username, "email": email, "password": password})
}

/// A token with the claims of `like`, changed by `edit`, signed with `secret`.
fn reforge(secret: &str, like: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = jwt_claims(like);
    edit(&mut claims);
    forge_jwt(secret, &claims)
}

backend_tests!(
    register_returns_user_and_tokens,
    register_ignores_unknown_and_read_only_fields,
    register_accepts_unicode_username,
    register_rejects_duplicate_username_case_insensitively,
    register_rejects_duplicate_email_case_insensitively,
    register_rejects_invalid_username,
    register_rejects_invalid_email,
    register_rejects_weak_passwords,
    register_requires_fields,
    register_rejects_malformed_json,
    register_rejects_non_json_content_type,
    register_rejects_non_object_body,
    register_survives_hostile_input,
    login_by_username_and_email,
    login_rejects_bad_credentials,
    login_rejects_inactive_user,
    login_requires_fields,
    token_obtain_returns_only_tokens,
    token_claims_follow_simplejwt,
    refresh_rotates_tokens,
    refresh_reuse_revokes_every_refresh_token_of_the_user,
    refresh_rejects_wrong_tokens,
    verify_accepts_valid_tokens,
    verify_rejects_invalid_tokens,
    logout_kills_only_that_refresh_token,
    logged_out_token_is_not_treated_as_reuse,
    logout_rejects_bad_input,
    protected_endpoint_requires_credentials,
    token_signed_with_server_secret_is_accepted,
    protected_endpoint_rejects_bad_tokens,
    deactivated_or_deleted_user_tokens_are_rejected,
    stored_hash_is_django_pbkdf2,
    django_hashes_verify_on_login,
    hash_is_rehashed_with_configured_iterations_on_login,
);

backend_custom_tests!(
    access_token_lifetime_is_configurable,
    password_hash_uses_default_iterations,
    weaker_hash_is_upgraded_on_login,
);

// ---------------------------------------------------------------------------
// register/
// ---------------------------------------------------------------------------

async fn register_returns_user_and_tokens(app: TestApp) {
    let password = strong_password();
    let r = app
        .post_json(
            REGISTER,
            &json!({
                "username": "alice",
                "email": "alice@example.com",
                "password": password,
                "first_name": "Alice",
                "last_name": "Liddell",
            }),
            None,
        )
        .await;
    r.assert_status(201).assert_json();
    crate::harness::assert_keys(&r.body, &["user", "access", "refresh"], &r.describe());
    let user = &r.body["user"];
    assert_user_shape(user);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["first_name"], "Alice");
    assert_eq!(user["last_name"], "Liddell");
    assert_eq!(user["is_staff"], false);
    assert_eq!(
        user["profile"],
        json!({"phone": "", "organization": "", "bio": "", "timezone": "UTC", "preferences": {}}),
        "default profile"
    );
    let access = r.body["access"].as_str().expect("access is a string");
    let refresh = r.body["refresh"].as_str().expect("refresh is a string");
    assert_eq!(access.split('.').count(), 3, "access is a JWT");
    assert_eq!(refresh.split('.').count(), 3, "refresh is a JWT");
    assert_ne!(access, refresh);

    // The access token is usable at once and the user is the same.
    let me = app.get(ME, Some(access)).await;
    me.assert_status(200);
    assert_eq!(&me.body, user, "GET me/ returns the registered user");

    // The password works for login.
    app.login("alice", &password).await.assert_status(200);
}

async fn register_ignores_unknown_and_read_only_fields(app: TestApp) {
    let r = app
        .post_json(
            REGISTER,
            &json!({
                "username": "sneaky",
                "email": "sneaky@example.com",
                "password": strong_password(),
                "is_staff": true,
                "is_superuser": true,
                "is_active": false,
                "id": 999,
                "date_joined": "2000-01-01T00:00:00Z",
                "favourite_colour": "blue",
            }),
            None,
        )
        .await;
    r.assert_status(201);
    let user = &r.body["user"];
    assert_user_shape(user);
    assert_eq!(user["is_staff"], false, "is_staff is read-only on register");
    assert_ne!(user["id"], 999, "id is read-only");
    assert!(
        !user["date_joined"]
            .as_str()
            .unwrap_or("2000")
            .starts_with("2000"),
        "date_joined is read-only: {user}"
    );
    let access = r.body["access"].as_str().expect("access");
    app.get(ME, Some(access)).await.assert_status(200);
    app.get("/api/users/", Some(access))
        .await
        .assert_forbidden();
}

async fn register_accepts_unicode_username(app: TestApp) {
    // Django's username pattern is `^[\w.@+-]+$` with Unicode \w.
    let password = strong_password();
    let r = app
        .post_json(
            REGISTER,
            &register_body("zoë.ünïcode", "zoe@example.com", &password),
            None,
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["user"]["username"], "zoë.ünïcode");
    let login = app.login("zoë.ünïcode", &password).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["username"], "zoë.ünïcode");
}

async fn register_rejects_duplicate_username_case_insensitively(app: TestApp) {
    app.register_with("Alice", "alice1@example.com").await;
    for (i, name) in ["Alice", "alice", "ALICE"].into_iter().enumerate() {
        let r = app
            .post_json(
                REGISTER,
                &register_body(name, &format!("other{i}@example.com"), &strong_password()),
                None,
            )
            .await;
        r.assert_field_errors(&["username"]);
    }
}

async fn register_rejects_duplicate_email_case_insensitively(app: TestApp) {
    app.register_with("bob", "bob@example.com").await;
    for (i, email) in ["bob@example.com", "BOB@Example.COM", "Bob@example.com"]
        .into_iter()
        .enumerate()
    {
        let r = app
            .post_json(
                REGISTER,
                &register_body(&format!("bobby{i}"), email, &strong_password()),
                None,
            )
            .await;
        r.assert_field_errors(&["email"]);
    }
}

async fn register_rejects_invalid_username(app: TestApp) {
    let invalid_chars = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.";
    let cases: Vec<(String, Option<&str>)> = vec![
        ("bad name".to_owned(), Some(invalid_chars)),
        ("semi;colon".to_owned(), Some(invalid_chars)),
        ("slash/name".to_owned(), Some(invalid_chars)),
        ("tab\tname".to_owned(), None),
        ("' OR 1=1 --".to_owned(), Some(invalid_chars)),
        ("".to_owned(), Some("This field may not be blank.")),
        (
            "a".repeat(151),
            Some("Ensure this field has no more than 150 characters."),
        ),
    ];
    for (i, (username, message)) in cases.into_iter().enumerate() {
        let r = app
            .post_json(
                REGISTER,
                &register_body(&username, &format!("u{i}@example.com"), &strong_password()),
                None,
            )
            .await;
        r.assert_field_errors(&["username"]);
        if let Some(message) = message {
            r.assert_field_message("username", message);
        }
    }
    // The longest valid username is accepted.
    let r = app
        .post_json(
            REGISTER,
            &register_body(&"a".repeat(150), "long@example.com", &strong_password()),
            None,
        )
        .await;
    r.assert_status(201);
}

async fn register_rejects_invalid_email(app: TestApp) {
    for (i, email) in [
        "not-an-email",
        "a@b",
        "@example.com",
        "two@@example.com",
        "spaces in@example.com",
        "trailing@example.com.",
    ]
    .into_iter()
    .enumerate()
    {
        let r = app
            .post_json(
                REGISTER,
                &register_body(&format!("user{i}"), email, &strong_password()),
                None,
            )
            .await;
        r.assert_field_errors(&["email"]);
        r.assert_field_message("email", "Enter a valid email address.");
    }
    let r = app
        .post_json(
            REGISTER,
            &json!({"username": "nomail", "email": 42, "password": strong_password()}),
            None,
        )
        .await;
    r.assert_field_errors(&["email"]);
}

async fn register_rejects_weak_passwords(app: TestApp) {
    let cases = [
        (
            "shorty",
            "Xy7!ab",
            "This password is too short. It must contain at least 8 characters.",
        ),
        (
            "numeric",
            "8409173526",
            "This password is entirely numeric.",
        ),
        ("common1", "qwertyuiop", "This password is too common."),
        ("common2", "password1", "This password is too common."),
        (
            "marguerite",
            "marguerite!",
            "The password is too similar to the username.",
        ),
        ("blank", "", "This field may not be blank."),
    ];
    for (username, password, message) in cases {
        let r = app
            .post_json(
                REGISTER,
                &register_body(username, &format!("{username}@example.com"), password),
                None,
            )
            .await;
        r.assert_field_errors(&["password"]);
        r.assert_field_message("password", message);
    }
    // Too similar to the email address.
    let r = app
        .post_json(
            REGISTER,
            &register_body("user_e", "zanzibarquest@example.com", "zanzibarquest"),
            None,
        )
        .await;
    r.assert_field_errors(&["password"]);
    let found = r.messages("password");
    assert!(
        found
            .iter()
            .any(|m| m.starts_with("The password is too similar to the")),
        "similar to the email: {found:?}"
    );
    // Nothing was created: the username is still free.
    app.register("marguerite").await;
}

async fn register_requires_fields(app: TestApp) {
    let r = app.post_json(REGISTER, &json!({}), None).await;
    r.assert_body(
        400,
        &json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]}),
    );
    let r = app
        .post_json(
            REGISTER,
            &json!({"username": "only", "email": "only@example.com"}),
            None,
        )
        .await;
    r.assert_body(400, &json!({"password": [REQUIRED]}));
    let r = app
        .post_json(
            REGISTER,
            &json!({"username": null, "email": "n@example.com", "password": strong_password()}),
            None,
        )
        .await;
    r.assert_field_errors(&["username"]);
}

async fn register_rejects_malformed_json(app: TestApp) {
    for body in [
        &b"{\"username\": \"x\","[..],
        b"{username: 'x'}",
        b"\xff\xfe",
    ] {
        let r = app
            .raw(
                Method::POST,
                REGISTER,
                &[("content-type", "application/json")],
                Some(body.to_vec()),
            )
            .await;
        r.assert_status(400).assert_json();
        crate::harness::assert_keys(&r.body, &["detail"], &r.describe());
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("JSON parse error - "),
            "detail starts with \"JSON parse error - \"\n{}",
            r.describe()
        );
    }
}

async fn register_rejects_non_json_content_type(app: TestApp) {
    let body = register_body("plain", "plain@example.com", &strong_password()).to_string();
    let r = app
        .raw(
            Method::POST,
            REGISTER,
            &[("content-type", "text/plain")],
            Some(body.into_bytes()),
        )
        .await;
    r.assert_status(415).assert_json();
    assert!(
        r.body["detail"].is_string(),
        "415 has a detail\n{}",
        r.describe()
    );
    // Nothing was created.
    app.register("plain").await;
}

async fn register_rejects_non_object_body(app: TestApp) {
    let r = app.post_json(REGISTER, &json!([1, 2]), None).await;
    r.assert_body(
        400,
        &json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    );
    let r = app.post_json(REGISTER, &json!("alice"), None).await;
    r.assert_body(
        400,
        &json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
    );
}

async fn register_survives_hostile_input(app: TestApp) {
    let big = "a".repeat(10 * 1024);

    // Over-long and NUL usernames are refused.
    for (i, username) in [big.clone(), "nul\0user".to_owned()]
        .into_iter()
        .enumerate()
    {
        let r = app
            .post_json(
                REGISTER,
                &register_body(&username, &format!("h{i}@example.com"), &strong_password()),
                None,
            )
            .await;
        r.assert_field_errors(&["username"]);
    }

    // Other hostile values: a 400 or a 201, never a server error.
    let cases = [
        json!({"username": "big_first", "email": "bf@example.com", "password": strong_password(), "first_name": big}),
        json!({"username": "big_pass", "email": "bp@example.com", "password": format!("Aa1!{big}")}),
        json!({"username": "big_mail", "email": format!("{big}@example.com"), "password": strong_password()}),
        json!({"username": "nul_first", "email": "nf@example.com", "password": strong_password(), "first_name": "a\0b"}),
        json!({"username": "nul_pass", "email": "np@example.com", "password": "Tr0ub4dor&3\0x"}),
        json!({"username": "quote_mail", "email": "x' OR '1'='1@example.com", "password": strong_password()}),
        json!({"username": "types", "email": "types@example.com", "password": strong_password(), "first_name": {"a": [1]}}),
    ];
    for body in cases {
        let r = app.post_json(REGISTER, &body, None).await;
        assert!(
            r.code() == 201 || r.code() == 400,
            "expected 201 or 400 for {}\n{}",
            body["username"],
            r.describe()
        );
        r.assert_json();
    }

    // Deeply nested JSON (20 KB, under any sane body limit) is a parse
    // error, not a crash.
    let deep = format!(
        "{{\"username\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = app
        .raw(
            Method::POST,
            REGISTER,
            &[("content-type", "application/json")],
            Some(deep.into_bytes()),
        )
        .await;
    r.assert_status(400).assert_json();

    // SQL-looking text is stored verbatim.
    let sql = "Robert'); DROP TABLE auth_user;--";
    let password = strong_password();
    let r = app
        .post_json(
            REGISTER,
            &json!({"username": "bobby_tables", "email": "bt@example.com", "password": password, "first_name": sql}),
            None,
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body["user"]["first_name"], sql);
    let login = app.login("bobby_tables", &password).await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["first_name"], sql);
    app.register("still_works").await;

    // SQL-looking credentials are just bad credentials.
    let r = app.login("' OR 1=1 --", "x' OR '1'='1").await;
    r.assert_body(401, &bad_credentials());
    let r = app.login("bobby_tables", "' OR '1'='1").await;
    r.assert_body(401, &bad_credentials());
}

// ---------------------------------------------------------------------------
// login/ and token/
// ---------------------------------------------------------------------------

async fn login_by_username_and_email(app: TestApp) {
    let carol = app.register_with("carol", "carol@example.com").await;
    for login in [
        "carol",
        "carol@example.com",
        "CAROL@EXAMPLE.COM",
        "Carol@Example.com",
    ] {
        let r = app.login(login, &carol.password).await;
        r.assert_status(200).assert_json();
        crate::harness::assert_keys(&r.body, &["access", "refresh", "user"], &r.describe());
        assert_user_shape(&r.body["user"]);
        assert_eq!(r.body["user"]["id"], carol.id, "login {login:?}");
        assert_eq!(r.body["user"]["username"], "carol");
        let access = r.body["access"].as_str().expect("access");
        let me = app.get(ME, Some(access)).await;
        me.assert_status(200);
        assert_eq!(me.body["id"], carol.id);
    }
}

async fn login_rejects_bad_credentials(app: TestApp) {
    let dave = app.register("dave").await;
    let cases = [
        ("dave", "wrong-password-1"),
        ("dave", &dave.password.to_uppercase()),
        ("dave@example.com", "wrong-password-1"),
        ("nobody", &dave.password),
        ("nobody@example.com", "whatever-123"),
    ];
    for (username, password) in cases {
        let r = app.login(username, password).await;
        r.assert_body(401, &bad_credentials());
        r.assert_unauthorized("authentication_failed");
    }
    // token/ answers the same way.
    let r = app
        .post_json(
            TOKEN,
            &json!({"username": "dave", "password": "wrong-password-1"}),
            None,
        )
        .await;
    r.assert_body(401, &bad_credentials());
    r.assert_unauthorized("authentication_failed");
}

async fn login_rejects_inactive_user(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let erin = app.register("erin").await;
    app.login("erin", &erin.password).await.assert_status(200);

    app.staff_patch_user(&admin, erin.id, &json!({"is_active": false}))
        .await;
    for login in ["erin", "erin@example.com"] {
        let r = app.login(login, &erin.password).await;
        r.assert_body(401, &bad_credentials());
        r.assert_unauthorized("authentication_failed");
    }
    let r = app
        .post_json(
            TOKEN,
            &json!({"username": "erin", "password": erin.password}),
            None,
        )
        .await;
    r.assert_unauthorized("authentication_failed");

    // It is the flag that matters: reactivated, erin logs in again.
    app.staff_patch_user(&admin, erin.id, &json!({"is_active": true}))
        .await;
    app.login("erin", &erin.password).await.assert_status(200);
}

async fn login_requires_fields(app: TestApp) {
    for path in [LOGIN, TOKEN] {
        let r = app.post_json(path, &json!({}), None).await;
        r.assert_body(
            400,
            &json!({"username": [REQUIRED], "password": [REQUIRED]}),
        );
        let r = app.post_json(path, &json!({"username": "x"}), None).await;
        r.assert_body(400, &json!({"password": [REQUIRED]}));
    }
}

async fn token_obtain_returns_only_tokens(app: TestApp) {
    let fred = app.register("fred").await;
    for username in ["fred", "fred@example.com"] {
        let r = app
            .post_json(
                TOKEN,
                &json!({"username": username, "password": fred.password}),
                None,
            )
            .await;
        r.assert_status(200).assert_json();
        crate::harness::assert_keys(&r.body, &["access", "refresh"], &r.describe());
        let access = r.body["access"].as_str().expect("access");
        app.get(ME, Some(access)).await.assert_status(200);
        let refresh = r.body["refresh"].as_str().expect("refresh");
        app.refresh(refresh).await.assert_status(200);
    }
}

async fn token_claims_follow_simplejwt(app: TestApp) {
    let gina = app.register("gina").await;
    let (login_access, login_refresh) = app.login_tokens("gina", &gina.password).await;
    let before = now_unix();
    for (access, refresh) in [
        (&gina.access, &gina.refresh),
        (&login_access, &login_refresh),
    ] {
        for (token, kind, lifetime) in [(access, "access", 300), (refresh, "refresh", 86_400)] {
            let header = jwt_header(token);
            assert_eq!(header["alg"], "HS256", "{kind} header: {header}");
            let claims = jwt_claims(token);
            for claim in ["token_type", "exp", "iat", "jti", "user_id"] {
                assert!(
                    claims.get(claim).is_some(),
                    "{kind} has claim {claim}: {claims}"
                );
            }
            assert_eq!(claims["token_type"], kind, "{claims}");
            let exp = claim_i64(&claims, "exp");
            let iat = claim_i64(&claims, "iat");
            assert_eq!(exp - iat, lifetime, "{kind} lifetime: {claims}");
            assert!(
                (before - 3600..=before + 3600).contains(&iat),
                "iat is now-ish (seconds since the epoch): {claims}"
            );
            assert!(
                claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
                "jti is a non-empty string: {claims}"
            );
            let user_id = &claims["user_id"];
            assert!(
                *user_id == json!(gina.id) || *user_id == json!(gina.id.to_string()),
                "user_id is the user's id: {claims}"
            );
        }
    }
    let jtis: std::collections::HashSet<String> =
        [&gina.access, &gina.refresh, &login_access, &login_refresh]
            .into_iter()
            .map(|t| jwt_claims(t)["jti"].as_str().unwrap_or_default().to_owned())
            .collect();
    assert_eq!(jtis.len(), 4, "every token has its own jti");
}

// ---------------------------------------------------------------------------
// token/refresh/
// ---------------------------------------------------------------------------

async fn refresh_rotates_tokens(app: TestApp) {
    let hank = app.register("hank").await;
    let r = app.refresh(&hank.refresh).await;
    r.assert_status(200).assert_json();
    crate::harness::assert_keys(&r.body, &["access", "refresh"], &r.describe());
    let access = r.body["access"].as_str().expect("access").to_owned();
    let refresh = r.body["refresh"].as_str().expect("refresh").to_owned();
    assert_ne!(refresh, hank.refresh, "the refresh token rotates");
    assert_ne!(access, hank.access);
    let claims = jwt_claims(&refresh);
    assert_eq!(claims["token_type"], "refresh");
    assert_eq!(claims["user_id"], jwt_claims(&hank.refresh)["user_id"]);
    assert_ne!(claims["jti"], jwt_claims(&hank.refresh)["jti"]);
    assert_eq!(jwt_claims(&access)["token_type"], "access");

    let me = app.get(ME, Some(&access)).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], hank.id);

    // The new refresh token rotates in turn.
    let r2 = app.refresh(&refresh).await;
    r2.assert_status(200);
    assert_ne!(r2.body["refresh"], json!(refresh));
}

async fn refresh_reuse_revokes_every_refresh_token_of_the_user(app: TestApp) {
    let ivy = app.register("ivy").await;
    let (_, ivy_other_session) = app.login_tokens("ivy", &ivy.password).await;
    let jack = app.register("jack").await;

    let r = app.refresh(&ivy.refresh).await;
    r.assert_status(200);
    let rotated = r.body["refresh"].as_str().expect("refresh").to_owned();

    // Reuse of the rotated token.
    app.refresh(&ivy.refresh)
        .await
        .assert_unauthorized("token_not_valid");
    // ... revoked every refresh token of ivy,
    app.refresh(&rotated)
        .await
        .assert_unauthorized("token_not_valid");
    app.refresh(&ivy_other_session)
        .await
        .assert_unauthorized("token_not_valid");
    // ... and nobody else's.
    app.refresh(&jack.refresh).await.assert_status(200);
    // Ivy can still log in afresh.
    let (_, fresh) = app.login_tokens("ivy", &ivy.password).await;
    app.refresh(&fresh).await.assert_status(200);
}

async fn refresh_rejects_wrong_tokens(app: TestApp) {
    let kate = app.register("kate").await;
    let other_secret = random_secret();
    let wrong = [
        ("access token", kate.access.clone()),
        ("garbage", "not-a-token".to_owned()),
        ("three garbage parts", "abc.def.ghi".to_owned()),
        ("empty-ish", " ".to_owned()),
        ("tampered", tamper_signature(&kate.refresh)),
        (
            "other secret",
            reforge(&other_secret, &kate.refresh, |_| {}),
        ),
        (
            "expired",
            reforge(&app.secret_key, &kate.refresh, |c| {
                c["iat"] = json!(now_unix() - 200_000);
                c["exp"] = json!(now_unix() - 100_000);
            }),
        ),
    ];
    for (what, token) in wrong {
        let r = app.refresh(&token).await;
        if what == "empty-ish" {
            // DRF trims, then it is blank: a validation error.
            assert!(
                r.code() == 400 || r.code() == 401,
                "{what}\n{}",
                r.describe()
            );
            continue;
        }
        r.assert_unauthorized("token_not_valid");
    }
    let r = app.post_json(REFRESH, &json!({}), None).await;
    r.assert_body(400, &json!({"refresh": [REQUIRED]}));
    // None of that hurt kate's real refresh token.
    app.refresh(&kate.refresh).await.assert_status(200);
}

// ---------------------------------------------------------------------------
// token/verify/
// ---------------------------------------------------------------------------

async fn verify_accepts_valid_tokens(app: TestApp) {
    let liam = app.register("liam").await;
    for token in [&liam.access, &liam.refresh] {
        let r = app.post_json(VERIFY, &json!({"token": token}), None).await;
        r.assert_body(200, &json!({}));
    }
}

async fn verify_rejects_invalid_tokens(app: TestApp) {
    let mia = app.register("mia").await;
    let other_secret = random_secret();
    let wrong = [
        "garbage".to_owned(),
        "abc.def.ghi".to_owned(),
        tamper_signature(&mia.access),
        tamper_signature(&mia.refresh),
        reforge(&other_secret, &mia.access, |_| {}),
        reforge(&app.secret_key, &mia.access, |c| {
            c["iat"] = json!(now_unix() - 7200);
            c["exp"] = json!(now_unix() - 3600);
        }),
    ];
    for token in wrong {
        let r = app.post_json(VERIFY, &json!({"token": token}), None).await;
        r.assert_unauthorized("token_not_valid");
    }
    let r = app.post_json(VERIFY, &json!({}), None).await;
    r.assert_body(400, &json!({"token": [REQUIRED]}));
}

// ---------------------------------------------------------------------------
// logout/
// ---------------------------------------------------------------------------

async fn logout_kills_only_that_refresh_token(app: TestApp) {
    let noah = app.register("noah").await;
    let (_, other_session) = app.login_tokens("noah", &noah.password).await;

    // No Authorization header: the refresh token is the credential.
    let r = app
        .post_json(LOGOUT, &json!({"refresh": noah.refresh}), None)
        .await;
    r.assert_status(205);

    // The other session lives on.
    let r = app.refresh(&other_session).await;
    r.assert_status(200);
    let rotated = r.body["refresh"].as_str().expect("refresh").to_owned();

    // Logging out of the other session works with an access header as well.
    let r = app
        .post_json(LOGOUT, &json!({"refresh": rotated}), Some(&noah.access))
        .await;
    r.assert_status(205);

    // Both logged-out tokens are dead.
    app.refresh(&rotated)
        .await
        .assert_unauthorized("token_not_valid");
    app.refresh(&noah.refresh)
        .await
        .assert_unauthorized("token_not_valid");
}

async fn logged_out_token_is_not_treated_as_reuse(app: TestApp) {
    // API.md: reuse is presenting an *already-rotated* refresh token again;
    // logout only kills "that refresh token" (SimpleJWT's blacklist).
    let opal = app.register("opal").await;
    let (_, other_session) = app.login_tokens("opal", &opal.password).await;
    app.post_json(LOGOUT, &json!({"refresh": opal.refresh}), None)
        .await
        .assert_status(205);
    app.refresh(&opal.refresh)
        .await
        .assert_unauthorized("token_not_valid");
    // Presenting the logged-out token did not end the other session.
    app.refresh(&other_session).await.assert_status(200);
}

async fn logout_rejects_bad_input(app: TestApp) {
    let olga = app.register("olga").await;
    let bad = [
        json!({"refresh": "garbage"}),
        json!({"refresh": tamper_signature(&olga.refresh)}),
        json!({"refresh": olga.access}),
    ];
    for body in bad {
        let r = app.post_json(LOGOUT, &body, None).await;
        assert!(
            r.code() == 400 || r.code() == 401,
            "logout with {body} is 400 or 401\n{}",
            r.describe()
        );
        r.assert_json();
        assert!(
            r.body["detail"].is_string(),
            "has a detail\n{}",
            r.describe()
        );
    }
    let r = app.post_json(LOGOUT, &json!({}), None).await;
    r.assert_status(400).assert_json();

    // Logging out twice: the second time the token is already dead.
    app.post_json(LOGOUT, &json!({"refresh": olga.refresh}), None)
        .await
        .assert_status(205);
    let r = app
        .post_json(LOGOUT, &json!({"refresh": olga.refresh}), None)
        .await;
    assert!(
        r.code() == 400 || r.code() == 401,
        "second logout is 400 or 401\n{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------
// Credentials on protected endpoints
// ---------------------------------------------------------------------------

async fn protected_endpoint_requires_credentials(app: TestApp) {
    let r = app.get(ME, None).await;
    r.assert_body(
        401,
        &json!({"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}),
    );
    r.assert_unauthorized("not_authenticated");
    let r = app.patch_json(ME, &json!({"first_name": "x"}), None).await;
    r.assert_unauthorized("not_authenticated");

    // Other schemes are not credentials here; a bare "Bearer" is refused.
    for header in ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer a b"] {
        let r = app
            .raw(Method::GET, ME, &[("authorization", header)], None)
            .await;
        r.assert_unauthorized_any(&[
            "not_authenticated",
            "token_not_valid",
            "authentication_failed",
        ]);
    }
}

async fn token_signed_with_server_secret_is_accepted(app: TestApp) {
    // Control for the forged-token tests: a token built with the server's
    // key (its UTF-8 bytes, HS256) from a real token's claims is accepted.
    let pam = app.register("pam").await;
    let forged = reforge(&app.secret_key, &pam.access, |c| {
        c["jti"] = json!(uuid::Uuid::new_v4().simple().to_string());
        c["iat"] = json!(now_unix() - 10);
        c["exp"] = json!(now_unix() + 600);
    });
    let r = app.get(ME, Some(&forged)).await;
    r.assert_status(200);
    assert_eq!(r.body["id"], pam.id);
}

async fn protected_endpoint_rejects_bad_tokens(app: TestApp) {
    let quinn = app.register("quinn").await;
    let other_secret = random_secret();
    let none_token = {
        let header = json!({"alg": "none", "typ": "JWT"});
        let forged = forge_jwt_with_header(&app.secret_key, &header, &jwt_claims(&quinn.access));
        let (unsigned, _) = forged.rsplit_once('.').expect("jwt");
        format!("{unsigned}.")
    };
    let hs512_header = forge_jwt_with_header(
        &app.secret_key,
        &json!({"alg": "HS512", "typ": "JWT"}),
        &jwt_claims(&quinn.access),
    );
    let cases = [
        ("garbage", "garbage".to_owned()),
        ("refresh token", quinn.refresh.clone()),
        ("tampered", tamper_signature(&quinn.access)),
        (
            "other secret",
            reforge(&other_secret, &quinn.access, |_| {}),
        ),
        ("alg none", none_token),
        ("wrong alg in header", hs512_header),
        (
            "expired",
            reforge(&app.secret_key, &quinn.access, |c| {
                c["iat"] = json!(now_unix() - 7200);
                c["exp"] = json!(now_unix() - 3600);
            }),
        ),
        (
            "refresh claims signed as access",
            reforge(&app.secret_key, &quinn.access, |c| {
                c["token_type"] = json!("refresh")
            }),
        ),
        (
            "no token_type",
            reforge(&app.secret_key, &quinn.access, |c| {
                c.as_object_mut().expect("claims").remove("token_type");
            }),
        ),
        (
            "no exp",
            reforge(&app.secret_key, &quinn.access, |c| {
                c.as_object_mut().expect("claims").remove("exp");
            }),
        ),
    ];
    for (what, token) in cases {
        let r = app.get(ME, Some(&token)).await;
        assert_eq!(r.code(), 401, "{what}\n{}", r.describe());
        r.assert_unauthorized("token_not_valid");
    }
    // The real token still works.
    app.get(ME, Some(&quinn.access)).await.assert_status(200);
}

async fn deactivated_or_deleted_user_tokens_are_rejected(app: TestApp) {
    let admin = app.create_superuser("admin").await;
    let rita = app.register("rita").await;
    let sam = app.register("sam").await;
    app.get(ME, Some(&rita.access)).await.assert_status(200);

    app.staff_patch_user(&admin, rita.id, &json!({"is_active": false}))
        .await;
    let r = app.get(ME, Some(&rita.access)).await;
    assert_eq!(
        r.code(),
        401,
        "inactive user's access token\n{}",
        r.describe()
    );
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(crate::harness::WWW_AUTHENTICATE)
    );
    assert!(r.body["detail"].is_string(), "{}", r.describe());
    let r = app.refresh(&rita.refresh).await;
    assert_eq!(
        r.code(),
        401,
        "inactive user's refresh token\n{}",
        r.describe()
    );

    app.delete(&format!("/api/users/{}/", sam.id), Some(&admin.access))
        .await
        .assert_status(204);
    let r = app.get(ME, Some(&sam.access)).await;
    assert_eq!(
        r.code(),
        401,
        "deleted user's access token\n{}",
        r.describe()
    );
    assert!(r.body["detail"].is_string(), "{}", r.describe());
    let r = app.refresh(&sam.refresh).await;
    assert_eq!(
        r.code(),
        401,
        "deleted user's refresh token\n{}",
        r.describe()
    );
}

async fn access_token_lifetime_is_configurable(backend: Backend) {
    let app = TestApp::spawn_with_env(
        backend,
        &[("AUTODOCS__AUTH__ACCESS_TOKEN_LIFETIME_SECONDS", "1")],
    )
    .await;
    let tina = app.register("tina").await;
    let claims = jwt_claims(&tina.access);
    assert_eq!(
        claim_i64(&claims, "exp") - claim_i64(&claims, "iat"),
        1,
        "{claims}"
    );
    let refresh_claims = jwt_claims(&tina.refresh);
    assert_eq!(
        claim_i64(&refresh_claims, "exp") - claim_i64(&refresh_claims, "iat"),
        86_400,
        "refresh lifetime unchanged: {refresh_claims}"
    );

    // Once past `exp` (no leeway, as SimpleJWT), the token is refused.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    app.get(ME, Some(&tina.access))
        .await
        .assert_unauthorized("token_not_valid");
    let r = app
        .post_json(VERIFY, &json!({"token": tina.access}), None)
        .await;
    r.assert_unauthorized("token_not_valid");

    // The refresh token still gets a new access token.
    let r = app.refresh(&tina.refresh).await;
    r.assert_status(200);
    let access = r.body["access"].as_str().expect("access");
    let claims = jwt_claims(access);
    assert_eq!(
        claim_i64(&claims, "exp") - claim_i64(&claims, "iat"),
        1,
        "{claims}"
    );
}

// ---------------------------------------------------------------------------
// Stored password hashes
// ---------------------------------------------------------------------------

/// The three parts after the algorithm, with the hash decoded.
#[track_caller]
fn split_hash(encoded: &str) -> (u32, String, Vec<u8>) {
    let parts: Vec<&str> = encoded.split('$').collect();
    assert_eq!(
        parts.len(),
        4,
        "pbkdf2_sha256$<iterations>$<salt>$<hash>: {encoded}"
    );
    assert_eq!(parts[0], "pbkdf2_sha256", "{encoded}");
    let iterations = parts[1]
        .parse()
        .unwrap_or_else(|_| panic!("iterations: {encoded}"));
    let hash =
        crate::harness::b64std_decode(parts[3]).unwrap_or_else(|| panic!("base64 hash: {encoded}"));
    assert!(!parts[2].is_empty(), "salt: {encoded}");
    (iterations, parts[2].to_owned(), hash)
}

async fn password_hash_uses_default_iterations(backend: Backend) {
    // Default hasher settings: no AUTODOCS__AUTH__PASSWORD_ITERATIONS.
    let app =
        TestApp::spawn_configured(backend, &[], &["AUTODOCS__AUTH__PASSWORD_ITERATIONS"]).await;
    let uma = app.register("uma").await;
    let stored = app.db.password_hash("uma");
    assert!(
        stored.starts_with("pbkdf2_sha256$1000000$"),
        "stored hash: {stored}"
    );
    let (iterations, salt, hash) = split_hash(&stored);
    assert_eq!(iterations, 1_000_000);
    assert!(salt.len() >= 16, "salt of at least 16 characters: {stored}");
    assert_eq!(hash.len(), 32, "a 32-byte key: {stored}");
    assert!(
        !stored.contains(&uma.password),
        "the password is not stored"
    );
    app.login("uma", &uma.password).await.assert_status(200);
    app.login("uma", "Wrong-pass-123")
        .await
        .assert_unauthorized("authentication_failed");
}

async fn stored_hash_is_django_pbkdf2(app: TestApp) {
    let vic = app.register("vic").await;
    let stored = app.db.password_hash("vic");
    let (iterations, _, hash) = split_hash(&stored);
    assert_eq!(iterations, 1000, "the configured iterations: {stored}");
    assert_eq!(hash.len(), 32);
    assert!(
        django_hash_matches(&stored, &vic.password),
        "the stored hash is Django's PBKDF2 of the password: {stored}"
    );
    // Every hash has its own salt.
    let wes = app.register("wes").await;
    let other = app.db.password_hash("wes");
    assert_ne!(split_hash(&stored).1, split_hash(&other).1, "salts differ");
    assert!(django_hash_matches(&other, &wes.password));
}

async fn django_hashes_verify_on_login(app: TestApp) {
    // Hashes Django itself made (/work/shared/test-vectors/django-pbkdf2.json).
    let vectors = [
        (
            "xena",
            "correct horse battery staple",
            "pbkdf2_sha256$1000000$Zq1uG5mHkT3vQ8aB2cD4eF$fI/l9Xj8hC+fM7q3jkTPGPGogD3VtiZ9DAcI6sb55eA=",
        ),
        (
            "yuri",
            "pässwörd ✓ unicode",
            "pbkdf2_sha256$600000$saltsaltsaltsaltsalt12$QYjPxqyooAr7OH1vK2Hhs0bltbGCedYiyDBtkWVwl7E=",
        ),
    ];
    for (username, password, encoded) in vectors {
        app.register(username).await;
        app.db.set_password_hash(username, encoded);
        let r = app.login(username, password).await;
        r.assert_status(200);
        assert_eq!(r.body["user"]["username"], username);
        app.login(username, "not-the-password-1")
            .await
            .assert_unauthorized("authentication_failed");
    }
}

async fn weaker_hash_is_upgraded_on_login(backend: Backend) {
    // Default settings (1,000,000 iterations); the stored hash has 870,000.
    let app =
        TestApp::spawn_configured(backend, &[], &["AUTODOCS__AUTH__PASSWORD_ITERATIONS"]).await;
    let zed: Registered = app.register("zed").await;
    let vector =
        "pbkdf2_sha256$870000$abcdefghijklmnopqrstuv$Ixx2pKBzFK8rvO091Nm3pz5QIYabMYiCbYJGRcAu9BI=";
    app.db.set_password_hash("zed", vector);
    assert_eq!(app.db.password_hash("zed"), vector);

    // A wrong password changes nothing.
    app.login("zed", &zed.password)
        .await
        .assert_unauthorized("authentication_failed");
    assert_eq!(
        app.db.password_hash("zed"),
        vector,
        "no upgrade on a failed login"
    );

    app.login("zed", "Bench-pass-123").await.assert_status(200);
    let upgraded = app.db.password_hash("zed");
    assert!(
        upgraded.starts_with("pbkdf2_sha256$1000000$"),
        "rehashed with the configured iterations: {upgraded}"
    );
    let (_, salt, hash) = split_hash(&upgraded);
    assert_eq!(hash.len(), 32, "{upgraded}");
    assert!(!salt.is_empty());
    // The new hash is of the same password.
    app.login("zed", "Bench-pass-123").await.assert_status(200);
    app.login("zed", "Bench-pass-124")
        .await
        .assert_unauthorized("authentication_failed");
}

async fn hash_is_rehashed_with_configured_iterations_on_login(app: TestApp) {
    // With the test setting (1000 iterations), a Django hash of other
    // iterations is rehashed on login, as Django's `must_update` does.
    app.register("yan").await;
    let vector =
        "pbkdf2_sha256$870000$abcdefghijklmnopqrstuv$Ixx2pKBzFK8rvO091Nm3pz5QIYabMYiCbYJGRcAu9BI=";
    app.db.set_password_hash("yan", vector);
    app.login("yan", "Bench-pass-123").await.assert_status(200);
    let rehashed = app.db.password_hash("yan");
    assert!(
        rehashed.starts_with("pbkdf2_sha256$1000$"),
        "rehashed with the configured iterations: {rehashed}"
    );
    assert!(
        django_hash_matches(&rehashed, "Bench-pass-123"),
        "the new hash is Django's PBKDF2 of the same password: {rehashed}"
    );
    app.login("yan@example.com", "Bench-pass-123")
        .await
        .assert_status(200);
}
