use std::collections::HashMap;

use serde::Deserialize;

/// A lifecycle as written in config: statuses grouped by rank, low to high.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Ranks from first to last; statuses in one rank are peers (neither may follow the other).
    pub ranks: Vec<Vec<String>>,
    /// Statuses nothing may leave; defaults to every status of the last rank.
    #[serde(default)]
    pub terminal: Option<Vec<String>>,
}

/// What a status change did to a resource. Stored on every transition-log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The status moved to a higher rank.
    Applied,
    /// The status is the one the resource already has: a no-op.
    Unchanged,
    /// The status ranks at or below the current one (a late or reordered delivery).
    RejectedDowngrade,
    /// The resource is already in a terminal status.
    RejectedTerminal,
    /// An operator set the status by hand, bypassing the rules (audited).
    Forced,
}

impl Outcome {
    /// Every outcome, for metrics and docs.
    pub const ALL: [Outcome; 5] = [
        Outcome::Applied,
        Outcome::Unchanged,
        Outcome::RejectedDowngrade,
        Outcome::RejectedTerminal,
        Outcome::Forced,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::RejectedDowngrade => "rejected_downgrade",
            Outcome::RejectedTerminal => "rejected_terminal",
            Outcome::Forced => "forced",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the resource's status changes.
    pub fn changes_status(self) -> bool {
        matches!(self, Outcome::Applied | Outcome::Forced)
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a lifecycle could not be built or a status could not be placed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LifecycleError {
    /// The lifecycle has no statuses at all.
    #[error("lifecycle has no ranks")]
    Empty,
    /// A status is listed twice.
    #[error("status {0:?} appears more than once")]
    DuplicateStatus(String),
    /// A terminal status that is not in any rank.
    #[error("terminal status {0:?} is not in any rank")]
    UnknownTerminal(String),
    /// The event's status is not part of the lifecycle (permanent: retrying cannot help).
    #[error("status {status:?} is not part of lifecycle {lifecycle:?}")]
    UnknownStatus {
        /// The lifecycle's name.
        lifecycle: String,
        /// The status the event carried.
        status: String,
    },
}

/// A forward-only status machine: ranks plus a terminal set.
///
/// Statuses match ASCII case-insensitively (`success` is `SUCCESS`) and are stored in the
/// spelling the lifecycle gives them.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    name: String,
    /// Upper-cased status -> (canonical spelling, rank, terminal).
    statuses: HashMap<String, (String, usize, bool)>,
}

impl Lifecycle {
    /// Builds and checks a lifecycle.
    ///
    /// # Errors
    /// [`LifecycleError`] for an empty lifecycle, a repeated status or a terminal status
    /// outside the ranks.
    pub fn new(name: &str, config: &LifecycleConfig) -> Result<Self, LifecycleError> {
        let mut statuses = HashMap::new();
        for (rank, group) in config.ranks.iter().enumerate() {
            for status in group {
                let key = status.to_ascii_uppercase();
                if statuses
                    .insert(key, (status.clone(), rank, false))
                    .is_some()
                {
                    return Err(LifecycleError::DuplicateStatus(status.clone()));
                }
            }
        }
        if statuses.is_empty() {
            return Err(LifecycleError::Empty);
        }
        let terminal = match &config.terminal {
            Some(terminal) => terminal.clone(),
            None => config.ranks.last().cloned().unwrap_or_default(),
        };
        for status in terminal {
            match statuses.get_mut(&status.to_ascii_uppercase()) {
                Some(entry) => entry.2 = true,
                None => return Err(LifecycleError::UnknownTerminal(status)),
            }
        }
        Ok(Self {
            name: name.to_string(),
            statuses,
        })
    }

    /// The lifecycles Hookline ships, by name; config may override any of them.
    pub fn builtin(name: &str) -> Option<LifecycleConfig> {
        let ranks: &[&[&str]] = match name {
            "apify-run" => &[
                &["READY"],
                &["RUNNING"],
                &["TIMING-OUT", "ABORTING"],
                &["SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"],
            ],
            "payment" => &[
                &["INITIATED"],
                &["PENDING"],
                &["PROCESSING"],
                &["SUCCESS", "FAILED"],
            ],
            "retell-call" => &[&["call_started"], &["call_ended"], &["call_analyzed"]],
            _ => return None,
        };
        Some(LifecycleConfig {
            ranks: ranks
                .iter()
                .map(|g| g.iter().map(|s| s.to_string()).collect())
                .collect(),
            terminal: None,
        })
    }

    /// Names of the built-in lifecycles.
    pub const BUILTIN: [&'static str; 3] = ["apify-run", "payment", "retell-call"];

    /// The lifecycle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The canonical spelling of `status`, if it belongs to this lifecycle.
    pub fn canonical(&self, status: &str) -> Option<&str> {
        self.statuses
            .get(&status.to_ascii_uppercase())
            .map(|(s, _, _)| s.as_str())
    }

    /// Whether `status` is terminal here (unknown statuses are not).
    pub fn is_terminal(&self, status: &str) -> bool {
        self.statuses
            .get(&status.to_ascii_uppercase())
            .is_some_and(|(_, _, t)| *t)
    }

    /// Decides what an event reporting `next` does to a resource currently at `current`.
    ///
    /// Forward moves apply; the same status is a no-op; a move to a rank at or below the
    /// current one is a downgrade; nothing leaves a terminal status. A current status the
    /// lifecycle no longer knows (config changed) counts as the lowest rank.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownStatus`] when `next` is not in the lifecycle.
    pub fn transition(&self, current: Option<&str>, next: &str) -> Result<Outcome, LifecycleError> {
        let (_, next_rank, _) = self
            .statuses
            .get(&next.to_ascii_uppercase())
            .ok_or_else(|| LifecycleError::UnknownStatus {
                lifecycle: self.name.clone(),
                status: next.to_string(),
            })?;
        let Some(current) = current else {
            return Ok(Outcome::Applied);
        };
        if current.eq_ignore_ascii_case(next) {
            return Ok(Outcome::Unchanged);
        }
        match self.statuses.get(&current.to_ascii_uppercase()) {
            Some((_, _, true)) => Ok(Outcome::RejectedTerminal),
            Some((_, rank, false)) if next_rank <= rank => Ok(Outcome::RejectedDowngrade),
            _ => Ok(Outcome::Applied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_parses_back_from_its_name_and_serializes_as_it() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::Value::from(outcome.as_str())
            );
        }
        assert_eq!(Outcome::parse("Applied"), None);
    }

    fn apify() -> Lifecycle {
        Lifecycle::new("apify-run", &Lifecycle::builtin("apify-run").unwrap()).unwrap()
    }

    #[test]
    fn forward_moves_apply_and_the_same_status_is_a_no_op() {
        let l = apify();
        assert_eq!(l.transition(None, "READY"), Ok(Outcome::Applied));
        assert_eq!(l.transition(Some("READY"), "RUNNING"), Ok(Outcome::Applied));
        assert_eq!(
            l.transition(Some("RUNNING"), "SUCCEEDED"),
            Ok(Outcome::Applied)
        );
        assert_eq!(
            l.transition(Some("RUNNING"), "RUNNING"),
            Ok(Outcome::Unchanged)
        );
        assert_eq!(
            l.transition(Some("SUCCEEDED"), "SUCCEEDED"),
            Ok(Outcome::Unchanged)
        );
    }

    #[test]
    fn a_late_lower_status_is_a_rejected_downgrade() {
        let l = apify();
        assert_eq!(
            l.transition(Some("TIMING-OUT"), "RUNNING"),
            Ok(Outcome::RejectedDowngrade)
        );
        assert_eq!(
            l.transition(Some("TIMING-OUT"), "ABORTING"),
            Ok(Outcome::RejectedDowngrade)
        );
    }

    #[test]
    fn nothing_leaves_a_terminal_status() {
        let l = apify();
        assert_eq!(
            l.transition(Some("SUCCEEDED"), "RUNNING"),
            Ok(Outcome::RejectedTerminal)
        );
        assert_eq!(
            l.transition(Some("SUCCEEDED"), "FAILED"),
            Ok(Outcome::RejectedTerminal)
        );
        assert!(l.is_terminal("ABORTED"));
        assert!(!l.is_terminal("RUNNING"));
    }

    #[test]
    fn statuses_match_case_insensitively_and_unknown_ones_are_errors() {
        let payment = Lifecycle::new("payment", &Lifecycle::builtin("payment").unwrap()).unwrap();
        assert_eq!(payment.canonical("success"), Some("SUCCESS"));
        assert_eq!(
            payment.transition(Some("PENDING"), "success"),
            Ok(Outcome::Applied)
        );
        assert!(matches!(
            payment.transition(None, "refunded"),
            Err(LifecycleError::UnknownStatus { .. })
        ));
    }

    #[test]
    fn explicit_terminal_sets_and_bad_configs() {
        let config = LifecycleConfig {
            ranks: vec![vec!["a".into()], vec!["b".into()], vec!["c".into()]],
            terminal: Some(vec!["b".into()]),
        };
        let l = Lifecycle::new("x", &config).unwrap();
        assert_eq!(l.transition(Some("b"), "c"), Ok(Outcome::RejectedTerminal));
        let dup = LifecycleConfig {
            ranks: vec![vec!["a".into()], vec!["A".into()]],
            terminal: None,
        };
        assert!(matches!(
            Lifecycle::new("x", &dup),
            Err(LifecycleError::DuplicateStatus(_))
        ));
        let bad_terminal = LifecycleConfig {
            ranks: vec![vec!["a".into()]],
            terminal: Some(vec!["z".into()]),
        };
        assert!(matches!(
            Lifecycle::new("x", &bad_terminal),
            Err(LifecycleError::UnknownTerminal(_))
        ));
        let empty = LifecycleConfig {
            ranks: vec![],
            terminal: None,
        };
        assert_eq!(
            Lifecycle::new("x", &empty).unwrap_err(),
            LifecycleError::Empty
        );
    }

    #[test]
    fn every_outcome_round_trips_through_its_name() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
    }
}
