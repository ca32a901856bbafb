//! `/health` (liveness) and `/ready` (PostgreSQL and Redis answer, and the server is not
//! draining).

use std::time::Duration;

use poem::{
    IntoResponse, Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::state::AppState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
#[handler]
pub fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when PostgreSQL and Redis both answer, 503 otherwise, saying which does not; 503 at
/// once while the server drains (it shuts down).
#[handler]
pub async fn ready(Data(state): Data<&AppState>) -> Response {
    if state.draining.is_cancelled() {
        return Json(json!({ "status": "draining" }))
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    let (postgres, redis) = tokio::join!(probe_postgres(state), probe_redis(state));
    let status = if postgres.is_ok() && redis.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let describe = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "status": "ok" }),
        Err(e) => json!({ "status": "unavailable", "error": e }),
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
        "postgres": describe(&postgres),
        "redis": describe(&redis),
    });
    Json(body).with_status(status).into_response()
}

async fn probe_postgres(state: &AppState) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, state.db.execute_unprepared("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn probe_redis(state: &AppState) -> Result<(), String> {
    let probe = async {
        let mut conn = state.redis.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Err("timed out".into()),
    }
}
