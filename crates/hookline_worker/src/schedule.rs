//! The retry schedule: how long a failed message waits before its next attempt, and when
//! it stops trying.

use std::time::Duration;

use hookline_config::WorkerConfig;
use hookline_queue::retry_delays;

use crate::ProcessError;

/// Bounded, doubling retries, as configured by `[worker] max_attempts`, `retry_base_ms`
/// and `retry_cap_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    delays: Vec<Duration>,
}

/// What to do with a message whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Publish it again through the delay queue for `delay`, expiring after `expiration`
    /// (a little less than `delay`).
    Retry {
        /// The delay queue to use (one queue per delay keeps every message in a queue at
        /// the same TTL).
        delay: Duration,
        /// The per-message TTL: a random 75–100 % of `delay`, so events that failed
        /// together (a database restart) do not all come back in the same instant.
        expiration: Duration,
    },
    /// Give up: to the dead-letter queue.
    Dead,
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, waiting `base`, `2·base`, `4·base`, … (at most `cap`)
    /// between them.
    pub fn new(max_attempts: u32, base: Duration, cap: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            delays: retry_delays(max_attempts, base, cap),
        }
    }

    /// The policy `[worker]` configures.
    pub fn from_config(worker: &WorkerConfig) -> Self {
        Self::new(
            worker.max_attempts,
            Duration::from_millis(worker.retry_base_ms),
            Duration::from_millis(worker.retry_cap_ms),
        )
    }

    /// Every delay the schedule uses (the delay queues to declare).
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1-based), or `None` if it was the last.
    pub fn delay_for_attempt(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
        self.delays.get(index).or(self.delays.last()).copied()
    }

    /// What follows failed attempt `attempt`: a retry for a transient error with attempts
    /// left, the dead-letter queue otherwise (a permanent error cannot be helped by
    /// waiting).
    pub fn after_failure(&self, attempt: u32, error: &ProcessError) -> NextStep {
        match self.delay_for_attempt(attempt) {
            Some(delay) if error.is_transient() => NextStep::Retry {
                delay,
                expiration: jittered(delay),
            },
            _ => NextStep::Dead,
        }
    }
}

/// A random 75–100 % of `delay`, never zero for a non-zero delay (an expiration of 0
/// would mean "expire at once" to RabbitMQ and skip the wait entirely).
fn jittered(delay: Duration) -> Duration {
    delay
        .mul_f64(0.75 + 0.25 * fastrand::f64())
        .max(Duration::from_millis(1).min(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(4, Duration::from_millis(100), Duration::from_millis(250))
    }

    #[test]
    fn delays_double_up_to_the_cap_and_stop_at_the_last_attempt() {
        let p = policy();
        assert_eq!(p.delay_for_attempt(1), Some(Duration::from_millis(100)));
        assert_eq!(p.delay_for_attempt(2), Some(Duration::from_millis(200)));
        assert_eq!(p.delay_for_attempt(3), Some(Duration::from_millis(250)));
        assert_eq!(p.delay_for_attempt(4), None);
        assert_eq!(p.delay_for_attempt(9), None);
    }

    #[test]
    fn transient_failures_retry_with_jitter_below_the_queue_ttl() {
        let p = policy();
        for _ in 0..200 {
            let NextStep::Retry { delay, expiration } =
                p.after_failure(2, &ProcessError::Transient("down".into()))
            else {
                panic!("a transient failure with attempts left is retried");
            };
            assert_eq!(delay, Duration::from_millis(200));
            assert!(expiration >= Duration::from_millis(150) && expiration <= delay);
        }
    }

    #[test]
    fn exhausted_or_permanent_failures_go_to_the_dead_letter_queue() {
        let p = policy();
        assert_eq!(
            p.after_failure(4, &ProcessError::Transient("down".into())),
            NextStep::Dead
        );
        assert_eq!(
            p.after_failure(1, &ProcessError::Permanent("bad row".into())),
            NextStep::Dead
        );
    }

    #[test]
    fn a_single_attempt_policy_never_retries() {
        let p = RetryPolicy::new(1, Duration::from_millis(100), Duration::from_millis(100));
        assert!(p.delays().is_empty());
        assert_eq!(
            p.after_failure(1, &ProcessError::Transient("down".into())),
            NextStep::Dead
        );
    }
}
