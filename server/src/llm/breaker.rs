//! The provider's circuit breaker: after `threshold` failed generations in a row, new ones are
//! refused at once for `cool_down`, instead of piling up requests on a provider that is down.
//! After the cool-down, requests go through again; one more failure opens it again at once, a
//! success closes it. Per server instance (each one learns about the provider on its own). The
//! state machine is [`crate::breaker::Breaker`]; this adds the provider's error, log and
//! metrics.

use std::time::Duration;

use super::LlmError;
use crate::breaker::{Breaker, Phase, Transition};

/// Shared by every generation of the instance.
#[derive(Debug)]
pub struct CircuitBreaker {
    breaker: Breaker,
    cool_down: Duration,
}

impl CircuitBreaker {
    /// A threshold of 0 disables the breaker.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            // A reply takes seconds to tell whether the provider is back: once the cool-down
            // is over every request goes through (a zero probe window), each a probe.
            breaker: Breaker::new(threshold, cool_down, Duration::ZERO),
            cool_down,
        }
    }

    /// `CircuitOpen` (with the seconds left) while the breaker is open.
    pub fn check(&self) -> Result<(), LlmError> {
        self.breaker.admit().map_err(|refused| {
            LlmError::CircuitOpen(refused.retry_after.as_secs_f64().ceil().max(1.0) as u64)
        })
    }

    /// Whether new replies are refused now (for the metrics; changes nothing).
    pub fn is_open(&self) -> bool {
        self.breaker.phase() == Phase::Open
    }

    /// A generation reached the provider and finished.
    pub fn record_success(&self) {
        if self.breaker.record_success() == Some(Transition::Closed) {
            tracing::info!("AI provider answers again: circuit breaker closed");
        }
    }

    /// A generation failed because of the provider.
    pub fn record_failure(&self) {
        if let Some(Transition::Opened | Transition::Reopened) = self.breaker.record_failure() {
            crate::metrics::breaker_opened();
            tracing::warn!(
                cool_down = ?self.cool_down,
                "AI provider keeps failing: circuit breaker open"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        assert!(breaker.check().is_ok());
        breaker.record_failure();
        assert!(breaker.check().is_ok());
        breaker.record_failure();
        assert!(matches!(breaker.check(), Err(LlmError::CircuitOpen(s)) if s > 0 && s <= 60));
        assert!(breaker.is_open());
        breaker.record_success();
        assert!(breaker.check().is_ok());
        assert!(!breaker.is_open());
    }

    #[test]
    fn lets_requests_through_after_the_cool_down() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record_failure();
        assert!(breaker.check().is_ok());
        assert!(breaker.check().is_ok());
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let breaker = CircuitBreaker::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            breaker.record_failure();
        }
        assert!(breaker.check().is_ok());
    }
}
