//! Cancelling the statement of a request whose client went away.
//!
//! The HTTP server drops a request whose client closed its connection (or that ran past
//! `HTTP_REQUEST_TIMEOUT_SECS`). Dropping a statement's future does not stop the statement,
//! though: PostgreSQL runs it to its end (or to `statement_timeout`), and the connection returns
//! to the pool only then. sqlx cannot send PostgreSQL's cancel request, so a request
//! transaction's connection, [`TxConn`], marks its backend (a random `application_name`, set
//! with `SET LOCAL` in the round trip that begins the transaction, so it is gone with the
//! transaction) and counts the statements it has in flight. Dropped with one in flight, it
//! hands the transaction to a task that runs `pg_cancel_backend(pid)` for the backend with that
//! mark (`pg_stat_activity`) on another pooled connection, and only then rolls back. The
//! connection stays with that task until the rollback is done, so it cannot be reused while a
//! cancel is on its way: the signal is pending on the backend before the rollback is even
//! sent, and PostgreSQL ignores a cancel that reaches an idle backend, so a cancel never hits a
//! later request.
//!
//! Getting the other connection is bounded by the pool's acquire timeout; the cancel statement
//! itself is never abandoned half-way (that could deliver the signal after the connection was
//! reused). Without a connection, nothing is cancelled and the rollback waits for the
//! statement, bounded by `statement_timeout`.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
};

use rand::Rng as _;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use super::SharePermit;

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

/// The connection of a request transaction: every statement of the transaction goes through
/// it, and it cancels the one in flight if dropped before the statement ended.
pub struct TxConn {
    /// `None` once committed.
    tx: Option<DatabaseTransaction>,
    /// The mark on the transaction's backend.
    mark: Mark,
    /// The pool, for the connection that sends the cancel.
    pool: DatabaseConnection,
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
            .field("open", &self.tx.is_some())
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TxConn {
    /// Wraps `tx`, begun on a backend of `pool` marked with `mark`.
    pub(crate) fn new(tx: DatabaseTransaction, mark: Mark, pool: DatabaseConnection) -> Self {
        Self {
            tx: Some(tx),
            mark,
            pool,
            in_flight: AtomicUsize::new(0),
            share: None,
        }
    }

    /// Counts the connection against `share` until it is released.
    pub(crate) fn hold(&mut self, share: SharePermit) {
        self.share = Some(share);
    }

    /// Commits the transaction, in a task of its own: a request abandoned while its `COMMIT`
    /// is on the wire must not have sea-orm queue a `ROLLBACK` after it (PostgreSQL would warn
    /// that no transaction is in progress), and the commit it asked for still happens.
    pub async fn commit(mut self) -> Result<(), DbErr> {
        match self.tx.take() {
            Some(tx) => tokio::spawn(tracing::Instrument::in_current_span(tx.commit()))
                .await
                .map_err(|e| DbErr::Custom(format!("committing failed: {e}")))?,
            None => Ok(()),
        }
    }

    fn tx(&self) -> Result<&DatabaseTransaction, DbErr> {
        self.tx
            .as_ref()
            .ok_or_else(|| DbErr::Custom("the request transaction has ended".into()))
    }

    /// Runs one statement, counted in flight while it runs.
    async fn track<T>(
        &self,
        statement: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, DbErr> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = statement.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            // Idle: sea-orm queues the rollback, sent before the connection is used again.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let mark = self.mark.clone();
        let share = self.share.take();
        runtime.spawn(async move {
            cancel_then_roll_back(&pool, &mark, tx).await;
            drop(share);
        });
    }
}

/// Cancels what the backend marked `mark` runs, then rolls `tx` (on that backend) back. The
/// cancel runs as the pool's login role, which may signal its own sessions.
async fn cancel_then_roll_back(pool: &DatabaseConnection, mark: &Mark, tx: DatabaseTransaction) {
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
    if let Err(error) = tx.rollback().await {
        tracing::warn!(mark, %error, "rolling back an abandoned request transaction failed");
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for TxConn {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let tx = self.tx()?;
        self.track(tx.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let tx = self.tx()?;
        self.track(tx.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let tx = self.tx()?;
        self.track(tx.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let tx = self.tx()?;
        self.track(tx.query_all_raw(stmt)).await
    }
}
