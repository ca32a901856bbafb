//! Chat with streamed AI replies: `conversations`, `conversation`, `knowledge`, their
//! mutations, `sendMessage` / `cancelReply`, and the `conversationEvents` subscription.
//! The machinery lives in `crate::chat`, the reads and writes in `crate::services::chat`;
//! resolvers authorize, validate and convert. Mutations
//! are in `mutation.rs`, output types in `types.rs`.

mod mutation;
mod types;

use std::sync::Arc;

use async_graphql::{Context, ID, Object, Subscription};
use futures_util::{Stream, StreamExt};

pub use mutation::ChatMutation;
pub use types::*;

use super::{
    connection::{Defaulted, page_args, page_cost, parse_id},
    principal, scope,
};
use crate::{
    authz::{Action, Object as Guarded, requires},
    chat::events::topic,
    error::{AppError, AppResult},
    services::chat as service,
    state::AppState,
};

fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in the GraphQL schema")))
}

/// Trims `text` and checks it has 1 to `max` characters.
fn text_between(path: &str, text: &str, max: usize) -> AppResult<String> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(AppError::bad_input(path, format!("`{path}` is empty")));
    }
    if chars > max {
        return Err(AppError::bad_input(
            path,
            format!("`{path}` is longer than {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// Queries of the chat.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The caller's conversations, newest first; `search` matches titles.
    #[graphql(
        directive = requires::apply(Guarded::Conversation, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        search: Option<String>,
    ) -> AppResult<ConversationConnection> {
        let principal = principal(ctx)?.clone();
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        let page = scope(ctx)?
            .read(|tx| {
                Box::pin(async move {
                    service::conversations(tx.conn(), &principal, args, search).await
                })
            })
            .await?;
        Ok(ConversationConnection::from_page(
            page.map(Conversation::from),
        ))
    }

    /// One of the caller's conversations; null when there is none (other people's
    /// conversations do not exist, as far as the caller can tell).
    #[graphql(directive = requires::apply(Guarded::Conversation, Action::Read))]
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Option<Conversation>> {
        let principal = principal(ctx)?.clone();
        let id = parse_id("id", &id)?;
        let row = scope(ctx)?
            .read(|tx| {
                Box::pin(async move { service::conversation(tx.conn(), &principal, id).await })
            })
            .await?;
        Ok(row.map(Conversation::from))
    }

    /// The caller's knowledge notes, newest first.
    #[graphql(
        directive = requires::apply(Guarded::Conversation, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn knowledge(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<KnowledgeConnection> {
        let principal = principal(ctx)?.clone();
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        let page = scope(ctx)?
            .read(|tx| {
                Box::pin(async move { service::knowledge_page(tx.conn(), &principal, args).await })
            })
            .await?;
        Ok(KnowledgeConnection::from_page(page.map(Knowledge::from)))
    }
}

/// Subscriptions of the chat.
#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Events of one of the caller's conversations: replies starting, their text as it
    /// streams, and their end. Joining (or re-joining) while a reply streams first gives the
    /// text so far as one `MessageDelta`, then the live ones. Ends when the caller's session
    /// does.
    #[graphql(directive = requires::apply(Guarded::Message, Action::Read))]
    async fn conversation_events(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> Result<impl Stream<Item = SubscribedEvent> + use<>, AppError> {
        let principal = principal(ctx)?;
        let chat = &state(ctx)?.chat;
        let id = parse_id("conversationId", &conversation_id)?;
        // Subscribed before the streaming reply is read: see `chat::live`.
        let live = chat.pubsub().subscribe(&topic(id));
        let caller = principal.clone();
        let streaming = scope(ctx)?
            .read(|tx| {
                Box::pin(async move { service::subscription_start(tx.conn(), &caller, id).await })
            })
            .await?;
        // A subscription lives long: it must not keep a transaction (and a connection).
        scope(ctx)?.finish().await?;
        // The end of a reply too long for a PostgreSQL notification is read here, as the
        // subscriber, in a transaction of its own each time.
        let load: crate::chat::events::LoadMessage = {
            let scope = Arc::clone(scope(ctx)?);
            let principal = principal.clone();
            Arc::new(move |message| {
                let scope = Arc::clone(&scope);
                let principal = principal.clone();
                Box::pin(async move {
                    let row = scope
                        .read(|tx| {
                            Box::pin(async move {
                                service::message(tx.conn(), &principal, message).await
                            })
                        })
                        .await;
                    let _ = scope.finish().await;
                    match row {
                        Ok(row) => row,
                        Err(error) => {
                            tracing::warn!(?error, message_id = %message, "could not read the end of a reply");
                            None
                        }
                    }
                })
            })
        };
        let events = crate::chat::conversation_events(chat, live, streaming, load).await;
        super::live::bounded(
            ctx,
            DeltaTemplate::events(events.map(ConversationEvent::from)),
        )
    }
}
