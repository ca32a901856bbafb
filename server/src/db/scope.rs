//! `RequestScope`: per-operation access to the database for one caller.
//!
//! Query fields share one read-only transaction, begun lazily by the first field that needs
//! it and ended when the operation finishes. Each mutation field opens its own read-write
//! transaction and commits it before the next field runs. A request holds at most one
//! connection at a time: opening a write transaction first ends the shared read one.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::{Access, RequestTx};
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
};

/// Database access for one GraphQL operation.
#[derive(Debug)]
pub struct RequestScope {
    db: DatabaseConnection,
    viewer: Viewer,
    read_tx: Mutex<Option<RequestTx>>,
}

impl RequestScope {
    pub fn new(db: DatabaseConnection, viewer: Viewer) -> Arc<Self> {
        Arc::new(Self {
            db,
            viewer,
            read_tx: Mutex::new(None),
        })
    }

    /// The caller.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// The shared read-only transaction, begun on first use. Do not hold the guard across a
    /// call to [`RequestScope::write`].
    pub async fn read(&self) -> AppResult<MappedMutexGuard<'_, RequestTx>> {
        let mut slot = self.read_tx.lock().await;
        if slot.is_none() {
            *slot = Some(RequestTx::begin(&self.db, &self.viewer, Access::ReadOnly).await?);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| AppError::internal(anyhow::anyhow!("read transaction vanished")))
    }

    /// A fresh read-write transaction for one mutation field; the caller commits it.
    pub async fn write(&self) -> AppResult<RequestTx> {
        self.finish().await?;
        RequestTx::begin(&self.db, &self.viewer, Access::ReadWrite).await
    }

    /// Ends the shared read-only transaction, if one was begun.
    pub async fn finish(&self) -> AppResult<()> {
        let tx = self.read_tx.lock().await.take();
        match tx {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        }
    }
}
