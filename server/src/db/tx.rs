//! `RequestTx`: the only way resolvers reach the database.

use sea_orm::{DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use uuid::Uuid;

use super::{SharePermit, TxConn};
use crate::{
    auth::Viewer,
    error::{AppError, AppResult},
};

/// Whether a request transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A transaction opened for one caller: `SET LOCAL ROLE app_user` (or `app_anon`) and the
/// `app.user_id` / `app.company_id` / `app.role` variables are set in the same round trip as
/// the check that the caller is a live user of that company. All of it is transaction-local,
/// so nothing outlives `commit` or the rollback on drop. Dropped while a statement runs (its
/// request went away), the statement is cancelled first (see [`TxConn`]).
#[derive(Debug)]
pub struct RequestTx {
    tx: TxConn,
}

impl RequestTx {
    /// Begins a transaction for `viewer`. `UNAUTHENTICATED` when the token's user no longer
    /// exists, is inactive, or has another company or role than the token says, or when its
    /// session is revoked or past its absolute lifetime.
    pub async fn begin(
        db: &DatabaseConnection,
        viewer: &Viewer,
        access: Access,
    ) -> AppResult<Self> {
        let tx = db.begin().await?;
        let values: [Value; 5] = match viewer {
            Viewer::Anonymous => [
                Option::<Uuid>::None.into(),
                Option::<Uuid>::None.into(),
                Option::<String>::None.into(),
                Option::<Uuid>::None.into(),
                (access == Access::ReadOnly).into(),
            ],
            Viewer::User(p) => [
                p.user_id.into(),
                p.company_id.into(),
                p.role.clone().into(),
                p.session_id.into(),
                (access == Access::ReadOnly).into(),
            ],
        };
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &tx,
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app.begin_request($1, $2, $3, $4, $5) AS ok, pg_backend_pid() AS pid",
                values,
            ),
        )
        .await?;
        let (ok, pid) = match row {
            Some(row) => (
                row.try_get::<bool>("", "ok")?,
                row.try_get::<i32>("", "pid")?,
            ),
            None => (false, 0),
        };
        if !ok {
            return Err(AppError::Unauthenticated(
                "the session has ended, or its user is no longer an active member of that company \
                 with that role"
                    .into(),
            ));
        }
        Ok(Self {
            tx: TxConn::new(tx, pid, db.clone()),
        })
    }

    /// Counts the transaction's connection against a company's share of the pool.
    pub(crate) fn hold(&mut self, share: SharePermit) {
        self.tx.hold(share);
    }

    /// The transaction, for sea-orm queries.
    pub fn conn(&self) -> &TxConn {
        &self.tx
    }

    /// Commits the transaction.
    pub async fn commit(self) -> AppResult<()> {
        self.tx.commit().await.map_err(Into::into)
    }
}

impl std::ops::Deref for RequestTx {
    type Target = TxConn;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}
