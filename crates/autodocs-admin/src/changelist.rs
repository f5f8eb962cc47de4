//! Django admin's changelist, declared per model as data (columns,
//! filters, search, actions) and rendered by one generic view.

use std::collections::BTreeMap;

use autodocs_domain::Services;
use autodocs_domain::user::Principal;
use autodocs_http::error::ApiError;

use crate::models::ModelLink;

/// Rows a changelist shows a page (Django's `list_per_page`).
pub const PER_PAGE: u32 = 100;

/// A column: its heading, and the sort key `?o=` may order it by.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The heading.
    pub label: &'static str,
    /// Whether the column can be ordered by.
    pub sortable: bool,
}

impl Column {
    /// A column `?o=` can order by.
    pub const fn sortable(label: &'static str) -> Self {
        Self {
            label,
            sortable: true,
        }
    }

    /// A column shown as it is.
    pub const fn plain(label: &'static str) -> Self {
        Self {
            label,
            sortable: false,
        }
    }
}

/// A sidebar filter: `?<field>__exact=<value>`.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The field (`status`).
    pub field: &'static str,
    /// Its heading ("By status").
    pub label: &'static str,
    /// `(value, label)` of each choice.
    pub choices: Vec<(String, String)>,
}

impl Filter {
    /// A filter on `field` offering every value of an enum, each labelled
    /// with its wire name in words (`in_progress` reads "in progress").
    pub fn of<T: Copy>(
        field: &'static str,
        label: &'static str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Self {
        Self {
            field,
            label,
            choices: all
                .iter()
                .map(|value| (name(*value).to_owned(), name(*value).replace('_', " ")))
                .collect(),
        }
    }
}

/// An action of the changelist's `<select name="action">`.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    /// The option's value, a verb (`start`).
    pub name: &'static str,
    /// What the option reads.
    pub label: &'static str,
}

/// What a changelist request asks for.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `?q=`: the search.
    pub search: Option<String>,
    /// `?o=`: the column (0-based) to order by, and whether descending.
    pub order: Option<(usize, bool)>,
    /// `?<field>__exact=`: the chosen filter values.
    pub filters: BTreeMap<String, String>,
    /// `?p=`: the page, from 1.
    pub page: u32,
}

impl ListParams {
    /// Reads a changelist's query string; unknown or malformed parameters
    /// are ignored, as a link may be old.
    pub fn parse(query: &BTreeMap<String, String>, columns: &[Column]) -> Self {
        let search = query
            .get("q")
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty());
        // Django writes `o=2.-1`: 1-based columns, dot-separated, `-` for
        // descending; the first one that names a sortable column counts.
        let order = query.get("o").and_then(|o| {
            o.split('.').find_map(|item| {
                let (descending, number) = match item.strip_prefix('-') {
                    Some(number) => (true, number),
                    None => (false, item),
                };
                let index = number.parse::<usize>().ok()?.checked_sub(1)?;
                columns
                    .get(index)
                    .filter(|column| column.sortable)
                    .map(|_| (index, descending))
            })
        });
        let filters = query
            .iter()
            .filter_map(|(key, value)| {
                key.strip_suffix("__exact")
                    .map(|field| (field.to_owned(), value.clone()))
            })
            .collect();
        let page = query
            .get("p")
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        Self {
            search,
            order,
            filters,
            page,
        }
    }

    /// The chosen value of a filter.
    pub fn filter(&self, field: &str) -> Option<&str> {
        self.filters.get(field).map(String::as_str)
    }

    /// This request's query string with `changes` applied (`None` removes
    /// a parameter), for the links of the page.
    pub fn link(&self, changes: &[(&str, Option<String>)]) -> String {
        let mut query: BTreeMap<String, String> = BTreeMap::new();
        if let Some(search) = &self.search {
            query.insert("q".into(), search.clone());
        }
        if let Some((index, descending)) = self.order {
            let sign = if descending { "-" } else { "" };
            query.insert("o".into(), format!("{sign}{}", index + 1));
        }
        for (field, value) in &self.filters {
            query.insert(format!("{field}__exact"), value.clone());
        }
        if self.page > 1 {
            query.insert("p".into(), self.page.to_string());
        }
        for (key, value) in changes {
            match value {
                Some(value) => query.insert((*key).to_owned(), value.clone()),
                None => query.remove(*key),
            };
        }
        if query.is_empty() {
            return "?".to_owned();
        }
        let pairs: Vec<String> = query
            .iter()
            .map(|(key, value)| {
                format!(
                    "{}={}",
                    crate::pages::query_escape(key),
                    crate::pages::query_escape(value)
                )
            })
            .collect();
        format!("?{}", pairs.join("&"))
    }
}

/// One row: the object's id and its cells, in column order.
#[derive(Debug, Clone)]
pub struct Row {
    /// The object's id (its change page, its checkbox).
    pub id: i64,
    /// The cells.
    pub cells: Vec<String>,
}

/// One page of a changelist.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The rows of this page.
    pub rows: Vec<Row>,
    /// How many objects match, on every page.
    pub count: u64,
    /// Sidebar filters whose choices come from the data (the latest
    /// missions), shown after the model's own.
    pub filters: Vec<Filter>,
}

/// What an action did to one selected object.
pub type ActionOutcome = Result<(), String>;

/// What a model's admin shows and offers, declared as data (Django's
/// `ModelAdmin` attributes).
#[derive(Debug)]
pub struct ModelSpec {
    /// Which model, and where its pages live.
    pub link: ModelLink,
    /// What one object is called ("mission").
    pub singular: &'static str,
    /// The changelist's columns; the first links to the change page.
    pub columns: &'static [Column],
    /// The actions of the changelist.
    pub actions: &'static [Action],
    /// What `?q=` searches, for the search box's hint.
    pub search_help: &'static str,
    /// Whether `delete_selected` is offered (after a confirmation page).
    pub deletes: bool,
}

/// A model's admin: its [`ModelSpec`], and the use cases behind its
/// changelist.
pub trait ModelAdmin: Sync {
    /// What it shows and offers.
    fn spec(&self) -> &'static ModelSpec;
    /// The sidebar filters.
    fn filters(&self) -> Vec<Filter> {
        Vec::new()
    }
    /// One page of the changelist.
    fn list(
        &self,
        services: &Services,
        staff: Principal,
        params: &ListParams,
    ) -> Result<ListPage, ApiError>;
    /// Runs `action` on one object; `Err` is the refusal to report.
    fn act(
        &self,
        _services: &Services,
        _staff: Principal,
        _action: &str,
        _id: i64,
    ) -> ActionOutcome {
        Err("this list has no actions".into())
    }

    /// An action that leads somewhere rather than changing rows (a
    /// download): where to, or why not; `None` for every other action.
    fn navigate(&self, _action: &str, _selected: &[i64]) -> Option<Result<String, String>> {
        None
    }

    /// Deletes one object through its use case.
    fn delete(&self, _services: &Services, _staff: Principal, _id: i64) -> ActionOutcome {
        Err("cannot be deleted here".into())
    }
}

/// Django's name of the deletion action.
pub const DELETE_SELECTED: &str = "delete_selected";
