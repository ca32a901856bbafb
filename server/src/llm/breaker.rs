//! A circuit breaker: after `threshold` failed generations in a row, new ones are refused at
//! once for `cool_down`, instead of piling up requests on a provider that is down. After the
//! cool-down, requests go through again; one more failure opens it again at once, a success
//! closes it. Per server instance (each one learns about the provider on its own).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::LlmError;

/// Shared by every generation of the instance.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
}

impl CircuitBreaker {
    /// A threshold of 0 disables the breaker.
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            threshold,
            cool_down,
            state: Mutex::new(State::default()),
        }
    }

    /// `CircuitOpen` (with the seconds left) while the breaker is open.
    pub fn check(&self) -> Result<(), LlmError> {
        let Ok(state) = self.state.lock() else {
            return Ok(());
        };
        match state.open_until {
            Some(until) => {
                let now = Instant::now();
                if until > now {
                    Err(LlmError::CircuitOpen(
                        (until - now).as_secs_f64().ceil().max(1.0) as u64,
                    ))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// A generation reached the provider and finished.
    pub fn record_success(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::default();
        }
    }

    /// A generation failed because of the provider.
    pub fn record_failure(&self) {
        if self.threshold == 0 {
            return;
        }
        if let Ok(mut state) = self.state.lock() {
            state.failures = state.failures.saturating_add(1);
            if state.failures >= self.threshold {
                if state.open_until.is_none_or(|t| t <= Instant::now()) {
                    crate::metrics::breaker_opened();
                    tracing::warn!(
                        failures = state.failures,
                        cool_down = ?self.cool_down,
                        "AI provider keeps failing: circuit breaker open"
                    );
                }
                state.open_until = Some(Instant::now() + self.cool_down);
            }
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
        breaker.record_success();
        assert!(breaker.check().is_ok());
    }

    #[test]
    fn lets_requests_through_after_the_cool_down() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        breaker.record_failure();
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
