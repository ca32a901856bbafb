//! `GET /exports/training-data.jsonl?since=..&until=..`: the training-data export as OpenAI
//! chat fine-tuning JSON Lines, streamed from a cursor of the request's own read-only
//! transaction (`services::training::export`).
//!
//! The caller signs in as for `/graphql` (`Authorization: Bearer`, or the access cookie: a
//! `GET` changes nothing, so cookie sign-in needs no CSRF token, as for queries) and needs the
//! permission `read training_data` (Casbin here; PostgreSQL returns nothing to anyone else).
//! What is refused before the body starts is a JSON error with `extensions.code` (and
//! `extensions.path` for a bad parameter) and its status: 401, 403, 400, 503. A failure once the
//! body has begun cuts it short: the response ends without its final chunk, which HTTP clients
//! report as an error, so a partial export is never taken for a whole one.

use poem::{
    Body, Request, Response, handler,
    http::{StatusCode, header},
    web::Data,
};
use serde_json::json;

use super::graphql::{Format, authenticate, mark_status};
use crate::{
    auth::Viewer,
    authz::{Action, Object, Permission},
    db::{Access, RequestBudget, RequestScope, RequestTx},
    error::{AppError, code},
    services::training::{self, Window},
    state::AppState,
};

/// The media type of JSON Lines.
const JSONL: &str = "application/jsonl; charset=utf-8";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /exports/training-data.jsonl`.
#[handler]
pub async fn training_data(req: &Request, Data(state): Data<&AppState>) -> Response {
    match start(req, state).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn start(req: &Request, state: &AppState) -> Result<Response, Response> {
    let caller = authenticate(req, state, Format::Json, false).await?;
    let viewer = caller.viewer;
    let Viewer::User(principal) = &viewer else {
        return Err(error_response(&AppError::Unauthenticated(
            "sign in to export training data".into(),
        )));
    };
    let permission = Permission {
        object: Object::TrainingData,
        action: Action::Read,
    };
    // Custom roles are read in a scope of their own, ended before the export's transaction.
    let scope = RequestScope::new(
        state.db.clone(),
        state.shares.clone(),
        RequestBudget::new(1),
        viewer.clone(),
    );
    let allowed = state.authz.authorize(&scope, principal, permission).await;
    let _ = scope.finish().await;
    match allowed {
        Ok(true) => {}
        Ok(false) => {
            return Err(error_response(&AppError::Forbidden(format!(
                "exporting training data needs the permission `{permission}`"
            ))));
        }
        Err(error) => return Err(error_response(&error)),
    }
    let params: Params =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
            error_response(&AppError::bad_input(
                "query",
                format!("the query string takes `since` and `until` only: {e}"),
            ))
        })?;
    let window = Window::parse(params.since.as_deref(), params.until.as_deref())
        .map_err(|e| error_response(&e))?;
    let share = state
        .shares
        .acquire(viewer.company_id())
        .await
        .map_err(|e| error_response(&e))?;
    let mut tx = RequestTx::begin(&state.db, &viewer, Access::ReadOnly)
        .await
        .map_err(|e| error_response(&e))?;
    tx.hold(share);
    let lines = training::export(tx, window)
        .await
        .map_err(|e| error_response(&e))?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .content_type(JSONL)
        .header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"training-data.jsonl\"",
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_bytes_stream(lines)))
}

/// The JSON error answering `error`, with the status its code calls for.
fn error_response(error: &AppError) -> Response {
    let status = match error.code() {
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        code::FORBIDDEN => StatusCode::FORBIDDEN,
        code::BAD_USER_INPUT => StatusCode::BAD_REQUEST,
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        code::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let AppError::Internal(source) = error {
        tracing::error!(cause = %source, "internal error in a training-data export");
    }
    let mut extensions = json!({ "code": error.code() });
    if let AppError::BadUserInput { path, .. } = error {
        extensions["path"] = json!(path);
    }
    let message = match error {
        AppError::Internal(_) => "internal error".to_owned(),
        other => other.message(),
    };
    let body = json!({ "errors": [{ "message": message, "extensions": extensions }] });
    let mut response = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    mark_status(&mut response, status, None);
    response
}
