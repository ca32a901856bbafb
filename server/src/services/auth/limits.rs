//! The rate limits of the authentication flows: per address, and per e-mail where one is given;
//! password changes per user.

use uuid::Uuid;

use crate::{
    auth::RequestMeta,
    error::AppResult,
    ratelimit::{Bucket, RateLimiter},
};

/// Sign-up: per address.
pub async fn sign_up(limiter: &RateLimiter, meta: &RequestMeta) -> AppResult<()> {
    limiter.check_bucket(Bucket::SignupIp, meta.ip_key()).await
}

/// Login: per client address; per e-mail from that address (strict); per e-mail from all
/// addresses together (loose). A stranger who fails to log in as someone runs out of their own
/// address's attempts long before the owner's are touched.
pub async fn login(limiter: &RateLimiter, meta: &RequestMeta, email: &str) -> AppResult<()> {
    let email = email.trim().to_lowercase();
    limiter.check_bucket(Bucket::LoginIp, meta.ip_key()).await?;
    limiter
        .check_bucket(
            Bucket::LoginEmailIp,
            &format!("{email}\u{0}{}", meta.ip_key()),
        )
        .await?;
    limiter.check_bucket(Bucket::LoginEmail, &email).await
}

/// Invitations: per company.
pub async fn invite(limiter: &RateLimiter, company: Uuid) -> AppResult<()> {
    limiter
        .check_bucket(Bucket::InviteCompany, &company.to_string())
        .await
}

/// Refresh: per address.
pub async fn refresh(limiter: &RateLimiter, meta: &RequestMeta) -> AppResult<()> {
    limiter.check_bucket(Bucket::RefreshIp, meta.ip_key()).await
}

/// Password-reset requests: per address and per e-mail.
pub async fn password_reset(
    limiter: &RateLimiter,
    meta: &RequestMeta,
    email: &str,
) -> AppResult<()> {
    limiter.check_bucket(Bucket::ResetIp, meta.ip_key()).await?;
    limiter.check_bucket(Bucket::ResetEmail, email).await
}

/// Verification links asked for again: per user.
pub async fn resend_verification(limiter: &RateLimiter, user: Uuid) -> AppResult<()> {
    limiter
        .check_bucket(Bucket::VerificationUser, &user.to_string())
        .await
}

/// Password changes: per user (each one is a guess of the current password).
pub async fn change_password(limiter: &RateLimiter, user: Uuid) -> AppResult<()> {
    limiter
        .check_bucket(Bucket::ChangePasswordUser, &user.to_string())
        .await
}

/// Verification links asked for while signed out: per client address and per e-mail.
pub async fn request_verification(
    limiter: &RateLimiter,
    meta: &RequestMeta,
    email: &str,
) -> AppResult<()> {
    limiter
        .check_bucket(Bucket::VerificationIp, meta.ip_key())
        .await?;
    limiter
        .check_bucket(Bucket::VerificationEmail, &email.trim().to_lowercase())
        .await
}
