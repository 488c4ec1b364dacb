//! Secret values as written in config: a literal, `env:NAME` or `file:/path`.
//!
//! Config keeps secrets as written and resolves each one only where it is used, so a
//! binary that never uses a secret (the worker and the CLI never verify signatures)
//! starts without it being present.

use hookline_domain::Secret;

use crate::ConfigError;

/// Resolves a secret as written: `env:NAME` reads the environment variable, `file:/path`
/// reads the file (one trailing newline trimmed, as Kubernetes-mounted secrets end), and
/// anything else is the value itself. `key` names the config key in errors; the errors
/// never contain the value.
///
/// # Errors
/// [`ConfigError`] naming `key` when the variable is unset or the file unreadable.
pub fn resolve_secret(key: &str, written: &Secret) -> Result<Secret, ConfigError> {
    resolve_with(key, written, &|name| std::env::var(name).ok())
}

pub(crate) fn resolve_with(
    key: &str,
    written: &Secret,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    let text = written.expose();
    if let Some(name) = text.strip_prefix("env:") {
        return env(name).map(Secret::new).ok_or_else(|| {
            ConfigError::invalid(key, format!("environment variable {name} is not set"))
        });
    }
    if let Some(path) = text.strip_prefix("file:") {
        let mut value = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::invalid(key, format!("cannot read secret file {path}: {e}"))
        })?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        return Ok(Secret::new(value));
    }
    Ok(written.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "from-env".to_string())
    }

    #[test]
    fn literals_stay_env_reads_the_variable_and_a_missing_one_names_the_key() {
        let literal = resolve_with("k", &Secret::new("plain"), &env).unwrap();
        assert_eq!(literal.expose(), "plain");
        let from_env = resolve_with("k", &Secret::new("env:SET"), &env).unwrap();
        assert_eq!(from_env.expose(), "from-env");
        let err = resolve_with("sources.x.secrets[0]", &Secret::new("env:UNSET"), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources.x.secrets[0]") && err.contains("UNSET"),
            "{err}"
        );
    }

    #[test]
    fn file_secrets_lose_one_trailing_newline_and_a_missing_file_names_the_key() {
        let dir = std::env::temp_dir().join(format!("hl_secret_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cret\n\n").unwrap();
        let written = Secret::new(format!("file:{}", path.display()));
        assert_eq!(
            resolve_with("k", &written, &env).unwrap().expose(),
            "s3cret\n"
        );
        std::fs::write(&path, "s3cret").unwrap();
        assert_eq!(
            resolve_with("k", &written, &env).unwrap().expose(),
            "s3cret"
        );
        std::fs::remove_file(&path).unwrap();
        let err = resolve_with("admin.token", &written, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.token"), "{err}");
    }
}
