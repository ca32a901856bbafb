//! Output and input types of the chat, converted from the chat service's types and events.

use std::{
    borrow::Cow,
    sync::{Arc, OnceLock},
};

use async_graphql::{
    ComplexObject, Context, ContextSelectionSet, Enum, ID, InputObject, OutputType, Positioned,
    ServerResult, SimpleObject, Union, Value, parser::types::Field,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::super::{
    connection::{Defaulted, PageInfo, connection, page_args, page_cost},
    principal, scope,
};
use crate::{
    chat::{ChatEvent, MessageData, events as stored},
    error::AppResult,
    paging,
    services::{
        chat::{self as service, Note},
        training,
    },
};

/// Who wrote a message.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    /// Instructions for the assistant.
    System,
    /// The user.
    User,
    /// The AI assistant.
    Assistant,
}

/// Where a message stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// The reply is being generated; its text arrives over `conversationEvents`.
    Streaming,
    /// Finished and stored.
    Complete,
    /// The provider failed; the text generated until then is stored.
    Failed,
    /// Stopped by `cancelReply`; the text generated until then is stored.
    Cancelled,
}

/// A message of a conversation.
#[derive(Debug, Clone, SimpleObject)]
pub struct Message {
    /// The message's id.
    pub id: ID,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text (for a reply still streaming: empty here; see `conversationEvents`).
    pub content: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The model that wrote a reply.
    pub model: Option<String>,
    /// Tokens of the prompt of a reply, when the provider reported them.
    pub prompt_tokens: Option<i32>,
    /// Tokens of a reply, when the provider reported them.
    pub completion_tokens: Option<i32>,
}

impl From<stored::MessageRole> for MessageRole {
    fn from(role: stored::MessageRole) -> Self {
        match role {
            stored::MessageRole::System => Self::System,
            stored::MessageRole::User => Self::User,
            stored::MessageRole::Assistant => Self::Assistant,
        }
    }
}

