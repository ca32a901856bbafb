//! Backoff between attempts, and the `Retry-After` header.

use std::time::Duration;

/// Longest wait between two attempts, whatever the provider asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Exponential backoff with jitter: about 250 ms, 500 ms, 1 s, ... up to 8 s, or the
/// provider's `Retry-After` when it gave one (capped at 30 s).
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_WAIT);
    }
    let base = Duration::from_millis(250).saturating_mul(1 << attempt.min(5));
    let base = base.min(Duration::from_secs(8));
    // Up to 25 % jitter, so retries of many streams do not arrive together.
    let jitter = rand::random_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        assert!(backoff(0, None) >= Duration::from_millis(250));
        assert!(backoff(0, None) <= Duration::from_millis(313));
        assert!(backoff(10, None) <= Duration::from_secs(10));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(0, Some(Duration::from_secs(600))), MAX_WAIT);
    }
}
