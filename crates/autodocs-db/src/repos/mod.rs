//! Implementations of the domain's repository ports.

mod activities;
mod admin_sessions;
mod documents;
mod instance;
mod jobs;
mod missions;
mod paging;
mod plan_steps;
mod refresh_tokens;
mod users;

/// The backend of [`AnyConnection`](crate::connection::AnyConnection), for boxed queries.
pub(crate) type Db = <crate::connection::AnyConnection as diesel::Connection>::Backend;

diesel::define_sql_function! {
    /// SQL `lower()`, for case-insensitive comparisons on both backends.
    fn lower(value: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A `LIKE` pattern matching `needle` anywhere, lower-cased, with the
/// wildcards of the needle escaped (use with `.escape('\\')`).
pub(crate) fn contains_pattern(needle: &str) -> String {
    like_contains(&needle.to_lowercase())
}

/// A `LIKE` pattern matching `needle` anywhere, as it is, with the wildcards
/// of the needle escaped (use with `.escape('\\')`).
pub(crate) fn like_contains(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A SQL `COUNT(*)` as a size (never negative).
pub(crate) fn as_count(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// Parses a JSON object stored as text; anything else reads as empty.
pub(crate) fn json_object(stored: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(stored) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Serialises a JSON object for storage.
pub(crate) fn json_text(map: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(map.clone()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ab%c_d\\"), "%ab\\%c\\_d\\\\%");
    }
}