impl From<stored::MessageStatus> for MessageStatus {
    fn from(status: stored::MessageStatus) -> Self {
        match status {
            stored::MessageStatus::Streaming => Self::Streaming,
            stored::MessageStatus::Complete => Self::Complete,
            stored::MessageStatus::Failed => Self::Failed,
            stored::MessageStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<MessageData> for Message {
    fn from(m: MessageData) -> Self {
        Self {
            id: ID(m.id.to_string()),
            role: m.role.into(),
            content: m.content,
            status: m.status.into(),
            created_at: m.created_at,
            model: m.model,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
    }
}

/// A conversation of the caller with the AI assistant.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Conversation {
    /// The conversation's id.
    pub id: ID,
    /// Its title.
    pub title: String,
    /// Instructions given to the assistant first, if any (a default one applies otherwise).
    pub system_prompt: Option<String>,
    /// The owner's choice of whether it may be used as training data
    /// (`setConversationTraining`); null: as the company's default says. Counts only while the
    /// company lets its people choose (`Company.trainingPolicy`).
    pub training_choice: Option<bool>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it was last renamed.
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub uuid: Uuid,
}

impl From<service::Conversation> for Conversation {
    fn from(m: service::Conversation) -> Self {
        Self {
            id: ID(m.id.to_string()),
            uuid: m.id,
            title: m.title,
            system_prompt: m.system_prompt,
            training_choice: m.training_allowed,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Where a page of messages starts.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessagePageInfo {
    /// Whether older messages exist.
    pub has_previous_page: bool,
    /// Cursor of the oldest message of this page; pass it as `before` for older ones.
    pub start_cursor: Option<String>,
    /// Whether newer messages exist. Exact for a forward page (`first`); for a backward one,
    /// whether it ends before a cursor.
    pub has_next_page: bool,
    /// Cursor of the newest message of this page; pass it as `after` for newer ones.
    pub end_cursor: Option<String>,
}

impl From<paging::PageInfo> for MessagePageInfo {
    fn from(info: paging::PageInfo) -> Self {
        Self {
            has_previous_page: info.has_previous_page,
            start_cursor: info.start_cursor,
            has_next_page: info.has_next_page,
            end_cursor: info.end_cursor,
        }
    }
}

connection! {
    /// The newest messages of a conversation (or those before a cursor), oldest first.
    pub struct MessageConnection {
        /// The messages, oldest first.
        edges,
        /// Where the page starts.
        page_info: MessagePageInfo,
    }
    /// An item of a [`MessageConnection`].
    pub struct MessageEdge {
        /// Pass it as `before` for older messages.
        cursor,
        /// The message.
        node: Message,
    }
}

#[ComplexObject]
impl Conversation {
    /// Whether an admin's training-data export (`exportTrainingData`) includes it: the owner's
    /// choice while the company lets its people choose, else the company's default.
    async fn training_allowed(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let principal = principal(ctx)?.clone();
        let policy = scope(ctx)?
            .read(|tx| Box::pin(async move { training::policy(tx.conn(), &principal).await }))
            .await?;
        Ok(policy.allows(self.training_choice))
    }

    /// The last `last` messages (1 to 100), or the last ones before the cursor `before`,
    /// oldest first.
    /// With `first` (and `after`) instead: the first `first` messages (after the cursor).
    #[graphql(complexity = "page_cost(first, last, 50, child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] last: Option<i32>,
        before: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<MessageConnection> {
        let principal = principal(ctx)?.clone();
        let conversation = self.uuid;
        let args = page_args(ctx, Defaulted::Last, first, after, last, before);
        let page = scope(ctx)?
            .read(|tx| {
                Box::pin(async move {
                    service::messages_page(tx.conn(), &principal, conversation, args).await
                })
            })
            .await?;
        Ok(MessageConnection::from_page(page.map(Message::from)))
    }
}

connection! {
    /// A page of the caller's conversations, newest first.
    pub struct ConversationConnection {
        /// The conversations.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of a [`ConversationConnection`].
    pub struct ConversationEdge {
        /// Pass it as `after` for the next page.
        cursor,
        /// The conversation.
        node: Conversation,
    }
}

/// A note of the caller's, given to the assistant as context in their conversations.
#[derive(Debug, Clone, SimpleObject)]
pub struct Knowledge {
    /// The note's id.
    pub id: ID,
    /// The note.
    pub content: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<Note> for Knowledge {
    fn from(m: Note) -> Self {
        Self {
            id: ID(m.id.to_string()),
            content: m.content,
            created_at: m.created_at,
        }
    }
}

connection! {
    /// A page of the caller's knowledge, newest first.
    pub struct KnowledgeConnection {
        /// The notes.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of a [`KnowledgeConnection`].
    pub struct KnowledgeEdge {
        /// Pass it as `after` for the next page.
        cursor,
        /// The note.
        node: Knowledge,
    }
}

/// A new conversation.
#[derive(Debug, Clone, InputObject)]
pub struct CreateConversationInput {
    /// 1 to 200 characters; "New conversation" when omitted.
    pub title: Option<String>,
    /// Instructions given to the assistant first (at most 20000 characters); a default one
    /// applies when omitted.
    pub system_prompt: Option<String>,
}

/// What `sendMessage` stored.
#[derive(Debug, Clone, SimpleObject)]
pub struct SendMessagePayload {
    /// The caller's message.
    pub user_message: Message,
    /// The reply, `STREAMING`: its text arrives over `conversationEvents`.
    pub assistant_message: Message,
}

/// A reply started streaming.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageStarted {
    /// The reply (status `STREAMING`, no text yet).
    pub message: Message,
}

/// More text of a streaming reply. Concatenated in `index` order, deltas give the reply.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageDelta {
    /// The reply this text belongs to.
    pub message_id: ID,
    /// Increases by 1 per delta, from 0. A subscriber that joins while a reply streams first
    /// gets the text so far as one delta, whose index is that of the last delta it holds.
    pub index: i32,
    /// The text.
    pub text: String,
}

/// A reply ended and is stored: `COMPLETE`, or `CANCELLED` with the text generated until then.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageCompleted {
    /// The stored reply, with its full text, model and token usage.
    pub message: Message,
}

/// A reply failed; the text generated until then is stored with status `FAILED`.
#[derive(Debug, Clone, SimpleObject)]
pub struct MessageFailed {
    /// The stored reply.
    pub message: Message,
    /// Why it failed.
    pub reason: String,
}

/// Something that happened in a conversation.
#[derive(Debug, Clone, Union)]
pub enum ConversationEvent {
    /// A reply started streaming.
    Started(MessageStarted),
    /// More text of a streaming reply.
    Delta(MessageDelta),
    /// A reply ended and is stored.
    Completed(MessageCompleted),
    /// A reply failed.
    Failed(MessageFailed),
}

impl From<ChatEvent> for ConversationEvent {
    fn from(event: ChatEvent) -> Self {
        match event {
            ChatEvent::Started { message } => Self::Started(MessageStarted {
                message: message.into(),
            }),
            ChatEvent::Delta {
                message_id,
                index,
                text,
            } => Self::Delta(MessageDelta {
                message_id: ID(message_id.to_string()),
                index: index.clamp(0, i32::MAX as i64) as i32,
                text,
            }),
            ChatEvent::Completed { message } => Self::Completed(MessageCompleted {
                message: message.into(),
            }),
            ChatEvent::Failed { message, reason } => Self::Failed(MessageFailed {
                message: message.into(),
                reason,
            }),
        }
    }
}

/// An event of `conversationEvents` as one subscription sends it (the schema knows it as
/// [`ConversationEvent`]). The subscription's selection of a delta resolves the same for every
/// delta: `MessageDelta`'s fields are plain data, and the selection's aliases, fragments and
/// `@skip`/`@include` are fixed for the operation. So the first delta is resolved for a
/// stand-in delta whose values are markers, and every delta is written from that template,
/// its values put where the markers are: the same answer as resolving it field by field, for a
/// fraction of the work (a reply streams dozens of deltas per second to every subscriber). The
/// operation's extensions still see every event (its execution and the root field).
pub struct SubscribedEvent {
    event: ConversationEvent,
    deltas: Arc<DeltaTemplate>,
}

/// One subscription's template of its deltas, made from the first.
#[derive(Debug, Default)]
pub struct DeltaTemplate(OnceLock<Value>);

/// The stand-in delta's values. A delta resolves to `__typename` (`MessageDelta`), `messageId`
/// and `text` (strings, told apart by these) and `index` (the only number).
const TEMPLATE_ID: &str = "\u{0}messageId";
const TEMPLATE_TEXT: &str = "\u{0}text";

impl DeltaTemplate {
    /// The subscription's events, each with the subscription's template.
    pub fn events<S>(events: S) -> impl Stream<Item = SubscribedEvent> + Send + 'static + use<S>
    where
        S: Stream<Item = ConversationEvent> + Send + 'static,
    {
        let deltas = Arc::new(Self::default());
        events.map(move |event| SubscribedEvent {
            event,
            deltas: Arc::clone(&deltas),
        })
    }
}

/// `template` with the delta's values where the markers are.
fn fill(template: &Value, delta: &MessageDelta) -> Value {
    match template {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), fill(value, delta)))
                .collect(),
        ),
        Value::String(text) if text == TEMPLATE_TEXT => Value::String(delta.text.clone()),
        Value::String(text) if text == TEMPLATE_ID => Value::String(delta.message_id.0.clone()),
        Value::Number(_) => Value::Number(delta.index.into()),
        Value::List(items) => Value::List(items.iter().map(|item| fill(item, delta)).collect()),
        other => other.clone(),
    }
}

impl OutputType for SubscribedEvent {
    fn type_name() -> Cow<'static, str> {
        ConversationEvent::type_name()
    }

    fn qualified_type_name() -> String {
        ConversationEvent::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.event.introspection_type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        ConversationEvent::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let ConversationEvent::Delta(delta) = &self.event else {
            return self.event.resolve(ctx, field).await;
        };
        let template = match self.deltas.0.get() {
            Some(template) => template,
            None => {
                let stand_in = ConversationEvent::Delta(MessageDelta {
                    message_id: ID(TEMPLATE_ID.to_owned()),
                    index: 0,
                    text: TEMPLATE_TEXT.to_owned(),
                });
                let template = stand_in.resolve(ctx, field).await?;
                self.deltas.0.get_or_init(|| template)
            }
        };
        Ok(fill(template, delta))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, Object, Request, Schema, Subscription, Variables};
    use futures_util::stream;

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn ok(&self) -> bool {
            true
        }
    }

