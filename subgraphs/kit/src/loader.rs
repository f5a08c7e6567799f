//! DataLoader building blocks for the two batch shapes every subgraph uses, so that a
//! subgraph names only its domain query.
//!
//! - **By id**: keys `(tenant, id)`; the query is a [`FetchByIds`], run once per tenant in
//!   the batch (entity resolution, or the values belonging to an id, such as a user's
//!   roles).
//! - **A page per parent**: keys [`ParentPage`]; the query is a [`FetchPages`], run once
//!   per distinct `(tenant, page request)` in the batch (a connection field such as
//!   `User.accounts` resolved for many users at once).
//!
//! Each query receives exactly one tenant, which the store function it calls filters by.
//! A subgraph declares its queries with [`fetch_by_ids!`](crate::fetch_by_ids) and
//! [`fetch_pages!`](crate::fetch_pages), registers a [`BatchLoader`] per query with
//! [`batch_loader`], and resolves through [`load`] and [`load_page`], which take the
//! tenant from the request's actor:
//!
//! ```ignore
//! portal_kit::fetch_by_ids!(
//!     /// Account lookups by `(tenant, id)`, batched into one query per tenant.
//!     pub AccountsById: account::Model = store::accounts_by_ids
//! );
//!
//! // building the schema:
//! Schema::build(Query, Mutation, EmptySubscription).data(batch_loader::<AccountsById>(&db))
//! // in a resolver:
//! let found = load::<AccountsById>(ctx, id).await?;
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::marker::PhantomData;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::context::tenant;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, PageRequest};

/// One parent's page of children, as a DataLoader key: the page `page` of the children of
/// `parent` (a user's accounts, a thread's messages, …) within the tenant `tenant_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParentPage {
    /// The caller's tenant.
    pub tenant_id: Uuid,
    /// The parent whose children are paged.
    pub parent: Uuid,
    /// The page wanted.
    pub page: PageRequest,
}

/// A lookup by id within one tenant, batched into one query.
///
/// Implemented by a marker type per query, usually with
/// [`fetch_by_ids!`](crate::fetch_by_ids).
pub trait FetchByIds: Send + Sync + 'static {
    /// What an id resolves to: a row, or the rows that belong to it.
    type Value: Clone + Send + Sync + 'static;

    /// The values of those of `ids` that have one in the tenant `tenant_id`.
    fn fetch(
        db: &DatabaseConnection,
        tenant_id: Uuid,
        ids: Vec<Uuid>,
    ) -> impl Future<Output = ApiResult<HashMap<Uuid, Self::Value>>> + Send;
}

/// The same page of children for many parents within one tenant, batched into one query.
///
/// Implemented by a marker type per query, usually with
/// [`fetch_pages!`](crate::fetch_pages).
pub trait FetchPages: Send + Sync + 'static {
    /// The child row.
    type Row: Clone + Send + Sync + 'static;

    /// The page `page` of the children of each of `parents` in the tenant `tenant_id`;
    /// a parent missing from the result gets an empty page.
    fn fetch(
        db: &DatabaseConnection,
        tenant_id: Uuid,
        parents: &[Uuid],
        page: PageRequest,
    ) -> impl Future<Output = ApiResult<HashMap<Uuid, Page<Self::Row>>>> + Send;
}

