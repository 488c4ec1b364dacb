//! A destination's circuit breaker, per worker process: after `failures` transient
//! failures in a row no request is sent for a cooldown; then one probe (half-open)
//! decides whether to close again or wait twice as long (up to ten cooldowns).

use std::time::{Duration, Instant};

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send as much as the concurrency allows.
    All,
    /// Send exactly one request: the half-open probe.
    Probe,
    /// Send nothing before this instant.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { consecutive: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { probing: bool, cooldown: Duration },
}

/// The breaker's state machine. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub(crate) struct Circuit {
    failures: u32,
    base: Duration,
    state: State,
}

impl Circuit {
    pub(crate) fn new(failures: u32, base: Duration) -> Self {
        Self {
            failures: failures.max(1),
            base,
            state: State::Closed { consecutive: 0 },
        }
    }

    /// What may be sent at `now`; a granted probe is marked in flight.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed { .. } => Admit::All,
            State::Open { until, cooldown } if now >= until => {
                self.state = State::HalfOpen {
                    probing: true,
                    cooldown,
                };
                Admit::Probe
            }
            State::Open { until, .. } => Admit::Wait(until),
            State::HalfOpen {
                probing: false,
                cooldown,
            } => {
                self.state = State::HalfOpen {
                    probing: true,
                    cooldown,
                };
                Admit::Probe
            }
            // A probe is out: wait for its answer (re-checked when it settles).
            State::HalfOpen { probing: true, .. } => Admit::Wait(now + Duration::from_millis(100)),
        }
    }

    /// Gives back a granted probe that was not sent (nothing was due).
    pub(crate) fn cancel_probe(&mut self) {
        if let State::HalfOpen { cooldown, .. } = self.state {
            self.state = State::HalfOpen {
                probing: false,
                cooldown,
            };
        }
    }

    /// Records an attempt's result: `ok` for any answer that says the destination works
    /// (2xx, and the 4xx that fail a delivery for good), not `ok` for the transient ones.
    pub(crate) fn record(&mut self, now: Instant, ok: bool) {
        self.state = match (self.state, ok) {
            (_, true) => State::Closed { consecutive: 0 },
            (State::Closed { consecutive }, false) if consecutive + 1 >= self.failures => {
                State::Open {
                    until: now + self.base,
                    cooldown: self.base,
                }
            }
            (State::Closed { consecutive }, false) => State::Closed {
                consecutive: consecutive + 1,
            },
            (State::HalfOpen { cooldown, .. }, false) => {
                let cooldown = (cooldown * 2).min(self.base * 10);
                State::Open {
                    until: now + cooldown,
                    cooldown,
                }
            }
            // Results of requests sent before the circuit opened change nothing.
            (open @ State::Open { .. }, false) => open,
        };
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub(crate) fn gauge(&self) -> f64 {
        match self.state {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_in_a_row_probes_after_the_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let mut c = Circuit::new(3, Duration::from_secs(10));
        c.record(t0, false);
        c.record(t0, false);
        assert_eq!(c.admit(t0), Admit::All);
        c.record(t0, true);
        c.record(t0, false);
        c.record(t0, false);
        assert_eq!(
            c.admit(t0),
            Admit::All,
            "a success in between resets the count"
        );
        c.record(t0, false);
        assert_eq!(c.admit(t0), Admit::Wait(t0 + Duration::from_secs(10)));
        assert_eq!(c.gauge(), 2.0);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(c.admit(later), Admit::Probe);
        assert_eq!(c.gauge(), 1.0);
        assert!(
            matches!(c.admit(later), Admit::Wait(_)),
            "one probe at a time"
        );
        c.record(later, true);
        assert_eq!(c.admit(later), Admit::All);
        assert_eq!(c.gauge(), 0.0);
    }

    #[test]
    fn a_failed_probe_doubles_the_wait_up_to_ten_cooldowns() {
        let t0 = Instant::now();
        let base = Duration::from_secs(1);
        let mut c = Circuit::new(1, base);
        c.record(t0, false);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let Admit::Wait(until) = c.admit(now) else {
                panic!("expected open")
            };
            waits.push(until - now);
            now = until;
            assert_eq!(c.admit(now), Admit::Probe);
            c.record(now, false);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }
}
