//! `RequestTx`: the only way resolvers reach the database.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, RuntimeErr,
    Statement, TransactionTrait,
};

use super::{SharePermit, TxConn, cancel::Mark};
use crate::{
    caller::Viewer,
    error::{AppError, AppResult},
};

/// Whether a request transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The roles a transaction outside a signed-in request runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemRole {
    /// `app_anon`: anonymous requests, and the sign-in functions they call.
    Anonymous,
    /// `app_worker`: background work that belongs to no request.
    Worker,
}

/// Begins a transaction and runs its first round trip, `sql`, in a task of its own: a request
/// abandoned while its transaction opens must not leave a `BEGIN` half-done on a pooled
/// connection (sea-orm queues no rollback for a transaction whose `BEGIN` did not finish, and
/// the next request would find the connection inside a transaction).
async fn open(db: &DatabaseConnection, sql: String) -> Result<DatabaseTransaction, DbErr> {
    use tracing::Instrument as _;
    let db = db.clone();
    // In the request's span, so that traces keep the opening under its request.
    tokio::spawn(
        async move {
            let tx = crate::metrics::db_acquire(db.begin()).await?;
            tx.execute_unprepared(&sql).await?;
            Ok(tx)
        }
        .in_current_span(),
    )
    .await
    .map_err(|e| DbErr::Custom(format!("opening a transaction failed: {e}")))?
}

/// The SQLSTATE `app.begin_request` raises when the caller is not live.
const NOT_LIVE: &str = "28000";

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(error: &DbErr) -> Option<String> {
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

/// Role names are written into SQL text: allow only plain ones (what `roles.name` allows, and
/// the built-in names).
fn is_plain_role_name(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Runs one statement as `role` in a transaction of its own and returns its first row.
pub async fn query_one_as(
    db: &DatabaseConnection,
    role: SystemRole,
    statement: Statement,
) -> Result<Option<QueryResult>, DbErr> {
    let tx = RequestTx::begin_system(db, role).await?;
    let row = tx.tx.query_one_raw(statement).await?;
    tx.tx.commit().await?;
    Ok(row)
}

/// Runs one statement as `role` in a transaction of its own and returns its rows.
pub async fn query_all_as(
    db: &DatabaseConnection,
    role: SystemRole,
    statement: Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    let tx = RequestTx::begin_system(db, role).await?;
    let rows = tx.tx.query_all_raw(statement).await?;
    tx.tx.commit().await?;
    Ok(rows)
}

/// A transaction opened for one caller: `SET LOCAL ROLE app_user` (or `app_anon`) and the
/// `app.user_id` / `app.company_id` / `app.role` variables are set in the same round trip as
/// the check that the caller is a live user of that company with a live session. All of it is transaction-local,
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
    ///
    /// The role switch and `app.begin_request` go in one simple-protocol round trip: the login
    /// role may execute no function itself, so the role must change before the call. The values
    /// are written into the SQL text: ids are UUIDs, and a role name is checked to be plain
    /// first.
    pub async fn begin(
        db: &DatabaseConnection,
        viewer: &Viewer,
        access: Access,
    ) -> AppResult<Self> {
        let mark = Mark::new();
        let sql = match viewer {
            Viewer::Anonymous => match access {
                Access::ReadOnly => {
                    "SET LOCAL ROLE app_anon; SET LOCAL transaction_read_only = on".to_owned()
                }
                Access::ReadWrite => "SET LOCAL ROLE app_anon".to_owned(),
            },
            Viewer::User(p) => {
                if !is_plain_role_name(&p.role) {
                    return Err(AppError::Unauthenticated(
                        "the token names an invalid role".into(),
                    ));
                }
                format!(
                    "SET LOCAL ROLE {}; {}",
                    super::functions::BEGIN_REQUEST.caller.role(),
                    super::functions::begin_request_sql(
                        p.user_id,
                        p.company_id,
                        &p.role,
                        p.session_id,
                        access == Access::ReadOnly,
                    )
                )
            }
        };
        let sql = format!("{}; {sql}", mark.statement());
        match open(db, sql).await {
            Ok(tx) => Ok(Self {
                tx: TxConn::new(tx, mark, db.clone()),
            }),
            Err(error) if sqlstate(&error).as_deref() == Some(NOT_LIVE) => {
                Err(AppError::Unauthenticated(
                    "the session has ended, or its user is no longer an active member of that \
                     company with that role"
                        .into(),
                ))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Begins a transaction as one of the roles for work outside a signed-in request:
    /// `app_anon` for signing in, `app_worker` for background work.
    pub async fn begin_system(db: &DatabaseConnection, role: SystemRole) -> Result<Self, DbErr> {
        let mark = Mark::new();
        let role = match role {
            SystemRole::Anonymous => "app_anon",
            SystemRole::Worker => "app_worker",
        };
        let tx = open(db, format!("{}; SET LOCAL ROLE {role}", mark.statement())).await?;
        Ok(Self {
            tx: TxConn::new(tx, mark, db.clone()),
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
