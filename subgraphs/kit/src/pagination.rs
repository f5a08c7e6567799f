//! Cursor pagination (Relay-style connections) shared by every subgraph.
//!
//! Rows are paged by their primary key, a time-ordered UUIDv7, so a cursor is the last id
//! seen and "next page" is a keyset range scan: stable under concurrent inserts and cheap
//! at any depth. Cursors are opaque to clients (base64url of the id).
//!
//! A batched field (the same page of children for many parents) reads the rows of all
//! parents at once and deals them out with [`PageRequest::split_by_parent`].

use std::collections::HashMap;

use async_graphql::SimpleObject;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub mod sorted;

/// Page size when the client does not ask for one.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Largest page a report run may ask for: runs read whole datasets, and a worker's
/// delegated credential (signed with the internal secret) is the only way to get one.
pub const REPORT_PAGE_SIZE: u64 = 1_000;

tokio::task_local! {
    /// The largest page the request being executed may ask for (see [`largest_page`]).
    static LARGEST_PAGE: u64;
}

/// The largest page `actor` may ask for: [`REPORT_PAGE_SIZE`] when a report run acts for
/// them (a delegation by `reports`), [`MAX_PAGE_SIZE`] otherwise.
pub fn largest_page_for(actor: &crate::Actor) -> u64 {
    match &actor.delegation {
        Some(delegation) if delegation.by == "reports" => REPORT_PAGE_SIZE,
        _ => MAX_PAGE_SIZE,
    }
}

/// Runs `request` (a subgraph executing one operation) with `largest` (see
/// [`largest_page_for`]) as the largest page [`PageRequest::parse`] accepts.
pub async fn with_largest_page_of<F: std::future::Future>(largest: u64, request: F) -> F::Output {
    LARGEST_PAGE.scope(largest, request).await
}

/// The largest page of the request being executed ([`MAX_PAGE_SIZE`] outside one).
pub fn largest_page() -> u64 {
    LARGEST_PAGE
        .try_with(|largest| *largest)
        .unwrap_or(MAX_PAGE_SIZE)
}

/// Pagination facts of one page, identical in every subgraph (hence shareable).
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
#[graphql(shareable)]
pub struct PageInfo {
    /// Whether another page follows this one.
    pub has_next_page: bool,
    /// Cursor of the last edge; pass it as `after` to get the next page.
    pub end_cursor: Option<String>,
}

/// A validated page request: at most `first` rows after the row `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageRequest {
    /// Rows wanted (1..=MAX_PAGE_SIZE; up to REPORT_PAGE_SIZE for report runs).
    pub first: u64,
    /// Id of the last row of the previous page.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Validates the `first` and `after` arguments of a connection field.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> ApiResult<Self> {
        let largest = largest_page();
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n >= 1 && (n as u64) <= largest => n as u64,
            Some(_) => {
                return Err(ApiError::invalid(
                    "first",
                    format!("must be between 1 and {largest}"),
                ));
            }
        };
        let after = after.map(decode_cursor).transpose()?;
        Ok(Self { first, after })
    }

    /// Restricts `select` to this page, keyed by the primary-key column `id`.
    pub fn apply<E: EntityTrait>(&self, select: Select<E>, id: impl ColumnTrait) -> Select<E> {
        let select = match self.after {
            Some(after) => select.filter(id.gt(after)),
            None => select,
        };
        select.order_by_asc(id).limit(self.first + 1)
    }

    /// Reads this page of `select` (see [`PageRequest::apply`]), keyed by the primary-key
    /// column `id`, and turns it into a page (see [`PageRequest::page`]).
    pub async fn fetch<E: EntityTrait>(
        &self,
        db: &impl ConnectionTrait,
        select: Select<E>,
        id: E::Column,
    ) -> ApiResult<Page<E::Model>> {
        let rows = self
            .apply(select, id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(self.page(rows))
    }

    /// Turns the rows fetched with [`PageRequest::apply`] into a page.
    pub fn page<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let has_next_page = rows.len() as u64 > self.first;
        rows.truncate(self.first as usize);
        Page {
            items: rows,
            has_next_page,
        }
    }

    /// Deals `rows` of many parents out to each of `parents`, keeping at most `first + 1`
    /// rows of each, as [`PageRequest::apply`] does for one: pass them through
    /// [`PageRequest::pages`] to get the pages.
    ///
    /// `rows` come in cursor order, each with its parent's id. Every parent gets an entry,
    /// empty when it has no rows; rows of other parents are dropped.
    pub fn split_by_parent<T>(
        &self,
        parents: &[Uuid],
        rows: impl IntoIterator<Item = (Uuid, T)>,
    ) -> HashMap<Uuid, Vec<T>> {
        let mut by_parent: HashMap<Uuid, Vec<T>> =
            parents.iter().map(|id| (*id, Vec::new())).collect();
        for (parent, row) in rows {
            if let Some(list) = by_parent.get_mut(&parent)
                && (list.len() as u64) <= self.first
            {
                list.push(row);
            }
        }
        by_parent
    }

    /// [`PageRequest::page`] of each parent's rows (as split by
    /// [`PageRequest::split_by_parent`]).
    pub fn pages<T>(&self, by_parent: HashMap<Uuid, Vec<T>>) -> HashMap<Uuid, Page<T>> {
        by_parent
            .into_iter()
            .map(|(parent, rows)| (parent, self.page(rows)))
            .collect()
    }
}

