//! The connection of a request transaction, [`TxConn`]: how its transaction begins in one
//! round trip, ends without one of its own, and has its statement cancelled when its request
//! goes away.
//!
//! **Beginning.** `BEGIN` goes in the same simple-protocol round trip as the role switch, the
//! caller's variables and the liveness check ([`open`]). When that round trip fails part-way
//! (the caller is not live: `app.begin_request` raised after `BEGIN` ran), the backend is left
//! inside a failed transaction that sqlx does not know of, so it is rolled back before the
//! connection goes back to the pool (or, if even that fails, the connection is closed). The
//! opening runs in a task of its own: a request abandoned meanwhile must not leave a `BEGIN`
//! half-done on a pooled connection.
//!
//! **Ending.** A read-only transaction has nothing to commit: it ends with a `ROLLBACK` queued
//! on the connection, which sqlx sends together with the check it makes of every connection
//! given back to its pool (a `Sync` message), after the answer has gone out
//! ([`TxConn::release`]). A read-write transaction waits for its `COMMIT`. Either way the
//! connection returns to the pool only once PostgreSQL has ended the transaction, and a
//! transaction dropped unended is rolled back the same way.
//!
//! **Cancelling.** The HTTP server drops a request whose client closed its connection (or that
//! ran past `HTTP_REQUEST_TIMEOUT_SECS`). Dropping a statement's future does not stop the
//! statement, though: PostgreSQL runs it to its end (or to `statement_timeout`), and the
//! connection returns to the pool only then. sqlx cannot send PostgreSQL's cancel request, so a
//! request transaction marks its backend (a random `application_name`, set with `SET LOCAL` in
//! the round trip that begins the transaction, so it is gone with the transaction) and counts
//! the statements it has in flight. Dropped with one in flight, it hands its connection to a
//! task that runs `pg_cancel_backend(pid)` for the backend with that mark (`pg_stat_activity`)
//! on another pooled connection, and only then rolls back. The connection stays with that task
//! until the rollback is done, so it cannot be reused while a cancel is on its way: the signal
//! is pending on the backend before the rollback is even sent, and PostgreSQL ignores a cancel
//! that reaches an idle backend, so a cancel never hits a later request.
//!
//! Getting the other connection is bounded by the pool's acquire timeout; the cancel statement
//! itself is never abandoned half-way (that could deliver the signal after the connection was
//! reused). Without a connection, nothing is cancelled and the rollback waits for the
//! statement, bounded by `statement_timeout`.
//!
//! sea-orm's own transaction type cannot begin with anything but a lone `BEGIN`, so this one
//! holds the pooled sqlx connection itself and runs sea-orm's statements on it the way
//! sea-orm's sqlx driver does ([`ConnectionTrait`]).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use rand::Rng as _;
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    RuntimeErr, Statement,
    sqlx::{
        self, AssertSqlSafe, Executor as _, SqlSafeStr as _,
        pool::PoolConnection,
        postgres::{PgTransactionManager, Postgres},
    },
};
use sea_query_sqlx::SqlxValues;
use sqlx_core::transaction::TransactionManager as _;
use tokio::sync::Mutex;

use super::SharePermit;

/// A pooled connection inside a request transaction.
type Conn = PoolConnection<Postgres>;

/// The mark of one transaction's backend: `application_name` for as long as it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark(String);

impl Mark {
    /// A fresh, random mark.
    pub(crate) fn new() -> Self {
        Self(format!("gql-tx-{:032x}", rand::rng().random::<u128>()))
    }

    /// The statement that marks the backend, for the transaction's first round trip. The mark
    /// is hex digits only, so it is safe in SQL text.
    pub(crate) fn statement(&self) -> String {
        format!("SET LOCAL application_name = '{}'", self.0)
    }
}

/// Whether a transaction may write, which decides how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Read-only (PostgreSQL refuses its writes): nothing to commit, a queued `ROLLBACK`
    /// ends it.
    Discard,
    /// Read-write: it ends with a `COMMIT` that is waited for.
    Commit,
}

