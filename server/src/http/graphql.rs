//! GraphQL over HTTP, as the GraphQL-over-HTTP specification describes: POST with a JSON body
//! (single or batched), GET for queries only, `application/graphql-response+json` or
//! `application/json` responses.
//!
//! CSRF hardening: mutations are never accepted over GET (405), and POST bodies must be
//! `application/json`, which a browser cannot send cross-site without a CORS preflight.

use std::sync::Arc;

use async_graphql::{
    BatchRequest, BatchResponse, Request as GqlRequest,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use poem::{
    Body, Request, Response, handler,
    http::{StatusCode, header},
    web::Data,
};
use serde_json::{Value, json};

use super::{sse, ws::SocketRegistry};
use crate::{
    audience,
    auth::{self, RequestMeta, Viewer, cookies},
    db::{RequestBudget, RequestScope},
    error::{AppError, RequestId, code},
    graphql::AppSchema,
    state::AppState,
};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type of the response, chosen from the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `application/graphql-response+json`: request errors get 4xx statuses.
    GraphqlResponse,
    /// `application/json`: 200 for every well-formed request.
    Json,
}

impl Format {
    pub(super) fn negotiate(req: &Request) -> Self {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The first listed of the two media types wins; neither listed means application/json.
        let first = accept
            .split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim())
            .find(|mime| *mime == GRAPHQL_RESPONSE_JSON || *mime == JSON);
        if first == Some(GRAPHQL_RESPONSE_JSON) {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// `GET /graphql?query=...&variables=...&operationName=...`: queries only, or any operation
/// but a mutation as an event stream (`Accept: text/event-stream`).
#[handler]
pub async fn graphql_get(
    req: &Request,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
    Data(sockets): Data<&SocketRegistry>,
) -> Response {
    serve_get(req, state, schema, sockets, sse::wanted(req)).await
}

/// `POST /graphql` with an `application/json` body: one request or a batch (array); one
/// request as an event stream with `Accept: text/event-stream`.
#[handler]
pub async fn graphql_post(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
    Data(sockets): Data<&SocketRegistry>,
) -> Response {
    serve_post(req, body, state, schema, sockets, sse::wanted(req)).await
}

/// `GET /graphql/stream`: as `GET /graphql`, always as an event stream.
#[handler]
pub async fn stream_get(
    req: &Request,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
    Data(sockets): Data<&SocketRegistry>,
) -> Response {
    serve_get(req, state, schema, sockets, true).await
}

/// `POST /graphql/stream`: as `POST /graphql`, always as an event stream.
#[handler]
pub async fn stream_post(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
    Data(schema): Data<&AppSchema>,
    Data(sockets): Data<&SocketRegistry>,
) -> Response {
    serve_post(req, body, state, schema, sockets, true).await
}

async fn serve_get(
    req: &Request,
    state: &AppState,
    schema: &AppSchema,
    sockets: &SocketRegistry,
    stream: bool,
) -> Response {
    let format = Format::negotiate(req);
    let mut request = match parse_query_string(req.uri().query().unwrap_or("")) {
        Ok(request) => request,
        Err(error) => {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                &format!("the query string is not a GraphQL request: {error}"),
            );
        }
    };
    if let Err(response) = resolve_documents(format, state, &mut request).await {
        return response;
    }
    let request = match request {
        BatchRequest::Single(request) => request,
        BatchRequest::Batch(_) => {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                "a batch cannot be sent with GET",
            );
        }
    };
    // A subscription changes nothing either, but only an event stream can carry it.
    let allowed = |kind: OperationType| {
        kind == OperationType::Query || (stream && kind == OperationType::Subscription)
    };
    if let Some(kind) = operation_type(&request)
        && !allowed(kind)
    {
        let mut response = request_error(
            format,
            StatusCode::METHOD_NOT_ALLOWED,
            code::BAD_USER_INPUT,
            "only queries (and, as an event stream, subscriptions) may be sent with GET; send \
             mutations with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    if stream {
        return sse::respond(req, state, schema, sockets, format, request).await;
    }
    execute(req, state, schema, format, BatchRequest::Single(request)).await
}

async fn serve_post(
    req: &Request,
    body: Body,
    state: &AppState,
    schema: &AppSchema,
    sockets: &SocketRegistry,
    stream: bool,
) -> Response {
    let format = Format::negotiate(req);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != JSON {
        return request_error(
            format,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::BAD_USER_INPUT,
            "the request body must be application/json",
        );
    }
    let limit = state.config.max_body_bytes;
    let bytes = match body.into_bytes_limit(limit).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return request_error(
                format,
                StatusCode::PAYLOAD_TOO_LARGE,
                code::BAD_USER_INPUT,
                &format!(
                    "the request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)"
                ),
            );
        }
        Err(error) => {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                &format!("could not read the request body: {error}"),
            );
        }
    };
    let mut batch = match super::persisted::body_requests(&bytes) {
        Ok(batch) => batch,
        Err(error) => {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                &format!("the request body is not a GraphQL request: {error}"),
            );
        }
    };
    let max_batch = state.config.graphql_max_batch;
    if let BatchRequest::Batch(requests) = &batch {
        if stream {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                "a batch cannot be sent as an event stream: send one operation per stream",
            );
        }
        if requests.len() > max_batch {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                &format!(
                    "the batch holds {} operations, over the limit of {max_batch} (GRAPHQL_MAX_BATCH)",
                    requests.len()
                ),
            );
        }
        if requests.is_empty() {
            return request_error(
                format,
                StatusCode::BAD_REQUEST,
                code::BAD_USER_INPUT,
                "the batch is empty",
            );
        }
    }
    if let Err(response) = resolve_documents(format, state, &mut batch).await {
        return response;
    }
    match batch {
        BatchRequest::Single(request) if stream => {
            sse::respond(req, state, schema, sockets, format, request).await
        }
        batch => execute(req, state, schema, format, batch).await,
    }
}

