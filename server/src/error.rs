//! One error type that knows its client code. Internal detail goes to the log, never to clients.

use std::sync::Arc;

use async_graphql::ErrorExtensions as _;

/// Codes in `extensions.code` of GraphQL errors.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}

/// Everything a request can fail with.
///
/// It deliberately does not implement `Display`: async-graphql turns any displayable error
/// into a GraphQL error without a code, so only the explicit conversion below (which adds
/// `extensions.code`) applies, and resolvers return `AppResult` so that `?` always goes
/// through it.
#[derive(Debug, Clone)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    BadUserInput {
        path: String,
        message: String,
    },
    NotFound(String),
    Conflict(String),
    /// A constraint of the database refused the input in `field` (`extensions.field`):
    /// `CONFLICT` for a taken unique value, `BAD_USER_INPUT` for a reference to nothing or a
    /// value a check refuses. The database layer maps its errors (`crate::db::constraints`).
    Refused {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    RateLimited {
        retry_after_secs: u64,
    },
    /// A dependency (database pool, Redis) is temporarily unavailable; retrying may help.
    Unavailable(String),
    /// The server is too busy for this now: `UNAVAILABLE` with `extensions.retryAfter`.
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    /// Anything else; the detail is logged, the client sees a generic message.
    Internal(Arc<anyhow::Error>),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Arc::new(error.into()))
    }

    /// The same error saying `message` instead, when it is one a client can act on (not
    /// `INTERNAL`): for callers that know more than the database, e.g. the value that clashed.
    pub fn reworded(self, message: impl Into<String>) -> Self {
        match self {
            Self::Refused { code, field, .. } => Self::Refused {
                code,
                field,
                message: message.into(),
            },
            Self::Conflict(_) => Self::Conflict(message.into()),
            other => other,
        }
    }

    /// The client-facing message.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Unavailable(m) => m.clone(),
            Self::BadUserInput { message, .. }
            | Self::Overloaded { message, .. }
            | Self::Refused { message, .. } => message.clone(),
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry in {retry_after_secs} s")
            }
            Self::Internal(_) => "internal error".to_owned(),
        }
    }

    /// The client-facing code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => code::UNAUTHENTICATED,
            Self::Forbidden(_) => code::FORBIDDEN,
            Self::BadUserInput { .. } => code::BAD_USER_INPUT,
            Self::NotFound(_) => code::NOT_FOUND,
            Self::Conflict(_) => code::CONFLICT,
            Self::Refused { code, .. } => code,
            Self::RateLimited { .. } => code::RATE_LIMITED,
            Self::Unavailable(_) | Self::Overloaded { .. } => code::UNAVAILABLE,
            Self::Internal(_) => code::INTERNAL,
        }
    }
}

/// An error and its causes on one line.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}")
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The request id of the current request, for error messages.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        Self::internal(error)
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(error: AppError) -> Self {
        if let AppError::Internal(source) = &error {
            // One line: the cause and its chain, inside the request's span (its id), never a
            // backtrace.
            tracing::error!(cause = %one_line(source), "internal error");
        }
        async_graphql::Error::new(error.message()).extend_with(|_, ext| {
            ext.set("code", error.code());
            match &error {
                AppError::BadUserInput { path, .. } => ext.set("path", path.as_str()),
                AppError::Refused { field, .. } => ext.set("field", *field),
                AppError::RateLimited { retry_after_secs }
                | AppError::Overloaded {
                    retry_after_secs, ..
                } => ext.set("retryAfter", *retry_after_secs),
                _ => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_logged_on_one_line() {
        let error = anyhow::anyhow!("line one\nline two").context("while doing\r\nthe thing");
        let line = one_line(&error);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(
            line.contains("while doing") && line.contains("line two"),
            "{line}"
        );
    }
}
