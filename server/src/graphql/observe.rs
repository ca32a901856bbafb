//! What every GraphQL operation leaves behind, over HTTP or a WebSocket: its metrics
//! (`graphql_requests_total`, `graphql_request_duration_seconds`, subscriptions by root field),
//! its access log line (handed to the HTTP access log, `crate::http::access`, through
//! [`collecting_operations`], or logged here over a WebSocket) and its trace span (`graphql` for
//! the operation; `crate::authz::Guarded` opens the `resolve` span of each root field).
//! `super::run` calls it around async-graphql's execution: no extension is registered, since
//! with one async-graphql sends every field of every answer through its hooks.

use std::{
    any::TypeId,
    cell::RefCell,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use async_graphql::{
    Data, Request, Response, ServerError, Value,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection},
};
use futures_util::{Stream, stream::BoxStream};
use tracing::{Instrument as _, field::Empty};

use crate::{auth::Viewer, authz::SubscriptionStarted, error::RequestId};

/// What the GraphQL layer knows of one operation.
#[derive(Debug, Clone)]
pub struct FinishedOperation {
    /// The operation's name in the document (a GraphQL name), `None` when anonymous or unknown.
    pub name: Option<String>,
    /// `query`, `mutation`, `subscription`, or `unknown` (not parsed).
    pub kind: &'static str,
    /// `ok`, or the `extensions.code` of its first error.
    pub outcome: String,
    /// The signed-in user's id, or `anonymous`.
    pub caller: String,
    pub request_id: Option<String>,
    /// Parse to response (a subscription: its whole life), in milliseconds.
    pub duration_ms: f64,
}

tokio::task_local! {
    static OPERATIONS: RefCell<Vec<FinishedOperation>>;
}

/// Gives `operation` to the HTTP request being answered, if there is one; otherwise (a
/// WebSocket) logs it at once.
fn operation_done(operation: FinishedOperation) {
    if OPERATIONS.try_with(|_| ()).is_ok() {
        OPERATIONS.with(|ops| ops.borrow_mut().push(operation));
    } else {
        tracing::info!(
            target: "access",
            transport = %"websocket",
            request_id = %operation.request_id.as_deref().unwrap_or("-"),
            caller = %operation.caller,
            operation = %operation.name.as_deref().unwrap_or("-"),
            operation_type = %operation.kind,
            outcome = %operation.outcome,
            duration_ms = operation.duration_ms,
            "graphql request"
        );
    }
}

/// Runs `request` (an HTTP request's handling), collecting the operations it finishes, for its
/// access log lines to carry the HTTP status.
pub async fn collecting_operations<T>(
    request: impl Future<Output = T>,
) -> (T, Vec<FinishedOperation>) {
    OPERATIONS
        .scope(RefCell::new(Vec::new()), async {
            let result = request.await;
            (result, OPERATIONS.with(|ops| ops.take()))
        })
        .await
}

/// What is known of the operation so far.
#[derive(Debug, Default)]
struct Operation {
    operation_name: Option<String>,
    name: Option<String>,
    kind: Option<OperationType>,
    /// Root fields, for subscriptions.
    fields: Vec<String>,
    caller: Option<String>,
    request_id: Option<String>,
}

/// One operation, observed from before its parse to its end.
#[derive(Clone)]
pub(crate) struct Observed {
    op: Arc<Mutex<Operation>>,
    span: tracing::Span,
    /// Set once its subscription streams start (validated), for the subscription gauge.
    started: SubscriptionStarted,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn kind_label(kind: Option<OperationType>) -> &'static str {
    match kind {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// `ok`, or the code of the first error (`BAD_USER_INPUT` for one without, as the guardrails
/// give it; `other` for a code the server does not define).
fn outcome(errors: &[ServerError]) -> String {
    use crate::error::code;
    let Some(error) = errors.first() else {
        return "ok".into();
    };
    let known = [
        code::UNAUTHENTICATED,
        code::FORBIDDEN,
        code::BAD_USER_INPUT,
        code::NOT_FOUND,
        code::CONFLICT,
        code::RATE_LIMITED,
        code::UNAVAILABLE,
        code::INTERNAL,
    ];
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(c)) => known
            .iter()
            .find(|k| **k == c.as_str())
            .map_or_else(|| "other".into(), |k| (*k).to_owned()),
        _ => code::BAD_USER_INPUT.into(),
    }
}

