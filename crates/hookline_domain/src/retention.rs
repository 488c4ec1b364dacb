//! How long Hookline keeps what it stores: the dedup horizon, the raw payload and the
//! event rows, per source.
//!
//! Providers retry for days (Standard Webhooks about 75 h, Stripe about 3 days), so a key
//! must stay a duplicate at least that long, while the bulky body and headers can go
//! sooner. The event row (keys, state, result) outlives both, which is why a payload or a
//! horizon longer than `events` is refused: nothing would be left to answer with.

use std::collections::BTreeMap;
use std::time::Duration;

/// The three retention periods of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A key is answered as a duplicate for at least this long after its first receipt;
    /// after it, the same key is accepted as a new event.
    pub dedup_horizon: Duration,
    /// Raw body, headers and query string are kept this long, then pruned; the event row
    /// (keys, state, result) stays.
    pub payload: Duration,
    /// Event rows and their transitions are kept this long.
    pub events: Duration,
}

/// Which period of a [`Retention`] a [`RetentionError`] is about (the config key's last
/// part: `dedup_horizon`, `payload` or `events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionField {
    /// `dedup_horizon`
    DedupHorizon,
    /// `payload`
    Payload,
    /// `events`
    Events,
}

impl RetentionField {
    /// The config key's last part.
    pub fn key(self) -> &'static str {
        match self {
            RetentionField::DedupHorizon => "dedup_horizon",
            RetentionField::Payload => "payload",
            RetentionField::Events => "events",
        }
    }
}

/// Why a [`Retention`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A period of zero would prune everything at once.
    #[error("must be longer than 0s")]
    Zero(RetentionField),
    /// The payload would outlive the event row it belongs to.
    #[error(
        "payload ({payload}) is longer than events ({events}): an event row must outlive its payload"
    )]
    PayloadOutlivesEvents {
        /// `payload` as written.
        payload: String,
        /// `events` as written.
        events: String,
    },
    /// A key would stay a duplicate of an event that is gone.
    #[error(
        "dedup_horizon ({horizon}) is longer than events ({events}): a duplicate is answered with its first event, which must still exist"
    )]
    HorizonOutlivesEvents {
        /// `dedup_horizon` as written.
        horizon: String,
        /// `events` as written.
        events: String,
    },
}

impl RetentionError {
    /// The period the error is about: the key to name.
    pub fn field(&self) -> RetentionField {
        match self {
            RetentionError::Zero(field) => *field,
            RetentionError::PayloadOutlivesEvents { .. } => RetentionField::Payload,
            RetentionError::HorizonOutlivesEvents { .. } => RetentionField::DedupHorizon,
        }
    }
}

impl Retention {
    /// Checks that every period is positive and that neither the payload nor the dedup
    /// horizon outlives the event rows.
    ///
    /// # Errors
    /// The first rule broken, with the period it is about ([`RetentionError::field`]).
    pub fn check(&self) -> Result<(), RetentionError> {
        for (field, value) in [
            (RetentionField::DedupHorizon, self.dedup_horizon),
            (RetentionField::Payload, self.payload),
            (RetentionField::Events, self.events),
        ] {
            if value.is_zero() {
                return Err(RetentionError::Zero(field));
            }
        }
        let text = |d: Duration| crate::HumanDuration(d).to_string();
        if self.payload > self.events {
            return Err(RetentionError::PayloadOutlivesEvents {
                payload: text(self.payload),
                events: text(self.events),
            });
        }
        if self.dedup_horizon > self.events {
            return Err(RetentionError::HorizonOutlivesEvents {
                horizon: text(self.dedup_horizon),
                events: text(self.events),
            });
        }
        Ok(())
    }

    /// Each period the longer of the two.
    #[must_use]
    pub fn max(self, other: Retention) -> Retention {
        Retention {
            dedup_horizon: self.dedup_horizon.max(other.dedup_horizon),
            payload: self.payload.max(other.payload),
            events: self.events.max(other.events),
        }
    }
}

/// Every source's retention, and the default that applies to any other source (one no
/// longer configured, say). What the maintenance pass prunes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `[retention]`: sources without an override, and sources not configured at all.
    pub default: Retention,
    /// Configured sources whose retention differs from the default in some period.
    pub overrides: BTreeMap<String, Retention>,
}

impl RetentionPolicy {
    /// A policy with only a default.
    pub fn uniform(default: Retention) -> Self {
        Self {
            default,
            overrides: BTreeMap::new(),
        }
    }

    /// The retention of `source`.
    pub fn for_source(&self, source: &str) -> Retention {
        self.overrides.get(source).copied().unwrap_or(self.default)
    }

    /// Per period, the longest any source has: whole partitions can go only once it has
    /// passed, because every source shares them.
    pub fn longest(&self) -> Retention {
        self.overrides
            .values()
            .fold(self.default, |longest, r| longest.max(*r))
    }

    /// How long one generation of dedup keys is current: the longest dedup horizon, so
    /// at most one earlier generation can hold keys still inside their horizon (the
    /// insert path checks it), and a generation can go once every event it points to has.
    pub fn generation_length(&self) -> Duration {
        self.longest().dedup_horizon
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    fn retention(horizon: u64, payload: u64, events: u64) -> Retention {
        Retention {
            dedup_horizon: days(horizon),
            payload: days(payload),
            events: days(events),
        }
    }

    #[test]
    fn neither_the_payload_nor_the_horizon_may_outlive_the_events() {
        assert_eq!(retention(7, 7, 30).check(), Ok(()));
        assert_eq!(retention(30, 30, 30).check(), Ok(()));
        let err = retention(7, 31, 30).check().unwrap_err();
        assert_eq!(err.field(), RetentionField::Payload);
        assert!(err.to_string().contains("31d"), "{err}");
        let err = retention(31, 7, 30).check().unwrap_err();
        assert_eq!(err.field(), RetentionField::DedupHorizon);
        assert!(err.to_string().contains("events (30d)"), "{err}");
        let err = retention(0, 7, 30).check().unwrap_err();
        assert_eq!(err, RetentionError::Zero(RetentionField::DedupHorizon));
    }

    #[test]
    fn overrides_apply_to_their_source_and_the_longest_period_bounds_partitions() {
        let mut policy = RetentionPolicy::uniform(retention(7, 7, 30));
        policy
            .overrides
            .insert("stripe".into(), retention(3, 1, 60));
        assert_eq!(policy.for_source("stripe"), retention(3, 1, 60));
        assert_eq!(policy.for_source("gone"), retention(7, 7, 30));
        assert_eq!(policy.longest(), retention(7, 7, 60));
        assert_eq!(policy.generation_length(), days(7));
    }
}
