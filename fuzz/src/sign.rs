//! An independent signer: HMACs, encodings and percent-encoding computed straight from
//! the `hmac`/`sha*`/`base64`/`hex` crates, never through `hookline_providers`, so a
//! property that signs a request and expects the verifier to accept it checks the
//! verifier against the providers' specifications rather than against itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use hookline_domain::Algorithm;

/// HMAC of the concatenated `pieces` under `key`.
pub fn mac(algorithm: Algorithm, key: &[u8], pieces: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], pieces: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        for piece in pieces {
            mac.update(piece);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, pieces),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, pieces),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, pieces),
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    <sha2::Sha256 as sha2::Digest>::digest(bytes).to_vec()
}

/// Every byte as `%XX` except the unreserved ones (`A-Z a-z 0-9 - . _ ~`): decoding it
/// gives back exactly `bytes`, in a query string or a form body.
pub fn percent_encode_all(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(*b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only what form encoding must escape (`%`, `+`, `&`, `=`, and the space, written `+`):
/// the shortest encoding a sender may use, leaving every other byte as it is.
pub fn form_encode_minimal(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for b in bytes {
        match b {
            b' ' => out.push(b'+'),
            b'%' | b'+' | b'&' | b'=' => out.extend(format!("%{b:02X}").bytes()),
            other => out.push(*other),
        }
    }
    out
}
