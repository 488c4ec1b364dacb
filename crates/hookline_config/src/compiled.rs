use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_domain::{Lifecycle, Retention, Secret, SourceConfig, Template, resolve_preset};

use crate::{Config, ConfigError, resolve_secret};

/// One source, ready for use: preset applied, templates parsed, lifecycle resolved. Built
/// once at start-up. Its secrets stay as written until [`CompiledSource::secrets`]: only
/// ingest, which builds the verifiers, needs them.
#[derive(Debug)]
pub struct CompiledSource {
    /// The path name.
    pub name: String,
    /// The `[sources.<name>]` table with its preset applied (secrets as written).
    pub config: SourceConfig,
    /// Dedup key template.
    pub dedup_key: Template,
    /// Resource key template, if the source tracks resources.
    pub resource_key: Option<Template>,
    /// Status template, if the source tracks resources.
    pub status: Option<Template>,
    /// The lifecycle ordering statuses, if the source tracks resources.
    pub lifecycle: Option<Arc<Lifecycle>>,
    /// `[retention]` with this source's overrides applied, checked.
    pub retention: Retention,
}

/// Every configured source by name.
#[derive(Debug, Default, Clone)]
pub struct Sources(BTreeMap<String, Arc<CompiledSource>>);

impl Sources {
    /// The source called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<CompiledSource>> {
        self.0.get(name)
    }

    /// Source names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every source, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledSource>> {
        self.0.values()
    }

    pub(crate) fn compile(config: &Config) -> Result<Sources, ConfigError> {
        let mut lifecycles = BTreeMap::new();
        for name in Lifecycle::BUILTIN {
            if let Some(builtin) = Lifecycle::builtin(name) {
                let lifecycle = Lifecycle::new(name, &builtin).map_err(|e| {
                    ConfigError::invalid(format!("lifecycles.{name}"), e.to_string())
                })?;
                lifecycles.insert(name.to_string(), Arc::new(lifecycle));
            }
        }
        for (name, lc) in &config.lifecycles {
            let lifecycle = Lifecycle::new(name, lc)
                .map_err(|e| ConfigError::invalid(format!("lifecycles.{name}"), e.to_string()))?;
            lifecycles.insert(name.clone(), Arc::new(lifecycle));
        }

        let mut sources = BTreeMap::new();
        for (name, raw) in &config.sources {
            let key = |k: &str| format!("sources.{name}.{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            {
                return Err(ConfigError::invalid(
                    format!("sources.{name}"),
                    "source names use letters, digits, '_' or '-'",
                ));
            }
            let resolved = resolve_preset(raw.clone())
                .map_err(|e| ConfigError::invalid(key("preset"), e.to_string()))?;
            let template =
                |field: &str, text: &Option<String>| -> Result<Option<Template>, ConfigError> {
                    text.as_deref()
                        .map(|t| {
                            t.parse::<Template>()
                                .map_err(|e| ConfigError::invalid(key(field), e.to_string()))
                        })
                        .transpose()
                };
            let dedup_key = template("dedup_key", &resolved.dedup_key)?.ok_or_else(|| {
                ConfigError::invalid(
                    key("dedup_key"),
                    "missing (every source needs a dedup key template)",
                )
            })?;
            let resource_key = template("resource_key", &resolved.resource_key)?;
            let status = template("status", &resolved.status)?;
            let lifecycle = match (&resource_key, &status, &resolved.lifecycle) {
                (None, None, None) => None,
                (Some(_), Some(_), Some(lc)) => {
                    Some(lifecycles.get(lc).cloned().ok_or_else(|| {
                        ConfigError::invalid(
                            key("lifecycle"),
                            format!(
                                "no lifecycle named {lc:?} (built in: {})",
                                Lifecycle::BUILTIN.join(", ")
                            ),
                        )
                    })?)
                }
                _ => {
                    return Err(ConfigError::invalid(
                        key("lifecycle"),
                        "resource_key, status and lifecycle go together: set all three or none",
                    ));
                }
            };
            let retention = source_retention(config, name, &resolved)?;
            sources.insert(
                name.clone(),
                Arc::new(CompiledSource {
                    name: name.clone(),
                    config: resolved,
                    dedup_key,
                    resource_key,
                    status,
                    lifecycle,
                    retention,
                }),
            );
        }
        Ok(Sources(sources))
    }
}

/// `[retention]` with the source's `dedup_horizon`, `payload` and `events` applied; an
/// inconsistent result names the source's key when the source set it, the default's
/// otherwise.
fn source_retention(
    config: &Config,
    name: &str,
    source: &SourceConfig,
) -> Result<Retention, ConfigError> {
    let default = config.retention.default_retention();
    let pick = |value: Option<hookline_domain::HumanDuration>, fallback| {
        value.map_or(fallback, hookline_domain::HumanDuration::get)
    };
    let retention = Retention {
        dedup_horizon: pick(source.dedup_horizon, default.dedup_horizon),
        payload: pick(source.payload, default.payload),
        events: pick(source.events, default.events),
    };
    retention.check().map_err(|e| {
        use hookline_domain::RetentionField as F;
        let overridden = |field: F| match field {
            F::DedupHorizon => source.dedup_horizon.is_some(),
            F::Payload => source.payload.is_some(),
            F::Events => source.events.is_some(),
        };
        // payload/horizon vs events: name whichever of the two this source set.
        let field = if overridden(e.field()) || !overridden(F::Events) {
            e.field()
        } else {
            F::Events
        };
        let key = if overridden(field) {
            format!("sources.{name}.{}", field.key())
        } else {
            format!("retention.{}", field.key())
        };
        ConfigError::invalid(key, e.to_string())
    })?;
    Ok(retention)
}

impl CompiledSource {
    /// The source's secrets, resolved now (`env:` and `file:` read). Call it where a
    /// verifier is built, and only there.
    ///
    /// # Errors
    /// [`ConfigError`] naming `sources.<name>.secrets[<i>]` when one cannot be resolved.
    pub fn secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        self.config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, written)| {
                resolve_secret(&format!("sources.{}.secrets[{i}]", self.name), written)
            })
            .collect()
    }

    /// This source's config with its secrets resolved: what a verifier is built from.
    ///
    /// # Errors
    /// As [`CompiledSource::secrets`].
    pub fn resolved_config(&self) -> Result<SourceConfig, ConfigError> {
        Ok(SourceConfig {
            secrets: self.secrets()?,
            ..self.config.clone()
        })
    }
}
