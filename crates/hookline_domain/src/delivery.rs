//! Where one HTTP delivery of a decided event is: `pending -> delivered | failed | dead`.

/// A delivery's state (the `deliveries.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Committed with the decision; waiting for its (next) attempt or in flight.
    Pending,
    /// The destination answered 2xx.
    Delivered,
    /// The destination refused it for good (a 4xx other than 408/429), or the event
    /// could not be sent at all. Not retried unless redriven.
    Failed,
    /// Every attempt failed transiently (`max_attempts` spent). Not retried unless
    /// redriven.
    Dead,
}

/// A state name that is not one of [`DeliveryState`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown delivery state {0:?}: expected pending, delivered, failed or dead")]
pub struct UnknownDeliveryState(pub String);

impl DeliveryState {
    /// Every state.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = UnknownDeliveryState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownDeliveryState(s.to_string()))
    }
}

impl serde::Serialize for DeliveryState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_back_from_its_name() {
        for state in DeliveryState::ALL {
            assert_eq!(state.as_str().parse::<DeliveryState>().unwrap(), state);
        }
        assert!("done".parse::<DeliveryState>().is_err());
    }
}
