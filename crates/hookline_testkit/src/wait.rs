//! Waiting for something asynchronous to become true, with a deadline.

use std::time::Duration;

/// Generous: a loaded 2-core CI box must never fail a test on time.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout`.
///
/// # Errors
/// If the deadline passes first (the message says what was awaited).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(anyhow::anyhow!(
                "timed out after {timeout:?} waiting for {what}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
