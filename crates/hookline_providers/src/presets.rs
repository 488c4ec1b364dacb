use hookline_domain::SourceConfig;

use crate::ConfigError;

/// Names a source may give as `preset`.
pub const PRESETS: &[&str] = &["apify"];

/// The documented defaults for provider `name`, or `None` if there is no such preset.
pub fn preset(name: &str) -> Option<SourceConfig> {
    match name {
        "apify" => Some(SourceConfig {
            verifier: Some("token".into()),
            token_header: Some("x-hookline-token".into()),
            dedup_key: Some("{json:/eventData/actorRunId}:{json:/eventType}".into()),
            resource_key: Some("{json:/eventData/actorRunId}".into()),
            status: Some("{json:/resource/status}".into()),
            lifecycle: Some("apify-run".into()),
            ..SourceConfig::default()
        }),
        _ => None,
    }
}

/// Fills a source's unset fields from its preset, if it names one.
///
/// # Errors
/// [`ConfigError`] on `preset` when the name is unknown.
pub fn resolve(config: SourceConfig) -> Result<SourceConfig, ConfigError> {
    match config.preset.clone() {
        None => Ok(config),
        Some(name) => match preset(&name) {
            Some(defaults) => Ok(config.or(defaults)),
            None => Err(ConfigError::new(
                "preset",
                format!("unknown preset {name:?}; known: {}", PRESETS.join(", ")),
            )),
        },
    }
}
