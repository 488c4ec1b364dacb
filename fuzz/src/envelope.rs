//! `envelope`: the worker's AMQP message decoder over arbitrary bytes.
//!
//! Properties: decoding never panics; anything it rejects is `Malformed` (a poison
//! message the consumer dead-letters), never another error; what it accepts is at least
//! one envelope and survives re-encoding: a single envelope through `to_bytes`, any list
//! through `encode_batch`, decoding to the same envelopes.

use hookline_queue::{Envelope, QueueError, decode, encode_batch};

/// Runs one input.
pub fn run(data: &[u8]) {
    match decode(data) {
        Err(QueueError::Malformed(why)) => assert!(!why.is_empty()),
        Err(other) => panic!("decode failed with {other:?}, not Malformed"),
        Ok(envelopes) => {
            assert!(
                !envelopes.is_empty(),
                "decode accepted a message with no events"
            );
            let again = decode(&encode_batch(&envelopes)).expect("a re-encoded batch decodes");
            assert_eq!(again, envelopes);
            if let [single] = envelopes.as_slice()
                && single.v == Envelope::VERSION
            {
                let bytes = single.to_bytes();
                assert_eq!(
                    decode(&bytes).expect("a re-encoded envelope decodes"),
                    envelopes
                );
                assert_eq!(Envelope::from_bytes(&bytes).ok().as_ref(), Some(single));
            }
        }
    }
}
