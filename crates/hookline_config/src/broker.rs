//! `amqp.url` (one broker URL or a list of a cluster's nodes) and `amqp.ca_file`.

use hookline_domain::Secret;
use serde::{Deserialize, Deserializer};

use crate::ConfigError;
use crate::secret::resolve_with;

/// `amqp.url`: one broker URL, or a list of a cluster's node URLs that clients try in
/// order (the first that answers wins; a reconnect starts from the next). Each is a
/// secret as written (literal, `env:` or `file:`), since each may carry a password;
/// `Debug` prints only how many there are.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrls(Vec<Secret>);

impl BrokerUrls {
    /// The URLs in the order they are tried. Call sites are where the passwords leave
    /// their wrapper: hand them to `hookline_queue` and nowhere else.
    pub fn expose(&self) -> Vec<&str> {
        self.0.iter().map(Secret::expose).collect()
    }

    /// How many nodes are configured.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no URL is configured (rejected by validation).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves each URL (`env:`/`file:`) and checks its scheme; errors name the key
    /// (`amqp.url`, or `amqp.url[i]` for a list) and never the password.
    pub(crate) fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BrokerUrls, ConfigError> {
        if self.0.is_empty() {
            return Err(ConfigError::invalid(
                "amqp.url",
                "needs at least one amqp:// or amqps:// URL",
            ));
        }
        let key = |i: usize| {
            if self.0.len() == 1 {
                "amqp.url".to_string()
            } else {
                format!("amqp.url[{i}]")
            }
        };
        self.0
            .iter()
            .enumerate()
            .map(|(i, written)| {
                let url = resolve_with(&key(i), written, env)?;
                let text = url.expose();
                if !(text.starts_with("amqp://") || text.starts_with("amqps://")) {
                    return Err(ConfigError::invalid(
                        key(i),
                        // Not even the redacted URL: one that does not parse may hide
                        // its password where redaction cannot find it.
                        "expected amqp://user:password@host:port/vhost (or amqps://)",
                    ));
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(BrokerUrls)
    }
}

impl std::fmt::Debug for BrokerUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerUrls({} node(s), \"***\")", self.0.len())
    }
}

impl<'de> Deserialize<'de> for BrokerUrls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Secret),
            Many(Vec<Secret>),
        }
        match OneOrMany::deserialize(deserializer) {
            Ok(OneOrMany::One(url)) => Ok(Self(vec![url])),
            Ok(OneOrMany::Many(urls)) => Ok(Self(urls)),
            Err(_) => Err(serde::de::Error::custom("expected a URL or a list of URLs")),
        }
    }
}

/// Reads `amqp.ca_file`: PEM certificates trusted for `amqps://` besides the system store.
pub(crate) fn read_ca_file(path: &str) -> Result<String, ConfigError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid("amqp.ca_file", format!("cannot read {path}: {e}")))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConfigError::invalid(
            "amqp.ca_file",
            format!("{path} holds no PEM certificate"),
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn amqp_url_is_one_url_or_a_list_tried_in_order() {
        let (config, _) = Config::from_toml("[amqp]\nurl = \"amqp://a:pw@mq/%2f\"").unwrap();
        assert_eq!(config.amqp.url.expose(), ["amqp://a:pw@mq/%2f"]);
        let (config, _) = Config::from_toml(
            "[amqp]\nurl = [\"amqps://h@mq-0.internal:5671/%2f\", \"amqps://h@mq-1.internal:5671/%2f\"]",
        )
        .unwrap();
        assert_eq!(
            config.amqp.url.expose(),
            [
                "amqps://h@mq-0.internal:5671/%2f",
                "amqps://h@mq-1.internal:5671/%2f"
            ]
        );
    }

    #[test]
    fn bad_broker_urls_name_their_key_and_never_the_password() {
        for (toml, key) in [
            ("[amqp]\nurl = []", "amqp.url"),
            ("[amqp]\nurl = \"http://u:pa55@mq\"", "amqp.url"),
            (
                "[amqp]\nurl = [\"amqp://mq-0\", \"mqtt://u:pa55@mq-1\"]",
                "amqp.url[1]",
            ),
            (
                "[amqp]\nurl = [\"amqp://mq-0\", \"env:HOOKLINE_TEST_SURELY_UNSET\"]",
                "amqp.url[1]",
            ),
            ("[amqp]\nca_file = \"/nonexistent/ca.pem\"", "amqp.ca_file"),
            ("[amqp]\nurl = 5", "url"),
        ] {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml:?} gave {err:?}");
            assert!(!err.contains("pa55"), "{err}");
        }
    }

    #[test]
    fn the_ca_file_is_read_at_load() {
        let path = std::env::temp_dir().join(format!("hl_ca_{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate").unwrap();
        let toml = format!("[amqp]\nca_file = \"{}\"", path.display());
        let err = Config::from_toml(&toml).unwrap_err().to_string();
        assert!(
            err.contains("amqp.ca_file") && err.contains("no PEM"),
            "{err}"
        );
        let pem = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
        std::fs::write(&path, pem).unwrap();
        let (config, _) = Config::from_toml(&toml).unwrap();
        assert_eq!(config.amqp.ca_pem.as_deref(), Some(pem));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn broker_passwords_never_appear_in_debug_output() {
        let (config, _) =
            Config::from_toml("[amqp]\nurl = [\"amqp://u:pa55@mq-0\", \"amqp://u:pa55@mq-1\"]")
                .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("pa55"), "{debug}");
        assert!(debug.contains("2 node(s)"), "{debug}");
    }
}
