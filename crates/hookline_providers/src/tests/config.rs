//! Source settings are checked once, at start-up, with errors that name the key.

use hookline_domain::{Algorithm, SourceConfig};

use super::support::{RIGHT, source};
use crate::{VERIFIERS, Verifier};

/// The settings each verifier needs besides secrets.
fn complete(verifier: &str, secrets: &[&str]) -> SourceConfig {
    SourceConfig {
        signature_header: Some("x-signature".into()),
        public_url: Some("https://hooks.example.com/webhooks/x".into()),
        ..source(verifier, secrets)
    }
}

fn error_key(config: SourceConfig) -> String {
    match Verifier::from_source(&config) {
        Ok(v) => panic!("accepted {config:?} as {v:?}"),
        Err(err) => {
            for secret in config.secrets.iter().filter(|s| !s.expose().is_empty()) {
                assert!(!err.to_string().contains(secret.expose()), "{err}");
            }
            err.key
        }
    }
}

#[test]
fn every_verifier_accepts_a_complete_source_and_requires_non_empty_secrets() {
    for verifier in VERIFIERS {
        assert!(
            Verifier::from_source(&complete(verifier, &[RIGHT])).is_ok(),
            "{verifier}"
        );
        assert_eq!(error_key(complete(verifier, &[])), "secrets", "{verifier}");
        assert_eq!(
            error_key(complete(verifier, &[RIGHT, ""])),
            "secrets",
            "{verifier}"
        );
    }
}

#[test]
fn an_unknown_or_missing_verifier_is_an_error_on_verifier() {
    assert_eq!(error_key(complete("hmac-sha256", &[RIGHT])), "verifier");
    assert_eq!(
        error_key(SourceConfig {
            verifier: None,
            ..complete("x", &[RIGHT])
        }),
        "verifier"
    );
}

#[test]
fn invalid_settings_are_errors_naming_their_key() {
    let hmac = || complete("hmac", &[RIGHT]);
    let table: Vec<(SourceConfig, &str)> = vec![
        (
            SourceConfig {
                signature_header: None,
                ..hmac()
            },
            "signature_header",
        ),
        (
            SourceConfig {
                signature_header: Some("  ".into()),
                ..hmac()
            },
            "signature_header",
        ),
        (
            SourceConfig {
                signed_content: Some("{body".into()),
                ..hmac()
            },
            "signed_content",
        ),
        (
            SourceConfig {
                signed_content: Some("{timestamp}.{body}".into()),
                ..hmac()
            },
            "signed_content",
        ),
        (
            SourceConfig {
                timestamp_header: Some("x-timestamp".into()),
                ..hmac()
            },
            "timestamp_header",
        ),
        (
            SourceConfig {
                tolerance_secs: Some(60),
                ..hmac()
            },
            "tolerance_secs",
        ),
        (
            SourceConfig {
                public_url: None,
                ..complete("twilio", &[RIGHT])
            },
            "public_url",
        ),
        (
            SourceConfig {
                public_url: Some("https://hooks.example.com/twilio?x=1".into()),
                ..complete("twilio", &[RIGHT])
            },
            "public_url",
        ),
        (
            SourceConfig {
                algorithm: Some(Algorithm::Sha512),
                ..complete("twilio", &[RIGHT])
            },
            "algorithm",
        ),
        (
            complete("standard-webhooks", &["whsec_not base64!"]),
            "secrets",
        ),
    ];
    for (config, key) in table {
        assert_eq!(error_key(config.clone()), key, "{config:?}");
    }
}

#[test]
fn a_timestamp_header_signed_by_name_satisfies_the_hmac_verifier() {
    let config = SourceConfig {
        timestamp_header: Some("X-Timestamp".into()),
        signed_content: Some("{header:x-timestamp}.{body}".into()),
        ..complete("hmac", &[RIGHT])
    };
    assert!(Verifier::from_source(&config).is_ok());
}

#[test]
fn standard_webhooks_secrets_may_omit_the_whsec_prefix() {
    let bare = RIGHT.strip_prefix("whsec_").unwrap();
    assert!(Verifier::from_source(&complete("standard-webhooks", &[bare])).is_ok());
}

#[test]
fn building_the_verifiers_of_a_config_resolves_secrets_and_names_the_source_key() {
    let (_, sources) = hookline_config::Config::from_toml(
        "[sources.x]\nverifier = \"token\"\ndedup_key = \"{json:/id}\"",
    )
    .unwrap();
    let err = crate::verifiers(&sources).unwrap_err().to_string();
    assert!(err.contains("sources.x.secrets"), "{err}");

    let (_, sources) = hookline_config::Config::from_toml(
        "[sources.x]\npreset = \"apify\"\nsecrets = [\"env:HOOKLINE_TEST_SURELY_UNSET\"]",
    )
    .unwrap();
    let err = crate::verifiers(&sources).unwrap_err().to_string();
    assert!(err.contains("sources.x.secrets[0]"), "{err}");

    let (_, sources) = hookline_config::Config::from_toml(
        "[sources.x]\npreset = \"stripe\"\nsecrets = [\"whsec_dGVzdA==\"]",
    )
    .unwrap();
    assert!(crate::verifiers(&sources).unwrap().contains_key("x"));
}
