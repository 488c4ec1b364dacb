use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// AMQP header carrying the W3C trace context, so traces cross the queue.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The message Hookline publishes: a pointer to a stored event, never its payload.
/// Versioned so workers can refuse what they do not understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Format version of a single-event message: 1. (Inside a batch message, absent.)
    #[serde(default = "version_one")]
    pub v: u32,
    /// The event's id in PostgreSQL.
    pub event_id: Uuid,
    /// The event's source (for routing decisions and logs without a database read).
    pub source: String,
    /// W3C `traceparent` of the ingest request, when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// 1 for the first delivery; incremented on every scheduled retry.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

fn version_one() -> u32 {
    Envelope::VERSION
}

/// The wire form of a batch message (version 2): the pointers of several events that
/// committed together, so one confirmed AMQP message carries a whole group commit.
#[derive(Serialize, Deserialize)]
struct BatchMessage<'a> {
    v: u32,
    #[serde(borrow)]
    events: std::borrow::Cow<'a, [Envelope]>,
}

/// The batch message format version.
pub const BATCH_VERSION: u32 = 2;

/// Serialises several envelopes as one version-2 batch message.
pub fn encode_batch(envelopes: &[Envelope]) -> Vec<u8> {
    serde_json::to_vec(&BatchMessage {
        v: BATCH_VERSION,
        events: std::borrow::Cow::Borrowed(envelopes),
    })
    .unwrap_or_default()
}

/// Parses a message body of either version into the envelopes it carries.
///
/// # Errors
/// [`crate::QueueError::Malformed`] for anything else (a poison message).
pub fn decode(bytes: &[u8]) -> Result<Vec<Envelope>, crate::QueueError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|e| crate::QueueError::Malformed(e.to_string()))?;
    match version.v {
        Envelope::VERSION => Envelope::from_bytes(bytes).map(|e| vec![e]),
        BATCH_VERSION => {
            let batch: BatchMessage<'_> = serde_json::from_slice(bytes)
                .map_err(|e| crate::QueueError::Malformed(e.to_string()))?;
            if batch.events.is_empty() {
                return Err(crate::QueueError::Malformed("empty batch".into()));
            }
            Ok(batch.events.into_owned())
        }
        other => Err(crate::QueueError::Malformed(format!(
            "unsupported message version {other}"
        ))),
    }
}

impl Envelope {
    /// The envelope format this code writes.
    pub const VERSION: u32 = 1;

    /// A first-attempt envelope for `event_id`.
    pub fn new(event_id: Uuid, source: impl Into<String>, traceparent: Option<String>) -> Self {
        Self {
            v: Self::VERSION,
            event_id,
            source: source.into(),
            traceparent,
            attempt: 1,
        }
    }

    /// Serialises to JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a message body.
    ///
    /// # Errors
    /// [`crate::QueueError::Malformed`] for anything that is not a version-1 envelope.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::QueueError> {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| crate::QueueError::Malformed(e.to_string()))?;
        if envelope.v != Self::VERSION {
            return Err(crate::QueueError::Malformed(format!(
                "unsupported envelope version {}",
                envelope.v
            )));
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_message_versions_decode_into_envelopes() {
        let a = Envelope::new(Uuid::now_v7(), "apify", Some("00-abc-def-01".into()));
        let b = Envelope::new(Uuid::now_v7(), "stripe", None);
        assert_eq!(decode(&a.to_bytes()).unwrap(), vec![a.clone()]);
        assert_eq!(
            decode(&encode_batch(&[a.clone(), b.clone()])).unwrap(),
            vec![a, b]
        );
        assert!(decode(br#"{"v":2,"events":[]}"#).is_err());
        assert!(decode(br#"{"v":3}"#).is_err());
        assert!(decode(b"garbage").is_err());
    }

    #[test]
    fn envelopes_round_trip_and_reject_other_versions() {
        let e = Envelope::new(Uuid::now_v7(), "apify", Some("00-abc-def-01".into()));
        assert_eq!(Envelope::from_bytes(&e.to_bytes()).unwrap(), e);
        assert!(
            Envelope::from_bytes(
                br#"{"v":2,"event_id":"00000000-0000-0000-0000-000000000000","source":"x"}"#
            )
            .is_err()
        );
        assert!(Envelope::from_bytes(b"garbage").is_err());
    }
}
