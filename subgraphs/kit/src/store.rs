//! Building blocks for the subgraphs' `store` modules: the batched reads behind their
//! DataLoaders, each one SQL statement however many ids or parents it serves.
//!
//! Every function takes a `scoped` select that the calling store function has already
//! confined to one tenant (as with [`PageRequest::apply`]): tenant filtering stays visible
//! in each domain's store, and these helpers add only the batching, the cursor and the
//! grouping of rows by id or by parent. Columns are passed explicitly and must hold UUIDs
//! (nullable ones may be null); a column of another type is reported as `INTERNAL`.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement, WindowStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, IdenStatic, Iterable,
    ModelTrait, QueryFilter, QueryOrder, QueryTrait, Select, Value,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::pagination::PageRequest;

/// The one row of `scoped` (already confined to one tenant and one id), or `NOT_FOUND`
/// naming `what` when there is none.
pub async fn one_or_not_found<E: EntityTrait>(
    db: &impl ConnectionTrait,
    scoped: Select<E>,
    what: &'static str,
) -> ApiResult<E::Model> {
    scoped
        .one(db)
        .await
        .map_err(ApiError::from_db)?
        .ok_or(ApiError::NotFound(what))
}

/// The rows of `scoped` among `ids`, keyed by their `id` column, in one query.
///
/// Ids without a row (missing, or outside the tenant) are simply absent from the map.
pub async fn rows_by_ids<E: EntityTrait>(
    db: &impl ConnectionTrait,
    scoped: Select<E>,
    id: E::Column,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, E::Model>> {
    let rows = scoped
        .filter(id.is_in(ids))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    keyed_by(rows, id)
}

/// The rows of `scoped` that belong to each of `parents` (through the `parent` column),
/// after the page's cursor on the `cursor` column, at most `first + 1` per parent, in
/// one query; turn them into pages with [`PageRequest::pages`].
///
/// Reads every row of those parents after the cursor and cuts each parent's list in
/// memory: right for parents with few rows each (one query beats one per parent). For
/// parents whose rows grow without bound use [`ranked_rows_by_parent`].
pub async fn rows_by_parent<E: EntityTrait>(
    db: &impl ConnectionTrait,
    scoped: Select<E>,
    parent: E::Column,
    parents: &[Uuid],
    cursor: E::Column,
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Vec<E::Model>>> {
    let mut select = scoped.filter(parent.is_in(parents.iter().copied()));
    if let Some(after) = page.after {
        select = select.filter(cursor.gt(after));
    }
    let rows = select
        .order_by_asc(cursor)
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(page.split_by_parent(parents, with_parent(rows, parent)?))
}

/// The same as [`rows_by_parent`], but the database keeps at most `first + 1` rows per
/// parent: `ROW_NUMBER()` over each parent's rows after the cursor (SQLite and PostgreSQL
/// alike), so a parent with many rows costs no more than a page's worth.
pub async fn ranked_rows_by_parent<E: EntityTrait>(
    db: &impl ConnectionTrait,
    scoped: Select<E>,
    parent: E::Column,
    parents: &[Uuid],
    cursor: E::Column,
    page: PageRequest,
) -> ApiResult<HashMap<Uuid, Vec<E::Model>>> {
    let query = ranked_page_query(scoped, parent, parents, cursor, page);
    let rows = E::Model::find_by_statement(db.get_database_backend().build(&query))
        .all(db)
        .await
        .map_err(ApiError::from_db)?;
    Ok(page.split_by_parent(parents, with_parent(rows, parent)?))
}

/// The query of [`ranked_rows_by_parent`]: the rows of `parents` after the cursor, ranked
/// per parent in cursor order, at most `first + 1` of each, all in cursor order.
fn ranked_page_query<E: EntityTrait>(
    scoped: Select<E>,
    parent: E::Column,
    parents: &[Uuid],
    cursor: E::Column,
    page: PageRequest,
) -> SelectStatement {
    let mut ranked = scoped.filter(parent.is_in(parents.iter().copied()));
    if let Some(after) = page.after {
        ranked = ranked.filter(cursor.gt(after));
    }
    let mut ranked = ranked.into_query();
    ranked.expr_window_as(
        Expr::cust("ROW_NUMBER()"),
        WindowStatement::partition_by(parent)
            .order_by(cursor, Order::Asc)
            .take(),
        PAGE_RANK,
    );
    Query::select()
        .columns(E::Column::iter())
        .from_subquery(ranked, RANKED)
        .and_where(Expr::col(PAGE_RANK).lte(page.first + 1))
        .order_by(cursor, Order::Asc)
        .to_owned()
}

/// Alias of the ranked subquery of [`ranked_page_query`].
const RANKED: &str = "ranked";
/// Column of a row's position within its parent's rows after the cursor.
const PAGE_RANK: &str = "page_rank";

/// `rows` keyed by the UUID in their `id` column.
fn keyed_by<M: ModelTrait>(
    rows: Vec<M>,
    id: <M::Entity as EntityTrait>::Column,
) -> ApiResult<HashMap<Uuid, M>> {
    let mut keyed = HashMap::with_capacity(rows.len());
    for row in rows {
        if let Some(key) = uuid_in(&row, id)? {
            keyed.insert(key, row);
        }
    }
    Ok(keyed)
}

/// `rows` in their order, each with the UUID in its `parent` column; rows whose parent
/// is null are left out.
fn with_parent<M: ModelTrait>(
    rows: Vec<M>,
    parent: <M::Entity as EntityTrait>::Column,
) -> ApiResult<Vec<(Uuid, M)>> {
    let mut paired = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(key) = uuid_in(&row, parent)? {
            paired.push((key, row));
        }
    }
    Ok(paired)
}

/// The UUID `row` holds in `column` (`None` when null), or `INTERNAL` when the column is
/// not a UUID column.
fn uuid_in<M: ModelTrait>(
    row: &M,
    column: <M::Entity as EntityTrait>::Column,
) -> ApiResult<Option<Uuid>> {
    match row.get(column) {
        Value::Uuid(id) => Ok(id),
        _ => Err(ApiError::from_db(DbErr::Type(format!(
            "column `{}` does not hold UUIDs",
            column.as_str()
        )))),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Database, DatabaseConnection, DbBackend, Schema, Set};

    use super::*;
    use crate::pagination::{Page, encode_cursor};

    /// A tenant-scoped child table of the tests' own: rows of a parent, or of none.
    mod child {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "children")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub tenant_id: Uuid,
            pub parent_id: Option<Uuid>,
            pub label: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    async fn children_table() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        let table = Schema::new(DbBackend::Sqlite).create_table_from_entity(child::Entity);
        db.execute(&table).await.expect("create table");
        db
    }

    async fn add_child(db: &DatabaseConnection, tenant_id: Uuid, parent: Option<Uuid>) -> Uuid {
        let id = Uuid::now_v7();
        let row = child::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id),
            parent_id: Set(parent),
            label: Set("child".into()),
        };
        row.insert(db).await.expect("insert child");
        id
    }

    fn in_tenant(tenant_id: Uuid) -> Select<child::Entity> {
        child::Entity::find().filter(child::Column::TenantId.eq(tenant_id))
    }

    fn ids(page: &Page<child::Model>) -> Vec<Uuid> {
        page.items.iter().map(|row| row.id).collect()
    }

    #[tokio::test]
    async fn one_or_not_found_finds_only_the_row_in_scope() {
        let db = children_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let mine = add_child(&db, tenant, None).await;
        let theirs = add_child(&db, other_tenant, None).await;
        let lookup = |id: Uuid| in_tenant(tenant).filter(child::Column::Id.eq(id));
        let found = one_or_not_found(&db, lookup(mine), "child").await;
        assert_eq!(found.map(|row| row.id).ok(), Some(mine));
        for missing in [theirs, Uuid::now_v7()] {
            assert!(matches!(
                one_or_not_found(&db, lookup(missing), "child").await,
                Err(ApiError::NotFound("child"))
            ));
        }
    }

    #[tokio::test]
    async fn fetch_reads_one_page_of_the_rows_in_scope() {
        let db = children_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let mut children = Vec::new();
        for _ in 0..3 {
            children.push(add_child(&db, tenant, None).await);
        }
        add_child(&db, other_tenant, None).await;

        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let page = first_two
            .fetch(&db, in_tenant(tenant), child::Column::Id)
            .await
            .expect("page");
        assert_eq!(ids(&page), children[..2]);
        assert!(page.has_next_page);

        let cursor = encode_cursor(children[1]);
        let rest = PageRequest::parse(Some(2), Some(&cursor)).expect("page");
        let page = rest
            .fetch(&db, in_tenant(tenant), child::Column::Id)
            .await
            .expect("page");
        assert_eq!(ids(&page), children[2..]);
        assert!(!page.has_next_page);
    }

    #[tokio::test]
    async fn rows_by_ids_keys_the_rows_in_scope_by_id() {
        let db = children_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let mine = add_child(&db, tenant, None).await;
        let theirs = add_child(&db, other_tenant, None).await;
        let wanted = [mine, theirs, Uuid::now_v7()];
        let found = rows_by_ids(&db, in_tenant(tenant), child::Column::Id, wanted)
            .await
            .expect("rows");
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), [mine]);

        let row = &found[&mine];
        assert_eq!(uuid_in(row, child::Column::ParentId).ok(), Some(None));
        assert!(matches!(
            uuid_in(row, child::Column::Label),
            Err(ApiError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn both_strategies_cut_each_parent_to_its_own_page() {
        let db = children_table().await;
        let (tenant, other_tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (busy, quiet, foreign) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut busy_children = Vec::new();
        for _ in 0..5 {
            busy_children.push(add_child(&db, tenant, Some(busy)).await);
        }
        let quiet_child = add_child(&db, tenant, Some(quiet)).await;
        add_child(&db, tenant, None).await;
        add_child(&db, other_tenant, Some(foreign)).await;

        let first_two = PageRequest::parse(Some(2), None).expect("page");
        let cursor = encode_cursor(busy_children[2]);
        let rest = PageRequest::parse(Some(2), Some(&cursor)).expect("page");
        let (parent, id) = (child::Column::ParentId, child::Column::Id);
        for ranked in [false, true] {
            let fetch = async |parents: &[Uuid], page: PageRequest| {
                let scoped = in_tenant(tenant);
                let rows = if ranked {
                    ranked_rows_by_parent(&db, scoped, parent, parents, id, page).await
                } else {
                    rows_by_parent(&db, scoped, parent, parents, id, page).await
                };
                page.pages(rows.expect("rows"))
            };
            let pages = fetch(&[busy, quiet, foreign], first_two).await;
            assert_eq!(pages.len(), 3);
            assert_eq!(ids(&pages[&busy]), busy_children[..2]);
            assert!(pages[&busy].has_next_page);
            assert_eq!(ids(&pages[&quiet]), [quiet_child]);
            assert!(!pages[&quiet].has_next_page);
            // Rows outside the scope (another tenant's) are invisible.
            assert!(pages[&foreign].items.is_empty());

            let pages = fetch(&[busy], rest).await;
            assert_eq!(ids(&pages[&busy]), busy_children[3..]);
            assert!(!pages[&busy].has_next_page);
        }
    }

    #[test]
    fn ranked_page_query_ranks_per_parent_in_sql() {
        let page = PageRequest::parse(Some(2), None).expect("page");
        let (parent, id) = (child::Column::ParentId, child::Column::Id);
        let query = ranked_page_query(in_tenant(Uuid::nil()), parent, &[Uuid::max()], id, page);
        let sql = DbBackend::Postgres.build(&query).sql;
        assert!(
            sql.contains(
                r#"ROW_NUMBER() OVER ( PARTITION BY "parent_id" ORDER BY "id" ASC ) AS "page_rank""#
            ),
            "{sql}"
        );
        assert!(sql.contains(r#"WHERE "page_rank" <= $3"#), "{sql}");
    }
}
