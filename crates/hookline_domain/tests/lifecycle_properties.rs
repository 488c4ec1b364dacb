//! Property tests of the forward-only status machine, as the worker drives it: for any
//! interleaving and duplication of any statuses of one resource, the resource ends at the
//! highest rank it reached, no downgrade is ever applied, nothing leaves a terminal status,
//! and replaying the same deliveries changes nothing.
//!
//! The worker's rule (`hookline_worker` `step.rs`: `plan` canonicalises the status,
//! `decide_locked` calls `Lifecycle::transition` and keeps the status when it changes) is
//! modelled here from the lifecycle's config alone, so `transition` is checked against
//! the rule, not against itself: the current status starts empty; an event's status is
//! applied iff there is none yet, or its rank is higher than the current one and the
//! current one is not terminal; the same status is `unchanged`; after a terminal status
//! anything else is `rejected_terminal`; otherwise it is `rejected_downgrade`.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_domain::{Lifecycle, LifecycleConfig, LifecycleError, Outcome};
use proptest::prelude::*;

/// A lifecycle under test: its config (the model reads ranks and terminals from it) and
/// the built machine.
#[derive(Debug, Clone)]
struct Machine {
    config: LifecycleConfig,
    lifecycle: Lifecycle,
    /// Every status in canonical spelling, with its rank and whether it is terminal.
    statuses: Vec<(String, usize, bool)>,
}

impl Machine {
    fn new(name: &str, config: LifecycleConfig) -> Self {
        let lifecycle = Lifecycle::new(name, &config).unwrap();
        let terminal = config
            .terminal
            .clone()
            .unwrap_or_else(|| config.ranks.last().cloned().unwrap_or_default());
        let statuses = config
            .ranks
            .iter()
            .enumerate()
            .flat_map(|(rank, group)| group.iter().map(move |s| (s.clone(), rank)))
            .map(|(s, rank)| {
                let is_terminal = terminal.iter().any(|t| t.eq_ignore_ascii_case(&s));
                (s, rank, is_terminal)
            })
            .collect();
        Self {
            config,
            lifecycle,
            statuses,
        }
    }

    fn rank(&self, status: &str) -> usize {
        self.entry(status).1
    }

    fn terminal(&self, status: &str) -> bool {
        self.entry(status).2
    }

    fn entry(&self, status: &str) -> &(String, usize, bool) {
        self.statuses
            .iter()
            .find(|(s, _, _)| s.eq_ignore_ascii_case(status))
            .unwrap()
    }

    /// Whether every terminal status sits in the highest rank: then reaching a terminal
    /// status means reaching the top, and the final rank is the highest one delivered.
    fn terminals_only_at_top(&self) -> bool {
        let top = self.config.ranks.len() - 1;
        self.statuses.iter().all(|(_, rank, t)| !t || *rank == top)
    }

    /// What the rule says an event reporting `next` does to a resource at `current`.
    fn rule(&self, current: Option<&str>, next: &str) -> Outcome {
        match current {
            None => Outcome::Applied,
            Some(c) if c.eq_ignore_ascii_case(next) => Outcome::Unchanged,
            Some(c) if self.terminal(c) => Outcome::RejectedTerminal,
            Some(c) if self.rank(next) > self.rank(c) => Outcome::Applied,
            Some(_) => Outcome::RejectedDowngrade,
        }
    }

    /// Delivers `events` (statuses as the provider spelled them) to a resource at
    /// `start`, as the worker does, checking every decision against the rule. Returns the
    /// final status and each event's outcome.
    fn deliver(&self, start: Option<String>, events: &[String]) -> (Option<String>, Vec<Outcome>) {
        let mut current = start;
        let mut outcomes = Vec::with_capacity(events.len());
        for sent in events {
            let status = self.lifecycle.canonical(sent).unwrap().to_string();
            let outcome = self
                .lifecycle
                .transition(current.as_deref(), &status)
                .unwrap();
            assert_eq!(
                outcome,
                self.rule(current.as_deref(), &status),
                "{current:?} -> {status}"
            );
            // The lifecycle matches spellings case-insensitively on its own, too.
            assert_eq!(
                self.lifecycle.transition(current.as_deref(), sent),
                Ok(outcome)
            );
            if outcome.changes_status() {
                current = Some(status);
            }
            outcomes.push(outcome);
        }
        (current, outcomes)
    }
}