/// Records a finished operation and hands its access log line on.
fn finish(op: &Operation, outcome: String, started: Instant) {
    let elapsed = started.elapsed();
    let kind = kind_label(op.kind);
    let label = crate::metrics::operation_label(op.name.as_deref());
    let label = if op.kind.is_none() {
        "unknown".to_owned()
    } else {
        label
    };
    crate::metrics::graphql_request(&label, kind, &outcome, elapsed);
    operation_done(FinishedOperation {
        name: op.name.clone(),
        kind,
        outcome,
        caller: op.caller.clone().unwrap_or_else(|| "anonymous".into()),
        request_id: op.request_id.clone(),
        duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
    });
}

fn caller_of(viewer: &Viewer) -> String {
    match viewer {
        Viewer::User(principal) => principal.user_id.to_string(),
        Viewer::Anonymous => "anonymous".into(),
    }
}

/// Records an operation whose request was dropped before it answered.
struct Unfinished {
    op: Arc<Mutex<Operation>>,
    started: Instant,
    done: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.done {
            finish(&lock(&self.op), "cancelled".into(), self.started);
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

impl Observed {
    /// Starts observing `request` (with the WebSocket's connection data, `session`): its
    /// caller and request id, over HTTP in the request's data, over a WebSocket in the
    /// connection's.
    pub(crate) fn new(request: &Request, session: Option<&Data>) -> Self {
        let op = Operation {
            operation_name: request.operation_name.clone(),
            caller: data_of::<Viewer>(request, session).map(caller_of),
            request_id: data_of::<RequestId>(request, session).map(|id| id.0.clone()),
            ..Operation::default()
        };
        Self {
            op: Arc::new(Mutex::new(op)),
            span: tracing::info_span!("graphql", operation = Empty, operation_type = Empty),
            started: SubscriptionStarted::default(),
        }
    }

    /// Marks `request` so that [`Self::stream`] sees its subscription start.
    pub(crate) fn watch_start(&self, request: &mut Request) {
        request.data.insert(self.started.clone());
    }

    /// The document parsed and passed the checks before validation: the operation's name,
    /// type and root fields are known.
    pub(crate) fn parsed(&self, document: &ExecutableDocument) {
        let mut op = lock(&self.op);
        let chosen = match &document.operations {
            DocumentOperations::Single(operation) => Some((None, operation)),
            DocumentOperations::Multiple(operations) => match op.operation_name.as_deref() {
                Some(wanted) => operations
                    .iter()
                    .find(|(name, _)| name.as_str() == wanted)
                    .map(|(name, operation)| (Some(name.to_string()), operation)),
                None if operations.len() == 1 => operations
                    .iter()
                    .next()
                    .map(|(name, operation)| (Some(name.to_string()), operation)),
                None => None,
            },
        };
        if let Some((name, operation)) = chosen {
            // Named operations are the document's keys (never the client's `operationName`
            // as such); `Single` is the anonymous one.
            op.name = name;
            op.kind = Some(operation.node.ty);
            op.fields = root_fields(document, &operation.node.selection_set.node.items);
            self.span
                .record("operation", op.name.as_deref().unwrap_or("-"));
            self.span.record("operation_type", kind_label(op.kind));
        }
    }

    /// The operation's type, once [`Self::parsed`] knows it.
    pub(crate) fn kind(&self) -> Option<OperationType> {
        lock(&self.op).kind
    }

    /// Runs a query or mutation over HTTP (`respond`: everything from the checks before the
    /// parse to the final codes), recording it when it answers or is dropped.
    pub(crate) async fn request(self, respond: impl Future<Output = Response>) -> Response {
        let mut unfinished = Unfinished {
            op: self.op.clone(),
            started: Instant::now(),
            done: false,
        };
        let response = respond.instrument(self.span).await;
        unfinished.done = true;
        finish(
            &lock(&self.op),
            outcome(&response.errors),
            unfinished.started,
        );
        response
    }

    /// An operation over a WebSocket or an event stream: its responses, counted and recorded
    /// (see [`OverWebSocket`]).
    pub(crate) fn stream(
        self,
        inner: BoxStream<'static, Response>,
    ) -> BoxStream<'static, Response> {
        Box::pin(OverWebSocket {
            inner,
            op: self.op,
            span: self.span,
            valid: self.started.0,
            started: Instant::now(),
            subscribed: Vec::new(),
            outcome: None,
            done: false,
        })
    }
}

/// The root fields an operation selects (through fragments too), without introspection.
fn root_fields(
    document: &ExecutableDocument,
    items: &[async_graphql::Positioned<Selection>],
) -> Vec<String> {
    let mut fields = Vec::new();
    for item in items {
        match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                if !name.starts_with("__") && !fields.iter().any(|f| f == name) {
                    fields.push(name.to_owned());
                }
            }
            Selection::InlineFragment(fragment) => {
                for name in root_fields(document, &fragment.node.selection_set.node.items) {
                    if !fields.contains(&name) {
                        fields.push(name);
                    }
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    for name in root_fields(document, &fragment.node.selection_set.node.items) {
                        if !fields.contains(&name) {
                            fields.push(name);
                        }
                    }
                }
            }
        }
    }
    fields
}