/// Persisted and trusted documents: each request gets the document it names, or the error.
async fn resolve_documents(
    format: Format,
    state: &AppState,
    batch: &mut BatchRequest,
) -> Result<(), Response> {
    super::persisted::resolve(&state.documents, batch)
        .await
        .map_err(|error| {
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            request_error(format, status, error.code, &error.message)
        })
}

/// The caller of a GraphQL request over HTTP (plain or as an event stream), authenticated
/// once for all its operations.
pub(super) struct Caller {
    pub viewer: Viewer,
    /// When the access token expires (Unix seconds), for a signed-in caller.
    pub expiry: Option<u64>,
    meta: RequestMeta,
    csrf_session: Option<auth::CsrfSession>,
    request_id: Option<RequestId>,
}

/// Resolves the caller from the `Authorization` header or the access cookie, and applies the
/// CSRF rule of cookie sign-in to requests that `write` (any operation but a query); the error
/// is the HTTP response to give.
pub(super) async fn authenticate(
    req: &Request,
    state: &AppState,
    format: Format,
    write: bool,
) -> Result<Caller, Response> {
    let meta = RequestMeta::from_request(req, state.config.cookies_secure());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (viewer, expiry) = auth::viewer::resolve_with_expiry(
        &state.jwt,
        &state.sessions,
        bearer,
        meta.access_cookie.as_deref(),
    )
    .await
    .map_err(|error| auth_error(format, &error))?;
    // Cookies are sent by the browser on its own, so a mutation riding on them must prove it
    // comes from our page: the CSRF cookie's value in the X-CSRF-Token header, a token the
    // server signed for the very session of those cookies.
    let cookie_credentials =
        bearer.is_none() && (meta.access_cookie.is_some() || meta.refresh_cookie.is_some());
    let mut csrf_session = None;
    if cookie_credentials && write {
        let proof = cookies::csrf_proof(
            req,
            meta.csrf_cookie.as_deref(),
            meta.duplicate_csrf,
            &auth::csrf_key(&state.jwt),
        );
        let valid = match (&proof, &viewer) {
            (Some(session), Viewer::User(principal)) => *session == principal.session_id,
            // Only a refresh cookie: `refreshToken` checks the session it rotates.
            (Some(_), Viewer::Anonymous) => true,
            (None, _) => false,
        };
        if !valid {
            return Err(request_error(
                format,
                StatusCode::FORBIDDEN,
                code::FORBIDDEN,
                "cookie-authenticated mutations and subscriptions must send the session's CSRF \
                 token (the csrf cookie's value) in X-CSRF-Token",
            ));
        }
        csrf_session = proof.map(auth::CsrfSession);
    }
    Ok(Caller {
        viewer,
        expiry,
        meta,
        csrf_session,
        request_id: req.extensions().get::<RequestId>().cloned(),
    })
}

