//! JSON representations of domain values, as the contract shows them.

use actix_web::{HttpRequest, HttpResponse, ResponseError};
use autodocs_domain::paging::Page;
use autodocs_domain::user::User;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// RFC 3339 in UTC with microseconds, as DRF renders datetimes.
pub fn timestamp(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Micros, true)
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
pub fn paginated<'a, T, V: Serialize>(
    request: &HttpRequest,
    page: &'a Page<T>,
    view: impl FnMut(&'a T) -> V,
) -> PageView<V> {
    let link = |number: u32| {
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
        let base = absolute_url(request, request.path());
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    };
    let next = page.has_next().then(|| link(page.page + 1));
    let previous = page.has_previous().then(|| link(page.page - 1));
    let count = page.count;
    let results: Vec<V> = page.items.iter().map(view).collect();
    PageView {
        count,
        next,
        previous,
        results,
    }
}

/// DRF's page: `{"count", "next", "previous", "results"}`.
#[derive(Serialize)]
pub struct PageView<V> {
    count: u64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<V>,
}

/// A `200 OK` JSON response serialised into a buffer of `capacity` bytes
/// reserved up front (a page of missions grew `to_string`'s buffer eight
/// times, each a copy).
pub fn json_ok(body: &impl Serialize, capacity: usize) -> HttpResponse {
    let mut buffer = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut buffer, body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(actix_web::http::header::ContentType::json())
            .body(buffer),
        // Views hold only strings, numbers and JSON maps: this cannot fail;
        // if it ever did, the client gets the contract's 500 body.
        Err(error) => crate::error::ApiError::Internal(error.to_string()).error_response(),
    }
}

/// About how many bytes one mission of a list renders to.
pub const MISSION_JSON_BYTES: usize = 512;

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

/// A timestamp as DRF renders it: RFC 3339 in UTC with microseconds and a
/// `Z`. Written straight into the response, without chrono's generic
/// formatter (lists render a hundred of them per page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Fills `out` (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); `None` for a year
    /// outside 0..=9999, which has no such fixed-width form.
    fn fixed_width(self, out: &mut [u8; 27]) -> Option<&str> {
        use chrono::{Datelike, Timelike};
        let instant = self.0;
        let year = u32::try_from(instant.year())
            .ok()
            .filter(|year| *year <= 9999)?;
        // A leap second shows as :59.999999-ish second 60 in chrono; DRF
        // never produces one, and RFC 3339 allows second 60 anyway.
        let micros = (instant.nanosecond() % 1_000_000_000) / 1_000;
        let second = instant.second() + instant.nanosecond() / 1_000_000_000;
        let mut put = |at: usize, width: usize, mut value: u32| {
            for index in (at..at + width).rev() {
                out[index] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, instant.month());
        put(8, 2, instant.day());
        put(11, 2, instant.hour());
        put(14, 2, instant.minute());
        put(17, 2, second);
        put(20, 6, micros);
        for (index, separator) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            out[index] = separator;
        }
        std::str::from_utf8(out).ok()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; 27];
        match self.fixed_width(&mut buffer) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&timestamp(self.0)),
        }
    }
}

/// A Mission (list item); the detail adds `plan_steps` and `documents`.
#[derive(Serialize)]
pub struct MissionView<'a> {
    id: i64,
    title: &'a str,
    description: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    priority: &'static str,
    progress: u8,
    owner: i64,
    deadline: Option<Timestamp>,
    started_at: Option<Timestamp>,
    completed_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    steps_total: u64,
    steps_completed: u64,
    document_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_steps: Option<Vec<StepView<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    documents: Option<Vec<DocumentView<'a>>>,
}

/// A Mission (list item).
pub fn mission_json(mission: &autodocs_domain::mission::Mission) -> MissionView<'_> {
    MissionView {
        id: mission.id.0,
        title: mission.title.as_str(),
        description: mission.description.as_str(),
        kind: mission.kind.as_str(),
        status: mission.status.as_str(),
        priority: mission.priority.as_str(),
        progress: mission.progress.value(),
        owner: mission.owner.0,
        deadline: mission.deadline.map(Timestamp),
        started_at: mission.started_at.map(Timestamp),
        completed_at: mission.completed_at.map(Timestamp),
        created_at: Timestamp(mission.created_at),
        updated_at: Timestamp(mission.updated_at),
        steps_total: mission.steps_total,
        steps_completed: mission.steps_completed,
        document_count: mission.document_count,
        plan_steps: None,
        documents: None,
    }
}

/// A Mission with its step tree and documents.
pub fn mission_detail_json<'a>(
    request: &HttpRequest,
    detail: &'a autodocs_domain::usecases::missions::MissionDetail,
) -> MissionView<'a> {
    let base = absolute_url(request, "");
    MissionView {
        plan_steps: Some(detail.plan.roots().iter().map(step_tree_json).collect()),
        documents: Some(
            detail
                .documents
                .iter()
                .map(|document| document_json_at(&base, document))
                .collect(),
        ),
        ..mission_json(&detail.mission)
    }
}

