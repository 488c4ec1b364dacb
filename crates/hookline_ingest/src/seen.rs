//! Keys this process knows to be committed, so a retry storm is answered from memory.
//!
//! Only keys whose row is known to be committed go in (after the group commit that stored
//! or found them), so a hit is exactly the answer the database would give: `200` with the
//! first event's id. Each entry carries the end of its key's dedup horizon, as the
//! database counts it, and is never answered after that: past its horizon a key is new
//! again. (An operator who deletes rows by hand should know that a key can still be
//! answered as a duplicate for up to twice [`SeenKeys`]'s `max_age` afterwards.)
//!
//! Two generations bound both memory and age: entries go into the current one; when it
//! holds half the byte budget or is older than `max_age`, it becomes the previous one and
//! the old previous one is dropped. A lookup that hits the previous generation moves the
//! key forward, so keys that keep being retried stay cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long an entry lives without being used: between one and two of these.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Bytes charged per entry on top of the key itself (hash slot, `String`, id).
const ENTRY_OVERHEAD: usize = 64;

/// A bounded map of committed `(source, dedup_key)` -> event id.
pub struct SeenKeys {
    budget: usize,
    max_age: Duration,
    inner: Mutex<Generations>,
}

/// An event id and when its key stops being a duplicate of it.
type Entry = (Uuid, Instant);

struct Generations {
    current: HashMap<String, Entry>,
    current_bytes: usize,
    started: Instant,
    previous: HashMap<String, Entry>,
}

/// `source` and `key` joined by NUL, which neither may contain (keys with NUL are refused
/// at rendering, source names are config identifiers).
fn joined(source: &str, key: &str) -> String {
    let mut joined = String::with_capacity(source.len() + 1 + key.len());
    joined.push_str(source);
    joined.push('\0');
    joined.push_str(key);
    joined
}

impl SeenKeys {
    /// A cache holding at most about `bytes` of keys, none older than twice `max_age`.
    /// `bytes == 0` disables it.
    pub fn new(bytes: usize, max_age: Duration) -> Self {
        Self {
            budget: bytes / 2,
            max_age,
            inner: Mutex::new(Generations {
                current: HashMap::new(),
                current_bytes: 0,
                started: Instant::now(),
                previous: HashMap::new(),
            }),
        }
    }

    /// Whether the cache is in use.
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The committed event id for this key, if known and its horizon has not passed.
    pub fn get(&self, source: &str, key: &str) -> Option<Uuid> {
        self.get_at(source, key, Instant::now())
    }

    fn get_at(&self, source: &str, key: &str, now: Instant) -> Option<Uuid> {
        if !self.enabled() {
            return None;
        }
        let joined = joined(source, key);
        let mut g = self.lock();
        self.rotate_if_due(&mut g, now);
        if let Some(&(id, until)) = g.current.get(&joined) {
            if now < until {
                return Some(id);
            }
            g.current.remove(&joined);
            return None;
        }
        let (id, until) = g.previous.remove(&joined)?;
        if now >= until {
            return None;
        }
        Self::put(&mut g, joined, (id, until));
        Some(id)
    }

