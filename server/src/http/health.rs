//! `/health` (liveness) and `/ready` (ready, degraded or not ready, draining included).

use std::time::Duration;

use poem::{
    IntoResponse, Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde_json::json;

use crate::{breaker::Phase, kv::Reason, state::AppState};

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
    /// A short, stable reason.
    Down(&'static str),
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
                    Err(e) => postgres_down(&e),
                };
            }
            return match pool.acquire().await {
                Ok(conn) => check(conn).await,
                Err(e) => postgres_down(&e),
            };
        };
        match sea_orm::sqlx::query("SELECT 1").execute(&mut *conn).await {
            Ok(_) => check(conn).await,
            Err(e) => postgres_down(&e),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                timeout_ms = PROBE_TIMEOUT.as_millis() as u64,
                "readiness: PostgreSQL did not answer in time"
            );
            Postgres::Down("timeout")
        }
    }
}

/// PostgreSQL is down: the full error goes to the log, the body says a short, stable reason.
fn postgres_down(error: &sea_orm::sqlx::Error) -> Postgres {
    let reason = postgres_reason(error);
    tracing::warn!(%error, reason, "readiness: PostgreSQL unavailable");
    Postgres::Down(reason)
}

/// A short, stable reason for a failed PostgreSQL probe, without the driver's text.
fn postgres_reason(error: &sea_orm::sqlx::Error) -> &'static str {
    use sea_orm::sqlx::Error;
    use std::io::ErrorKind;
    match error {
        Error::PoolTimedOut => "timeout",
        Error::PoolClosed => "pool closed",
        Error::Io(e) => match e.kind() {
            ErrorKind::ConnectionRefused => "connection refused",
            ErrorKind::TimedOut => "timeout",
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => "connection lost",
            _ => "connection failed",
        },
        Error::Tls(_) => "tls failed",
        Error::Protocol(_) => "protocol error",
        Error::Database(d) => match d.code().as_deref() {
            Some("28P01" | "28000") => "authentication failed",
            Some("3D000") => "database does not exist",
            Some("53300") => "too many connections",
            Some("57P03") => "starting up",
            Some("57P01" | "57P02") => "shutting down",
            Some("57014") => "timeout",
            Some(code) if code.starts_with("08") => "connection failed",
            _ => "query failed",
        },
        _ => "connection failed",
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
        Err(e) => postgres_down(&e),
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
        (Err(e), Phase::Closed) => {
            tracing::warn!(reason = %e.reason, "readiness: Redis unavailable");
            Err(RedisDown {
                error: redis_reason(&e.reason).to_owned(),
                breaker,
            })
        }
        (Err(e), _) => {
            tracing::warn!(reason = %e.reason, "readiness: Redis unavailable, circuit open");
            Err(RedisDown {
                error: format!("circuit open; PING: {}", redis_reason(&e.reason)),
                breaker,
            })
        }
    }
}

/// A short, stable reason for a failed Redis call, without the driver's text.
fn redis_reason(reason: &Reason) -> &'static str {
    match reason {
        Reason::Timeout(_) => "timeout",
        Reason::CircuitOpen => "circuit open",
        Reason::Pool(text) | Reason::Redis(text) => {
            let text = text.to_ascii_lowercase();
            if text.contains("refused") {
                "connection refused"
            } else if text.contains("auth") || text.contains("noperm") || text.contains("wrongpass")
            {
                "authentication failed"
            } else if text.contains("timed out") || text.contains("timeout") {
                "timeout"
            } else if text.contains("loading") {
                "starting up"
            } else if text.contains("broken pipe")
                || text.contains("reset")
                || text.contains("closed")
                || text.contains("eof")
            {
                "connection lost"
            } else if matches!(reason, Reason::Pool(_)) {
                "connection failed"
            } else {
                "command failed"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_reasons_are_short_and_stable() {
        use sea_orm::sqlx::Error;
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "os error 111");
        assert_eq!(postgres_reason(&Error::Io(refused)), "connection refused");
        assert_eq!(postgres_reason(&Error::PoolTimedOut), "timeout");
        let odd = std::io::Error::other("something odd at 10.0.0.7:5432");
        assert_eq!(postgres_reason(&Error::Io(odd)), "connection failed");
    }

    #[test]
    fn redis_reasons_are_short_and_stable() {
        let timeout = Reason::Timeout(Duration::from_millis(250));
        assert_eq!(redis_reason(&timeout), "timeout");
        assert_eq!(redis_reason(&Reason::CircuitOpen), "circuit open");
        let refused = Reason::Pool("Connection refused (os error 111)".into());
        assert_eq!(redis_reason(&refused), "connection refused");
        let auth = Reason::Redis("WRONGPASS invalid username-password pair".into());
        assert_eq!(redis_reason(&auth), "authentication failed");
        let other = Reason::Redis("ERR unknown thing".into());
        assert_eq!(redis_reason(&other), "command failed");
    }
}
