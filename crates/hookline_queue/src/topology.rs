use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::QueueError;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the work queue.
    Work,
    /// To the delay queue for this delay, then back to work.
    Retry(Duration),
    /// To the dead-letter queue.
    Dead,
}

/// The names of everything Hookline declares, all starting with one prefix so several
/// deployments (or tests) share a broker without seeing each other.
///
/// ```text
/// {prefix}                 direct exchange, durable
///   "work"            ->   {prefix}.work             quorum queue, consumed by workers
///   "retry.{ms}"      ->   {prefix}.retry.{ms}ms     classic queue, TTL {ms}, dead-letters back to "work"
///   "dead"            ->   {prefix}.dead             quorum queue, retries exhausted
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// The topology under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The exchange every message goes through.
    pub fn exchange(&self) -> String {
        self.prefix.clone()
    }

    /// The queue workers consume.
    pub fn work_queue(&self) -> String {
        format!("{}.work", self.prefix)
    }

    /// The dead-letter queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// The delay queue holding messages for `delay` before they return to work.
    pub fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}ms", self.prefix, delay.as_millis())
    }

    /// Every queue a declaration with `delays` creates: work, dead, then one delay queue
    /// per entry (for inspection and cleanup). Only the worker declares delay queues;
    /// ingest and the CLI pass none.
    pub fn queues(&self, delays: &[Duration]) -> Vec<String> {
        let mut queues = vec![self.work_queue(), self.dead_queue()];
        queues.extend(delays.iter().map(|d| self.retry_queue(*d)));
        queues
    }

    /// Routing key of the work queue.
    pub fn work_key() -> &'static str {
        "work"
    }

    /// Routing key of the dead-letter queue.
    pub fn dead_key() -> &'static str {
        "dead"
    }

    /// Routing key of the delay queue for `delay`.
    pub fn retry_key(delay: Duration) -> String {
        format!("retry.{}", delay.as_millis())
    }

    /// Routing key of `route`.
    pub fn routing_key(route: Route) -> String {
        match route {
            Route::Work => Self::work_key().to_string(),
            Route::Retry(delay) => Self::retry_key(delay),
            Route::Dead => Self::dead_key().to_string(),
        }
    }

    /// Declares the exchange, the work and dead queues and one delay queue per entry of
    /// `delays`. Idempotent; fails if an existing queue was declared with other arguments.
    ///
    /// # Errors
    /// [`QueueError`] if the broker refuses a declaration.
    pub(crate) async fn declare(
        &self,
        channel: &Channel,
        delays: &[Duration],
    ) -> Result<(), QueueError> {
        let durable = QueueDeclareOptions {
            // Survive broker restarts: the queue is the hand-off between committed events
            // and workers.
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;

        // Quorum: replicated and fsynced before the publisher confirm, the queue type
        // RabbitMQ recommends when messages must not be lost. The replication factor and
        // the delivery limit are deliberately not declared here: RabbitMQ checks every
        // declared argument for equivalence (x-quorum-initial-group-size, x-delivery-limit
        // and x-dead-letter-exchange all fail an existing queue's redeclare with
        // PRECONDITION_FAILED), so adding one would stop every deployment that already has
        // these queues. The replication factor is RabbitMQ's default (3 members, one per
        // node on a 3-node cluster: one node may die), the delivery limit an operator
        // policy that applies to existing queues too (docs/cluster.md).
        let mut quorum = FieldTable::default();
        quorum.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        for (queue, key) in [
            (self.work_queue(), Self::work_key()),
            (self.dead_queue(), Self::dead_key()),
        ] {
            channel
                .queue_declare(queue.as_str().into(), durable, quorum.clone())
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }

        for delay in delays {
            // A delay queue nobody consumes: messages wait out the TTL, then RabbitMQ
            // dead-letters them back to the work routing key. One queue per delay keeps
            // every message in a queue at the same TTL, so none waits behind a longer one.
            let mut args = FieldTable::default();
            let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(self.exchange())),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(Self::work_key())),
            );
            let queue: ShortString = self.retry_queue(*delay).into();
            channel.queue_declare(queue.clone(), durable, args).await?;
            channel
                .queue_bind(
                    queue,
                    self.exchange().into(),
                    Self::retry_key(*delay).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The retry schedule for `max_attempts`: the delay after attempt 1, 2, ... up to
/// `max_attempts - 1`, doubling from `base` and capped at `cap`.
pub fn retry_delays(max_attempts: u32, base: Duration, cap: Duration) -> Vec<Duration> {
    (0..max_attempts.saturating_sub(1))
        .map(|n| base.saturating_mul(2u32.saturating_pow(n)).min(cap))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_prefix() {
        let t = Topology::new("hl_test");
        assert_eq!(t.work_queue(), "hl_test.work");
        assert_eq!(t.dead_queue(), "hl_test.dead");
        assert_eq!(
            t.retry_queue(Duration::from_millis(1500)),
            "hl_test.retry.1500ms"
        );
        assert_eq!(
            t.queues(&[Duration::from_millis(100)]),
            ["hl_test.work", "hl_test.dead", "hl_test.retry.100ms"]
        );
    }

    #[test]
    fn every_route_has_its_own_routing_key() {
        assert_eq!(Topology::routing_key(Route::Work), "work");
        assert_eq!(Topology::routing_key(Route::Dead), "dead");
        assert_eq!(
            Topology::routing_key(Route::Retry(Duration::from_millis(1500))),
            "retry.1500"
        );
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let d = retry_delays(5, Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(d, [1, 2, 4, 5].map(Duration::from_secs));
        assert!(retry_delays(1, Duration::from_secs(1), Duration::from_secs(5)).is_empty());
    }
}
