//! Key material, HMAC and constant-time comparison shared by every scheme.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use hookline_domain::{Algorithm, Encoding, Secret};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConstantTimeEq};

use crate::ConfigError;

/// A source's signing keys as bytes, one per configured secret (several = rotation).
///
/// `Debug` prints only how many keys there are, so a `Verifier` can be logged.
#[derive(Clone)]
pub(crate) struct Keys(Vec<Vec<u8>>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} redacted)", self.0.len())
    }
}

impl Keys {
    /// Each secret's UTF-8 bytes, used verbatim as the key.
    pub(crate) fn utf8(secrets: &[Secret]) -> Result<Self, ConfigError> {
        Self::decoded(secrets, |text| Ok(text.as_bytes().to_vec()))
    }

    /// Each secret run through `decode`, whose error text says what is wrong with it
    /// (and must not quote it).
    pub(crate) fn decoded(
        secrets: &[Secret],
        decode: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::new(
                "secrets",
                "at least one secret is required",
            ));
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                let position = i + 1;
                match decode(secret.expose()) {
                    Ok(key) if !key.is_empty() => Ok(key),
                    Ok(_) => Err(format!("secret #{position} is empty")),
                    Err(why) => Err(format!("secret #{position} {why}")),
                }
                .map_err(|message| ConfigError::new("secrets", message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(keys))
    }

    /// Whether the HMAC of `message` (the concatenation of its pieces) under any key equals
    /// any of `candidates`. Every key is tried against every candidate, without early exit,
    /// so timing says nothing about which key or candidate matched.
    pub(crate) fn sign_matches(
        &self,
        algorithm: Algorithm,
        message: &[&[u8]],
        candidates: &[Vec<u8>],
    ) -> bool {
        let mut matched = Choice::from(0);
        for key in &self.0 {
            if let Some(expected) = hmac(algorithm, key, message) {
                for candidate in candidates {
                    matched |= expected.as_slice().ct_eq(candidate);
                }
            }
        }
        bool::from(matched)
    }

    /// Whether `presented` equals any key itself (shared-token schemes), in constant time.
    pub(crate) fn equals(&self, presented: &[u8]) -> bool {
        let matched = self.0.iter().fold(Choice::from(0), |acc, key| {
            acc | key.as_slice().ct_eq(presented)
        });
        bool::from(matched)
    }
}

/// HMAC of the concatenated `message` pieces; `None` only if the key is unusable, which
/// HMAC (any key length) never reports, but the caller then treats it as no match.
pub(crate) fn hmac(algorithm: Algorithm, key: &[u8], message: &[&[u8]]) -> Option<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], message: &[&[u8]]) -> Option<Vec<u8>> {
        let mut mac = <M as KeyInit>::new_from_slice(key).ok()?;
        for piece in message {
            mac.update(piece);
        }
        Some(mac.finalize().into_bytes().to_vec())
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<Sha1>>(key, message),
        Algorithm::Sha256 => run::<Hmac<Sha256>>(key, message),
        Algorithm::Sha512 => run::<Hmac<Sha512>>(key, message),
    }
}

/// A signature as written in a header, decoded; `None` when it is not valid in `encoding`
/// or decodes to nothing (an empty signature must never compare equal to anything).
pub(crate) fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    let bytes = match encoding {
        Encoding::Hex => hex::decode(text).ok()?,
        Encoding::Base64 => STANDARD.decode(text).ok()?,
    };
    (!bytes.is_empty()).then_some(bytes)
}

/// Standard base64 decoding, for secrets that are written base64-encoded.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Standard base64 encoding (outgoing signatures).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// SHA-256 of `bytes` (Twilio's `bodySHA256`).
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    <Sha256 as sha2::Digest>::digest(bytes).to_vec()
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn ct_equal(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        let expected =
            hex::decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
                .unwrap();
        let keys = Keys::utf8(&[Secret::new("Jefe")]).unwrap();
        assert!(keys.sign_matches(
            Algorithm::Sha256,
            &[b"what do ya want ", b"for nothing?"],
            &[expected]
        ));
    }

    #[test]
    fn empty_secrets_and_empty_signatures_are_refused() {
        assert_eq!(Keys::utf8(&[]).unwrap_err().key, "secrets");
        let err = Keys::utf8(&[Secret::new("a"), Secret::new("")]).unwrap_err();
        assert_eq!(err.message, "secret #2 is empty");
        assert_eq!(decode(Encoding::Hex, ""), None);
        assert_eq!(decode(Encoding::Base64, ""), None);
        let keys = Keys::utf8(&[Secret::new("k")]).unwrap();
        assert!(!keys.sign_matches(Algorithm::Sha256, &[b"m"], &[Vec::new()]));
    }

    #[test]
    fn debug_output_never_contains_key_material() {
        let keys = Keys::utf8(&[Secret::new("hunter2")]).unwrap();
        assert_eq!(format!("{keys:?}"), "Keys(1 redacted)");
    }
}