/// Declares a marker type implementing [`FetchByIds`](crate::loader::FetchByIds) by
/// calling a store function `$fetch(db, tenant_id, ids)` that returns
/// `ApiResult<HashMap<Uuid, $value>>`:
///
/// ```ignore
/// portal_kit::fetch_by_ids!(
///     /// Account lookups by `(tenant, id)`, batched into one query per tenant.
///     pub AccountsById: account::Model = store::accounts_by_ids
/// );
/// ```
#[macro_export]
macro_rules! fetch_by_ids {
    ($(#[$attr:meta])* $vis:vis $name:ident: $value:ty = $fetch:path) => {
        $(#[$attr])*
        $vis struct $name;

        impl $crate::loader::FetchByIds for $name {
            type Value = $value;

            async fn fetch(
                db: &$crate::loader::__private::DatabaseConnection,
                tenant_id: $crate::loader::__private::Uuid,
                ids: ::std::vec::Vec<$crate::loader::__private::Uuid>,
            ) -> $crate::loader::__private::Values<$value> {
                $fetch(db, tenant_id, ids).await
            }
        }
    };
}

/// Declares a marker type implementing [`FetchPages`](crate::loader::FetchPages) by
/// calling a store function `$fetch(db, tenant_id, parents, page)` that returns
/// `ApiResult<HashMap<Uuid, Page<$row>>>`:
///
/// ```ignore
/// portal_kit::fetch_pages!(
///     /// `User.accounts` for many users, batched into one query per `(tenant, page)`.
///     pub AccountsByOwner: account::Model = store::pages_by_owner
/// );
/// ```
#[macro_export]
macro_rules! fetch_pages {
    ($(#[$attr:meta])* $vis:vis $name:ident: $row:ty = $fetch:path) => {
        $(#[$attr])*
        $vis struct $name;

        impl $crate::loader::FetchPages for $name {
            type Row = $row;

            async fn fetch(
                db: &$crate::loader::__private::DatabaseConnection,
                tenant_id: $crate::loader::__private::Uuid,
                parents: &[$crate::loader::__private::Uuid],
                page: $crate::pagination::PageRequest,
            ) -> $crate::loader::__private::Values<$crate::pagination::Page<$row>> {
                $fetch(db, tenant_id, parents, page).await
            }
        }
    };
}

/// What [`fetch_by_ids!`](crate::fetch_by_ids) and [`fetch_pages!`](crate::fetch_pages)
/// expand to, whatever the calling crate depends on.
#[doc(hidden)]
pub mod __private {
    /// The database handle a query runs on.
    pub use sea_orm::DatabaseConnection;
    /// Ids and tenants.
    pub use uuid::Uuid;

    /// The result of a batched query: values keyed by id.
    pub type Values<V> = crate::ApiResult<std::collections::HashMap<Uuid, V>>;
}

/// The DataLoader of the batched query `Q`: a `Loader<(Uuid, Uuid)>` running `Q` once per
/// tenant when `Q` is a [`FetchByIds`], a `Loader<ParentPage>` running `Q` once per
/// distinct `(tenant, page request)` when `Q` is a [`FetchPages`].
pub struct BatchLoader<Q> {
    db: DatabaseConnection,
    query: PhantomData<fn() -> Q>,
}

impl<Q> BatchLoader<Q> {
    /// A loader running its queries on `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            query: PhantomData,
        }
    }
}

impl<Q: FetchByIds> Loader<(Uuid, Uuid)> for BatchLoader<Q> {
    type Value = Q::Value;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(Uuid, Uuid)],
    ) -> Result<HashMap<(Uuid, Uuid), Q::Value>, ApiError> {
        let span = batch_span::<Q>(keys.len());
        tracing::Instrument::instrument(
            async {
                let mut found = HashMap::new();
                for (tenant_id, ids) in group_by_tenant(keys) {
                    let values = Q::fetch(&self.db, tenant_id, ids).await?;
                    found.extend(
                        values
                            .into_iter()
                            .map(|(id, value)| ((tenant_id, id), value)),
                    );
                }
                Ok(found)
            },
            span,
        )
        .await
    }
}

impl<Q: FetchPages> Loader<ParentPage> for BatchLoader<Q> {
    type Value = Page<Q::Row>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[ParentPage],
    ) -> Result<HashMap<ParentPage, Page<Q::Row>>, ApiError> {
        let span = batch_span::<Q>(keys.len());
        tracing::Instrument::instrument(
            async {
                let mut found = HashMap::new();
                for ((tenant_id, page), parents) in group_by_tenant_and_page(keys) {
                    let pages = Q::fetch(&self.db, tenant_id, &parents, page).await?;
                    found.extend(pages.into_iter().map(|(parent, rows)| {
                        let key = ParentPage {
                            tenant_id,
                            parent,
                            page,
                        };
                        (key, rows)
                    }));
                }
                Ok(found)
            },
            span,
        )
        .await
    }
}

/// The ids of `keys` (`(tenant, id)` pairs) grouped by tenant, tenants in ascending
/// order and ids in key order.
pub fn group_by_tenant(keys: &[(Uuid, Uuid)]) -> BTreeMap<Uuid, Vec<Uuid>> {
    let mut groups: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for &(tenant_id, id) in keys {
        groups.entry(tenant_id).or_default().push(id);
    }
    groups
}

