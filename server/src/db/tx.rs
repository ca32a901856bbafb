//! `RequestTx`: the only way resolvers reach the database.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, RuntimeErr, Statement};

use super::{
    SharePermit, TxConn,
    cancel::{Ending, Mark, open},
};
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
/// `BEGIN` and the check that the caller is a live user of that company with a live session.
/// All of it is transaction-local, so nothing outlives the transaction's end or the rollback
/// on drop. A read-only transaction ends without a round trip of its own (see [`TxConn`]).
/// Dropped while a statement runs (its request went away), the statement is cancelled first.
#[derive(Debug)]
pub struct RequestTx {
    tx: TxConn,
}

impl RequestTx {
    /// Begins a transaction for `viewer`. `UNAUTHENTICATED` when the token's user no longer
    /// exists, is inactive, or has another company or role than the token says, or when its
    /// session is revoked or past its absolute lifetime.
    ///
    /// `BEGIN`, the backend's mark, the role switch and `app.begin_request` go in one
    /// simple-protocol round trip: the login role may execute no function itself, so the role
    /// must change before the call. The values are written into the SQL text: ids are UUIDs,
    /// and a role name is checked to be plain first.
    pub async fn begin(
        db: &DatabaseConnection,
        viewer: &Viewer,
        access: Access,
    ) -> AppResult<Self> {
        let mark = Mark::new();
        let sql = match viewer {
            Viewer::Anonymous => match access {
                Access::ReadOnly => format!(
                    "BEGIN READ ONLY; {}; SET LOCAL ROLE app_anon",
                    mark.statement()
                ),
                Access::ReadWrite => {
                    format!("BEGIN; {}; SET LOCAL ROLE app_anon", mark.statement())
                }
            },
            Viewer::User(p) => {
                if !is_plain_role_name(&p.role) {
                    return Err(AppError::Unauthenticated(
                        "the token names an invalid role".into(),
                    ));
                }
                format!(
                    "BEGIN; {}; SET LOCAL ROLE {}; {}",
                    mark.statement(),
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
        let ending = match access {
            Access::ReadOnly => Ending::Discard,
            Access::ReadWrite => Ending::Commit,
        };
        match open(db, sql, mark, ending).await {
            Ok(tx) => Ok(Self { tx }),
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
        let sql = format!("BEGIN; {}; SET LOCAL ROLE {role}", mark.statement());
        let tx = open(db, sql, mark, Ending::Commit).await?;
        Ok(Self { tx })
    }

    /// Counts the transaction's connection against a company's share of the pool.
    pub(crate) fn hold(&mut self, share: SharePermit) {
        self.tx.hold(share);
    }

    /// The transaction, for sea-orm queries.
    pub fn conn(&self) -> &TxConn {
        &self.tx
    }

    /// Ends the transaction: commits a read-write one; a read-only one, which has nothing to
    /// commit, is given back without waiting.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_role_names_are_written_into_sql() {
        assert!(is_plain_role_name("admin"));
        assert!(is_plain_role_name("sales-lead_2"));
        assert!(!is_plain_role_name(""));
        assert!(!is_plain_role_name("x'; DROP TABLE users; --"));
        assert!(!is_plain_role_name(&"r".repeat(65)));
    }
}
