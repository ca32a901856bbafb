//! The rate limits of the authentication flows: per address, and per e-mail where one is given;
//! password changes per user.

use uuid::Uuid;

use super::RequestMeta;
use crate::{error::AppResult, ratelimit::Bucket, state::AppState};

/// Sign-up: per address.
pub async fn sign_up(state: &AppState, meta: &RequestMeta) -> AppResult<()> {
    state
        .ratelimit
        .check_bucket(Bucket::SignupIp, meta.ip_key())
        .await
}

/// Login: per address and per e-mail.
pub async fn login(state: &AppState, meta: &RequestMeta, email: &str) -> AppResult<()> {
    state
        .ratelimit
        .check_bucket(Bucket::LoginIp, meta.ip_key())
        .await?;
    state
        .ratelimit
        .check_bucket(Bucket::LoginEmail, email)
        .await
}

/// Refresh: per address.
pub async fn refresh(state: &AppState, meta: &RequestMeta) -> AppResult<()> {
    state
        .ratelimit
        .check_bucket(Bucket::RefreshIp, meta.ip_key())
        .await
}

/// Password-reset requests: per address and per e-mail.
pub async fn password_reset(state: &AppState, meta: &RequestMeta, email: &str) -> AppResult<()> {
    state
        .ratelimit
        .check_bucket(Bucket::ResetIp, meta.ip_key())
        .await?;
    state
        .ratelimit
        .check_bucket(Bucket::ResetEmail, email)
        .await
}

/// Password changes: per user (each one is a guess of the current password).
pub async fn change_password(state: &AppState, user: Uuid) -> AppResult<()> {
    state
        .ratelimit
        .check_bucket(Bucket::ChangePasswordUser, &user.to_string())
        .await
}
