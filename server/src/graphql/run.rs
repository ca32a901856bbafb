//! How every GraphQL operation runs, over HTTP ([`execute`], [`execute_batch`]), a WebSocket or
//! an event stream ([`execute_stream`]): what used to be three async-graphql extensions
//! (observing, guardrails, the subscription guard) happens here, around async-graphql's
//! execution, on the document parsed once (and kept, see [`ParsedQueries`]).
//!
//! No extension is registered on the schema: with any registered, async-graphql sends every
//! field of every answer through the extension's `resolve` hook (a boxed future per extension
//! per field, and a look-up of the field in the registry); with none it resolves fields
//! directly. What needs a field, the guard of the root fields, is the root types' wrapper
//! (`crate::authz::Guarded`), which only the root fields pass through.
//!
//! For one operation, in order (as the hooks ran):
//! 1. observing starts: the operation's caller and request id, its `graphql` span;
//! 2. over a WebSocket, the operation gets its database scope and audience budget;
//! 3. variables holding strings PostgreSQL cannot store are refused;
//! 4. the document: parsed (or found parsed) and within async-graphql's recursion limit,
//!    otherwise async-graphql reports it;
//! 5. the subscription fields' guards; unstorable literals, the alias limit, the audience
//!    values spent; the operation's name and type recorded; the depth limit;
//! 6. async-graphql validates (with its complexity limit) and executes;
//! 7. the operation's database scope ends, internal errors get the request id, every error a
//!    code (over HTTP; the event stream and WebSocket layers give theirs), and observing ends.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use async_graphql::{
    BatchRequest, BatchResponse, Data, ObjectType, Request, Response, Schema, ServerError,
    SubscriptionType,
    parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use futures_util::{
    StreamExt as _,
    future::ready,
    stream::{self, BoxStream, FuturesOrdered},
};

use super::{
    give_codes,
    guardrails::{self, Limits},
    observe::Observed,
};
use crate::{
    audience::cost::Budget, authz::Guard, db::RequestScope, error::RequestId, state::AppState,
};

/// async-graphql's limit on nesting (`limit_recursive_depth`, set on the schema): a document
/// deeper than this is refused by async-graphql before anything else looks at it.
pub const MAX_RECURSIVE_DEPTH: usize = 64;

/// What the checks run with: from the schema's data (the server's state, the root fields'
/// guard, the limits); a schema without them skips their checks (the guard's absence denies
/// every root field, see `crate::authz::Guarded`).
struct Checks<'a> {
    state: Option<&'a AppState>,
    guard: Option<&'a Guard>,
    limits: Option<&'a Limits>,
}

impl<'a> Checks<'a> {
    fn of<Q, M, S>(schema: &'a Schema<Q, M, S>) -> Self
    where
        Q: ObjectType + 'static,
        M: ObjectType + 'static,
        S: SubscriptionType + 'static,
    {
        Self {
            state: schema.data::<AppState>(),
            guard: schema.data::<Guard>(),
            limits: schema.data::<Limits>(),
        }
    }
}

fn data_of<'a, T: 'static>(request: &'a Request, session: Option<&'a Data>) -> Option<&'a T> {
    let id = TypeId::of::<T>();
    request
        .data
        .get(&id)
        .or_else(|| session.and_then(|data| data.get(&id)))
        .and_then(|d| d.downcast_ref::<T>())
}

/// Steps 2 to 5 (see the module documentation); the error is the operation's whole answer.
async fn before(
    checks: &Checks<'_>,
    request: &mut Request,
    session: Option<&Data>,
    observed: &Observed,
) -> Result<(), ServerError> {
    guardrails::prepare(checks.state, request, session);
    guardrails::check_variables(&request.variables)?;
    // A document that does not parse, or nests too deep, is async-graphql's to report.
    let Some(document) = PARSED.document(&request.query) else {
        return Ok(());
    };
    if !within_recursive_depth(&document) {
        request.set_parsed_query(document);
        return Ok(());
    }
    {
        let scope = data_of::<Arc<RequestScope>>(request, None);
        if let Some(guard) = checks.guard {
            guard.check_subscriptions(&document, scope).await?;
        }
        let budget = data_of::<Arc<Budget>>(request, None);
        guardrails::check_document(checks.limits, &document, &request.variables, budget)?;
    }
    observed.parsed(&document);
    guardrails::check_depth(checks.limits, &document)?;
    request.set_parsed_query(document);
    Ok(())
}