/// Builds the i-th status name: mixed spellings, so canonical spelling matters.
fn status_name(i: usize) -> String {
    match i % 3 {
        0 => format!("S{i}"),
        1 => format!("status-{i}"),
        _ => format!("Timing-Out-{i}"),
    }
}

/// Any lifecycle: a built-in one, or 1–6 ranks of 1–3 peers each with the default
/// terminal set (the last rank) or any subset of the statuses as terminal.
fn machines() -> impl Strategy<Value = Machine> {
    let builtin = prop::sample::select(Lifecycle::BUILTIN.to_vec())
        .prop_map(|name| Machine::new(name, Lifecycle::builtin(name).unwrap()));
    let generated = prop::collection::vec(1usize..=3, 1..=6).prop_flat_map(|sizes| {
        let mut next = 0;
        let ranks: Vec<Vec<String>> = sizes
            .iter()
            .map(|size| {
                (0..*size)
                    .map(|_| {
                        next += 1;
                        status_name(next)
                    })
                    .collect()
            })
            .collect();
        let all: Vec<String> = ranks.iter().flatten().cloned().collect();
        let terminal = prop_oneof![
            Just(None),
            prop::sample::subsequence(all.clone(), 0..=all.len()).prop_map(Some),
        ];
        (Just(ranks), terminal).prop_map(|(ranks, terminal)| {
            Machine::new("generated", LifecycleConfig { ranks, terminal })
        })
    });
    prop_oneof![builtin, generated]
}

/// Statuses of one resource as delivered: any of the lifecycle's statuses, any number of
/// times, in any order, each in the canonical or in another ASCII case.
fn deliveries(machine: &Machine) -> impl Strategy<Value = Vec<String>> + use<> {
    let names: Vec<String> = machine.statuses.iter().map(|(s, _, _)| s.clone()).collect();
    prop::collection::vec((prop::sample::select(names), 0u8..3), 0..40).prop_map(|events| {
        events
            .into_iter()
            .map(|(s, case)| match case {
                0 => s,
                1 => s.to_ascii_lowercase(),
                _ => s.to_ascii_uppercase(),
            })
            .collect()
    })
}

fn machine_and_deliveries() -> impl Strategy<Value = (Machine, Vec<String>)> {
    machines().prop_flat_map(|m| {
        let events = deliveries(&m);
        (Just(m), events)
    })
}