/// The response to credentials that could not be accepted: a bad token is 401; a busy
/// dependency while checking it is 503, never 401 (a client that refreshes on 401 would loop).
pub(super) fn auth_error(format: Format, error: &AppError) -> Response {
    let status = match error.code() {
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        code::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNAUTHORIZED,
    };
    let mut response = request_error(format, status, error.code(), &error.message());
    mark_status(&mut response, status, None);
    response
}

/// Gives the operations of one request what they run with: the caller, and the database
/// scope and budgets that the whole request (every operation of a batch) shares.
pub(super) fn prepare(state: &AppState, caller: &Caller, batch: BatchRequest) -> BatchRequest {
    let prepare = preparer(state, caller);
    match batch {
        BatchRequest::Single(request) => BatchRequest::Single(prepare(request)),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(prepare).collect())
        }
    }
}

/// What [`prepare`] does to each operation of one request.
pub(super) fn preparer<'a>(
    state: &'a AppState,
    caller: &'a Caller,
) -> impl Fn(GqlRequest) -> GqlRequest + 'a {
    let connections = RequestBudget::new(state.config.db_max_connections_per_request as usize);
    let audience_values = Arc::new(audience::cost::Budget::new(
        state.config.audience_max_values as usize,
    ));
    move |request: GqlRequest| {
        let scope = RequestScope::new(
            state.db.clone(),
            state.shares.clone(),
            connections.clone(),
            caller.viewer.clone(),
        );
        let mut request = request
            .data(scope)
            .data(Arc::clone(&audience_values))
            .data(caller.viewer.clone())
            .data(caller.meta.clone());
        if let Some(session) = caller.csrf_session {
            request = request.data(session);
        }
        if let Some(id) = &caller.request_id {
            request = request.data(id.clone());
        }
        request
    }
}

async fn execute(
    req: &Request,
    state: &AppState,
    schema: &AppSchema,
    format: Format,
    batch: BatchRequest,
) -> Response {
    let caller = match authenticate(req, state, format, has_mutation(&batch)).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let response = crate::graphql::run::execute_batch(schema, prepare(state, &caller, batch)).await;
    render(format, response)
}

fn has_mutation(batch: &BatchRequest) -> bool {
    match batch {
        BatchRequest::Single(request) => writes(request),
        BatchRequest::Batch(requests) => requests.iter().any(writes),
    }
}

/// Whether `request` runs anything but a query (or its type cannot be told): cookie sign-in
/// then needs the CSRF proof.
pub(super) fn writes(request: &GqlRequest) -> bool {
    operation_type(request) != Some(OperationType::Query)
}

