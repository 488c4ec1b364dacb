//! `config`: `Config::from_toml` over arbitrary text, then every binary's own checks and
//! the verifiers `hookline-ingest` would build, plus the duration parser.
//!
//! Properties: nothing panics; loading is deterministic; an error says something; a
//! loaded config compiles each source's dedup key from the text it was given and has a
//! lifecycle exactly when it tracks resources; a duration that parses prints as text that
//! parses back to it.
//!
//! A `file:` secret is read as `env:` instead: the fuzzer must not read the machine's
//! files (`file:/dev/zero` would only measure memory).

use hookline_config::Config;
use hookline_domain::{HumanDuration, parse_duration};

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    durations(text);
    let text = &text.replace("file:", "env:");
    let loaded = Config::from_toml(text);
    let again = Config::from_toml(text);
    match (&loaded, &again) {
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "loading is not deterministic");
            assert!(!a.to_string().is_empty());
        }
        (Ok(_), Ok(_)) => {}
        _ => panic!("loading is not deterministic"),
    }
    let Ok((config, sources)) = loaded else {
        return;
    };
    for check in [config.validate_ingest(), config.validate_worker()] {
        if let Err(e) = check {
            assert!(!e.to_string().is_empty());
        }
    }
    let _ = config.admin_token();
    for source in sources.iter() {
        assert_eq!(
            Some(source.dedup_key.as_str()),
            source.config.dedup_key.as_deref()
        );
        assert_eq!(source.lifecycle.is_some(), source.resource_key.is_some());
        assert_eq!(source.lifecycle.is_some(), source.status.is_some());
    }
    if let Err(e) = hookline_providers::verifiers(&sources) {
        assert!(!e.to_string().is_empty());
    }
}

/// Each line read as a duration: if it parses, its display parses back to it.
fn durations(text: &str) {
    for line in text.lines().take(4) {
        let value = line
            .rsplit('=')
            .next()
            .unwrap_or(line)
            .trim()
            .trim_matches('"');
        if let Ok(duration) = parse_duration(value) {
            let shown = HumanDuration(duration).to_string();
            assert_eq!(
                parse_duration(&shown),
                Ok(duration),
                "{value:?} shown as {shown:?}"
            );
        }
    }
}
