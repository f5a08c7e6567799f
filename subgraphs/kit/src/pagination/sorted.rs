//! Keyset pagination of lists a client sorts (`orderBy`): the cursor carries the sort
//! order, the last row's sort value and its id, so the next page is one index range scan
//! `(value, id) > (last value, last id)` — stable under inserts, exact with ties, cheap at
//! any depth. Cursors are opaque to clients (base64url JSON) and checked when they come
//! back: a cursor of another order, or one whose value is not of the order's type, is
//! `BAD_USER_INPUT`, never a query error.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DEFAULT_PAGE_SIZE, Page};
use crate::error::{ApiError, ApiResult};

/// A value a list is sorted by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortValue {
    /// An integer column (amounts times 10^4, counts).
    Int(i64),
    /// A timestamp column.
    Time(DateTime<Utc>),
    /// A date column.
    Date(NaiveDate),
}

impl SortValue {
    fn kind(&self) -> SortKind {
        match self {
            Self::Int(_) => SortKind::Int,
            Self::Time(_) => SortKind::Time,
            Self::Date(_) => SortKind::Date,
        }
    }
}

impl From<SortValue> for sea_orm::Value {
    fn from(value: SortValue) -> Self {
        match value {
            SortValue::Int(v) => v.into(),
            SortValue::Time(v) => v.into(),
            SortValue::Date(v) => v.into(),
        }
    }
}

/// The type of a sort column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKind {
    /// See [`SortValue::Int`].
    Int,
    /// See [`SortValue::Time`].
    Time,
    /// See [`SortValue::Date`].
    Date,
}

/// One sort order of a list: its name in the API (`POSTED_AT_DESC`), the type of its
/// column and its direction. Ties are broken by the row id in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortOrder {
    /// The `orderBy` value, as the client wrote it.
    pub name: &'static str,
    /// Type of the sort column.
    pub kind: SortKind,
    /// Largest first.
    pub descending: bool,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The order's name.
    o: String,
    /// The last row's sort value.
    v: SortValue,
    /// The last row's id.
    i: Uuid,
}

/// A validated page request of a sorted list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortedPageRequest {
    /// Rows wanted (1..=MAX_PAGE_SIZE; up to REPORT_PAGE_SIZE for report runs).
    pub first: u64,
    /// The order.
    pub order: SortOrder,
    /// Sort value and id of the last row of the previous page.
    pub after: Option<(SortValue, Uuid)>,
}

impl SortedPageRequest {
    /// Validates `first` and `after` of a list sorted by `order`.
    pub fn parse(first: Option<i32>, after: Option<&str>, order: SortOrder) -> ApiResult<Self> {
        Self::parse_up_to(first, after, order, super::largest_page())
    }

    /// [`SortedPageRequest::parse`] with another largest page (internal callers such as
    /// exports read bigger pages than clients may ask for).
    pub fn parse_up_to(
        first: Option<i32>,
        after: Option<&str>,
        order: SortOrder,
        max: u64,
    ) -> ApiResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE.min(max),
            Some(n) if n >= 1 && (n as u64) <= max => n as u64,
            Some(_) => {
                return Err(ApiError::invalid(
                    "first",
                    format!("must be between 1 and {max}"),
                ));
            }
        };
        let after = after.map(|text| decode(text, order)).transpose()?;
        Ok(Self {
            first,
            order,
            after,
        })
    }

    /// Restricts `select` to this page: rows after the cursor in `(sort, id)` order, at
    /// most `first + 1` of them (the extra one tells whether a next page exists).
    pub fn apply<E: EntityTrait>(
        &self,
        select: Select<E>,
        sort: E::Column,
        id: E::Column,
    ) -> Select<E> {
        let descending = self.order.descending;
        let select = match &self.after {
            Some((value, last)) => {
                let value = sea_orm::Value::from(value.clone());
                let (bound, beyond, beyond_id) = if descending {
                    (
                        sort.lte(value.clone()),
                        sort.lt(value.clone()),
                        id.lt(*last),
                    )
                } else {
                    (
                        sort.gte(value.clone()),
                        sort.gt(value.clone()),
                        id.gt(*last),
                    )
                };
                // `bound` adds nothing logically; it lets the database start an index range
                // at the cursor instead of scanning every earlier row for the `OR` (a walk
                // through a million rows was quadratic without it).
                select.filter(bound).filter(
                    Condition::any()
                        .add(beyond)
                        .add(Condition::all().add(sort.eq(value)).add(beyond_id)),
                )
            }
            None => select,
        };
        let select = if descending {
            select.order_by_desc(sort).order_by_desc(id)
        } else {
            select.order_by_asc(sort).order_by_asc(id)
        };
        select.limit(self.first + 1)
    }

    /// Reads this page of `select` sorted by `sort` (see [`SortedPageRequest::apply`]) and
    /// turns it into a page of `(cursor, row)` (see [`SortedPageRequest::page`]).
    pub async fn fetch<E: EntityTrait>(
        &self,
        db: &impl ConnectionTrait,
        select: Select<E>,
        sort: E::Column,
        id: E::Column,
        key: impl Fn(&E::Model) -> (SortValue, Uuid),
    ) -> ApiResult<Page<(String, E::Model)>> {
        let rows = self
            .apply(select, sort, id)
            .all(db)
            .await
            .map_err(ApiError::from_db)?;
        Ok(self.page(rows, key))
    }

    /// Turns the rows read with [`SortedPageRequest::apply`] into a page of
    /// `(cursor, row)`, `key` giving a row's sort value and id.
    pub fn page<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (SortValue, Uuid),
    ) -> Page<(String, T)> {
        let has_next_page = rows.len() as u64 > self.first;
        rows.truncate(self.first as usize);
        let items = rows
            .into_iter()
            .map(|row| {
                let (value, id) = key(&row);
                (self.cursor(value, id), row)
            })
            .collect();
        Page {
            items,
            has_next_page,
        }
    }

    /// The cursor of a row with sort value `value` and id `id` in this order.
    pub fn cursor(&self, value: SortValue, id: Uuid) -> String {
        let cursor = Cursor {
            o: self.order.name.to_owned(),
            v: value,
            i: id,
        };
        // Serializing this plain struct cannot fail.
        let json = serde_json::to_vec(&cursor).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }
}