    fn delta(index: i32, text: &str) -> ConversationEvent {
        ConversationEvent::Delta(MessageDelta {
            message_id: ID("0195f3a8-0000-7000-8000-000000000001".into()),
            index,
            text: text.into(),
        })
    }

    fn events() -> Vec<ConversationEvent> {
        let started = ConversationEvent::Started(MessageStarted {
            message: Message {
                id: ID("m".into()),
                role: MessageRole::Assistant,
                content: String::new(),
                status: MessageStatus::Streaming,
                created_at: Utc::now(),
                model: None,
                prompt_tokens: None,
                completion_tokens: None,
            },
        });
        vec![
            started,
            delta(0, "Hel"),
            // The markers themselves are text like any other.
            delta(1, TEMPLATE_TEXT),
            delta(2, TEMPLATE_ID),
            delta(3, "lo \"world\" \u{e9}\n"),
        ]
    }

    struct Events;

    #[Subscription]
    impl Events {
        async fn templated(&self) -> impl Stream<Item = SubscribedEvent> {
            DeltaTemplate::events(stream::iter(events()))
        }

        async fn resolved(&self) -> impl Stream<Item = ConversationEvent> {
            stream::iter(events())
        }
    }

    async fn run(query: &str, field: &str, variables: serde_json::Value) -> Vec<serde_json::Value> {
        let schema = Schema::new(Query, EmptyMutation, Events);
        let request =
            Request::new(query.replace("FIELD", field)).variables(Variables::from_json(variables));
        schema
            .execute_stream(request)
            .map(|response| serde_json::to_value(response).unwrap_or_default())
            .collect()
            .await
    }

