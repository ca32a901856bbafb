//! The SQL of keyset pagination (see `crate::paging` for the arguments, cursors and pages):
//! [`keyset`] turns a validated page request into SQL — a row-value comparison past the
//! cursors, the order, reversed for backward pages, and a limit of one more row than asked
//! for; [`fetch`] writes that limit into the SQL text, so PostgreSQL keeps one generic plan per
//! list — and [`Page::build`] turns the rows into a page.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, Statement,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    error::AppResult,
    paging::{Direction, Page, PageRequest},
};

/// One column value of a sort key, as SQL sees it.
pub trait KeyPart {
    /// The value bound in the keyset comparison.
    fn value(&self) -> sea_orm::Value;
}

impl KeyPart for Uuid {
    fn value(&self) -> sea_orm::Value {
        (*self).into()
    }
}

impl KeyPart for String {
    fn value(&self) -> sea_orm::Value {
        self.clone().into()
    }
}

impl KeyPart for i64 {
    fn value(&self) -> sea_orm::Value {
        (*self).into()
    }
}

impl KeyPart for DateTime<Utc> {
    fn value(&self) -> sea_orm::Value {
        self.fixed_offset().into()
    }
}

/// A sort key: the values of a list's sort columns, in order.
pub trait SortKey: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The values, one per sort column.
    fn values(&self) -> Vec<sea_orm::Value>;
}

impl<A: KeyPart + Serialize + DeserializeOwned + Send + Sync + 'static> SortKey for (A,) {
    fn values(&self) -> Vec<sea_orm::Value> {
        vec![self.0.value()]
    }
}

impl<A, B> SortKey for (A, B)
where
    A: KeyPart + Serialize + DeserializeOwned + Send + Sync + 'static,
    B: KeyPart + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn values(&self) -> Vec<sea_orm::Value> {
        vec![self.0.value(), self.1.value()]
    }
}

/// How a list is sorted: its sort columns (the last one unique) and their common direction.
#[derive(Debug, Clone)]
pub struct Sort {
    /// The sort columns, e.g. `(display_name, id)`.
    pub columns: Vec<SimpleExpr>,
    /// The list's order: `Asc` or `Desc` on every column.
    pub order: Order,
}

impl Sort {
    /// Sorted by `columns`, ascending.
    pub fn asc(columns: impl IntoIterator<Item = SimpleExpr>) -> Self {
        Self {
            columns: columns.into_iter().collect(),
            order: Order::Asc,
        }
    }

    /// Sorted by `columns`, descending.
    pub fn desc(columns: impl IntoIterator<Item = SimpleExpr>) -> Self {
        Self {
            columns: columns.into_iter().collect(),
            order: Order::Desc,
        }
    }

    fn ascending(&self) -> bool {
        !matches!(self.order, Order::Desc)
    }

    /// `(columns) > (key)` when `past`, `(columns) < (key)` otherwise, in list order: a row
    /// comparison, which PostgreSQL answers from an index on the sort columns.
    fn compare(&self, key: &impl SortKey, past: bool) -> SimpleExpr {
        let columns = Expr::tuple(self.columns.iter().cloned());
        let values = Expr::tuple(key.values().into_iter().map(Expr::val));
        if past == self.ascending() {
            columns.gt(values)
        } else {
            columns.lt(values)
        }
    }
}

/// Restricts `select` to the page `request` asks for: past `after`, before `before`, sorted
/// by `sort` (reversed for backward pages) and limited to one row more than the page, which
/// tells whether the page is the last in its direction. Give the rows to [`Page::build`].
///
/// The limit is a bind parameter here; [`fetch`] and [`fetch_rows`] write it into the SQL text
/// instead (see [`keyset_statement`]).
pub fn keyset<E: EntityTrait, K: SortKey>(
    select: sea_orm::Select<E>,
    sort: &Sort,
    request: &PageRequest<K>,
) -> sea_orm::Select<E> {
    unlimited(select, sort, request).limit(request.limit + 1)
}

/// [`keyset`] without its limit.
fn unlimited<E: EntityTrait, K: SortKey>(
    mut select: sea_orm::Select<E>,
    sort: &Sort,
    request: &PageRequest<K>,
) -> sea_orm::Select<E> {
    if let Some(after) = &request.after {
        select = select.filter(sort.compare(after, true));
    }
    if let Some(before) = &request.before {
        select = select.filter(sort.compare(before, false));
    }
    let order = match (request.direction, sort.ascending()) {
        (Direction::Forward, true) | (Direction::Backward, false) => Order::Asc,
        (Direction::Forward, false) | (Direction::Backward, true) => Order::Desc,
    };
    for column in &sort.columns {
        select = select.order_by(column.clone(), order.clone());
    }
    select
}

