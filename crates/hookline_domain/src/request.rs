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

/// Percent-decodes `input`; `+` becomes a space when `plus_is_space` (form encoding).
/// Invalid escapes are kept literally rather than rejected: lookups stay total.
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name` in an `application/x-www-form-urlencoded` string.
pub(crate) fn form_value(encoded: &str, name: &str) -> Option<String> {
    encoded.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
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

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            form_value("a=1&token=s%2Fx+y", "token").as_deref(),
            Some("s/x y")
        );
        assert_eq!(form_value("a=1", "b"), None);
        assert_eq!(form_value("flag", "flag").as_deref(), Some(""));
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%41", false), "%zzA");
    }
}
