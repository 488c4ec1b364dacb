//! The shipped config files must load: a user starts from them.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[test]
fn the_example_and_local_configs_are_valid() {
    for file in ["hookline.example.toml", "hookline.toml"] {
        let path = format!("{}/../../config/{file}", env!("CARGO_MANIFEST_DIR"));
        // The files read secrets from the environment; stand in for it.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("env:HOOKLINE_ADMIN_TOKEN", "admin-token")
            .replace("env:APIFY_WEBHOOK_TOKEN", "apify-token");
        let (config, sources) =
            hookline_config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(sources.get("apify").is_some(), "{file}");
        assert_eq!(config.http.addr, "127.0.0.1:8080");
    }
}