/// An absolute URL of `path`: under `server.public_url` when set, else on
/// the host the request came to (forwarded headers believed only from a
/// trusted proxy; see [`crate::client`]).
pub fn absolute_url(request: &HttpRequest, path: &str) -> String {
    let base = crate::client::ClientPolicy::base_url_of(request);
    format!("{base}{path}")
}

/// A Document.
#[derive(Serialize)]
pub struct DocumentView<'a> {
    id: i64,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    verified: bool,
    verified_at: Option<Timestamp>,
    verification_error: &'a str,
    mission: Option<i64>,
    owner: i64,
    original_filename: &'a str,
    content_type: &'a str,
    size: u64,
    sha256: &'a str,
    download_url: String,
    uploaded_at: Timestamp,
    updated_at: Timestamp,
}

/// A Document, with the absolute URL of its bytes (see [`absolute_url`]).
pub fn document_json<'a>(
    request: &HttpRequest,
    document: &'a autodocs_domain::document::Document,
) -> DocumentView<'a> {
    document_json_at(&absolute_url(request, ""), document)
}

/// A Document, with the URL of its bytes under `base` (scheme and host).
pub fn document_json_at<'a>(
    base: &str,
    document: &'a autodocs_domain::document::Document,
) -> DocumentView<'a> {
    DocumentView {
        id: document.id.0,
        name: document.name.as_str(),
        kind: document.kind.as_str(),
        status: document.status.as_str(),
        verified: document.verified(),
        verified_at: document.verified_at.map(Timestamp),
        verification_error: &document.verification_error,
        mission: document.mission.map(|mission| mission.0),
        owner: document.owner.0,
        original_filename: document.original_filename.as_str(),
        content_type: &document.content_type,
        size: document.size,
        sha256: &document.sha256,
        download_url: format!("{base}/api/documents/{}/download/", document.id),
        uploaded_at: Timestamp(document.uploaded_at),
        updated_at: Timestamp(document.updated_at),
    }
}

/// A PlanStep, with its `children` when rendered as a tree.
#[derive(Serialize)]
pub struct StepView<'a> {
    id: i64,
    mission: i64,
    parent: Option<i64>,
    title: &'a str,
    description: &'a str,
    order: i32,
    status: &'static str,
    action: Value,
    started_at: Option<Timestamp>,
    completed_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<StepView<'a>>>,
}

/// A PlanStep without children.
pub fn step_json(step: &autodocs_domain::plan_step::PlanStep) -> StepView<'_> {
    StepView {
        id: step.id.0,
        mission: step.mission.0,
        parent: step.parent.map(|parent| parent.0),
        title: step.title.as_str(),
        description: step.description.as_str(),
        order: step.order,
        status: step.status.as_str(),
        action: step.action.to_json(),
        started_at: step.started_at.map(Timestamp),
        completed_at: step.completed_at.map(Timestamp),
        created_at: Timestamp(step.created_at),
        updated_at: Timestamp(step.updated_at),
        children: None,
    }
}

/// A PlanStep with its `children`, recursively.
pub fn step_tree_json(
    node: &autodocs_domain::plan_step::StepNode<autodocs_domain::plan_step::PlanStep>,
) -> StepView<'_> {
    StepView {
        children: Some(node.children.iter().map(step_tree_json).collect()),
        ..step_json(&node.item)
    }
}

/// An Activity.
#[derive(Serialize)]
pub struct ActivityView<'a> {
    id: i64,
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
    details: &'a Map<String, Value>,
    user: Option<i64>,
    mission: Option<i64>,
    document: Option<i64>,
    timestamp: Timestamp,
}

/// An Activity.
pub fn activity_json(activity: &autodocs_domain::activity_log::Activity) -> ActivityView<'_> {
    ActivityView {
        id: activity.id.0,
        kind: &activity.kind,
        message: &activity.message,
        details: &activity.details,
        user: activity.user.map(|user| user.0),
        mission: activity.mission.map(|mission| mission.0),
        document: activity.document.map(|document| document.0),
        timestamp: Timestamp(activity.timestamp),
    }
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

    #[test]
    fn timestamps_render_as_drf_does() {
        let cases = [
            "2026-11-29T08:05:03.000042Z",
            "0999-01-01T00:00:00.000000Z",
            "2024-02-29T23:59:59.999999Z",
        ];
        for case in cases {
            let instant: DateTime<Utc> = case.parse().expect("valid");
            assert_eq!(
                serde_json::to_string(&Timestamp(instant)).expect("json"),
                format!("\"{case}\"")
            );
            assert_eq!(timestamp(instant), case);
        }
        let far: DateTime<Utc> = "+12026-01-01T00:00:00Z".parse().expect("valid");
        assert_eq!(
            serde_json::to_value(Timestamp(far)).expect("json"),
            serde_json::Value::String(timestamp(far))
        );
    }
}
