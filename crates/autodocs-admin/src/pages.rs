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
.messagelist{list-style:none;padding:0;margin:0 0 16px}.messagelist li{background:#dfd;padding:8px 12px;margin-bottom:4px;border-radius:4px}
.changelist-body{display:flex;gap:20px;align-items:flex-start}#changelist-form{flex:1;min-width:0}
#changelist-filter{width:220px;border:1px solid #eee;padding:0 12px 12px}#changelist-filter h2{font-size:13px;text-transform:uppercase;margin:12px 0}
#changelist-filter h3{font-size:13px;margin:12px 0 4px}#changelist-filter ul{list-style:none;margin:0;padding:0}#changelist-filter li.selected a{color:#333;font-weight:600}
#changelist-search{margin-bottom:12px;display:flex;gap:6px;align-items:center}#changelist-search input[type=text]{width:320px;padding:6px;border:1px solid #ccc;border-radius:4px}#changelist-search input[type=submit]{margin:0;padding:6px 14px}
.actions{background:#f8f8f8;padding:8px;border:1px solid #eee;margin-bottom:0}select{padding:4px}.button{padding:4px 12px;margin-left:6px}
.paginator{padding:8px 0}.this-page{font-weight:700}.visually-hidden{position:absolute;left:-9999px}
textarea{width:100%;min-height:80px;padding:8px;border:1px solid #ccc;border-radius:4px;font:inherit}
.form-row{padding:8px 12px;border-bottom:1px solid #eee}.readonly{color:#555}.submit-row{padding:12px;background:#f8f8f8;border:1px solid #eee;text-align:right}
"#;

/// Every page's `<head>`: its title and the stylesheet.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="robots" content="NONE,NOARCHIVE";
            title { (title) " | AutoDocs administration" }
            style { (PreEscaped(STYLE)) }
        }
    }
}

/// A whole page: the header (with the user's tools once signed in), the
/// breadcrumbs and the content.
pub fn layout(
    title: &str,
    user: Option<(&str, &str)>,
    crumbs: &[(&str, &str)],
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
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
            (head("Log in"))
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
pub fn index(
    username: &str,
    csrf: &str,
    entries: &[IndexEntry],
    recent: &[RecentAction],
) -> Markup {
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

/// Undoes [`query_escape`] (and `+` for a space, as forms send it);
/// malformed escapes are kept as they are.
pub fn query_unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything a changelist page shows.
pub struct ChangelistView<'a> {
    /// The staff member and their CSRF token.
    pub user: (&'a str, &'a str),
    /// The model.
    pub model: crate::models::ModelLink,
    /// One object's name.
    pub singular: &'a str,
    /// The columns.
    pub columns: &'a [crate::changelist::Column],
    /// The sidebar filters.
    pub filters: &'a [crate::changelist::Filter],
    /// The actions.
    pub actions: &'a [crate::changelist::Action],
    /// What the search searches.
    pub search_help: &'a str,
    /// The request.
    pub params: &'a crate::changelist::ListParams,
    /// The rows.
    pub page: &'a crate::changelist::ListPage,
    /// Messages of the last action.
    pub messages: &'a [String],
    /// Whether rows link to a change page.
    pub linked: bool,
    /// Whether `delete_selected` is offered.
    pub deletes: bool,
}

/// A changelist: search, filters, actions, sortable headers, rows, pages.
pub fn changelist(view: &ChangelistView<'_>) -> Markup {
    let params = view.params;
    let pages = view
        .page
        .count
        .div_ceil(u64::from(crate::changelist::PER_PAGE))
        .max(1);
    let title = format!("Select {} to change", view.singular);
    // "1 mission", "2 missions", as Django counts.
    let counted = if view.page.count == 1 {
        format!("1 {}", view.singular)
    } else {
        format!("{} {}", view.page.count, view.model.plural.to_lowercase())
    };
    let content = html! {
        @if !view.messages.is_empty() {
            ul .messagelist {
                @for message in view.messages { li { (message) } }
            }
        }
        div #changelist {
            form #changelist-search method="get" {
                input #searchbar type="text" name="q" value=(params.search.as_deref().unwrap_or(""))
                    placeholder=(format!("Search {}", view.search_help)) size="40";
                @for (field, value) in &params.filters {
                    input type="hidden" name=(format!("{field}__exact")) value=(value);
                }
                input type="submit" value="Search";
            }
            div .changelist-body {
                form #changelist-form method="post" {
                    input type="hidden" name=(CSRF_FIELD) value=(view.user.1);
                    div .actions {
                        label { "Action: "
                            select name="action" {
                                option value="" selected { "---------" }
                                @if view.deletes {
                                    option value=(crate::changelist::DELETE_SELECTED) { "Delete selected " (view.model.plural.to_lowercase()) }
                                }
                                @for action in view.actions {
                                    option value=(action.name) { (action.label) }
                                }
                            }
                        }
                        button .button type="submit" name="index" value="0" title="Run the selected action" { "Go" }
                        span .count { " " (counted) }
                    }
                    table #result_list {
                        thead {
                            tr {
                                th { span .visually-hidden { "Select" } }
                                @for (index, column) in view.columns.iter().enumerate() {
                                    th scope="col" {
                                        @if column.sortable {
                                            @let descending = params.order == Some((index, false));
                                            @let sign = if descending { "-" } else { "" };
                                            a href=(params.link(&[("o", Some(format!("{sign}{}", index + 1))), ("p", None)])) {
                                                (column.label)
                                                @if let Some((ordered, desc)) = params.order {
                                                    @if ordered == index { @if desc { " ▼" } @else { " ▲" } }
                                                }
                                            }
                                        } @else {
                                            (column.label)
                                        }
                                    }
                                }
                            }
                        }
                        tbody {
                            @for row in &view.page.rows {
                                tr {
                                    td { input type="checkbox" name="_selected_action" value=(row.id) aria-label=(format!("Select {} {}", view.singular, row.id)); }
                                    @for (index, cell) in row.cells.iter().enumerate() {
                                        @if index == 0 && view.linked {
                                            th { a href=(format!("{}{}/change/", view.model.changelist(), row.id)) { (cell) } }
                                        } @else if index == 0 {
                                            th { (cell) }
                                        } @else {
                                            td { (cell) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p .paginator {
                        @for number in 1..=pages {
                            @if u64::from(params.page) == number {
                                span .this-page { (number) } " "
                            } @else {
                                a href=(params.link(&[("p", Some(number.to_string()))])) { (number) } " "
                            }
                        }
                        (counted)
                    }
                }
                nav #changelist-filter {
                    h2 { "Filter" }
                    @for filter in view.filters.iter().chain(&view.page.filters) {
                        h3 { (filter.label) }
                        ul {
                            li .selected[params.filter(filter.field).is_none()] {
                                a href=(params.link(&[(&format!("{}__exact", filter.field), None), ("p", None)])) { "All" }
                            }
                            @for (value, label) in &filter.choices {
                                li .selected[params.filter(filter.field) == Some(value.as_str())] {
                                    a href=(params.link(&[(&format!("{}__exact", filter.field), Some(value.clone())), ("p", None)])) { (label) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&title, Some(view.user), &[(view.model.plural, "")], content)
}

fn field_errors(errors: &crate::change::FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(error) = errors.get(field) {
            ul .errorlist id=(format!("{field}_error")) { li { (error) } }
        }
    }
}

fn steps_list(
    nodes: &[autodocs_domain::plan_step::StepNode<autodocs_domain::plan_step::PlanStep>],
) -> Markup {
    html! {
        ul {
            @for node in nodes {
                li {
                    (node.item.title.as_str()) " — " (node.item.status.as_str())
                    @if !node.children.is_empty() { (steps_list(&node.children)) }
                }
            }
        }
    }
}

/// What a mission's change page shows below its form: its plan, its
/// documents and its last activities.
pub fn mission_extra(
    detail: &autodocs_domain::usecases::missions::MissionDetail,
    activities: &[autodocs_domain::activity_log::Activity],
) -> Markup {
    let when = crate::missions::when;
    html! {
        div .module #plan {
            h2 { "Plan" }
            @if detail.plan.roots().is_empty() {
                p style="padding:8px" { "No steps." }
            } @else {
                (steps_list(detail.plan.roots()))
            }
        }
        div .module #documents {
            h2 { "Documents" }
            @if detail.documents.is_empty() {
                p style="padding:8px" { "No documents." }
            } @else {
                table {
                    @for document in &detail.documents {
                        tr {
                            td { (document.name.as_str()) }
                            td { (document.status.to_string()) }
                            td { (document.size) " bytes" }
                        }
                    }
                }
            }
        }
        div .module #activities {
            h2 { "Last activities" }
            @if activities.is_empty() {
                p style="padding:8px" { "None." }
            } @else {
                table {
                    @for activity in activities {
                        tr { td { (when(activity.timestamp)) } td { (activity.kind) } td { (activity.message) } }
                    }
                }
            }
        }
    }
}

/// A change page: the form (refusals next to their fields), the read-only
/// facts and what more the model shows.
pub fn change(
    user: (&str, &str),
    model: crate::models::ModelLink,
    singular: &str,
    view: &crate::change::ChangeView,
    errors: &crate::change::FieldErrors,
) -> Markup {
    use crate::change::Input;

    let title = format!("Change {singular}: {}", view.name);
    let content = html! {
        @if !errors.is_empty() {
            p .errornote { "Please correct the errors below." }
            @if let Some(general) = errors.get("") { p .errornote { (general) } }
        }
        form #change_form method="post" {
            input type="hidden" name=(CSRF_FIELD) value=(user.1);
            div .module {
                h2 { (singular) }
                @for field in &view.fields {
                    @let id = format!("id_{}", field.name);
                    div .form-row {
                        @match &field.input {
                            Input::Checkbox => {
                                (field_errors(errors, field.name))
                                label for=(id) {
                                    input id=(id) type="checkbox" name=(field.name) checked[field.value == "on"];
                                    " " (field.label)
                                }
                            }
                            input => {
                                label for=(id) { (field.label) ":" }
                                (field_errors(errors, field.name))
                                @match input {
                                    Input::TextArea => { textarea id=(id) name=(field.name) { (field.value) } }
                                    Input::Select(options) => {
                                        select id=(id) name=(field.name) {
                                            @for (value, label) in options {
                                                option value=(value) selected[field.value == *value] { (label) }
                                            }
                                        }
                                    }
                                    _ => { input id=(id) type="text" name=(field.name) value=(field.value); }
                                }
                            }
                        }
                    }
                }
            }
            div .module {
                h2 { "Read-only" }
                table {
                    @for (label, value) in &view.readonly {
                        tr { th { (label) } td .readonly { (value) } }
                    }
                }
            }
            div .submit-row {
                input type="submit" value="Save" name="_save";
            }
        }
        @if let Some(extra) = &view.extra { (extra) }
    };
    layout(
        &title,
        Some(user),
        &[(model.plural, &model.changelist()), (&view.name, "")],
        content,
    )
}

/// Django's "Are you sure?" page before `delete_selected`.
pub fn delete_confirmation(
    user: (&str, &str),
    model: crate::models::ModelLink,
    singular: &str,
    selected: &[i64],
) -> Markup {
    let content = html! {
        p { "Are you sure you want to delete the selected " (model.plural.to_lowercase()) "? All of the following objects and what belongs to them will be deleted:" }
        ul {
            @for id in selected {
                li { a href=(format!("{}{id}/change/", model.changelist())) { (singular) " #" (id) } }
            }
        }
        form method="post" {
            input type="hidden" name=(CSRF_FIELD) value=(user.1);
            input type="hidden" name="action" value=(crate::changelist::DELETE_SELECTED);
            input type="hidden" name="post" value="yes";
            @for id in selected {
                input type="hidden" name="_selected_action" value=(id);
            }
            input type="submit" value="Yes, I’m sure";
            " "
            a href=(model.changelist()) { "No, take me back" }
        }
    };
    layout(
        "Are you sure?",
        Some(user),
        &[
            (model.plural, &model.changelist()),
            ("Delete multiple objects", ""),
        ],
        content,
    )
}

/// The link to a document's file, on its change page.
pub fn download_link(document: i64) -> Markup {
    html! {
        p .download {
            a href=(format!("/admin/documents/document/{document}/download/")) { "Download the file" }
        }
    }
}