proptest! {
    #[test]
    fn every_decision_follows_the_rule_and_no_downgrade_is_ever_applied(
        (machine, events) in machine_and_deliveries()
    ) {
        let (last, outcomes) = machine.deliver(None, &events);
        let mut current: Option<String> = None;
        for (sent, outcome) in events.iter().zip(&outcomes) {
            if outcome.changes_status() {
                if let Some(before) = &current {
                    prop_assert!(machine.rank(sent) > machine.rank(before), "{before} -> {sent}");
                    prop_assert!(!machine.terminal(before), "left terminal {before}");
                }
                current = machine.lifecycle.canonical(sent).map(str::to_string);
            }
            prop_assert!(*outcome != Outcome::Forced);
        }
        prop_assert_eq!(&current, &last);
        prop_assert_eq!(last.is_none(), events.is_empty());
    }

    #[test]
    fn the_resource_ends_at_the_highest_rank_it_reached(
        (machine, events) in machine_and_deliveries()
    ) {
        let (last, _) = machine.deliver(None, &events);
        let Some(last) = last else {
            prop_assert!(events.is_empty());
            return Ok(());
        };
        // Every status delivered while the resource was still open ranks at or below
        // where it ended; with terminal statuses only at the top, that is every status.
        let mut current: Option<String> = None;
        let mut highest_open = 0;
        for sent in &events {
            if !current.as_deref().is_some_and(|c| machine.terminal(c)) {
                highest_open = highest_open.max(machine.rank(sent));
            }
            let status = machine.lifecycle.canonical(sent).unwrap();
            if machine.rule(current.as_deref(), status).changes_status() {
                current = Some(status.to_string());
            }
        }
        prop_assert_eq!(machine.rank(&last), highest_open);
        if machine.terminals_only_at_top() {
            let highest = events.iter().map(|s| machine.rank(s)).max().unwrap();
            prop_assert_eq!(machine.rank(&last), highest);
            // Peers never replace each other: the first status of that rank stays.
            let first = events.iter().find(|s| machine.rank(s) == highest).unwrap();
            prop_assert!(first.eq_ignore_ascii_case(&last), "{first} then {last}");
        }
    }

    #[test]
    fn the_final_rank_does_not_depend_on_order_or_duplicates(
        (machine, events, shuffled, extra) in machine_and_deliveries().prop_flat_map(|(m, events)| {
            let shuffled = Just(events.clone()).prop_shuffle();
            let extra = if events.is_empty() {
                Just(Vec::new()).boxed()
            } else {
                prop::collection::vec(prop::sample::select(events.clone()), 0..10).boxed()
            };
            (Just(m), Just(events), shuffled, extra)
        })
    ) {
        prop_assume!(machine.terminals_only_at_top());
        let rank = |events: &[String]| machine.deliver(None, events).0.map(|s| machine.rank(&s));
        let mut duplicated = shuffled.clone();
        duplicated.extend(extra);
        // Interleave the duplicates rather than only appending them.
        let third = duplicated.len() / 3;
        duplicated.rotate_left(third);
        prop_assert_eq!(rank(&events), rank(&shuffled));
        prop_assert_eq!(rank(&events), rank(&duplicated));
    }

    #[test]
    fn replaying_the_same_deliveries_changes_nothing(
        (machine, events) in machine_and_deliveries()
    ) {
        let (last, outcomes) = machine.deliver(None, &events);
        // The same deliveries again from scratch decide the same way ...
        prop_assert_eq!(machine.deliver(None, &events), (last.clone(), outcomes));
        // ... and on top of where they left the resource, they apply nothing.
        let (again, replayed) = machine.deliver(last.clone(), &events);
        prop_assert_eq!(again, last);
        prop_assert!(replayed.iter().all(|o| !o.changes_status()), "{replayed:?}");
        // Each delivery repeated right after itself: the copy never applies.
        let doubled: Vec<String> = events.iter().flat_map(|s| [s.clone(), s.clone()]).collect();
        let (doubled_last, doubled_outcomes) = machine.deliver(None, &doubled);
        prop_assert_eq!(doubled_last, machine.deliver(None, &events).0);
        prop_assert!(doubled_outcomes.iter().skip(1).step_by(2).all(|o| !o.changes_status()));
    }

    #[test]
    fn a_status_outside_the_lifecycle_is_an_error_naming_it(
        (machine, events) in machine_and_deliveries(),
        unknown in "[a-z]{1,8}-unknown",
    ) {
        let (current, _) = machine.deliver(None, &events);
        let err = machine.lifecycle.transition(current.as_deref(), &unknown).unwrap_err();
        prop_assert_eq!(
            err,
            LifecycleError::UnknownStatus {
                lifecycle: machine.lifecycle.name().to_string(),
                status: unknown.clone(),
            }
        );
        prop_assert!(machine.lifecycle.canonical(&unknown).is_none());
    }
}
