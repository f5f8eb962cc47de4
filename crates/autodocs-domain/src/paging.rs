//! Page-number pagination: 1-based pages of a bounded size, counted over
//! the whole filtered list.

use crate::validation::InvalidValue;

/// Which page of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u32,
    page_size: u32,
}

impl PageRequest {
    /// Page size when the client gives none.
    pub const DEFAULT_SIZE: u32 = 20;
    /// Largest page size a client may ask for.
    pub const MAX_SIZE: u32 = 100;

    /// Parses `?page=` and `?page_size=`. A non-numeric or zero page is
    /// refused (a 404 at the HTTP edge); a page size above the maximum is
    /// clamped.
    ///
    /// ```
    /// use autodocs_domain::paging::PageRequest;
    ///
    /// let request = PageRequest::parse(Some("2"), Some("500"))?;
    /// assert_eq!((request.page(), request.page_size()), (2, PageRequest::MAX_SIZE));
    /// assert!(PageRequest::parse(Some("0"), None).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(page: Option<&str>, page_size: Option<&str>) -> Result<Self, PageError> {
        let page = match page {
            None | Some("") => 1,
            Some("last") => u32::MAX,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(PageError::InvalidPage),
            },
        };
        let page_size = match page_size {
            None | Some("") => Self::DEFAULT_SIZE,
            Some(raw) => match raw.parse::<u64>() {
                Ok(0) => return Err(PageError::InvalidSize(InvalidValue::at_least(1))),
                Ok(n) => n.min(u64::from(Self::MAX_SIZE)) as u32,
                Err(_) => {
                    return Err(PageError::InvalidSize(InvalidValue::new(
                        "A valid integer is required.",
                    )));
                }
            },
        };
        Ok(Self { page, page_size })
    }

    /// A page request from numbers; the size is clamped to `1..=MAX_SIZE`.
    pub fn new(page: u32, page_size: u32) -> Self {
        Self {
            page: page.max(1),
            page_size: page_size.clamp(1, Self::MAX_SIZE),
        }
    }

    /// The 1-based page number (`u32::MAX` means "the last page").
    pub fn page(&self) -> u32 {
        self.page
    }

    /// Items per page.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The page number actually served for a list of `count` items, or
    /// `None` when the page is past the end (page 1 always exists).
    pub fn resolve(&self, count: u64) -> Option<u32> {
        let pages = count.div_ceil(u64::from(self.page_size)).max(1);
        let page = if self.page == u32::MAX {
            pages
        } else {
            u64::from(self.page)
        };
        (page <= pages).then_some(page as u32)
    }

    /// Rows to skip for a resolved page.
    pub fn offset_of(&self, page: u32) -> i64 {
        i64::from(page.saturating_sub(1)) * i64::from(self.page_size)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: Self::DEFAULT_SIZE,
        }
    }
}

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The page number is not a positive integer or is past the end.
    #[error("Invalid page.")]
    InvalidPage,
    /// The page size is not a positive integer.
    #[error("{0}")]
    InvalidSize(InvalidValue),
}

/// What a list query finds: the requested page, or nothing because the
/// requested page lies past the end of the list.
#[derive(Debug, Clone, PartialEq)]
pub enum PageResult<T> {
    /// The requested page (page 1 of an empty list is found, and empty).
    Found(Page<T>),
    /// The requested page lies past the end of the list.
    PastEnd(PastEnd),
}

impl<T> PageResult<T> {
    /// The page, or why there is none.
    ///
    /// ```
    /// use autodocs_domain::paging::{Page, PageResult, PastEnd};
    ///
    /// let past: PageResult<u8> = PageResult::PastEnd(PastEnd { count: 3 });
    /// assert_eq!(past.found(), Err(PastEnd { count: 3 }));
    /// let page = Page { count: 1, page: 1, page_size: 20, items: vec![7_u8] };
    /// assert_eq!(PageResult::Found(page.clone()).found(), Ok(page));
    /// ```
    pub fn found(self) -> Result<Page<T>, PastEnd> {
        match self {
            PageResult::Found(page) => Ok(page),
            PageResult::PastEnd(past_end) => Err(past_end),
        }
    }

    /// Converts every item of a found page.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PageResult<U> {
        match self {
            PageResult::Found(page) => PageResult::Found(page.map(f)),
            PageResult::PastEnd(past_end) => PageResult::PastEnd(past_end),
        }
    }
}

/// A requested page lies past the end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the page lies past the end of a list of {count} items")]
pub struct PastEnd {
    /// How many items the whole (filtered) list holds.
    pub count: u64,
}

/// One page of a list and the size of the whole list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// How many items the whole (filtered) list holds.
    pub count: u64,
    /// The page number served.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// The items of this page.
    pub items: Vec<T>,
}

impl<T> Page<T> {
    /// Whether a later page exists.
    pub fn has_next(&self) -> bool {
        u64::from(self.page) * u64::from(self.page_size) < self.count
    }