    #[tokio::test]
    async fn deltas_written_from_the_template_equal_deltas_resolved_field_by_field() {
        let queries = [
            "subscription { e: FIELD { __typename ... on MessageDelta { messageId index text } } }",
            "subscription { e: FIELD { ... on MessageDelta { a: text b: text i: index t: __typename }
               ... on MessageStarted { message { id status } } } }",
            "subscription($s: Boolean!) { e: FIELD { ...D __typename @include(if: $s) } }
             fragment D on MessageDelta { text @skip(if: $s) index messageId @include(if: $s) }",
            "subscription { e: FIELD { ... on MessageCompleted { message { id } } } }",
        ];
        for query in queries {
            for skip in [true, false] {
                let variables = serde_json::json!({ "s": skip });
                let templated = run(query, "templated", variables.clone()).await;
                let resolved = run(query, "resolved", variables).await;
                assert_eq!(templated.len(), 5, "{query}");
                assert!(
                    templated
                        .iter()
                        .all(|r| r.get("errors").is_none() && r["data"].is_object()),
                    "{templated:?}"
                );
                assert_eq!(templated, resolved, "{query} (s = {skip})");
            }
        }
        let first = run(queries[0], "templated", serde_json::json!({})).await;
        assert_eq!(first[4]["data"]["e"]["text"], "lo \"world\" \u{e9}\n");
        assert_eq!(first[4]["data"]["e"]["index"], 3);
        assert_eq!(first[2]["data"]["e"]["text"], TEMPLATE_TEXT);
        assert_eq!(first[3]["data"]["e"]["text"], TEMPLATE_ID);
    }
}