/// Takes a pooled connection and begins a transaction on it with `begin`, a simple-protocol
/// script that starts with `BEGIN` (see the module documentation). Runs in a task of its own,
/// in the caller's span.
pub(crate) async fn open(
    pool: &DatabaseConnection,
    begin: String,
    mark: Mark,
    ending: Ending,
) -> Result<TxConn, DbErr> {
    use tracing::Instrument as _;
    let db = pool.clone();
    tokio::spawn(
        async move {
            let opening = async {
                let mut conn = db
                    .get_postgres_connection_pool()
                    .acquire()
                    .await
                    .map_err(acquire_err)?;
                match PgTransactionManager::begin(
                    &mut conn,
                    Some(AssertSqlSafe(begin).into_sql_str()),
                )
                .await
                {
                    Ok(()) => Ok(conn),
                    Err(error) => {
                        discard_failed_begin(&mut conn).await;
                        Err(query_err(error))
                    }
                }
            };
            // Boxed: what taking a connection and beginning awaits is large, and the task's
            // future would otherwise be copied at that size each time it is moved (spawning).
            let conn = crate::metrics::db_acquire(Box::pin(opening)).await?;
            Ok(TxConn {
                conn: Mutex::new(Some(conn)),
                mark,
                pool: db,
                ending,
                in_flight: AtomicUsize::new(0),
                share: None,
            })
        }
        .in_current_span(),
    )
    .await
    .map_err(|e| DbErr::Custom(format!("opening a transaction failed: {e}")))?
}

/// After the opening script failed: the backend may be inside the failed transaction its
/// `BEGIN` started, which sqlx does not count (it counts a transaction only once the whole
/// script succeeded). Rolls it back (a `ROLLBACK` outside a transaction only warns), or has
/// the connection closed rather than given back.
async fn discard_failed_begin(conn: &mut Conn) {
    if let Err(error) = conn.execute(sqlx::raw_sql("ROLLBACK")).await {
        tracing::warn!(%error, "rolling back a transaction that failed to begin failed; closing its connection");
        conn.close_on_drop();
    }
}

/// The connection of a request transaction: every statement of the transaction goes through
/// it, and it cancels the one in flight if dropped before the statement ended.
pub struct TxConn {
    /// The connection; `None` once the transaction ended.
    conn: Mutex<Option<Conn>>,
    /// The mark on the transaction's backend.
    mark: Mark,
    /// The pool, for the connection that sends the cancel.
    pool: DatabaseConnection,
    ending: Ending,
    /// Statements begun and not finished; a dropped statement future leaves its count here.
    in_flight: AtomicUsize,
    /// The company's share of the pool this connection counts against, released when the
    /// connection is (after a cancel, too).
    share: Option<SharePermit>,
}

impl std::fmt::Debug for TxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxConn")
            .field("mark", &self.mark.0)
            .field("ending", &self.ending)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TxConn {
    /// Counts the connection against `share` until it is released.
    pub(crate) fn hold(&mut self, share: SharePermit) {
        self.share = Some(share);
    }

    /// Ends the transaction: a read-write one commits, in a task of its own (a request
    /// abandoned while its `COMMIT` is on the wire still gets the commit it asked for); a
    /// read-only one is [released](Self::release), without a round trip of its own.
    pub async fn commit(mut self) -> Result<(), DbErr> {
        let Some(mut conn) = self.conn.get_mut().take() else {
            return Ok(());
        };
        if self.ending == Ending::Discard {
            discard(conn);
            return Ok(());
        }
        let share = self.share.take();
        let committed = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let result = Box::pin(PgTransactionManager::commit(&mut conn)).await;
            if result.is_err() {
                // PostgreSQL ended the transaction (or the connection is gone), but sqlx still
                // counts it: the connection must not go back to the pool.
                conn.close_on_drop();
            }
            drop(conn);
            drop(share);
            result
        }))
        .await
        .map_err(|e| DbErr::Custom(format!("committing failed: {e}")))?;
        committed.map_err(exec_err)
    }

    /// Ends a read-only transaction without waiting: see [`Ending::Discard`].
    pub fn release(mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            discard(conn);
        }
    }

    /// Runs `statement` on the transaction's connection, counted in flight while it runs.
    async fn run<T>(
        &self,
        statement: impl for<'c> FnOnce(
            &'c mut Conn,
        )
            -> futures_util::future::BoxFuture<'c, Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let mut conn = self.conn.lock().await;
        let Some(conn) = conn.as_mut() else {
            return Err(sqlx::Error::Protocol(
                "the request transaction has ended".into(),
            ));
        };
        self.track(statement(conn)).await
    }

    /// Counts `statement` in flight while it runs.
    async fn track<T>(&self, statement: impl Future<Output = T>) -> T {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = statement.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// Queues the `ROLLBACK` that ends the transaction on `conn` and gives the connection back:
/// sqlx flushes it with the check it makes of a returned connection, and pools the connection
/// only once both are answered.
fn discard(mut conn: Conn) {
    PgTransactionManager::start_rollback(&mut conn);
    drop(conn);
}

impl Drop for TxConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.get_mut().take() else {
            return;
        };
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            // Idle: the rollback is queued, sent before the connection is used again.
            discard(conn);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to cancel from: the connection is closed rather than pooled.
            let mut conn = conn;
            conn.close_on_drop();
            return;
        };
        let pool = self.pool.clone();
        let mark = self.mark.clone();
        let share = self.share.take();
        runtime.spawn(async move {
            cancel_then_roll_back(&pool, &mark, conn).await;
            drop(share);
        });
    }
}