/// One page of rows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, in cursor order.
    pub items: Vec<T>,
    /// Whether more rows follow.
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// The same page with each row converted by `f`.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
        }
    }

    /// The same page with each row converted, in order, by the fallible async `f` (rows
    /// that need one more read each: a file row, an opened seal).
    pub async fn try_map<U, F, Fut>(self, mut f: F) -> ApiResult<Page<U>>
    where
        F: FnMut(T) -> Fut,
        Fut: std::future::Future<Output = ApiResult<U>>,
    {
        let mut items = Vec::with_capacity(self.items.len());
        for item in self.items {
            items.push(f(item).await?);
        }
        Ok(Page {
            items,
            has_next_page: self.has_next_page,
        })
    }
}

/// Pages read at most, looking for a row a row rule lets through, before a page is cut.
const MAX_SKIPPED_PAGES: usize = 20;

/// A page of the rows a row rule lets through: reads pages with `fetch` and filters them
/// with `keep` until some row is left or the rows run out, so the caller never gets an
/// empty page that leads on, nor a cursor naming a row it may not see. (After
/// [`MAX_SKIPPED_PAGES`] pages of hidden rows the list ends there.) `id` is a row's key.
pub async fn visible_page<T, F, Fut, K, KFut>(
    page: PageRequest,
    id: impl Fn(&T) -> Uuid,
    mut fetch: F,
    mut keep: K,
) -> ApiResult<Page<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Page<T>>>,
    K: FnMut(Vec<T>) -> KFut,
    KFut: std::future::Future<Output = ApiResult<Vec<T>>>,
{
    let mut request = page;
    for _ in 0..MAX_SKIPPED_PAGES {
        let read = fetch(request).await?;
        let last_read = read.items.last().map(&id);
        let has_next_page = read.has_next_page;
        let kept = keep(read.items).await?;
        match last_read {
            Some(last) if kept.is_empty() && has_next_page => {
                request = PageRequest {
                    first: request.first,
                    after: Some(last),
                };
            }
            _ => {
                return Ok(Page {
                    items: kept,
                    has_next_page,
                });
            }
        }
    }
    tracing::warn!("a list ended early: {MAX_SKIPPED_PAGES} pages of rows hidden by row rules");
    Ok(Page {
        items: Vec::new(),
        has_next_page: false,
    })
}

/// The opaque cursor of the row with primary key `id`.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The primary key inside a cursor, or `BAD_USER_INPUT`.
pub fn decode_cursor(cursor: &str) -> ApiResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid("after", "not a cursor returned by this API"))
}

/// A GraphQL node type that can appear in a connection.
pub trait Node {
    /// The primary key the cursor is built from.
    fn cursor_id(&self) -> Uuid;
}

