//! `/health` (liveness) and `/ready` (ready, degraded or not ready, draining included).

use std::time::Duration;

use poem::{
    IntoResponse, Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde_json::json;

use crate::{breaker::Phase, state::AppState};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while the process runs.
#[handler]
pub fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness, for load balancers: `200` with `status: "ready"` when everything answers; `200`
/// with `status: "degraded"` when the server serves without some of it (Redis down: sessions,
/// limits and fan-out fall back; the pool busy); `503` with `status: "not_ready"` when it
/// cannot serve (PostgreSQL unreachable, migrations pending), and at once, with
/// `draining: true`, from the moment the server begins to shut down. A load balancer should
/// take out only what is not ready, so a broken cache never takes out every instance.
#[handler]
pub async fn ready(Data(state): Data<&AppState>) -> Response {
    if state.draining.is_cancelled() {
        return Json(json!({ "status": "not_ready", "draining": true }))
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    let (postgres, redis) = tokio::join!(probe_postgres(state), probe_redis(state));
    let not_ready = matches!(postgres, Postgres::Down(_) | Postgres::MigrationsPending);
    let degraded = redis.is_err() || matches!(postgres, Postgres::Busy);
    let (status, word) = if not_ready {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    } else if degraded {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ready")
    };
    let postgres = match &postgres {
        Postgres::Ok => json!({ "status": "ok" }),
        Postgres::Busy => json!({ "status": "busy", "error": "every pooled connection is in use" }),
        Postgres::MigrationsPending => json!({
            "status": "migrations_pending",
            "error": format!("the database lacks migrations up to {}", crate::db::newest_migration()),
        }),
        Postgres::Down(e) => json!({ "status": "unavailable", "error": e }),
    };
    let redis = match &redis {
        Ok(()) => json!({ "status": "ok", "breaker": "closed" }),
        Err(e) => json!({ "status": "unavailable", "error": e.error, "breaker": e.breaker }),
    };
    let body = json!({ "status": word, "postgres": postgres, "redis": redis });
    Json(body).with_status(status).into_response()
}

/// What the PostgreSQL probe found.
enum Postgres {
    Ok,
    /// No idle connection and the pool at its size: serving, slowly.
    Busy,
    MigrationsPending,
    Down(String),
}

async fn probe_postgres(state: &AppState) -> Postgres {
    let pool = state.db.get_postgres_connection_pool();
    let probe = async {
        // A saturated pool is busy, not down: do not wait in line for a connection.
        let Some(mut conn) = pool.try_acquire() else {
            if pool.size() >= pool.options().get_max_connections() {
                // Every slot is taken: by requests (busy), or by attempts to reach a
                // PostgreSQL that is down. One connection of the probe's own tells which.
                return match reach_directly(pool).await {
                    Ok(()) => Postgres::Busy,
                    Err(e) => Postgres::Down(e.to_string()),
                };
            }
            return match pool.acquire().await {
                Ok(conn) => check(conn).await,
                Err(e) => Postgres::Down(e.to_string()),
            };
        };
        match sea_orm::sqlx::query("SELECT 1").execute(&mut *conn).await {
            Ok(_) => check(conn).await,
            Err(e) => Postgres::Down(e.to_string()),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => Postgres::Down("timed out".into()),
    }
}

/// Opens (and closes) one connection outside the pool, with the pool's options.
async fn reach_directly(pool: &sea_orm::sqlx::PgPool) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    let conn = pool.connect_options().connect().await?;
    conn.close().await
}

async fn check(mut conn: sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>) -> Postgres {
    let note: Result<Option<String>, _> = sea_orm::sqlx::query_scalar(
        "SELECT obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE n.nspname = 'app'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map(Option::flatten);
    match note {
        Ok(note) if crate::db::is_current_note(note.as_deref().unwrap_or("")) => Postgres::Ok,
        Ok(_) => Postgres::MigrationsPending,
        Err(e) => Postgres::Down(e.to_string()),
    }
}

/// Why Redis counts as unavailable, and the state of its circuit breaker.
struct RedisDown {
    error: String,
    breaker: &'static str,
}

/// `PING`, within `REDIS_TIMEOUT_MS` and whatever the circuit breaker says: an answer closes
/// the breaker. While the breaker is open (or half-open), requests go on without Redis, so
/// Redis counts as unavailable.
async fn probe_redis(state: &AppState) -> Result<(), RedisDown> {
    let pinged = state.redis.ping().await;
    let phase = state.redis.breaker_phase();
    let breaker = phase.as_str();
    match (pinged, phase) {
        (Ok(()), Phase::Closed) => Ok(()),
        (Ok(()), _) => Err(RedisDown {
            error: "circuit open".into(),
            breaker,
        }),
        (Err(e), Phase::Closed) => Err(RedisDown {
            error: e.reason.to_string(),
            breaker,
        }),
        (Err(e), _) => Err(RedisDown {
            error: format!("circuit open; PING: {}", e.reason),
            breaker,
        }),
    }
}
