//! Route handlers, one module per section of the contract.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use autodocs_domain::paging::{OrderField, PageError, PageRequest, SortKey};
use autodocs_domain::user::UserId;
use autodocs_domain::validation::{InvalidValue, ValidationErrors};

use crate::error::ApiError;
use crate::views::url_pairs;

pub mod activities;
pub mod apidocs;
pub mod auth;
pub mod documents;
pub mod missions;
pub mod ops;
pub mod steps;
pub mod users;
pub mod ws;

/// The decoded query string of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
}

impl ListQuery {
    /// The last value given for a key (as Django's `QueryDict.get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// Comma-separated values of a key, every occurrence, blanks dropped.
    pub fn list(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(name, _)| name == key)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }
}

impl ListQuery {
    /// Parses a raw query string.
    pub fn from_query_string(query: &str) -> Self {
        ListQuery {
            pairs: url_pairs(query),
        }
    }
}

impl FromRequest for ListQuery {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = ListQuery::from_query_string(request.query_string());
        // Databases refuse NUL in text (PostgreSQL errors): refuse it here, as DRF does.
        let mut errors = ValidationErrors::new();
        for (key, value) in &query.pairs {
            if value.contains('\0') {
                errors.add(key.clone(), "Null characters are not allowed.");
            }
        }
        ready(errors.into_result().map(|()| query).map_err(ApiError::from))
    }
}

/// The page a list asks for; a bad page size is a field error, a bad page a 404.
pub fn page_request(
    query: &ListQuery,
    errors: &mut ValidationErrors,
) -> Result<PageRequest, ApiError> {
    match PageRequest::parse(query.get("page"), query.get("page_size")) {
        Ok(page) => Ok(page),
        Err(PageError::InvalidPage) => Err(ApiError::InvalidPage),
        Err(PageError::InvalidSize(error)) => {
            errors.add("page_size", error);
            Ok(PageRequest::default())
        }
    }
}

/// A list's `?ordering=`: empty when absent or blank (the list's default
/// applies), an error keyed `ordering` when an item is not a field of `K`.
pub fn ordering<K: SortKey>(
    query: &ListQuery,
    errors: &mut ValidationErrors,
) -> Vec<OrderField<K>> {
    query
        .get("ordering")
        .filter(|raw| !raw.trim().is_empty())
        .and_then(|raw| errors.check("ordering", OrderField::parse_list(raw)))
        .unwrap_or_default()
}

/// An id filter such as `?mission=`: absent or empty when not given, an
/// error keyed `key` when it is not a number.
pub fn id_filter(query: &ListQuery, key: &str, errors: &mut ValidationErrors) -> Option<i64> {
    let raw = query.get(key).filter(|raw| !raw.is_empty())?;
    errors.check(
        key,
        raw.parse::<i64>()
            .map_err(|_| InvalidValue::new("Enter a number.")),
    )
}

/// The staff-only `?owner=` filter: parsed for everyone (a bad value is a
/// 400), applied by the use case for staff only.
pub fn owner_filter(query: &ListQuery, errors: &mut ValidationErrors) -> Option<UserId> {
    id_filter(query, "owner", errors).map(UserId)
}

/// An object id from the path; anything that is not one is a 404, as an
/// unmatched DRF route would be.
pub fn object_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::NotFound)
}