/// The parents of `keys` grouped by `(tenant, page request)`, groups in ascending order
/// and parents in key order.
pub fn group_by_tenant_and_page(keys: &[ParentPage]) -> BTreeMap<(Uuid, PageRequest), Vec<Uuid>> {
    let mut groups: BTreeMap<(Uuid, PageRequest), Vec<Uuid>> = BTreeMap::new();
    for key in keys {
        groups
            .entry((key.tenant_id, key.page))
            .or_default()
            .push(key.parent);
    }
    groups
}

/// The `DataLoader` of the batched query `Q` on `db`, spawning its batches on the tokio
/// runtime within the request's span: register one per query as schema data.
pub fn batch_loader<Q>(db: &DatabaseConnection) -> DataLoader<BatchLoader<Q>> {
    DataLoader::new(BatchLoader::new(db.clone()), crate::telemetry::spawn_traced)
}

/// The span of one batched query group: the query's name and how many keys it serves.
fn batch_span<Q>(keys: usize) -> tracing::Span {
    let full = std::any::type_name::<Q>();
    let query = full.rsplit("::").next().unwrap_or(full);
    tracing::info_span!(
        "db.batch",
        otel.name = %format_args!("db {query}"),
        otel.kind = "client",
        db.query = query,
        keys,
    )
}

/// The value of `id` in the caller's tenant, through the schema's
/// `DataLoader<BatchLoader<Q>>`; `UNAUTHENTICATED` without a tenant.
pub async fn load<Q: FetchByIds>(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Q::Value>> {
    let tenant_id = tenant(ctx)?;
    registered::<BatchLoader<Q>>(ctx)?
        .load_one((tenant_id, id))
        .await
}

/// The values of `ids` in the caller's tenant (those found), in one batch through the
/// schema's `DataLoader<BatchLoader<Q>>`; `UNAUTHENTICATED` without a tenant.
pub async fn load_many<Q: FetchByIds>(
    ctx: &Context<'_>,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<std::collections::HashMap<Uuid, Q::Value>> {
    let tenant_id = tenant(ctx)?;
    let found = registered::<BatchLoader<Q>>(ctx)?
        .load_many(ids.into_iter().map(|id| (tenant_id, id)))
        .await?;
    Ok(found
        .into_iter()
        .map(|((_, id), value)| (id, value))
        .collect())
}

/// The schema's `DataLoader<L>`, or `INTERNAL` (logged) when the schema forgot to register
/// it — a coding mistake that must not panic a request.
pub fn registered<'c, L: Send + Sync + 'static>(
    ctx: &'c Context<'_>,
) -> ApiResult<&'c DataLoader<L>> {
    ctx.data::<DataLoader<L>>().map_err(|_| {
        ApiError::internal(format!(
            "DataLoader<{}> is not registered in the schema",
            std::any::type_name::<L>()
        ))
    })
}

/// The page `page` of the children of `parent` in the caller's tenant, through the
/// schema's `DataLoader<BatchLoader<Q>>` (an empty page when the query found none);
/// `UNAUTHENTICATED` without a tenant.
pub async fn load_page<Q: FetchPages>(
    ctx: &Context<'_>,
    parent: Uuid,
    page: PageRequest,
) -> ApiResult<Page<Q::Row>> {
    let key = ParentPage {
        tenant_id: tenant(ctx)?,
        parent,
        page,
    };
    let found = registered::<BatchLoader<Q>>(ctx)?.load_one(key).await?;
    Ok(found.unwrap_or_else(|| page.page(Vec::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_tenant_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let groups = group_by_tenant(&[(b, x), (a, y), (b, z)]);
        assert_eq!(
            groups.into_iter().collect::<Vec<_>>(),
            [(a, vec![y]), (b, vec![x, z])]
        );
    }

    #[test]
    fn parent_pages_group_by_tenant_and_page() {
        let tenant_id = Uuid::now_v7();
        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let first_three = PageRequest::parse(Some(3), None).expect("page");
        let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let key = |parent, page| ParentPage {
            tenant_id,
            parent,
            page,
        };
        let groups =
            group_by_tenant_and_page(&[key(x, first_two), key(y, first_three), key(z, first_two)]);
        assert_eq!(
            groups.into_iter().collect::<Vec<_>>(),
            [
                ((tenant_id, first_two), vec![x, z]),
                ((tenant_id, first_three), vec![y]),
            ]
        );
    }
}
