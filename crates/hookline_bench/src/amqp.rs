//! The RabbitMQ ceiling: persistent ~450-byte messages to a fresh quorum queue, publisher
//! confirms, at most `window` unconfirmed at a time.
//!
//! The one place outside `hookline_queue` that speaks lapin directly: it measures the
//! broker itself, beneath Hookline's publisher, so it cannot go through that publisher.

use std::time::Instant;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

/// `hookline-bench amqp-publish` options.
#[derive(clap::Args)]
pub struct AmqpArgs {
    /// Broker URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub url: String,
    /// Messages to publish.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Most unconfirmed messages at once.
    #[arg(long, default_value_t = 1000)]
    pub window: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 450)]
    pub bytes: usize,
}

pub async fn run(args: AmqpArgs) -> anyhow::Result<()> {
    let connection = Connection::connect(
        &args.url,
        ConnectionProperties::default().with_connection_name("hookline-bench".into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    let queue = format!("hl_bench_{}", uuid::Uuid::new_v4().simple());
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await?;
    // Confirm mode, as Hookline publishes: the figure includes the confirm round trips.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let payload = vec![b'x'; args.bytes];
    let started = Instant::now();
    let mut sent = 0;
    while sent < args.messages {
        let n = args.window.min(args.messages - sent);
        let mut confirms = Vec::with_capacity(n as usize);
        for _ in 0..n {
            confirms.push(
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &payload,
                        // 2 = persistent, as Hookline publishes.
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "broker nacked a message");
        }
        sent += n;
    }
    let elapsed = started.elapsed().as_secs_f64();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let _ = connection.close(0, "done".into()).await;
    println!(
        "{}",
        json!({"label": "amqp-publish", "messages": sent, "duration_s": elapsed, "msgs_per_s": sent as f64 / elapsed})
    );
    eprintln!("amqp-publish: {:.0} msg/s", sent as f64 / elapsed);
    Ok(())
}
