/// Request headers as received: names lower-cased (HTTP names are case-insensitive),
/// values as raw bytes (they need not be UTF-8), order and repeats preserved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    /// Builds the list, lower-casing every name.
    pub fn new(pairs: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
        )
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` if it is valid UTF-8, surrounding whitespace trimmed.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// Every `(name, value)` pair in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The parts of an inbound webhook that verifiers and key templates read.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The source name (the `{source}` path segment).
    pub source: &'a str,
    /// Headers as received.
    pub headers: &'a Headers,
    /// The raw query string, without the `?`, still percent-encoded.
    pub query: &'a str,
    /// The raw body bytes exactly as received.
    pub body: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case() {
        let headers = Headers::new([("X-GitHub-Delivery".to_string(), b"abc".to_vec())]);
        assert_eq!(headers.get("x-github-delivery"), Some(&b"abc"[..]));
        assert_eq!(headers.get_str("X-GITHUB-DELIVERY"), Some("abc"));
    }
}
