//! `application/x-www-form-urlencoded` and percent decoding, for query strings, form
//! bodies and percent-encoded JSON pointers: the one decoder that verifiers and key
//! templates share.
//!
//! Works on bytes: a form body is not guaranteed to be UTF-8, and a signature covers the
//! decoded bytes whatever they are. Invalid escapes are kept literally, never rejected,
//! so lookups stay total.

/// Every `(name, value)` pair of `encoded`, percent-decoded with `+` as a space, in order.
/// Empty segments (`a=1&&b=2`) are skipped; a segment without `=` has an empty value.
pub fn form_pairs(encoded: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    encoded
        .split(|b| *b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.iter().position(|b| *b == b'=') {
            Some(eq) => (
                percent_decode(&segment[..eq], true),
                percent_decode(&segment[eq + 1..], true),
            ),
            None => (percent_decode(segment, true), Vec::new()),
        })
}

/// The decoded value of the first `name` parameter in `encoded` (a query string or a
/// form body).
pub fn form_value(encoded: &str, name: &str) -> Option<Vec<u8>> {
    form_pairs(encoded.as_bytes()).find_map(|(k, v)| (k == name.as_bytes()).then_some(v))
}

/// Percent-decodes `input`; `+` becomes a space when `plus_is_space` (form encoding, not
/// URI paths or fragments). A `%` not followed by two hex digits is kept as it is.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        let escaped = match (byte, input.get(i + 1..i + 3)) {
            (b'%', Some(&[hi, lo])) => hex_digit(hi).zip(hex_digit(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            None => {
                out.push(if byte == b'+' && plus_is_space {
                    b' '
                } else {
                    byte
                });
                i += 1;
            }
        }
    }
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_and_plus_decoded() {
        assert_eq!(
            form_value("a=1&token=s%2Fx+y", "token"),
            Some(b"s/x y".to_vec())
        );
        assert_eq!(form_value("a=1", "b"), None);
        assert_eq!(form_value("flag", "flag"), Some(Vec::new()));
        assert_eq!(form_value("flag&a=1", "flag"), Some(Vec::new()));
        assert_eq!(form_value("t=%2B1%", "t"), Some(b"+1%".to_vec()));
        assert_eq!(form_value("t=%zz%41%4", "t"), Some(b"%zzA%4".to_vec()));
    }

    #[test]
    fn invalid_escapes_are_kept_literally() {
        assert_eq!(percent_decode(b"100%", false), b"100%");
        assert_eq!(percent_decode(b"%zz%41", false), b"%zzA");
        assert_eq!(percent_decode(b"%+1", true), b"% 1");
    }

    #[test]
    fn plus_is_a_space_only_in_form_encoding() {
        assert_eq!(percent_decode(b"/a+b%2Fc", false), b"/a+b/c");
        assert_eq!(percent_decode(b"/a+b%2Fc", true), b"/a b/c");
    }

    #[test]
    fn pairs_keep_order_skip_empty_segments_and_accept_any_bytes() {
        let parsed: Vec<_> = form_pairs(b"b=2&&a=%FF\xfe").collect();
        assert_eq!(
            parsed,
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"a".to_vec(), b"\xff\xfe".to_vec())
            ]
        );
    }
}