/// Declares `$connection` and `$edge` GraphQL types for the node type `$node` (which must
/// implement [`Node`]) and a `From<Page<$node>>` conversion.
#[macro_export]
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty) => {
        /// An edge: a node and its cursor.
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            /// Opaque cursor of this node.
            pub cursor: String,
            /// The node.
            pub node: $node,
        }

        /// A page of nodes with pagination facts.
        #[derive(async_graphql::SimpleObject)]
        pub struct $connection {
            /// The edges of this page.
            pub edges: Vec<$edge>,
            /// Pagination facts.
            pub page_info: $crate::pagination::PageInfo,
        }

        impl $connection {
            /// A connection of rows that carry their own cursors (sorted lists, see
            /// [`$crate::pagination::sorted`]).
            pub fn with_cursors(page: $crate::pagination::Page<(String, $node)>) -> Self {
                let edges: Vec<$edge> = page
                    .items
                    .into_iter()
                    .map(|(cursor, node)| $edge { cursor, node })
                    .collect();
                let end_cursor = edges.last().map(|edge| edge.cursor.clone());
                Self {
                    edges,
                    page_info: $crate::pagination::PageInfo {
                        has_next_page: page.has_next_page,
                        end_cursor,
                    },
                }
            }
        }

        impl From<$crate::pagination::Page<$node>> for $connection {
            fn from(page: $crate::pagination::Page<$node>) -> Self {
                use $crate::pagination::Node as _;
                let edges: Vec<$edge> = page
                    .items
                    .into_iter()
                    .map(|node| $edge {
                        cursor: $crate::pagination::encode_cursor(node.cursor_id()),
                        node,
                    })
                    .collect();
                let end_cursor = edges.last().map(|edge| edge.cursor.clone());
                Self {
                    edges,
                    page_info: $crate::pagination::PageInfo {
                        has_next_page: page.has_next_page,
                        end_cursor,
                    },
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_report_runs_ask_for_pages_beyond_the_public_maximum() {
        assert!(PageRequest::parse(Some(100), None).is_ok());
        assert!(PageRequest::parse(Some(101), None).is_err());
        let user = crate::Actor::anonymous();
        let run = crate::Actor::anonymous().delegated("reports", "report run");
        let other = crate::Actor::anonymous().delegated("integrations", "sync");
        for (actor, largest) in [(&user, 100), (&run, 1_000), (&other, 100)] {
            let limit = largest_page_for(actor);
            let parsed = with_largest_page_of(limit, async {
                (
                    PageRequest::parse(Some(largest), None).is_ok(),
                    PageRequest::parse(Some(largest + 1), None).is_err(),
                )
            })
            .await;
            assert_eq!(parsed, (true, true), "{largest}");
        }
    }

    #[test]
    fn cursor_round_trips_and_garbage_is_bad_input() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
        assert!(matches!(
            decode_cursor("not-a-cursor"),
            Err(ApiError::BadUserInput { field: "after", .. })
        ));
    }

    #[test]
    fn page_size_outside_bounds_is_bad_input() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(101), None).is_err());
        assert_eq!(
            PageRequest::parse(None, None).map(|p| p.first).ok(),
            Some(DEFAULT_PAGE_SIZE)
        );
    }

    #[test]
    fn page_reports_whether_more_rows_follow() {
        let request = PageRequest::parse(Some(2), None).expect("valid");
        let page = request.page(vec![1, 2, 3]);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_next_page);
        assert!(!request.page(vec![1, 2]).has_next_page);
    }

    #[test]
    fn split_by_parent_gives_every_parent_a_page_of_its_own_rows() {
        let request = PageRequest::parse(Some(1), None).expect("valid");
        let (busy, idle, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let rows = [(busy, 1), (stranger, 2), (busy, 3), (busy, 4)];
        let split = request.split_by_parent(&[busy, idle], rows);
        assert_eq!(split.len(), 2);
        assert_eq!(split[&busy], [1, 3]);
        let pages = request.pages(split);
        assert_eq!(pages[&busy].items, [1]);
        assert!(pages[&busy].has_next_page);
        assert!(pages[&idle].items.is_empty());
        assert!(!pages[&idle].has_next_page);
    }
}