/// [`keyset`] as one statement for `backend`, its limit written into the SQL text as a literal
/// (a validated page size plus one, so a plain number): with the limit a bind parameter,
/// PostgreSQL estimates the rows it returns at a tenth of the table, so a generic plan looks
/// expensive next to a custom one and every execution is planned anew; with a literal limit the
/// statement of each list is planned once per connection and its plan kept. `select` must end
/// with its `ORDER BY` (no locking clause), as [`keyset`] leaves it.
pub fn keyset_statement<E: EntityTrait, K: SortKey>(
    backend: DbBackend,
    select: sea_orm::Select<E>,
    sort: &Sort,
    request: &PageRequest<K>,
) -> Statement {
    let mut statement = unlimited(select, sort, request).build(backend);
    statement.sql.push_str(" LIMIT ");
    statement.sql.push_str(&(request.limit + 1).to_string());
    statement
}

/// Runs [`keyset_statement`] and builds the page of its rows, `key` giving each row's sort key.
pub async fn fetch<E, K>(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
    sort: &Sort,
    list: &'static str,
    request: &PageRequest<K>,
    key: impl Fn(&E::Model) -> K,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    K: SortKey,
{
    let statement = keyset_statement(conn.get_database_backend(), select, sort, request);
    let rows = E::find().from_raw_sql(statement).all(conn).await?;
    Ok(Page::build(rows, request, list, key))
}

/// [`fetch`] for a `select` of some of the entity's columns only: `decode` turns each row into
/// an item.
pub async fn fetch_rows<E, K, T>(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
    sort: &Sort,
    list: &'static str,
    request: &PageRequest<K>,
    decode: impl Fn(&QueryResult) -> Result<T, DbErr>,
    key: impl Fn(&T) -> K,
) -> AppResult<Page<T>>
where
    E: EntityTrait,
    K: SortKey,
{
    let statement = keyset_statement(conn.get_database_backend(), select, sort, request);
    let rows = conn
        .query_all_raw(statement)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<T>, DbErr>>()?;
    Ok(Page::build(rows, request, list, key))
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::Alias;

    use super::*;

    #[test]
    fn keyset_compares_rows_and_reverses_backward_pages() {
        use entity::presets;
        let sort = Sort::asc([
            Expr::col((Alias::new("presets"), Alias::new("name"))),
            Expr::col((Alias::new("presets"), Alias::new("id"))),
        ]);
        let id = Uuid::nil();
        let req = PageRequest {
            direction: Direction::Backward,
            limit: 2,
            after: Some(("a".to_owned(), id)),
            before: Some(("m".to_owned(), id)),
        };
        let sql = keyset(presets::Entity::find(), &sort, &req)
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            sql.contains(r#"("presets"."name", "presets"."id") > ('a', '00000000-0000-0000-0000-000000000000')"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"("presets"."name", "presets"."id") < ('m'"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"ORDER BY "presets"."name" DESC, "presets"."id" DESC LIMIT 3"#),
            "{sql}"
        );
        let newest_first = Sort::desc([Expr::col(Alias::new("seq"))]);
        let forward = PageRequest {
            direction: Direction::Forward,
            limit: 1,
            after: Some((7i64,)),
            before: None,
        };
        let sql = keyset(presets::Entity::find(), &newest_first, &forward)
            .build(DbBackend::Postgres)
            .to_string();
        assert!(sql.contains(r#"("seq") < (7)"#), "{sql}");
        assert!(sql.contains(r#"ORDER BY "seq" DESC LIMIT 2"#), "{sql}");
    }

    #[test]
    fn fetched_pages_carry_their_limit_as_a_literal() {
        use entity::presets;
        let sort = Sort::asc([
            Expr::col((Alias::new("presets"), Alias::new("name"))),
            Expr::col((Alias::new("presets"), Alias::new("id"))),
        ]);
        let forward: PageRequest<(String, Uuid)> = PageRequest {
            after: Some(("a".to_owned(), Uuid::nil())),
            ..PageRequest::first(20)
        };
        let statement = keyset_statement(
            DbBackend::Postgres,
            presets::Entity::find(),
            &sort,
            &forward,
        );
        assert!(
            statement
                .sql
                .ends_with(r#"ORDER BY "presets"."name" ASC, "presets"."id" ASC LIMIT 21"#),
            "{}",
            statement.sql
        );
        // The cursor's values stay bind parameters; only the limit is written in.
        let values = statement.values.map(|v| v.0.len()).unwrap_or_default();
        assert_eq!(values, 2, "{}", statement.sql);
        assert!(!statement.sql.contains("LIMIT $"), "{}", statement.sql);
    }
}
