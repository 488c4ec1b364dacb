//! The config the Kubernetes manifests ship (deploy/k8s/base/hookline.toml) loads and
//! passes every binary's checks, with its secrets where the pods put them.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]
// figment::Jail fixes the closure's error type; it is not ours to shrink.
#![allow(clippy::result_large_err)]

#[test]
fn the_kubernetes_config_is_valid_with_its_secrets_mounted_and_set() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/k8s/base/hookline.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    figment::Jail::expect_with(|jail| {
        // The Secret volume, here instead of /etc/hookline/secrets.
        let dir = jail.directory().display().to_string();
        jail.create_file("admin-token", "admin\n")?;
        jail.create_file("database-url", "postgres://hookline:pw@db:5432/hookline\n")?;
        jail.set_env("HOOKLINE_AMQP_URL", "amqp://hookline:pw@mq:5672/%2f");
        jail.set_env("APIFY_WEBHOOK_TOKEN", "apify");
        let text = text.replace("/etc/hookline/secrets", &dir);
        let (config, sources) =
            hookline_config::Config::from_toml(&text).map_err(|e| e.to_string())?;
        config.validate_ingest().map_err(|e| e.to_string())?;
        config.validate_worker().map_err(|e| e.to_string())?;
        assert_eq!(
            config.admin_token().unwrap().unwrap().expose(),
            "admin",
            "file: with the newline trimmed"
        );
        assert_eq!(
            config.database.url.expose(),
            "postgres://hookline:pw@db:5432/hookline"
        );
        assert!(!config.database.migrate, "the migration Job migrates");
        assert_eq!(config.amqp.prefix, "hookline", "KEDA watches hookline.work");
        for source in sources.iter() {
            source.secrets().map_err(|e| e.to_string())?;
        }
        Ok(())
    });
}