/// An operation over a WebSocket: a query or mutation answers once; a subscription counts as
/// active (by root field) from the moment it is validated until its stream ends or is dropped.
struct OverWebSocket<S> {
    inner: S,
    op: Arc<Mutex<Operation>>,
    span: tracing::Span,
    /// Whether the subscription's streams started (it was validated).
    valid: Arc<AtomicBool>,
    started: Instant,
    /// Root fields counted as active.
    subscribed: Vec<String>,
    /// The first error's code seen, if any.
    outcome: Option<String>,
    done: bool,
}

impl<S> OverWebSocket<S> {
    fn end(&mut self, outcome: Option<String>) {
        if self.done {
            return;
        }
        self.done = true;
        for field in self.subscribed.drain(..) {
            crate::metrics::subscription(&field, -1);
        }
        let outcome = outcome
            .or_else(|| self.outcome.take())
            .unwrap_or_else(|| "ok".into());
        finish(&lock(&self.op), outcome, self.started);
    }
}

impl<S: Stream<Item = Response> + Unpin> Stream for OverWebSocket<S> {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let this = &mut *self;
        let span = this.span.clone();
        let _entered = span.enter();
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        if this.done {
            return polled;
        }
        let is_subscription = lock(&this.op).kind == Some(OperationType::Subscription);
        let valid = this.valid.load(Ordering::Acquire);
        if is_subscription && valid && this.subscribed.is_empty() && this.outcome.is_none() {
            // Once, when the subscription starts (not for every event it sends).
            let fields = lock(&this.op).fields.clone();
            for field in fields {
                crate::metrics::subscription(&field, 1);
                this.subscribed.push(field);
            }
        }
        match &polled {
            Poll::Ready(Some(response)) => {
                if !response.errors.is_empty() && this.outcome.is_none() {
                    this.outcome = Some(outcome(&response.errors));
                }
                if !is_subscription {
                    let code = outcome(&response.errors);
                    this.end(Some(code));
                }
            }
            Poll::Ready(None) => this.end(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for OverWebSocket<S> {
    fn drop(&mut self) {
        // A subscription the client stopped, or whose connection closed, ended well.
        self.end(None);
    }
}
