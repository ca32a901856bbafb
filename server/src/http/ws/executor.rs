//! The schema as one socket runs it: every operation first checks the socket's credentials
//! (the access token has not expired, the session is live), subscriptions are counted against
//! `WS_MAX_SUBSCRIPTIONS`, and an operation frees its id and its subscription slot when it ends.

use std::{
    any::TypeId,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use async_graphql::{
    Data, ErrorExtensionValues, Executor, Pos, Request, Response, ServerError,
    parser::types::OperationType,
};
use futures_util::{
    Stream, StreamExt,
    future::ready,
    stream::{self, BoxStream},
};
use uuid::Uuid;

use super::protocol::{OperationId, Socket};
use crate::{
    error::{AppError, code},
    graphql::{AppSchema, live},
    state::AppState,
};

/// The credentials an authenticated socket was opened with, in its connection data.
#[derive(Debug, Clone, Copy)]
pub struct SocketCredentials {
    pub company_id: Uuid,
    pub session_id: Uuid,
    /// When the access token expires (Unix milliseconds): operations are refused from then on.
    pub expires_ms: Option<u64>,
}

impl SocketCredentials {
    /// `UNAUTHENTICATED` once the token has expired or the session is no longer live.
    async fn check(self, state: &AppState) -> Result<(), AppError> {
        if self
            .expires_ms
            .is_some_and(|expires| live::now_ms() >= expires)
        {
            return Err(AppError::Unauthenticated(
                live::Ended::Expired.message().into(),
            ));
        }
        state.sessions.check(self.company_id, self.session_id).await
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct SocketExecutor {
    schema: AppSchema,
    state: AppState,
    socket: Arc<Socket>,
}

impl SocketExecutor {
    pub fn new(schema: AppSchema, state: AppState, socket: Arc<Socket>) -> Self {
        Self {
            schema,
            state,
            socket,
        }
    }
}

fn data_of<T: Clone + 'static>(data: &Data) -> Option<T> {
    data.get(&TypeId::of::<T>())
        .and_then(|value| value.downcast_ref::<T>())
        .cloned()
}

fn error_response(error: ServerError) -> BoxStream<'static, Response> {
    stream::once(ready(Response::from_errors(vec![error]))).boxed()
}

impl Executor for SocketExecutor {
    async fn execute(&self, request: Request) -> Response {
        crate::graphql::run::execute(&self.schema, request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        // Persisted and trusted documents first: what follows looks at the document.
        if self.state.documents.applies_to(&request) {
            let this = self.clone();
            let mut request = request;
            return stream::once(async move {
                match this.state.documents.resolve(&mut request).await {
                    Ok(()) => this.execute_document(request, session_data),
                    Err(error) => {
                        // The operation's id is given back with this stream.
                        let id = data_of::<OperationId>(&request.data).map(|id| id.0);
                        Released {
                            inner: error_response(error.into_server_error()),
                            _release: Release {
                                socket: this.socket.clone(),
                                id,
                                subscription: false,
                            },
                        }
                        .boxed()
                    }
                }
            })
            .flatten()
            .boxed();
        }
        self.execute_document(request, session_data)
    }
}

impl SocketExecutor {
    /// Runs `request`, whose document is settled.
    fn execute_document(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let mut release = Release {
            socket: self.socket.clone(),
            id: data_of::<OperationId>(&request.data).map(|id| id.0),
            subscription: false,
        };
        if super::super::graphql::operation_type(&request) == Some(OperationType::Subscription) {
            let max = self.state.config.ws_max_subscriptions;
            if !self.socket.try_add_subscription(max) {
                let mut error = ServerError::new(
                    format!(
                        "this socket already runs {max} subscriptions, the limit \
                         (WS_MAX_SUBSCRIPTIONS); complete one first"
                    ),
                    None,
                );
                let mut extensions = ErrorExtensionValues::default();
                extensions.set("code", code::BAD_USER_INPUT);
                error.extensions = Some(extensions);
                return Released {
                    inner: error_response(error),
                    _release: release,
                }
                .boxed();
            }
            release.subscription = true;
        }
        let credentials = session_data
            .as_deref()
            .and_then(data_of::<SocketCredentials>);
        let schema = self.schema.clone();
        let state = self.state.clone();
        let run = async move {
            if let Some(credentials) = credentials
                && let Err(error) = credentials.check(&state).await
            {
                return error_response(
                    async_graphql::Error::from(error).into_server_error(Pos::default()),
                );
            }
            crate::graphql::run::execute_stream(&schema, request, session_data)
        };
        Released {
            inner: stream::once(run).flatten().boxed(),
            _release: release,
        }
        .boxed()
    }
}

/// Gives an operation's id and subscription slot back when dropped.
struct Release {
    socket: Arc<Socket>,
    id: Option<String>,
    subscription: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.socket.release(self.id.as_deref(), self.subscription);
    }
}

/// An operation's responses, holding its [`Release`] until async-graphql drops the stream
/// (when it ends, is completed by the client, or the socket closes).
struct Released {
    inner: BoxStream<'static, Response>,
    _release: Release,
}

impl Stream for Released {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        self.inner.poll_next_unpin(cx)
    }
}
