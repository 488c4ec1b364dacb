//! `form`: percent and `application/x-www-form-urlencoded` decoding over arbitrary bytes.
//!
//! Properties: decoding agrees with the `percent-encoding` crate (the reference decoder,
//! which also keeps invalid escapes literally); it never grows its input; percent-encoded
//! bytes round-trip in both modes, through the full and through the minimal encoding;
//! form pairs re-encoded parse back to the same pairs; `form_value` is the first pair's
//! value with that name.

use hookline_domain::form::{form_pairs, form_value, percent_decode};

use crate::sign::{form_encode_minimal, percent_encode_all};

/// Runs one input.
pub fn run(data: &[u8]) {
    let plain = percent_decode(data, false);
    let reference: Vec<u8> = percent_encoding::percent_decode(data).collect();
    assert_eq!(plain, reference, "differs from the reference decoder");
    let spaced: Vec<u8> = data
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let form = percent_decode(data, true);
    assert_eq!(
        form,
        percent_encoding::percent_decode(&spaced).collect::<Vec<u8>>()
    );
    assert!(plain.len() <= data.len() && form.len() <= data.len());
    if !data.contains(&b'%') {
        assert_eq!(plain, data);
    }

    let encoded = percent_encode_all(data);
    assert_eq!(percent_decode(encoded.as_bytes(), false), data);
    assert_eq!(percent_decode(encoded.as_bytes(), true), data);
    assert_eq!(percent_decode(&form_encode_minimal(data), true), data);

    let pairs: Vec<(Vec<u8>, Vec<u8>)> = form_pairs(data).collect();
    let reencoded = pairs
        .iter()
        .map(|(name, value)| {
            let mut segment = form_encode_minimal(name);
            segment.push(b'=');
            segment.extend(form_encode_minimal(value));
            segment
        })
        .collect::<Vec<_>>()
        .join(&b'&');
    assert_eq!(form_pairs(&reencoded).collect::<Vec<_>>(), pairs);

    // The first pairs' names (bounded: each lookup scans the whole input).
    if let Ok(text) = std::str::from_utf8(data) {
        for (name, _) in pairs.iter().take(8) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let first = pairs
                .iter()
                .find(|(n, _)| n.as_slice() == name.as_bytes())
                .map(|(_, v)| v.clone());
            assert_eq!(form_value(text, name), first);
        }
    }
}