/// Runs one query or mutation over HTTP.
pub async fn execute<Q, M, S>(schema: &Schema<Q, M, S>, mut request: Request) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let observed = Observed::new(&request, None);
    let watching = observed.clone();
    // Boxed, here and below: async-graphql's execution is a large future, and so are the
    // checks; kept inline they would all sit on the stack of whoever polls the request.
    observed
        .request(Box::pin(async move {
            let checks = Checks::of(schema);
            let checked = Box::pin(before(&checks, &mut request, None, &watching)).await;
            let mut response = match checked {
                Err(error) => Response::from_errors(vec![error]),
                Ok(()) => {
                    let scope = data_of::<Arc<RequestScope>>(&request, None).cloned();
                    let request_id = data_of::<RequestId>(&request, None).map(|id| id.0.clone());
                    let mut response = Box::pin(schema.execute(request)).await;
                    guardrails::limit_errors(checks.limits, &mut response.errors);
                    guardrails::finish_operation(
                        scope.as_ref(),
                        request_id.as_deref(),
                        &mut response,
                    )
                    .await;
                    response
                }
            };
            give_codes(&mut response.errors);
            response
        }))
        .await
}

/// Runs the operations of one HTTP request (a batch at once, answered in order).
pub async fn execute_batch<Q, M, S>(schema: &Schema<Q, M, S>, batch: BatchRequest) -> BatchResponse
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    match batch {
        BatchRequest::Single(request) => BatchResponse::Single(execute(schema, request).await),
        BatchRequest::Batch(requests) => BatchResponse::Batch(
            requests
                .into_iter()
                .map(|request| execute(schema, request))
                .collect::<FuturesOrdered<_>>()
                .collect()
                .await,
        ),
    }
}

/// Runs an operation of any type as a stream of responses, with a WebSocket's connection data
/// (`session`): over a WebSocket or as an event stream.
pub fn execute_stream<Q, M, S>(
    schema: &Schema<Q, M, S>,
    mut request: Request,
    session: Option<Arc<Data>>,
) -> BoxStream<'static, Response>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let observed = Observed::new(&request, session.as_deref());
    observed.watch_start(&mut request);
    let watching = observed.clone();
    let schema = schema.clone();
    let run = async move {
        let checks = Checks::of(&schema);
        let checked = Box::pin(before(&checks, &mut request, session.as_deref(), &watching)).await;
        if let Err(error) = checked {
            return stream::once(ready(Response::from_errors(vec![error]))).boxed();
        }
        let limits = checks.limits.copied();
        let subscription = watching.kind() == Some(OperationType::Subscription);
        let scope = data_of::<Arc<RequestScope>>(&request, None).cloned();
        let request_id = data_of::<RequestId>(&request, session.as_deref()).map(|id| id.0.clone());
        let responses =
            schema.execute_stream_with_session_data(request, session.unwrap_or_default());
        if subscription {
            return responses
                .map(move |mut response| {
                    guardrails::limit_errors(limits.as_ref(), &mut response.errors);
                    response
                })
                .boxed();
        }
        // A query or mutation answers once, then its scope ends.
        responses
            .then(move |mut response| {
                let scope = scope.clone();
                let request_id = request_id.clone();
                async move {
                    guardrails::limit_errors(limits.as_ref(), &mut response.errors);
                    guardrails::finish_operation(
                        scope.as_ref(),
                        request_id.as_deref(),
                        &mut response,
                    )
                    .await;
                    response
                }
            })
            .boxed()
    };
    observed.stream(stream::once(run).flatten().boxed())
}