    /// Remembers committed keys (new or found as duplicates), each with the instant its
    /// horizon ends: it must not be later than the database's (count it from before the
    /// insert was sent).
    pub fn insert_all<'a>(
        &self,
        committed: impl IntoIterator<Item = (&'a str, &'a str, Uuid, Instant)>,
    ) {
        self.insert_all_at(committed, Instant::now());
    }

    fn insert_all_at<'a>(
        &self,
        committed: impl IntoIterator<Item = (&'a str, &'a str, Uuid, Instant)>,
        now: Instant,
    ) {
        if !self.enabled() {
            return;
        }
        let mut g = self.lock();
        for (source, key, id, until) in committed {
            self.rotate_if_due(&mut g, now);
            if until > now {
                Self::put(&mut g, joined(source, key), (id, until));
            }
        }
    }

    /// Entries held (both generations).
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    fn put(g: &mut Generations, joined: String, entry: Entry) {
        let cost = joined.len() + ENTRY_OVERHEAD;
        if g.current.insert(joined, entry).is_none() {
            g.current_bytes += cost;
        }
    }

    fn rotate_if_due(&self, g: &mut Generations, now: Instant) {
        if g.current_bytes >= self.budget
            || now.saturating_duration_since(g.started) >= self.max_age
        {
            g.previous = std::mem::take(&mut g.current);
            g.current_bytes = 0;
            g.started = now;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves plain maps behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// A horizon far beyond any test.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(86_400)
    }

    #[test]
    fn remembers_keys_per_source() {
        let seen = SeenKeys::new(1 << 20, Duration::from_secs(60));
        seen.insert_all([("a", "k1", id(1), far()), ("b", "k1", id(2), far())]);
        assert_eq!(seen.get("a", "k1"), Some(id(1)));
        assert_eq!(seen.get("b", "k1"), Some(id(2)));
        assert_eq!(seen.get("a", "k2"), None);
        // ("a", "k1") and ("ak", "1") concatenate alike; the NUL separator (which neither
        // part may contain) keeps them apart.
        assert_eq!(seen.get("ak", "1"), None);
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 64 * 1024;
        let seen = SeenKeys::new(budget, Duration::from_secs(3600));
        let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i:08}")).collect();
        seen.insert_all(
            keys.iter()
                .enumerate()
                .map(|(i, k)| ("src", k.as_str(), id(i as u128), far())),
        );
        let per_entry = "src\0key-00000000".len() + ENTRY_OVERHEAD;
        assert!(
            seen.len() * per_entry <= budget + per_entry,
            "{} entries",
            seen.len()
        );
        // The newest keys are still there; the oldest were dropped.
        assert_eq!(seen.get("src", &keys[9_999]), Some(id(9_999)));
        assert_eq!(seen.get("src", &keys[0]), None);
    }

    #[test]
    fn entries_expire_after_two_generations_unless_used() {
        let age = Duration::from_secs(60);
        let seen = SeenKeys::new(1 << 20, age);
        let t0 = Instant::now();
        seen.insert_all_at(
            [("s", "old", id(1), far()), ("s", "kept", id(2), far())],
            t0,
        );
        // Rotated once: both are in the previous generation; using one moves it forward.
        let t1 = t0 + age;
        assert_eq!(seen.get_at("s", "kept", t1), Some(id(2)));
        let t2 = t1 + age;
        assert_eq!(seen.get_at("s", "old", t2), None, "aged out");
        assert_eq!(seen.get_at("s", "kept", t2), Some(id(2)), "used keys stay");
    }

    #[test]
    fn a_key_is_never_answered_past_its_horizon() {
        let seen = SeenKeys::new(1 << 20, Duration::from_secs(60));
        let t0 = Instant::now();
        let horizon = Duration::from_secs(2);
        seen.insert_all_at([("s", "k", id(1), t0 + horizon)], t0);
        assert_eq!(seen.get_at("s", "k", t0 + horizon / 2), Some(id(1)));
        assert_eq!(
            seen.get_at("s", "k", t0 + horizon),
            None,
            "the horizon has passed"
        );
        assert_eq!(seen.len(), 0, "and the entry is gone");
        // Also when it sits in the previous generation.
        let seen = SeenKeys::new(1 << 20, Duration::from_secs(1));
        seen.insert_all_at([("s", "k", id(1), t0 + horizon)], t0);
        assert_eq!(
            seen.get_at("s", "k", t0 + horizon + Duration::from_millis(1)),
            None
        );
        // A key whose horizon is already over is not cached at all.
        seen.insert_all_at([("s", "gone", id(2), t0)], t0);
        assert_eq!(seen.get_at("s", "gone", t0), None);
    }

    #[test]
    fn zero_bytes_disables_it() {
        let seen = SeenKeys::new(0, Duration::from_secs(60));
        seen.insert_all([("s", "k", id(1), far())]);
        assert!(!seen.enabled());
        assert_eq!(seen.get("s", "k"), None);
        assert_eq!(seen.len(), 0);
    }
}
