//! A circuit breaker state machine, shared by the LLM provider and Redis.
//!
//! Closed, it lets every call through and counts consecutive failures; `threshold` of them in
//! a row open it. Open, it refuses calls at once for `cool_down`. Then it is half-open: one
//! call (the probe) goes through, the others are refused until the probe reports; a success
//! closes the breaker, a failure opens it again for another `cool_down`. A probe that never
//! reports (its caller gave up) stops holding the breaker after `probe_window`, and the next
//! call becomes the probe; a window of zero lets every call through while half-open.
//!
//! The breaker only keeps state and tells its owner about transitions ([`Transition`]); the
//! owner logs them and keeps its metrics. Time is `tokio::time::Instant`, so tests can pause it.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// See the module documentation.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    probe_window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_until: Instant },
}

/// The breaker's state as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    /// Refusing calls for the cool-down.
    Open,
    /// The cool-down is over: a probe may go through, or goes through now.
    HalfOpen,
}

impl Phase {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of state that a recorded outcome caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// From closed to open: `threshold` failures in a row.
    Opened,
    /// From half-open to open again: the probe failed.
    Reopened,
    /// From open or half-open to closed: a call succeeded.
    Closed,
}

/// A call refused because the breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Until the breaker lets a call try again (at least a moment).
    pub retry_after: Duration,
}

impl Breaker {
    /// A breaker that opens after `threshold` failures in a row (0: never) for `cool_down`.
    pub fn new(threshold: u32, cool_down: Duration, probe_window: Duration) -> Self {
        Self {
            threshold,
            cool_down,
            probe_window,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// How long the breaker stays open.
    pub fn cool_down(&self) -> Duration {
        self.cool_down
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a plain value, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go through now. Once the cool-down is over, the call that asks
    /// first becomes the probe; report its outcome with [`Self::record_success`] or
    /// [`Self::record_failure`].
    pub fn admit(&self) -> Result<(), Refused> {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } | State::HalfOpen { probe_until: until } if now < until => {
                Err(Refused {
                    retry_after: (until - now).max(Duration::from_millis(1)),
                })
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen {
                    probe_until: now + self.probe_window,
                };
                Ok(())
            }
        }
    }

    /// A call succeeded: the breaker closes (and forgets earlier failures).
    pub fn record_success(&self) -> Option<Transition> {
        let mut state = self.lock();
        let was_closed = matches!(*state, State::Closed { .. });
        *state = State::Closed { failures: 0 };
        (!was_closed).then_some(Transition::Closed)
    }

    /// A call failed.
    pub fn record_failure(&self) -> Option<Transition> {
        if self.threshold == 0 {
            return None;
        }
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    *state = State::Open {
                        until: now + self.cool_down,
                    };
                    Some(Transition::Opened)
                } else {
                    *state = State::Closed { failures };
                    None
                }
            }
            State::HalfOpen { .. } => {
                *state = State::Open {
                    until: now + self.cool_down,
                };
                Some(Transition::Reopened)
            }
            // A call let through before the breaker opened, failing late: the breaker is open
            // already.
            State::Open { .. } => None,
        }
    }

    /// The state now; `HalfOpen` once the cool-down is over even before a probe asked.
    pub fn phase(&self) -> Phase {
        match *self.lock() {
            State::Closed { .. } => Phase::Closed,
            State::Open { until } if Instant::now() < until => Phase::Open,
            State::Open { .. } | State::HalfOpen { .. } => Phase::HalfOpen,
        }
    }

    /// Whether the breaker is anything but closed (open, or half-open waiting for a probe).
    pub fn is_open(&self) -> bool {
        self.phase() != Phase::Closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_millis(250);

    fn breaker() -> Breaker {
        Breaker::new(3, COOL_DOWN, WINDOW)
    }

    #[tokio::test(start_paused = true)]
    async fn closed_until_the_threshold_of_consecutive_failures() {
        let breaker = breaker();
        assert_eq!(breaker.phase(), Phase::Closed);
        assert_eq!(breaker.record_failure(), None);
        assert_eq!(breaker.record_failure(), None);
        assert!(breaker.admit().is_ok());
        // A success in between starts the count again.
        assert_eq!(breaker.record_success(), None);
        assert_eq!(breaker.record_failure(), None);
        assert_eq!(breaker.record_failure(), None);
        assert_eq!(breaker.phase(), Phase::Closed);
        assert_eq!(breaker.record_failure(), Some(Transition::Opened));
        assert_eq!(breaker.phase(), Phase::Open);
        assert!(breaker.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn open_refuses_for_the_cool_down_then_lets_one_probe_through() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure();
        }
        let refused = breaker.admit().err();
        assert_eq!(refused.map(|r| r.retry_after), Some(COOL_DOWN));
        // Late failures of calls let through before do not prolong the cool-down.
        assert_eq!(breaker.record_failure(), None);
        tokio::time::advance(COOL_DOWN - Duration::from_millis(1)).await;
        assert!(breaker.admit().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(breaker.phase(), Phase::HalfOpen);
        // The probe goes through; the others wait for its outcome.
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_err());
        assert!(breaker.admit().is_err());
        assert_eq!(breaker.phase(), Phase::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_probe_closes_it() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.record_success(), Some(Transition::Closed));
        assert_eq!(breaker.phase(), Phase::Closed);
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_ok());
        // Closed again means a fresh count.
        assert_eq!(breaker.record_failure(), None);
        assert_eq!(breaker.record_failure(), None);
        assert_eq!(breaker.phase(), Phase::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_another_cool_down() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.record_failure(), Some(Transition::Reopened));
        assert_eq!(breaker.phase(), Phase::Open);
        assert!(breaker.admit().is_err());
        tokio::time::advance(COOL_DOWN - Duration::from_millis(1)).await;
        assert!(breaker.admit().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.record_success(), Some(Transition::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_lets_another_through_after_its_window() {
        let breaker = breaker();
        for _ in 0..3 {
            breaker.record_failure();
        }
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.admit().is_ok());
        tokio::time::advance(WINDOW - Duration::from_millis(1)).await;
        assert!(breaker.admit().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_probe_window_lets_every_call_through_while_half_open() {
        let breaker = Breaker::new(1, COOL_DOWN, Duration::ZERO);
        assert_eq!(breaker.record_failure(), Some(Transition::Opened));
        assert!(breaker.admit().is_err());
        tokio::time::advance(COOL_DOWN).await;
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.record_failure(), Some(Transition::Reopened));
        assert!(breaker.admit().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_threshold_never_opens() {
        let breaker = Breaker::new(0, COOL_DOWN, WINDOW);
        for _ in 0..10 {
            assert_eq!(breaker.record_failure(), None);
        }
        assert!(breaker.admit().is_ok());
        assert_eq!(breaker.phase(), Phase::Closed);
    }
}
