use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_domain::{Lifecycle, Template};
use hookline_providers::Verifier;

use crate::{Config, ConfigError};

/// One source, ready for requests: its verifier built, templates parsed, lifecycle
/// resolved. Built once at start-up.
#[derive(Debug)]
pub struct CompiledSource {
    /// The path name.
    pub name: String,
    /// Signature/token check.
    pub verifier: Verifier,
    /// Dedup key template.
    pub dedup_key: Template,
    /// Resource key template, if the source tracks resources.
    pub resource_key: Option<Template>,
    /// Status template, if the source tracks resources.
    pub status: Option<Template>,
    /// The lifecycle ordering statuses, if the source tracks resources.
    pub lifecycle: Option<Arc<Lifecycle>>,
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
            let resolved = hookline_providers::resolve(raw.clone())
                .map_err(|e| ConfigError::invalid(key(&e.key), e.message))?;
            let verifier = Verifier::from_source(&resolved)
                .map_err(|e| ConfigError::invalid(key(&e.key), e.message))?;
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
            sources.insert(
                name.clone(),
                Arc::new(CompiledSource {
                    name: name.clone(),
                    verifier,
                    dedup_key,
                    resource_key,
                    status,
                    lifecycle,
                }),
            );
        }
        Ok(Sources(sources))
    }
}
