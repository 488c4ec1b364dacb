use std::collections::BTreeMap;
use std::time::SystemTime;

use hookline_config::Sources;
use hookline_domain::{RequestParts, SourceConfig};

use crate::flutterwave::FlutterwaveVerifier;
use crate::generic::HmacVerifier;
use crate::github::GitHubVerifier;
use crate::retell::RetellVerifier;
use crate::standard_webhooks::StandardWebhooksVerifier;
use crate::stripe::StripeVerifier;
use crate::token::TokenVerifier;
use crate::twilio::TwilioVerifier;
use crate::{ConfigError, VerifyError, paystack, shopify, slack};

/// What every scheme does: decide whether one request is authentic at time `now`.
///
/// Implementations are pure (no clock, env or IO), read the body as raw bytes, compare in
/// constant time and never put a secret or an expected signature into the error.
pub(crate) trait Scheme {
    /// Checks one request.
    ///
    /// # Errors
    /// [`VerifyError`] saying what did not check out.
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError>;
}

/// The names `verifier` accepts.
pub const VERIFIERS: &[&str] = &[
    "token",
    "apify",
    "hmac",
    "standard-webhooks",
    "svix",
    "stripe",
    "github",
    "shopify",
    "slack",
    "retell",
    "paystack",
    "twilio",
    "flutterwave",
];

/// A request whose signature (or token) checked out. Only [`Verifier::verify`] makes one,
/// so code that takes a `Verified` cannot be handed unverified bytes.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    parts: RequestParts<'a>,
}

impl<'a> Verified<'a> {
    /// The verified request.
    pub fn parts(&self) -> RequestParts<'a> {
        self.parts
    }
}

/// One source's verifier, chosen by its `verifier` setting (enum dispatch: no allocation,
/// no vtable on the request path). `Debug` never prints key material.
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Shared token in a header or `?token=` (`token`, and `apify` for Apify, which does not sign).
    Token(TokenVerifier),
    /// Configurable HMAC over configurable content (`hmac`; Refersion and the like).
    Hmac(HmacVerifier),
    /// Standard Webhooks / Svix (`standard-webhooks`, `svix`).
    StandardWebhooks(StandardWebhooksVerifier),
    /// Stripe's `Stripe-Signature` (`stripe`).
    Stripe(StripeVerifier),
    /// GitHub's `X-Hub-Signature-256` (`github`).
    GitHub(GitHubVerifier),
    /// Shopify's `X-Shopify-Hmac-Sha256` (`shopify`).
    Shopify(HmacVerifier),
    /// Slack's `v0` request signing (`slack`).
    Slack(HmacVerifier),
    /// Retell AI's `x-retell-signature` (`retell`).
    Retell(RetellVerifier),
    /// Paystack's `x-paystack-signature` (`paystack`).
    Paystack(HmacVerifier),
    /// Twilio's `X-Twilio-Signature` (`twilio`).
    Twilio(TwilioVerifier),
    /// Flutterwave's `flutterwave-signature` (v4) or `verif-hash` (v3) (`flutterwave`).
    Flutterwave(FlutterwaveVerifier),
}

impl Verifier {
    /// Builds the verifier a (preset-resolved) source asks for, checking its settings once
    /// at start-up so that a bad source never reaches the request path.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting that is missing or invalid (`verifier`, `secrets`,
    /// `signature_header`, `public_url`, ...).
    pub fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        Ok(match config.verifier.as_deref() {
            Some("token" | "apify") => Verifier::Token(TokenVerifier::from_source(config)?),
            Some("hmac") => Verifier::Hmac(HmacVerifier::from_source(config)?),
            Some("standard-webhooks" | "svix") => {
                Verifier::StandardWebhooks(StandardWebhooksVerifier::from_source(config)?)
            }
            Some("stripe") => Verifier::Stripe(StripeVerifier::from_source(config)?),
            Some("github") => Verifier::GitHub(GitHubVerifier::from_source(config)?),
            Some("shopify") => Verifier::Shopify(shopify::from_source(config)?),
            Some("slack") => Verifier::Slack(slack::from_source(config)?),
            Some("retell") => Verifier::Retell(RetellVerifier::from_source(config)?),
            Some("paystack") => Verifier::Paystack(paystack::from_source(config)?),
            Some("twilio") => Verifier::Twilio(TwilioVerifier::from_source(config)?),
            Some("flutterwave") => Verifier::Flutterwave(FlutterwaveVerifier::from_source(config)?),
            Some(other) => {
                return Err(ConfigError::new(
                    "verifier",
                    format!(
                        "unknown verifier {other:?}; known: {}",
                        VERIFIERS.join(", ")
                    ),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    "verifier",
                    "missing (set verifier or preset)",
                ));
            }
        })
    }

    /// Checks `parts` against the source's secrets at time `now`. The caller passes the
    /// clock in, which keeps verification a pure function.
    ///
    /// # Errors
    /// [`VerifyError`] saying what did not check out; the caller answers 401.
    pub fn verify<'a>(
        &self,
        parts: RequestParts<'a>,
        now: SystemTime,
    ) -> Result<Verified<'a>, VerifyError> {
        match self {
            Verifier::Token(v) => v.verify(&parts, now),
            Verifier::Hmac(v)
            | Verifier::Shopify(v)
            | Verifier::Slack(v)
            | Verifier::Paystack(v) => v.verify(&parts, now),
            Verifier::StandardWebhooks(v) => v.verify(&parts, now),
            Verifier::Stripe(v) => v.verify(&parts, now),
            Verifier::GitHub(v) => v.verify(&parts, now),
            Verifier::Retell(v) => v.verify(&parts, now),
            Verifier::Twilio(v) => v.verify(&parts, now),
            Verifier::Flutterwave(v) => v.verify(&parts, now),
        }?;
        Ok(Verified { parts })
    }
}

/// Builds every configured source's verifier, resolving its secrets now. Ingest calls it
/// once at start-up (and `hookline check-config` to check a deploy): no other binary
/// needs the secrets, so none other resolves them.
///
/// # Errors
/// [`hookline_config::ConfigError`] naming the source's key that is missing or invalid
/// (`sources.<name>.secrets[<i>]`, `sources.<name>.verifier`, ...).
pub fn verifiers(
    sources: &Sources,
) -> Result<BTreeMap<String, Verifier>, hookline_config::ConfigError> {
    sources
        .iter()
        .map(|source| {
            let config = source.resolved_config()?;
            let verifier = Verifier::from_source(&config).map_err(|e| {
                hookline_config::ConfigError::invalid(
                    format!("sources.{}.{}", source.name, e.key),
                    e.message,
                )
            })?;
            Ok((source.name.clone(), verifier))
        })
        .collect()
}
