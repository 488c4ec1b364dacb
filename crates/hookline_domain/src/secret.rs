use serde::{Deserialize, Deserializer};

/// A secret value (webhook signing key, token, admin token).
///
/// `Debug` and `Display` never print the value, so a secret can sit in any config struct
/// that gets logged. The raw text is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Call sites are where secrets leave their wrapper: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// `url` fit for an error message or a log: the password of its user-info (`user:pw@`)
/// and the value of any `password=` query parameter become `***`; everything else (scheme,
/// user, host, port, path, other parameters) is kept, so the message still says which
/// server was meant.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => format!("{scheme}://{userinfo}@{host}{path}"),
                },
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        assert_eq!(
            redact_url("amqps://hookline:s3cret@mq-0.internal:5671/%2f"),
            "amqps://hookline:***@mq-0.internal:5671/%2f"
        );
        assert_eq!(
            redact_url("postgres://u:p%40ss@db/h?sslmode=verify-full&password=pw2"),
            "postgres://u:***@db/h?sslmode=verify-full&password=***"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1:5432/hookline"),
            "postgres://root@127.0.0.1:5432/hookline"
        );
        // An '@' inside the password: the host is after the last one.
        assert_eq!(redact_url("amqp://a:b@c@mq/x"), "amqp://a:***@mq/x");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }
}