/// Whether `document` is within async-graphql's recursion limit, counted as async-graphql
/// counts it (a field's selection, a fragment spread, an inline fragment: one level each).
fn within_recursive_depth(document: &ExecutableDocument) -> bool {
    fn within(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
        if depth > MAX_RECURSIVE_DEPTH {
            return false;
        }
        set.items.iter().all(|item| match &item.node {
            Selection::Field(field) => {
                field.node.selection_set.node.items.is_empty()
                    || within(document, &field.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_none_or(|fragment| {
                    within(document, &fragment.node.selection_set.node, depth + 1)
                }),
            Selection::InlineFragment(fragment) => {
                within(document, &fragment.node.selection_set.node, depth + 1)
            }
        })
    }
    document
        .operations
        .iter()
        .all(|(_, operation)| within(document, &operation.node.selection_set.node, 0))
}

/// Documents parsed before, by their text: clients send the same few queries over and over,
/// and parsing one costs more than the rest of its validation. A copy of the document is handed
/// to async-graphql with the request (`set_parsed_query`), which checks it (depth, directives,
/// validation) as if it had just parsed it. Only the parse is kept, never anything of an answer.
/// Bounded: queries up to `MAX_QUERY_BYTES`, at most `MAX_DOCUMENTS`, forgotten all at once when
/// full (a hand-written bound: an LRU would keep a hot set through a flood of one-off queries,
/// but the flood costs each of its requests one parse either way).
pub(crate) struct ParsedQueries {
    documents: Mutex<HashMap<String, ExecutableDocument>>,
}

static PARSED: LazyLock<ParsedQueries> = LazyLock::new(ParsedQueries::new);

/// `look` at the document `query` parses to, from the kept documents or parsed now (and kept
/// when it is not too long); `None` when it does not parse.
pub(crate) fn with_document<T>(
    query: &str,
    look: impl FnOnce(&ExecutableDocument) -> T,
) -> Option<T> {
    PARSED.with_document(query, look)
}

impl ParsedQueries {
    const MAX_DOCUMENTS: usize = 512;
    const MAX_QUERY_BYTES: usize = 16 * 1024;

    fn new() -> Self {
        Self {
            documents: Mutex::new(HashMap::new()),
        }
    }

    /// The document `query` parses to, as [`Self::with_document`] finds it; `None` when it
    /// does not parse (async-graphql then reports the error).
    fn document(&self, query: &str) -> Option<ExecutableDocument> {
        if query.len() > Self::MAX_QUERY_BYTES {
            return async_graphql::parser::parse_query(query).ok();
        }
        self.with_document(query, ExecutableDocument::clone)
    }

    fn with_document<T>(
        &self,
        query: &str,
        look: impl FnOnce(&ExecutableDocument) -> T,
    ) -> Option<T> {
        let lock = || {
            self.documents
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(document) = lock().get(query) {
            return Some(look(document));
        }
        let document = async_graphql::parser::parse_query(query).ok()?;
        let seen = look(&document);
        if query.len() <= Self::MAX_QUERY_BYTES {
            let mut documents = lock();
            if documents.len() >= Self::MAX_DOCUMENTS {
                documents.clear();
            }
            documents.insert(query.to_owned(), document);
        }
        Some(seen)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription};

    use super::*;

    struct Leaf;

    #[async_graphql::Object]
    impl Leaf {
        async fn n(&self) -> i32 {
            1
        }

        async fn leaf(&self) -> Leaf {
            Leaf
        }
    }

    fn code_and_message(response: &Response) -> (Option<String>, String) {
        let Some(error) = response.errors.first() else {
            return (None, String::new());
        };
        let code = match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(async_graphql::Value::String(code)) => Some(code.clone()),
            _ => None,
        };
        (code, error.message.clone())
    }

    #[tokio::test]
    async fn the_limits_answer_with_their_code_and_name() {
        let limits = Limits {
            max_depth: 2,
            max_complexity: 3,
            max_aliases: 1,
        };
        let schema = limits
            .apply(Schema::build(Leaf, EmptyMutation, EmptySubscription))
            .finish();
        let run = |query: &'static str| execute(&schema, Request::new(query));

        let fine = run("{ n leaf { n } }").await;
        assert!(fine.errors.is_empty(), "{:?}", fine.errors);

        // async-graphql's own complexity limit, with the server's code and message.
        let (code, message) = code_and_message(&run("{ n leaf { n } m: n }").await);
        assert_eq!(code.as_deref(), Some("BAD_USER_INPUT"));
        assert!(message.contains("complexity limit of 3"), "{message}");

        // Depth is named first, with the depth.
        let (code, message) = code_and_message(&run("{ leaf { leaf { n } } }").await);
        assert_eq!(code.as_deref(), Some("BAD_USER_INPUT"));
        assert!(
            message.contains("3 levels deep, over the depth limit of 2"),
            "{message}"
        );

        let (code, message) = code_and_message(&run("{ a: n b: n }").await);
        assert_eq!(code.as_deref(), Some("BAD_USER_INPUT"));
        assert!(
            message.contains("limit of 1 (GRAPHQL_MAX_ALIASES)"),
            "{message}"
        );

        // Validation errors get a code too.
        let (code, _) = code_and_message(&run("{ nothing }").await);
        assert_eq!(code.as_deref(), Some("BAD_USER_INPUT"));
    }

    #[test]
    fn a_query_sent_again_gets_the_document_it_parsed_to() -> anyhow::Result<()> {
        let cache = ParsedQueries::new();
        let query = "query Q($n: Int) { users(first: $n) { edges { node { id } } } }";
        let fresh = format!("{:?}", async_graphql::parser::parse_query(query)?);
        for _ in 0..2 {
            let parsed = cache
                .document(query)
                .ok_or_else(|| anyhow::anyhow!("not parsed"))?;
            assert_eq!(format!("{parsed:?}"), fresh);
        }
        assert_eq!(cache.documents.lock().map(|d| d.len()).unwrap_or(0), 1);
        // What does not parse is not kept: async-graphql reports it.
        assert!(cache.document("{ users(").is_none());
        assert_eq!(cache.documents.lock().map(|d| d.len()).unwrap_or(0), 1);
        // Bounded.
        for i in 0..ParsedQueries::MAX_DOCUMENTS + 1 {
            cache.document(&format!("{{ a{i}: me {{ id }} }}"));
        }
        assert!(
            cache.documents.lock().map(|d| d.len()).unwrap_or(0) <= ParsedQueries::MAX_DOCUMENTS
        );
        Ok(())
    }

    #[test]
    fn the_recursion_limit_is_counted_as_async_graphql_counts_it() -> anyhow::Result<()> {
        // The parser bounds the nesting written out; fragments nest further.
        let chain = |fragments: usize| {
            let mut document = "{ ...F0 }".to_owned();
            for i in 0..fragments {
                let next = if i + 1 < fragments {
                    format!("...F{}", i + 1)
                } else {
                    "a".to_owned()
                };
                document.push_str(&format!(" fragment F{i} on Query {{ {next} }}"));
            }
            async_graphql::parser::parse_query(document)
        };
        assert!(within_recursive_depth(&chain(MAX_RECURSIVE_DEPTH)?));
        assert!(!within_recursive_depth(&chain(MAX_RECURSIVE_DEPTH + 1)?));
        // A cycle (which validation refuses) ends the count too.
        let cycle = async_graphql::parser::parse_query("{ ...A } fragment A on Query { a ...A }")?;
        assert!(!within_recursive_depth(&cycle));
        Ok(())
    }
}

#[cfg(test)]
#[path = "run_guard_tests.rs"]
mod guard_tests;
