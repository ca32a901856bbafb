//! What a database error means to a client: a lost or busy database is `UNAVAILABLE`, a
//! violation of a constraint a client's input can run into is answered as that constraint's
//! entry in [`constraints`] says, a few SQLSTATEs have answers of their own, anything else is
//! `INTERNAL` (logged, never shown).

use super::constraints::{self, Constraint, Kind};
use crate::error::{AppError, code};

impl AppError {
    /// The answer to a violation of `constraint`.
    pub fn refused(constraint: &Constraint) -> Self {
        Self::Refused {
            code: match constraint.kind {
                Kind::Unique => code::CONFLICT,
                Kind::ForeignKey | Kind::Check => code::BAD_USER_INPUT,
            },
            field: constraint.field,
            message: constraint.message.to_owned(),
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(error: sea_orm::DbErr) -> Self {
        use sea_orm::{DbErr, RuntimeErr};
        match &error {
            DbErr::ConnectionAcquire(_) => {
                tracing::warn!(%error, "database pool unavailable");
                Self::Unavailable("the database is busy; retry shortly".into())
            }
            DbErr::Conn(_) => {
                tracing::warn!(error = %error, "database connection failed");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if connection_lost(e) =>
            {
                tracing::warn!(error = %e, "database connection lost");
                Self::Unavailable("the database is unavailable; retry shortly".into())
            }
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                let database = e.as_database_error();
                let mapped =
                    database.and_then(|d| constraints::lookup(d.code()?.as_ref(), d.constraint()?));
                if let Some(constraint) = mapped {
                    tracing::debug!(
                        constraint = constraint.name,
                        "input refused by a constraint"
                    );
                    return Self::refused(constraint);
                }
                match database.and_then(|d| d.code()) {
                    Some(code) if code == "23505" => {
                        Self::Conflict("a record with the same unique value already exists".into())
                    }
                    // A string PostgreSQL cannot store (NUL), should one slip past the check
                    // of the GraphQL layer.
                    Some(code) if code == "22021" || code == "22P05" => Self::bad_input(
                        "input",
                        "the input contains a character that cannot be stored (NUL)",
                    ),
                    Some(code) if code == "42501" => {
                        tracing::error!(%error, "permission denied by the database");
                        Self::Forbidden("not allowed".into())
                    }
                    // statement_timeout (or a cancel of an abandoned request's statement).
                    Some(code) if code == "57014" => {
                        tracing::warn!(%error, "database statement cancelled");
                        Self::Unavailable(
                            "the database statement took too long and was cancelled; retry, or \
                             ask for less at once"
                                .into(),
                        )
                    }
                    Some(code) if code == "55P03" => {
                        tracing::warn!(%error, "database lock wait timed out");
                        Self::Unavailable(
                            "the data is locked by another change that takes too long; retry \
                             shortly"
                                .into(),
                        )
                    }
                    Some(code) if code == "25P03" => {
                        tracing::warn!(%error, "request transaction idle too long");
                        Self::Unavailable(
                            "the database transaction was idle too long and was ended; retry"
                                .into(),
                        )
                    }
                    _ => Self::internal(error),
                }
            }
            _ => Self::internal(error),
        }
    }
}

/// Whether `error` means the connection to PostgreSQL went away or cannot be had: a restart or
/// fail-over (`57P01`..`57P03`, class `08`), too many connections (`53300`), a reset socket or a
/// closed pool. Retrying later may succeed; it is no bug.
fn connection_lost(error: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match error {
        Error::Io(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => true,
        Error::Database(d) => d.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_database_connection_is_unavailable_not_internal() {
        use sea_orm::{DbErr, RuntimeErr, sqlx};
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        for error in [
            DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::Io(reset).into())),
            DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::PoolClosed.into())),
            DbErr::Conn(RuntimeErr::Internal("refused".into())),
        ] {
            assert_eq!(AppError::from(error).code(), code::UNAVAILABLE);
        }
        let other = DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::RowNotFound.into()));
        assert_eq!(AppError::from(other).code(), code::INTERNAL);
    }
}
