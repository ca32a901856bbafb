//! Conversations as training data: `setConversationTraining`, `setCompanyTrainingPolicy`, and
//! `exportTrainingData`, which answers where to download the export (the JSON Lines stream
//! over HTTP, `GET /exports/training-data.jsonl`, see `crate::http::exports`): a GraphQL
//! response is one JSON document held whole, the export is not.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{chat::Conversation, connection::parse_id, principal, scope, users::Company};
use crate::{
    authz::{Action, Object as Guarded, requires},
    error::AppResult,
    services::{
        training::{self as service, Policy, Window},
        users as user_service,
    },
};

/// Whether a company's conversations may be used as training data.
#[derive(Debug, Clone, Copy, SimpleObject)]
pub struct TrainingPolicy {
    /// Whether a conversation is included unless its owner chose otherwise.
    pub default_allowed: bool,
    /// Whether people may choose otherwise, conversation by conversation
    /// (`setConversationTraining`); when not, the default decides for every conversation.
    pub users_may_change: bool,
}

impl From<Policy> for TrainingPolicy {
    fn from(p: Policy) -> Self {
        Self {
            default_allowed: p.default_allowed,
            users_may_change: p.users_may_change,
        }
    }
}

/// Where to download a training-data export.
#[derive(Debug, Clone, SimpleObject)]
pub struct TrainingDataExport {
    /// The path (and query) of the export on this server: `GET` it with the same credentials
    /// (`Authorization: Bearer` or the sign-in cookies). The body is OpenAI chat fine-tuning
    /// JSON Lines (`application/jsonl`), one conversation a line, streamed as it is read; a
    /// body cut short (no final chunk) is a failed export, to be retried.
    pub url: String,
    /// The window's start, as given.
    pub since: Option<DateTime<Utc>>,
    /// The window's end, as given.
    pub until: Option<DateTime<Utc>>,
}

/// Queries of training data.
#[derive(Default)]
pub struct TrainingQuery;

#[Object]
impl TrainingQuery {
    /// The export of the conversations of the caller's company that may be used as training
    /// data: their exchanges (a user message and its completed reply) whose message was sent in
    /// `[since, until)` (either end open when omitted); cleared and deleted conversations have
    /// none. Answers the URL to download it from; the download checks the same permission.
    /// Admins only (`read training_data`).
    #[graphql(directive = requires::apply(Guarded::TrainingData, Action::Read))]
    async fn export_training_data(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> AppResult<TrainingDataExport> {
        let window = Window::new(since, until)?;
        Ok(TrainingDataExport {
            url: window.url(),
            since,
            until,
        })
    }
}

/// Mutations of training data.
#[derive(Default)]
pub struct TrainingMutation;

#[Object]
impl TrainingMutation {
    /// Allows (`true`) or forbids (`false`) the use of one of the caller's conversations as
    /// training data; null follows the company's default again. `FORBIDDEN` while the company
    /// does not let its people choose (`Company.trainingPolicy.usersMayChange`).
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Update))]
    async fn set_conversation_training(
        &self,
        ctx: &Context<'_>,
        id: ID,
        allowed: Option<bool>,
    ) -> AppResult<Conversation> {
        let id = parse_id("id", &id)?;
        let principal = principal(ctx)?.clone();
        let (conversation, _) = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    service::set_conversation_training(tx.conn(), &principal, id, allowed).await
                })
            })
            .await?;
        Ok(conversation.into())
    }

    /// Sets the company's training-data policy: whether conversations may be used unless
    /// their owners chose otherwise, and whether they may choose. With `usersMayChange: false`
    /// the default decides for every conversation (earlier choices are kept, and count again
    /// once people may choose).
    #[graphql(directive = requires::apply(Guarded::Company, Action::Update))]
    async fn set_company_training_policy(
        &self,
        ctx: &Context<'_>,
        default_allowed: bool,
        users_may_change: bool,
    ) -> AppResult<Company> {
        let principal = principal(ctx)?.clone();
        let policy = Policy {
            default_allowed,
            users_may_change,
        };
        let row = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::set_policy(tx.conn(), &principal, policy).await })
            })
            .await?;
        Ok(user_service::Company::from(row).into())
    }
}
