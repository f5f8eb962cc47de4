//! JSON representations of domain values, as the contract shows them.

use actix_web::HttpRequest;
use autodocs_domain::paging::Page;
use autodocs_domain::user::User;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// RFC 3339 in UTC with microseconds, as DRF renders datetimes.
pub fn timestamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Optional timestamp.
pub fn maybe_timestamp(instant: Option<DateTime<Utc>>) -> Value {
    instant.map_or(Value::Null, |instant| Value::String(timestamp(instant)))
}

/// The `profile` of a User.
#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    phone: String,
    organization: String,
    bio: String,
    timezone: String,
    #[schema(value_type = Object)]
    preferences: Map<String, Value>,
}

/// A User.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    is_staff: bool,
    date_joined: String,
    last_login: Option<String>,
    profile: ProfileView,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id.0,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            is_staff: user.is_staff,
            date_joined: timestamp(user.date_joined),
            last_login: user.last_login.map(timestamp),
            profile: ProfileView {
                phone: user.profile.phone,
                organization: user.profile.organization,
                bio: user.profile.bio,
                timezone: user.profile.timezone,
                preferences: user.profile.preferences,
            },
        }
    }
}

/// Renders a page as DRF's `{"count", "next", "previous", "results"}`,
/// with absolute links that keep the request's other query parameters.
pub fn paginated<T, V: Serialize>(
    request: &HttpRequest,
    page: Page<T>,
    view: impl FnMut(T) -> V,
) -> Value {
    let link = |number: u32| {
        let info = request.connection_info();
        let mut pairs: Vec<(String, String)> = url_pairs(request.query_string())
            .into_iter()
            .filter(|(key, _)| key != "page")
            .collect();
        if number > 1 {
            pairs.push(("page".into(), number.to_string()));
        }
        let query = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let base = format!("{}://{}{}", info.scheme(), info.host(), request.path());
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    };
    let next = page.has_next().then(|| link(page.page + 1));
    let previous = page.has_previous().then(|| link(page.page - 1));
    let count = page.count;
    let results: Vec<V> = page.items.into_iter().map(view).collect();
    json!({"count": count, "next": next, "previous": previous, "results": results})
}

/// The decoded key/value pairs of a query string.
pub fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => match (hex(bytes[index + 1]), hex(bytes[index + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    index += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

fn encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b',') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Mission (list item); the detail adds `plan_steps` and `documents`.
pub fn mission_json(mission: &autodocs_domain::mission::Mission) -> Value {
    json!({
        "id": mission.id,
        "title": mission.title.as_str(),
        "description": mission.description.as_str(),
        "type": mission.kind.as_str(),
        "status": mission.status.as_str(),
        "priority": mission.priority.as_str(),
        "progress": mission.progress.value(),
        "owner": mission.owner.0,
        "deadline": maybe_timestamp(mission.deadline),
        "started_at": maybe_timestamp(mission.started_at),
        "completed_at": maybe_timestamp(mission.completed_at),
        "created_at": timestamp(mission.created_at),
        "updated_at": timestamp(mission.updated_at),
        "steps_total": mission.steps_total,
        "steps_completed": mission.steps_completed,
        "document_count": mission.document_count,
    })
}

/// A Mission with its step tree and documents.
pub fn mission_detail_json(
    request: &HttpRequest,
    detail: &autodocs_domain::usecases::missions::MissionDetail,
) -> Value {
    let mut body = mission_json(&detail.mission);
    if let Value::Object(map) = &mut body {
        let steps: Vec<Value> = detail.plan.roots().iter().map(step_tree_json).collect();
        map.insert("plan_steps".into(), Value::Array(steps));
        let documents: Vec<Value> = detail
            .documents
            .iter()
            .map(|document| document_json(request, document))
            .collect();
        map.insert("documents".into(), Value::Array(documents));
    }
    body
}

/// An absolute URL of `path` on the host the request came to.
pub fn absolute_url(request: &HttpRequest, path: &str) -> String {
    let info = request.connection_info();
    format!("{}://{}{path}", info.scheme(), info.host())
}

/// A Document, with the absolute URL of its bytes on the host the request came to.
pub fn document_json(
    request: &HttpRequest,
    document: &autodocs_domain::document::Document,
) -> Value {
    document_json_at(&absolute_url(request, ""), document)
}

/// A Document, with the URL of its bytes under `base` (scheme and host).
pub fn document_json_at(base: &str, document: &autodocs_domain::document::Document) -> Value {
    json!({
        "id": document.id,
        "name": document.name.as_str(),
        "type": document.kind.as_str(),
        "status": document.status.as_str(),
        "verified": document.verified(),
        "verified_at": maybe_timestamp(document.verified_at),
        "verification_error": document.verification_error,
        "mission": document.mission,
        "owner": document.owner.0,
        "original_filename": document.original_filename.as_str(),
        "content_type": document.content_type,
        "size": document.size,
        "sha256": document.sha256,
        "download_url": format!("{base}/api/documents/{}/download/", document.id),
        "uploaded_at": timestamp(document.uploaded_at),
        "updated_at": timestamp(document.updated_at),
    })
}

/// A PlanStep without children.
pub fn step_json(step: &autodocs_domain::plan_step::PlanStep) -> Value {
    json!({
        "id": step.id,
        "mission": step.mission,
        "parent": step.parent,
        "title": step.title.as_str(),
        "description": step.description.as_str(),
        "order": step.order,
        "status": step.status.as_str(),
        "action": step.action.to_json(),
        "started_at": maybe_timestamp(step.started_at),
        "completed_at": maybe_timestamp(step.completed_at),
        "created_at": timestamp(step.created_at),
        "updated_at": timestamp(step.updated_at),
    })
}

/// A PlanStep with its `children`, recursively.
pub fn step_tree_json(
    node: &autodocs_domain::plan_step::StepNode<autodocs_domain::plan_step::PlanStep>,
) -> Value {
    let mut body = step_json(&node.item);
    if let Value::Object(map) = &mut body {
        map.insert(
            "children".into(),
            Value::Array(node.children.iter().map(step_tree_json).collect()),
        );
    }
    body
}

/// An Activity.
pub fn activity_json(activity: &autodocs_domain::activity_log::Activity) -> Value {
    json!({
        "id": activity.id,
        "type": activity.kind,
        "message": activity.message,
        "details": activity.details,
        "user": activity.user.map(|user| user.0),
        "mission": activity.mission,
        "document": activity.document,
        "timestamp": timestamp(activity.timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_round_trip() {
        assert_eq!(
            url_pairs("a=1&b=x%20y&c=p+q&d"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "p q".into()),
                ("d".into(), "".into())
            ]
        );
        assert_eq!(
            url_pairs("bad=%zz&t=%4"),
            vec![("bad".into(), "%zz".into()), ("t".into(), "%4".into())]
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
