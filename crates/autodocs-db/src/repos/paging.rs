//! The one way a repository serves a page of a list.

use autodocs_domain::paging::{Page, PageRequest, PageResult, PastEnd};
use autodocs_domain::ports::RepoResult;
use diesel::prelude::*;
use diesel::query_dsl::LoadQuery;
use diesel::query_dsl::methods::{LimitDsl, OffsetDsl};

use super::as_count;
use crate::connection::AnyConnection;
use crate::error::OrRepoError;

/// A page of `rows` (a filtered and totally ordered query) as `request`
/// asks for it; `count` counts the same rows. A page past the end reads no
/// row: its count is all the caller reports.
pub(crate) fn paginate<'q, Count, Rows, Row, T>(
    conn: &mut AnyConnection,
    request: &PageRequest,
    count: Count,
    rows: Rows,
    item: impl FnMut(Row) -> RepoResult<T>,
) -> RepoResult<PageResult<T>>
where
    Count: RunQueryDsl<AnyConnection> + LoadQuery<'q, AnyConnection, i64>,
    Rows: LimitDsl,
    Rows::Output: OffsetDsl,
    <Rows::Output as OffsetDsl>::Output:
        RunQueryDsl<AnyConnection> + LoadQuery<'q, AnyConnection, Row>,
{
    let count = as_count(count.get_result(conn).repo()?);
    let Some(page) = request.resolve(count) else {
        return Ok(PageResult::PastEnd(PastEnd { count }));
    };
    let items = rows
        .limit(i64::from(request.page_size()))
        .offset(request.offset_of(page))
        .load(conn)
        .repo()?
        .into_iter()
        .map(item)
        .collect::<RepoResult<Vec<_>>>()?;
    Ok(PageResult::Found(Page {
        count,
        page,
        page_size: request.page_size(),
        items,
    }))
}
