//! Conversations as training data: each conversation's choice, the company's policy, and the
//! export of the allowed conversations as OpenAI chat fine-tuning JSON Lines.
//!
//! The export is read through a cursor inside the request transaction, [`EXPORT_BATCH`] lines
//! at a time, and each batch is handed on as soon as it is read: however large the export, the
//! server holds one batch. PostgreSQL builds the lines (`app.training_export`, which decides
//! whom it returns what: see `migration/sql/current/training.sql`).

use chrono::{DateTime, Utc};
use entity::{companies, conversations};
use futures_util::Stream;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::chat::Conversation;
use crate::{
    auth::Principal,
    db::RequestTx,
    error::{AppError, AppResult},
};

/// Lines read from the cursor at a time (each one conversation).
pub const EXPORT_BATCH: usize = 64;

/// The path of the export over HTTP.
pub const EXPORT_PATH: &str = "/exports/training-data.jsonl";

/// A company's training-data policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Whether a conversation may be used unless its owner chose otherwise.
    pub default_allowed: bool,
    /// Whether people may choose otherwise, conversation by conversation.
    pub users_may_change: bool,
}

impl Policy {
    /// Whether a conversation whose owner chose `choice` (`None`: no choice) may be used.
    pub fn allows(self, choice: Option<bool>) -> bool {
        match choice {
            Some(choice) if self.users_may_change => choice,
            _ => self.default_allowed,
        }
    }
}

impl From<&companies::Model> for Policy {
    fn from(m: &companies::Model) -> Self {
        Self {
            default_allowed: m.training_default_allowed,
            users_may_change: m.training_users_may_change,
        }
    }
}

/// The caller's company's policy; `FORBIDDEN` when the caller may not read the company.
pub async fn policy(conn: &impl ConnectionTrait, principal: &Principal) -> AppResult<Policy> {
    companies::Entity::find_by_id(principal.company_id)
        .one(conn)
        .await?
        .map(|c| Policy::from(&c))
        .ok_or_else(|| {
            AppError::Forbidden("the company's training-data policy cannot be read".into())
        })
}

/// Sets the caller's company's policy (Row Level Security lets only those who may update the
/// company).
pub async fn set_policy(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    policy: Policy,
) -> AppResult<companies::Model> {
    companies::Entity::update_many()
        .filter(companies::Column::Id.eq(principal.company_id))
        .col_expr(
            companies::Column::TrainingDefaultAllowed,
            Expr::value(policy.default_allowed),
        )
        .col_expr(
            companies::Column::TrainingUsersMayChange,
            Expr::value(policy.users_may_change),
        )
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Forbidden("you may not change the company's settings".into()))
}

/// Sets whether one of the caller's conversations may be used as training data (`None`: as
/// the company's default says). `FORBIDDEN` while the company does not let its people choose
/// (PostgreSQL refuses it too); `NOT_FOUND` when the conversation is not the caller's.
pub async fn set_conversation_training(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
    allowed: Option<bool>,
) -> AppResult<(Conversation, Policy)> {
    let policy = policy(conn, principal).await?;
    if !policy.users_may_change {
        return Err(AppError::Forbidden(
            "this company does not let its people choose whether a conversation is used as \
             training data (setCompanyTrainingPolicy)"
                .into(),
        ));
    }
    let row = conversations::Entity::update_many()
        .filter(conversations::Column::CompanyId.eq(principal.company_id))
        .filter(conversations::Column::UserId.eq(principal.user_id))
        .filter(conversations::Column::Id.eq(id))
        .col_expr(conversations::Column::TrainingAllowed, Expr::value(allowed))
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::NotFound("no such conversation".into()))?;
    Ok((row.into(), policy))
}

