//! `RequestScope`: per-operation access to the database for one caller.
//!
//! Query fields share one read-only transaction, begun lazily by the first field that needs
//! it and ended when the operation finishes. Each mutation field opens its own read-write
//! transaction and commits it before the next field runs. An operation holds at most one
//! connection at a time: opening a write transaction first ends the shared read one.
//!
//! What one request may hold is bounded however many operations its batch has: the
//! operations of a request share a [`RequestBudget`], and an operation takes one of its turns
//! when it first needs the database and gives it back when it finishes. Every connection also
//! counts against the caller's company's share of the pool ([`Shares`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sea_orm::DatabaseConnection;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore};

use super::{Access, RequestTx, Shares};
use crate::{
    caller::Viewer,
    error::{AppError, AppResult},
};

/// The operations of one request that may use the database at once. Cheap to clone; one per
/// HTTP request (shared by the operations of a batch) or WebSocket operation.
#[derive(Debug, Clone)]
pub struct RequestBudget(Arc<Semaphore>);

impl RequestBudget {
    pub fn new(operations: usize) -> Self {
        Self(Arc::new(Semaphore::new(operations.max(1))))
    }
}

/// Database access for one GraphQL operation.
#[derive(Debug)]
pub struct RequestScope {
    db: DatabaseConnection,
    shares: Shares,
    budget: RequestBudget,
    viewer: Viewer,
    read_tx: Mutex<Option<RequestTx>>,
    /// This operation's turn of the request's budget, held from its first transaction until
    /// it finishes.
    turn: Mutex<Option<OwnedSemaphorePermit>>,
    /// Why the operation's database access failed for good (the pool or the company's share
    /// stayed busy past the acquire timeout, or the caller is no longer live): its other fields
    /// fail at once with the same error instead of waiting again, so the acquire wait is paid
    /// once per operation, not once per root field.
    failed: std::sync::Mutex<Option<AppError>>,
}

impl RequestScope {
    pub fn new(
        db: DatabaseConnection,
        shares: Shares,
        budget: RequestBudget,
        viewer: Viewer,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            shares,
            budget,
            viewer,
            read_tx: Mutex::new(None),
            turn: Mutex::new(None),
            failed: std::sync::Mutex::new(None),
        })
    }

    /// The caller.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// Runs `work` in the operation's shared read-only transaction (begun on first use).
    /// The transaction is lent for the duration of `work` only, so no resolver can hold it
    /// across a write.
    ///
    /// ```ignore
    /// let user = scope.read(|tx| Box::pin(services::users::find(tx.conn(), &viewer, id))).await?;
    /// ```
    pub async fn read<T, F>(&self, work: F) -> AppResult<T>
    where
        F: for<'t> FnOnce(&'t RequestTx) -> BoxFuture<'t, AppResult<T>>,
    {
        let tx = self.read_guard().await?;
        work(&tx).await
    }

    /// The shared read-only transaction as a guard. Prefer [`RequestScope::read`]; a guard
    /// held while the same operation writes makes [`RequestScope::write`] fail (it never
    /// waits for it).
    pub async fn read_guard(&self) -> AppResult<MappedMutexGuard<'_, RequestTx>> {
        let mut slot = self.read_tx.lock().await;
        if slot.is_none() {
            *slot = Some(self.begin(Access::ReadOnly).await?);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| AppError::internal(anyhow::anyhow!("read transaction vanished")))
    }

    /// Runs `work` in a fresh read-write transaction of its own, after ending the shared
    /// read-only one: commits it when `work` returns `Ok`, rolls it back when `work` returns
    /// an error (or is dropped). What must happen only once the write is durable (events,
    /// cache updates) goes after this returns.
    ///
    /// ```ignore
    /// let preset = scope.write(|tx| Box::pin(services::presets::create(tx.conn(), &viewer, input))).await?;
    /// ```
    pub async fn write<T, F>(&self, work: F) -> AppResult<T>
    where
        F: for<'t> FnOnce(&'t RequestTx) -> BoxFuture<'t, AppResult<T>>,
    {
        let tx = self.begin_write().await?;
        let value = work(&tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// A fresh read-write transaction that the caller commits. Prefer
    /// [`RequestScope::write`], which cannot forget to.
    pub async fn begin_write(&self) -> AppResult<RequestTx> {
        self.end_read().await?;
        self.begin(Access::ReadWrite).await
    }

    /// Ends the shared read-only transaction, if one was begun, and gives the operation's
    /// turn back (it takes one again if it needs the database later).
    pub async fn finish(&self) -> AppResult<()> {
        let result = self.end_read().await;
        self.turn.lock().await.take();
        result
    }

    async fn end_read(&self) -> AppResult<()> {
        // Mutation fields run one after another, so the shared read transaction is idle when
        // a write begins; a guard still held is a bug, answered at once rather than waited on.
        let tx = self
            .read_tx
            .try_lock()
            .map_err(|_| {
                AppError::internal(anyhow::anyhow!(
                    "a write began while this operation still held its read transaction"
                ))
            })?
            .take();
        match tx {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        }
    }

    /// A transaction within the request's budget and the company's share of the pool.
    async fn begin(&self, access: Access) -> AppResult<RequestTx> {
        if let Some(error) = self.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(error);
        }
        let result = self.begin_now(access).await;
        if let Err(error) = &result
            && matches!(
                error.code(),
                crate::error::code::UNAVAILABLE | crate::error::code::UNAUTHENTICATED
            )
            && let Ok(mut failed) = self.failed.lock()
        {
            *failed = Some(error.clone());
        }
        result
    }

    async fn begin_now(&self, access: Access) -> AppResult<RequestTx> {
        {
            let mut turn = self.turn.lock().await;
            if turn.is_none() {
                // The other operations of the same request hold the turns; they end by
                // themselves (their statements are bounded), so waiting here is bounded too.
                let permit = Arc::clone(&self.budget.0)
                    .acquire_owned()
                    .await
                    .map_err(|_| AppError::internal(anyhow::anyhow!("request budget closed")))?;
                *turn = Some(permit);
            }
        }
        let share = self.shares.acquire(self.viewer.company_id()).await?;
        let mut tx = RequestTx::begin(&self.db, &self.viewer, access).await?;
        tx.hold(share);
        Ok(tx)
    }
}