    /// Whether an earlier page exists.
    pub fn has_previous(&self) -> bool {
        self.page > 1
    }

    /// Converts every item.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            count: self.count,
            page: self.page,
            page_size: self.page_size,
            items: self.items.into_iter().map(f).collect(),
        }
    }
}

/// A field a list can be sorted by, as named in `?ordering=`.
pub trait SortKey: Copy + Eq + 'static {
    /// Every sortable field, in the order the documentation lists them.
    const KEYS: &'static [Self];

    /// The field name as written in `?ordering=`.
    fn name(self) -> &'static str;
}

/// One item of `?ordering=`: a field, ascending or (with a leading `-`)
/// descending. `K` is the list's [`SortKey`]; each list names its own
/// alias (`MissionOrderField`, ...) and default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderField<K> {
    /// The field to sort by.
    pub field: K,
    /// Whether the item had a leading `-`.
    pub descending: bool,
}

impl<K: SortKey> OrderField<K> {
    /// Parses one item such as `title` or `-deadline` (surrounding spaces
    /// ignored); an unknown field is an invalid choice.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let item = raw.trim();
        if item.is_empty() {
            return Err(InvalidValue::blank());
        }
        let (descending, name) = match item.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, item),
        };
        let field = K::KEYS
            .iter()
            .copied()
            .find(|key| key.name() == name)
            .ok_or_else(|| InvalidValue::invalid_choice(item))?;
        Ok(Self { field, descending })
    }

    /// Parses a whole comma-separated `?ordering=` value; empty items are
    /// skipped (so an empty value gives an empty list: the list's default
    /// applies). A field named again is dropped: rows the first mention
    /// leaves tied are equal in that field, so a repeat (in either
    /// direction) cannot change the order. The list is thus never longer
    /// than [`SortKey::KEYS`], whatever a client sends.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, InvalidValue> {
        let mut items: Vec<Self> = Vec::with_capacity(K::KEYS.len());
        for item in raw.split(',').filter(|item| !item.trim().is_empty()) {
            let item = Self::parse(item)?;
            if !items.iter().any(|seen| seen.field == item.field) {
                items.push(item);
            }
        }
        Ok(items)
    }
}

impl<K: SortKey> std::fmt::Display for OrderField<K> {
    /// The item as written in `?ordering=`, e.g. `-priority`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.descending {
            f.write_str("-")?;
        }
        f.write_str(self.field.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Key {
        A,
        B,
    }

    impl SortKey for Key {
        const KEYS: &'static [Self] = &[Key::A, Key::B];

        fn name(self) -> &'static str {
            match self {
                Key::A => "a",
                Key::B => "b",
            }
        }
    }

    #[test]
    fn ordering_lists_name_each_field_once() {
        let field = |field, descending| OrderField { field, descending };
        assert_eq!(
            OrderField::<Key>::parse_list(" -b, a ,, b,-a,a"),
            Ok(vec![field(Key::B, true), field(Key::A, false)])
        );
        let long = ["a", "-b"].repeat(10_000).join(",");
        assert_eq!(OrderField::<Key>::parse_list(&long).map(|l| l.len()), Ok(2));
        assert!(OrderField::<Key>::parse_list("a,c").is_err());
        assert!(OrderField::<Key>::parse_list("--a").is_err());
        assert_eq!(field(Key::B, true).to_string(), "-b");
    }

    #[test]
    fn parsing() {
        assert_eq!(PageRequest::parse(None, None), Ok(PageRequest::new(1, 20)));
        assert_eq!(
            PageRequest::parse(Some("3"), Some("500")),
            Ok(PageRequest::new(3, 100))
        );
        assert_eq!(
            PageRequest::parse(Some("0"), None),
            Err(PageError::InvalidPage)
        );
        assert_eq!(
            PageRequest::parse(Some("x"), None),
            Err(PageError::InvalidPage)
        );
        assert!(matches!(
            PageRequest::parse(None, Some("0")),
            Err(PageError::InvalidSize(_))
        ));
        assert!(matches!(
            PageRequest::parse(None, Some("-1")),
            Err(PageError::InvalidSize(_))
        ));
    }

    #[test]
    fn resolving() {
        let request = PageRequest::new(3, 20);
        assert_eq!(request.resolve(57), Some(3));
        assert_eq!(request.resolve(40), None);
        assert_eq!(PageRequest::new(1, 20).resolve(0), Some(1));
        assert_eq!(
            PageRequest::parse(Some("last"), None).map(|r| r.resolve(57)),
            Ok(Some(3))
        );
        assert_eq!(request.offset_of(3), 40);
    }

    #[test]
    fn neighbours() {
        let page = Page {
            count: 57,
            page: 2,
            page_size: 20,
            items: vec![()],
        };
        assert!(page.has_next() && page.has_previous());
        let last = Page {
            count: 57,
            page: 3,
            page_size: 20,
            items: vec![()],
        };
        assert!(!last.has_next());
    }
}
