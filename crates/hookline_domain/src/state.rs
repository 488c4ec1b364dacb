/// Where an event is in the pipeline: `received -> published -> processed | failed | dead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventState {
    /// Committed by ingest, not yet confirmed by the broker (the outbox).
    Received,
    /// Confirmed by the broker; waiting for a worker.
    Published,
    /// A worker applied it (whatever the transition outcome).
    Processed,
    /// Permanently unprocessable (unknown status, missing resource key): not retried.
    Failed,
    /// Retries exhausted; parked in the dead-letter queue until redriven.
    Dead,
}

/// A stored state name that is not one of [`EventState`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown event state {0:?}: expected received, published, processed, failed or dead")]
pub struct UnknownState(pub String);

impl EventState {
    /// Every state, in pipeline order.
    pub const ALL: [EventState; 5] = [
        EventState::Received,
        EventState::Published,
        EventState::Processed,
        EventState::Failed,
        EventState::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Received => "received",
            EventState::Published => "published",
            EventState::Processed => "processed",
            EventState::Failed => "failed",
            EventState::Dead => "dead",
        }
    }

    /// Whether a worker is done with the event (a redelivery must not touch it again).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            EventState::Processed | EventState::Failed | EventState::Dead
        )
    }
}

impl std::str::FromStr for EventState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

impl serde::Serialize for EventState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_back_from_its_name_and_serializes_as_it() {
        for state in EventState::ALL {
            assert_eq!(state.as_str().parse::<EventState>().unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::from(state.as_str())
            );
        }
        let err = "publishd".parse::<EventState>().unwrap_err().to_string();
        assert!(err.contains("publishd"), "{err}");
    }
}