/// Cancels what the backend marked `mark` runs, then rolls back the transaction on `conn`
/// (that backend). The cancel runs as the pool's login role, which may signal its own
/// sessions.
async fn cancel_then_roll_back(pool: &DatabaseConnection, mark: &Mark, mut conn: Conn) {
    let cancel = pool
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT bool_or(pg_cancel_backend(pid)) AS cancelled FROM pg_stat_activity \
             WHERE application_name = $1",
            [mark.0.clone().into()],
        ))
        .await;
    let mark = mark.0.as_str();
    match cancel {
        Ok(row) => {
            let sent = row.and_then(|r| r.try_get::<Option<bool>>("", "cancelled").ok());
            tracing::debug!(
                mark,
                ?sent,
                "cancelled the statement of an abandoned request"
            );
        }
        Err(error) => tracing::warn!(
            mark,
            %error,
            "could not cancel the statement of an abandoned request; it runs to its end"
        ),
    }
    // The abandoned statement's answer (the cancel's error, most likely) is still to be read:
    // the first attempt reads up to it, the next one rolls back.
    for _ in 0..3 {
        if PgTransactionManager::rollback(&mut conn).await.is_ok() {
            return;
        }
    }
    tracing::warn!(
        mark,
        "rolling back an abandoned request transaction failed; closing its connection"
    );
    conn.close_on_drop();
}

/// A failed statement, as sea-orm reports one.
fn exec_err(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error)))
}

/// A failed query, as sea-orm reports one.
fn query_err(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
}

/// No connection from the pool, as sea-orm reports it.
fn acquire_err(error: sqlx::Error) -> DbErr {
    match error {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(other))),
    }
}

/// sea-orm's statement as sqlx runs it: prepared (and cached per connection), its values bound.
fn query(stmt: &mut Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .take()
        .unwrap_or_else(|| sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

#[async_trait::async_trait]
impl ConnectionTrait for TxConn {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, mut stmt: Statement) -> Result<ExecResult, DbErr> {
        self.run(|conn| Box::pin(async move { query(&mut stmt).execute(&mut **conn).await }))
            .await
            .map(Into::into)
            .map_err(exec_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let sql = sql.to_owned();
        self.run(|conn| {
            Box::pin(async move { conn.execute(sqlx::raw_sql(AssertSqlSafe(sql))).await })
        })
        .await
        .map(Into::into)
        .map_err(exec_err)
    }

    async fn query_one_raw(&self, mut stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.run(|conn| Box::pin(async move { query(&mut stmt).fetch_optional(&mut **conn).await }))
            .await
            .map(|row| row.map(Into::into))
            .map_err(query_err)
    }

    async fn query_all_raw(&self, mut stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.run(|conn| Box::pin(async move { query(&mut stmt).fetch_all(&mut **conn).await }))
            .await
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_err)
    }
}
