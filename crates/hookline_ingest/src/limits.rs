//! Load shedding: at most `http.max_in_flight` webhooks are handled at once, so a stalled
//! database costs bounded memory and every request is answered, if only with a 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// The count of webhooks being handled, shared by every worker thread.
#[derive(Clone)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    max: usize,
}

/// One webhook's place among the in-flight ones; released on drop.
pub struct Slot(Arc<AtomicUsize>);

impl InFlight {
    /// A limit of `max` at once.
    pub fn new(max: usize) -> Self {
        Self {
            count: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot, or `None` when `max` webhooks are in flight already.
    pub fn try_enter(&self) -> Option<Slot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// At most one log line a second for refusals that come by the thousand under overload
/// (shed, deadline): each line says how many it stands for. The counter still counts each.
pub struct Throttle {
    started: Instant,
    /// Milliseconds after `started` of the last line written.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    /// A throttle that lets its first line through.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line should be written now, standing for `n` refusals (this one
    /// included); `None` when one was written less than a second ago.
    pub fn admit(&self) -> Option<u64> {
        let now = self.started.elapsed().as_millis() as u64 + 1_000;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed) + 1);
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_at_the_limit_and_come_back_on_drop() {
        let in_flight = InFlight::new(2);
        let a = in_flight.try_enter().unwrap();
        let _b = in_flight.try_enter().unwrap();
        assert!(in_flight.try_enter().is_none());
        drop(a);
        assert!(in_flight.try_enter().is_some());
    }

    #[test]
    fn the_throttle_lets_one_line_through_and_counts_the_rest() {
        let throttle = Throttle::new();
        assert_eq!(throttle.admit(), Some(1));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        throttle.last_ms.store(0, Ordering::Relaxed);
        assert_eq!(throttle.admit(), Some(3));
    }
}