/// What the errors of a response say about its HTTP status: any `UNAUTHENTICATED` makes it 401
/// (so clients that refresh on 401 do so whatever failed), else any `UNAVAILABLE` 503 with
/// `Retry-After`.
fn status_of(errors: &[&async_graphql::ServerError]) -> Option<(StatusCode, Option<u64>)> {
    let code_of =
        |e: &async_graphql::ServerError| match e.extensions.as_ref().and_then(|x| x.get("code")) {
            Some(async_graphql::Value::String(c)) => Some(c.clone()),
            _ => None,
        };
    if errors
        .iter()
        .any(|e| code_of(e).as_deref() == Some(code::UNAUTHENTICATED))
    {
        return Some((StatusCode::UNAUTHORIZED, None));
    }
    errors
        .iter()
        .find(|e| code_of(e).as_deref() == Some(code::UNAVAILABLE))
        .map(|e| {
            let retry = match e.extensions.as_ref().and_then(|x| x.get("retryAfter")) {
                Some(async_graphql::Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Some(retry.unwrap_or(1)))
        })
}

/// Adds the headers that go with `status`.
pub(super) fn mark_status(response: &mut Response, status: StatusCode, retry_after: Option<u64>) {
    match status {
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.unwrap_or(1).to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        _ => {}
    }
}

fn render(format: Format, response: BatchResponse) -> Response {
    let headers = response.http_headers();
    let errors: Vec<&async_graphql::ServerError> = match &response {
        BatchResponse::Single(r) => r.errors.iter().collect(),
        BatchResponse::Batch(rs) => rs.iter().flat_map(|r| r.errors.iter()).collect(),
    };
    let override_status = status_of(&errors);
    let (status, body) = match &response {
        BatchResponse::Single(response) => {
            let status = if is_request_error(response) && format == Format::GraphqlResponse {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, serde_json::to_vec(&ResponseBody(response)))
        }
        BatchResponse::Batch(responses) => {
            let bodies: Vec<ResponseBody<'_>> = responses.iter().map(ResponseBody).collect();
            (StatusCode::OK, serde_json::to_vec(&bodies))
        }
    };
    let (status, retry_after) = match override_status {
        Some((status, retry)) => (status, retry),
        None => (status, None),
    };
    let mut http = bytes_response(format, status, body.unwrap_or_default());
    mark_status(&mut http, status, retry_after);
    for (name, value) in headers.iter() {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            http.headers_mut().append(name, value);
        }
    }
    http
}

/// The JSON body of one GraphQL response, written straight from async-graphql's values: `data`
/// keeps the order of the query's fields (its objects are ordered maps), and a request that
/// never executed has no `data` entry at all.
pub(super) struct ResponseBody<'a>(pub(super) &'a async_graphql::Response);

impl serde::Serialize for ResponseBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let response = self.0;
        let mut map = serializer.serialize_map(None)?;
        if !is_request_error(response) {
            map.serialize_entry("data", &response.data)?;
        }
        if !response.errors.is_empty() {
            map.serialize_entry("errors", &response.errors)?;
        }
        if !response.extensions.is_empty() {
            map.serialize_entry("extensions", &response.extensions)?;
        }
        map.end()
    }
}

/// An error of the request itself (syntax, validation, limits): no data, no error path.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

pub(super) fn request_error(
    format: Format,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    json_response(format, status, &body)
}

fn json_response(format: Format, status: StatusCode, body: &Value) -> Response {
    bytes_response(format, status, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_response(format: Format, status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .content_type(format.content_type())
        .body(body)
}

/// `?query=...&operationName=...&variables=<json>&extensions=<json>`, with the parameter
/// names of the GraphQL-over-HTTP specification.
fn parse_query_string(query: &str) -> Result<BatchRequest, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        // Absent when a persisted document is named instead.
        #[serde(default)]
        query: String,
        document_id: Option<String>,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params = serde_urlencoded::from_str(query).map_err(|e| e.to_string())?;
    let mut request = GqlRequest::new(params.query);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables {
        let variables: Value = serde_json::from_str(&variables)
            .map_err(|e| format!("`variables` is not JSON: {e}"))?;
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    if let Some(extensions) = params.extensions {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|e| format!("`extensions` is not a JSON object: {e}"))?;
    }
    if let Some(id) = params.document_id {
        request.extensions.insert(
            crate::documents::DOCUMENT_ID.to_owned(),
            async_graphql::Value::String(id),
        );
    }
    if request.query.is_empty()
        && !request.extensions.contains_key("persistedQuery")
        && !request
            .extensions
            .contains_key(crate::documents::DOCUMENT_ID)
    {
        return Err("it has no `query` (nor `documentId` or `extensions.persistedQuery`)".into());
    }
    Ok(BatchRequest::Single(request))
}

/// The type of the operation `request` runs, when its document says. The document comes from
/// the parsed documents (`crate::graphql::run::ParsedQueries`): asking costs a look-up, not a
/// parse.
pub(super) fn operation_type(request: &GqlRequest) -> Option<OperationType> {
    crate::graphql::run::with_document(&request.query, |document| {
        kind_in(document, request.operation_name.as_deref())
    })?
}

/// The type of the operation named `operation_name` (or the only one) in `document`.
fn kind_in(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationType> {
    match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, op)| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    }
}