fn decode(text: &str, order: SortOrder) -> ApiResult<(SortValue, Uuid)> {
    let not_ours = || ApiError::invalid("after", "not a cursor returned by this API");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| not_ours())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
    if cursor.o != order.name {
        return Err(ApiError::invalid(
            "after",
            format!(
                "is a cursor of the order {}, not {}: start again without `after`",
                cursor.o, order.name
            ),
        ));
    }
    if cursor.v.kind() != order.kind {
        return Err(not_ours());
    }
    Ok((cursor.v, cursor.i))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY_TIME: SortOrder = SortOrder {
        name: "POSTED_AT_DESC",
        kind: SortKind::Time,
        descending: true,
    };
    const BY_AMOUNT: SortOrder = SortOrder {
        name: "AMOUNT_ASC",
        kind: SortKind::Int,
        descending: false,
    };

    #[test]
    fn a_cursor_round_trips_in_its_own_order() {
        let request = SortedPageRequest::parse(Some(2), None, BY_AMOUNT).expect("valid");
        let id = Uuid::now_v7();
        let cursor = request.cursor(SortValue::Int(-125), id);
        let next = SortedPageRequest::parse(Some(2), Some(&cursor), BY_AMOUNT).expect("valid");
        assert_eq!(next.after, Some((SortValue::Int(-125), id)));
    }

    #[test]
    fn cursors_of_another_order_or_forged_ones_are_bad_input() {
        let request = SortedPageRequest::parse(None, None, BY_AMOUNT).expect("valid");
        let cursor = request.cursor(SortValue::Int(1), Uuid::now_v7());
        let other = SortedPageRequest::parse(None, Some(&cursor), BY_TIME).err();
        assert!(matches!(
            other,
            Some(ApiError::BadUserInput { field: "after", .. })
        ));
        // Right order name, wrong value type.
        let forged = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"o":"POSTED_AT_DESC","v":{{"Int":1}},"i":"{}"}}"#,
            Uuid::now_v7()
        ));
        assert!(SortedPageRequest::parse(None, Some(&forged), BY_TIME).is_err());
        assert!(SortedPageRequest::parse(None, Some("garbage"), BY_TIME).is_err());
        assert!(SortedPageRequest::parse(Some(101), None, BY_TIME).is_err());
    }

    #[test]
    fn a_page_keeps_first_rows_and_says_whether_more_follow() {
        let request = SortedPageRequest::parse(Some(2), None, BY_AMOUNT).expect("valid");
        let rows = vec![
            (1, Uuid::now_v7()),
            (1, Uuid::now_v7()),
            (2, Uuid::now_v7()),
        ];
        let page = request.page(rows, |(v, id)| (SortValue::Int(*v), *id));
        assert_eq!(page.items.len(), 2);
        assert!(page.has_next_page);
    }
}
