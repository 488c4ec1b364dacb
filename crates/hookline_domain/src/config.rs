use serde::Deserialize;

use crate::{HumanDuration, Secret};

/// One `[sources.<name>]` table: how to verify, key and classify a provider's webhooks.
///
/// Every field is optional because a `preset` may fill it; the provider crate merges a
/// preset under the explicit fields ([`SourceConfig::or`]) and then checks that what the
/// chosen verifier needs is present.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A provider name whose documented defaults fill every unset field.
    pub preset: Option<String>,
    /// Verifier scheme: `token`, `hmac`, `standard-webhooks`, `stripe`, `github`, ...
    pub verifier: Option<String>,
    /// Accepted secrets; several at once is key rotation (any one matches).
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// (token) The header carrying the shared token; `?token=` is accepted too.
    pub token_header: Option<String>,
    /// (hmac) The header carrying the signature.
    pub signature_header: Option<String>,
    /// (hmac) Digest: sha1, sha256 or sha512.
    pub algorithm: Option<Algorithm>,
    /// (hmac) Signature encoding: hex or base64.
    pub encoding: Option<Encoding>,
    /// (hmac) Text before the encoded signature, such as `sha256=`.
    pub signature_prefix: Option<String>,
    /// (hmac) What is signed, as a template over `{body}`, `{header:..}`, `{timestamp}`.
    pub signed_content: Option<String>,
    /// (timestamped schemes) The header carrying the signing time, in unix seconds.
    pub timestamp_header: Option<String>,
    /// (timestamped schemes) Accepted clock distance in seconds, default 300.
    pub tolerance_secs: Option<u64>,
    /// (twilio) The exact public URL the provider calls, as signed by it.
    pub public_url: Option<String>,
    /// (github) Also accept the legacy `X-Hub-Signature: sha1=` header.
    pub allow_legacy_sha1: Option<bool>,
    /// Template for the deduplication key, unique per source.
    pub dedup_key: Option<String>,
    /// Template for the resource key that serialises status changes (e.g. a run id).
    pub resource_key: Option<String>,
    /// Template for the status the event reports for its resource.
    pub status: Option<String>,
    /// Name of the lifecycle (`[lifecycles.<name>]` or built-in) that orders statuses.
    pub lifecycle: Option<String>,
    /// This source's `retention.dedup_horizon`, if it differs.
    pub dedup_horizon: Option<HumanDuration>,
    /// This source's `retention.payload`, if it differs.
    pub payload: Option<HumanDuration>,
    /// This source's `retention.events`, if it differs.
    pub events: Option<HumanDuration>,
}

impl SourceConfig {
    /// `self` with every unset field taken from `defaults` (explicit settings win).
    #[must_use]
    pub fn or(self, defaults: SourceConfig) -> SourceConfig {
        SourceConfig {
            preset: self.preset.or(defaults.preset),
            verifier: self.verifier.or(defaults.verifier),
            secrets: if self.secrets.is_empty() {
                defaults.secrets
            } else {
                self.secrets
            },
            token_header: self.token_header.or(defaults.token_header),
            signature_header: self.signature_header.or(defaults.signature_header),
            algorithm: self.algorithm.or(defaults.algorithm),
            encoding: self.encoding.or(defaults.encoding),
            signature_prefix: self.signature_prefix.or(defaults.signature_prefix),
            signed_content: self.signed_content.or(defaults.signed_content),
            timestamp_header: self.timestamp_header.or(defaults.timestamp_header),
            tolerance_secs: self.tolerance_secs.or(defaults.tolerance_secs),
            public_url: self.public_url.or(defaults.public_url),
            allow_legacy_sha1: self.allow_legacy_sha1.or(defaults.allow_legacy_sha1),
            dedup_key: self.dedup_key.or(defaults.dedup_key),
            resource_key: self.resource_key.or(defaults.resource_key),
            status: self.status.or(defaults.status),
            lifecycle: self.lifecycle.or(defaults.lifecycle),
            dedup_horizon: self.dedup_horizon.or(defaults.dedup_horizon),
            payload: self.payload.or(defaults.payload),
            events: self.events.or(defaults.events),
        }
    }
}

/// HMAC digest algorithm.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// HMAC-SHA1 (legacy GitHub, Twilio auth-token signatures).
    Sha1,
    /// HMAC-SHA256, what most providers use.
    Sha256,
    /// HMAC-SHA512 (Paystack).
    Sha512,
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower- or upper-case hexadecimal.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_fields_win_over_preset_defaults() {
        let explicit = SourceConfig {
            dedup_key: Some("{header:x-id}".into()),
            ..SourceConfig::default()
        };
        let preset = SourceConfig {
            verifier: Some("stripe".into()),
            dedup_key: Some("{json:/id}".into()),
            ..SourceConfig::default()
        };
        let merged = explicit.or(preset);
        assert_eq!(merged.dedup_key.as_deref(), Some("{header:x-id}"));
        assert_eq!(merged.verifier.as_deref(), Some("stripe"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<SourceConfig>(r#"{"verifer":"token"}"#).unwrap_err();
        assert!(err.to_string().contains("verifer"), "{err}");
    }
}