/// The messages an export covers: those sent in `[since, until)`, either end open when `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// Checks `since` is before `until` (`BAD_USER_INPUT` on `until` otherwise).
    pub fn new(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> AppResult<Self> {
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            return Err(AppError::bad_input(
                "until",
                "`until` must be later than `since`",
            ));
        }
        Ok(Self { since, until })
    }

    /// Parses the query-string form: RFC 3339 instants (`BAD_USER_INPUT` naming the parameter).
    pub fn parse(since: Option<&str>, until: Option<&str>) -> AppResult<Self> {
        let instant = |name: &str, text: Option<&str>| -> AppResult<Option<DateTime<Utc>>> {
            text.filter(|t| !t.is_empty())
                .map(|t| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| {
                            AppError::bad_input(
                                name,
                                format!(
                                    "`{name}` is not an RFC 3339 instant (e.g. \
                                     2026-01-31T00:00:00Z): {e}"
                                ),
                            )
                        })
                })
                .transpose()
        };
        Self::new(instant("since", since)?, instant("until", until)?)
    }

    /// The query string of the export's URL for this window.
    pub fn query_string(&self) -> String {
        let pairs: Vec<(&str, String)> = [("since", self.since), ("until", self.until)]
            .into_iter()
            .filter_map(|(name, t)| {
                t.map(|t| (name, t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            })
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The export's path and query.
    pub fn url(&self) -> String {
        let query = self.query_string();
        if query.is_empty() {
            EXPORT_PATH.to_owned()
        } else {
            format!("{EXPORT_PATH}?{query}")
        }
    }
}

/// The cursor of an export, within its transaction.
const CURSOR: &str = "training_export";

/// Opens the export of `window` in `tx` (a read-only request transaction of the caller, who
/// was authorized to export) and returns its lines, a batch of whole lines (each ending in
/// `\n`) per item, read from PostgreSQL as the consumer asks for them. A failure part-way ends
/// the stream with an error (an HTTP body is then cut short, never ended as if complete). The
/// transaction ends with the stream.
pub async fn export(
    tx: RequestTx,
    window: Window,
) -> AppResult<impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static> {
    tx.conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "DECLARE {CURSOR} NO SCROLL CURSOR FOR \
                 SELECT app.training_export($1, $2) AS line"
            ),
            [window.since.into(), window.until.into()],
        ))
        .await?;
    Ok(futures_util::stream::unfold(Some(tx), |tx| async move {
        let tx = tx?;
        match fetch(&tx).await {
            Ok(Some(batch)) => Some((Ok(batch), Some(tx))),
            Ok(None) => {
                if let Err(error) = tx.commit().await {
                    tracing::warn!(?error, "ending a training-data export failed");
                }
                None
            }
            Err(error) => {
                tracing::warn!(?error, "a training-data export failed part-way");
                Some((
                    Err(std::io::Error::other(
                        "the export failed part-way; retry it",
                    )),
                    None,
                ))
            }
        }
    }))
}

/// The next batch of lines, or `None` at the end.
async fn fetch(tx: &RequestTx) -> AppResult<Option<Vec<u8>>> {
    let rows = tx
        .conn()
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("FETCH FORWARD {EXPORT_BATCH} FROM {CURSOR}"),
        ))
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut batch = Vec::new();
    for row in rows {
        let line: String = row.try_get("", "line")?;
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
    }
    Ok(Some(batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_company_decides_unless_it_lets_people_choose() {
        let open = Policy {
            default_allowed: false,
            users_may_change: true,
        };
        assert!(!open.allows(None));
        assert!(open.allows(Some(true)));
        assert!(!open.allows(Some(false)));
        let fixed = Policy {
            default_allowed: true,
            users_may_change: false,
        };
        assert!(fixed.allows(None));
        assert!(fixed.allows(Some(false)));
    }

    #[test]
    fn windows_are_checked_and_round_trip_through_the_url() -> anyhow::Result<()> {
        let window = Window::parse(
            Some("2026-01-01T00:00:00Z"),
            Some("2026-02-01T00:00:00+01:00"),
        )
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        assert_eq!(
            window.url(),
            "/exports/training-data.jsonl?since=2026-01-01T00%3A00%3A00Z&until=2026-01-31T23%3A00%3A00Z"
        );
        assert_eq!(Window::default().url(), EXPORT_PATH);
        let reversed = Window::parse(Some("2026-02-01T00:00:00Z"), Some("2026-01-01T00:00:00Z"));
        assert!(matches!(reversed, Err(AppError::BadUserInput { path, .. }) if path == "until"));
        let garbled = Window::parse(Some("yesterday"), None);
        assert!(matches!(garbled, Err(AppError::BadUserInput { path, .. }) if path == "since"));
        Ok(())
    }
}
