//! Shared state of a running server.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{auth::JwtKeys, config::Config};

/// What every request may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub redis: deadpool_redis::Pool,
    pub jwt: JwtKeys,
    pub config: Arc<Config>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
