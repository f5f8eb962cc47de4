//! The pages, rendered with maud (every value is HTML-escaped).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::models::ModelLink;
use crate::session::CSRF_FIELD;

/// The site's look: Django admin's layout, in one small stylesheet.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#333;background:#fff}
a{color:#447e9b;text-decoration:none}a:hover{color:#036}
#header{background:#417690;color:#ffc;padding:10px 40px;display:flex;justify-content:space-between;align-items:center}
#header h1{margin:0;font-size:20px;font-weight:400}#header h1 a{color:#f5dd5d}
#user-tools{font-size:12px;text-transform:uppercase;letter-spacing:.5px}
#user-tools form{display:inline}#user-tools button{background:none;border:0;color:#fff;cursor:pointer;font:inherit;text-transform:inherit;text-decoration:underline}
.breadcrumbs{background:#79aec8;color:#c4dce8;padding:10px 40px}.breadcrumbs a{color:#fff}
#content{padding:20px 40px;max-width:1200px}
h1.title{font-size:20px;font-weight:300;margin:0 0 20px}
.module{border:1px solid #eee;margin-bottom:30px}
.module h2,.module caption{background:#79aec8;color:#fff;font-size:13px;font-weight:400;text-align:left;padding:8px;margin:0;text-transform:uppercase;letter-spacing:.5px}
table{border-collapse:collapse;width:100%}td,th{padding:8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{font-weight:600}
.login{max-width:380px;margin:80px auto;border:1px solid #eee;box-shadow:0 2px 8px rgba(0,0,0,.08)}
.login #header{padding:12px 20px}.login form{padding:20px}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;padding:8px;border:1px solid #ccc;border-radius:4px;font:inherit}
button.default,input[type=submit]{background:#417690;color:#fff;border:0;border-radius:4px;padding:10px 16px;margin-top:16px;cursor:pointer;font:inherit}
.errornote{color:#ba2121;border:1px solid #ba2121;border-radius:4px;padding:10px;margin:0 0 10px;background:#fff}
.errorlist{color:#ba2121;margin:4px 0;padding:0;list-style:none}
.count{color:#666;font-size:12px}
"#;

/// A whole page: the header (with the user's tools once signed in), the
/// breadcrumbs and the content.
pub fn layout(title: &str, user: Option<(&str, &str)>, crumbs: &[(&str, &str)], content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="NONE,NOARCHIVE";
                title { (title) " | AutoDocs administration" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                div #header {
                    h1 #site-name { a href="/admin/" { "AutoDocs administration" } }
                    @if let Some((username, csrf)) = user {
                        div #user-tools {
                            "Welcome, " strong { (username) } ". "
                            form #logout-form method="post" action="/admin/logout/" {
                                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                @if !crumbs.is_empty() {
                    div .breadcrumbs {
                        a href="/admin/" { "Home" }
                        @for (label, href) in crumbs {
                            " › "
                            @if href.is_empty() { (label) } @else { a href=(href) { (label) } }
                        }
                    }
                }
                div #content {
                    h1 .title { (title) }
                    (content)
                }
            }
        }
    }
}

/// The login form, with Django's field names and message.
pub fn login(csrf: &str, next: &str, username: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Log in | AutoDocs administration" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                div .login {
                    div #header { h1 #site-name { "AutoDocs administration" } }
                    form #login-form method="post" action="/admin/login/" {
                        @if let Some(error) = error {
                            p .errornote { (error) }
                        }
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="next" value=(next);
                        label for="id_username" { "Username:" }
                        input #id_username type="text" name="username" value=(username)
                            autocomplete="username" autocapitalize="none" autofocus required maxlength="254";
                        label for="id_password" { "Password:" }
                        input #id_password type="password" name="password"
                            autocomplete="current-password" required;
                        button .default type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// What the index shows of one model.
pub struct IndexEntry {
    /// The model and its changelist.
    pub model: ModelLink,
    /// How many objects it holds, when a use case counts them.
    pub count: Option<u64>,
}

/// One line of "Recent actions".
pub struct RecentAction {
    /// When.
    pub when: String,
    /// What kind of change.
    pub kind: String,
    /// Its message.
    pub message: String,
}

/// The index: each model with its count, and the staff member's recent actions.
pub fn index(username: &str, csrf: &str, entries: &[IndexEntry], recent: &[RecentAction]) -> Markup {
    let content = html! {
        div .module #models {
            table {
                caption { "Site administration" }
                @for entry in entries {
                    tr {
                        th scope="row" { a href=(entry.model.changelist()) { (entry.model.plural) } }
                        td .count {
                            @if let Some(count) = entry.count { (count) }
                        }
                    }
                }
            }
        }
        div .module #recent-actions {
            h2 { "My recent actions" }
            @if recent.is_empty() {
                p style="padding:8px" { "None available" }
            } @else {
                table {
                    @for action in recent {
                        tr { td { (action.when) } td { (action.kind) } td { (action.message) } }
                    }
                }
            }
        }
    };
    layout("Site administration", Some((username, csrf)), &[], content)
}

/// The page after logging out.
pub fn logged_out() -> Markup {
    let content = html! {
        p { "Thanks for spending some quality time with the web site today." }
        p { a href="/admin/login/" { "Log in again" } }
    };
    layout("Logged out", None, &[("Logged out", "")], content)
}

/// A page that reports a failure.
pub fn error_page(title: &str, message: &str) -> Markup {
    layout(title, None, &[], html! { p { (message) } })
}

/// Escapes a value for a URL's query string.
pub fn query_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                escaped.push(char::from(byte));
            }
            _ => escaped.push_str(&format!("%{byte:02X}")),
        }
    }
    escaped
}
