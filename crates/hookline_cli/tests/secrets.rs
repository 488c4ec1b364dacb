//! No secret or password appears in any log line, error message or `Debug` output.
//!
//! One full run of the real binaries at trace level: `hookline migrate`, then
//! `hookline-ingest` and `hookline-worker` with every secret given as `env:` or `file:`
//! (source secrets with a rotation, the admin token, a database URL with a password, the
//! broker URL), valid, invalid and duplicate webhooks, the admin API with the right and
//! wrong tokens, CLI commands, and the error paths: a broker refusing a wrong password, a
//! database that is down, config errors with a secret in the bad value. Everything the
//! processes print (stdout and stderr) is then searched for every secret.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use hookline_testkit::{
    TestDb, amqp_prefix, amqp_url, apify_body, binary, count, delete_broker_state, eventually,
    now_secs, sign_standard_webhooks,
};

/// The secrets of one run: random, so a match can only be a leak.
struct Secrets {
    apify: String,
    apify_old: String,
    standard_webhooks: String,
    admin: String,
    db_password: String,
    db_url: String,
    amqp_url: String,
    wrong_amqp_password: String,
}

impl Secrets {
    fn new(db: &TestDb) -> Self {
        let random = || uuid::Uuid::new_v4().simple().to_string();
        let key = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        let db_password = format!("pgPASS{}", random());
        let mut db_url = url::Url::parse(&db.url).unwrap();
        db_url.set_password(Some(&db_password)).unwrap();
        Self {
            apify: format!("apifyENV{}", random()),
            apify_old: format!("apifyFILE{}", random()),
            standard_webhooks: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            ),
            admin: format!("adminFILE{}", random()),
            // PostgreSQL here trusts local connections: any password is accepted, and
            // the URL still carries it everywhere the code passes it.
            db_url: db_url.into(),
            db_password,
            amqp_url: amqp_url(),
            wrong_amqp_password: format!("mqWRONG{}", random()),
        }
    }

    /// Every string that must not appear: the secrets, the URLs that hold passwords and
    /// the passwords on their own (the broker's only when it is not trivially short).
    fn needles(&self) -> Vec<String> {
        let mut needles = vec![
            self.apify.clone(),
            self.apify_old.clone(),
            self.standard_webhooks.clone(),
            self.standard_webhooks["whsec_".len()..].to_string(),
            self.admin.clone(),
            self.db_password.clone(),
            self.db_url.clone(),
            self.amqp_url.clone(),
            self.wrong_amqp_password.clone(),
        ];
        let amqp = url::Url::parse(&self.amqp_url).unwrap();
        if let Some(password) = amqp.password() {
            // `guest:guest@` rather than `guest`, which is also the user name.
            needles.push(format!("{}:{password}@", amqp.username()));
        }
        needles
    }

    fn wrong_amqp_url(&self) -> String {
        let mut url = url::Url::parse(&self.amqp_url).unwrap();
        url.set_password(Some(&self.wrong_amqp_password)).unwrap();
        url.into()
    }
}

/// Port-0 listeners and the run's database, for configs that are otherwise broken.
const LISTENERS: &str = "[database]\nurl = \"env:HL_SECRET_DB_URL\"\nmigrate = false\n\
    [http]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n\
    [worker]\nadmin_addr = \"127.0.0.1:0\"\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the processes of the run printed, one file per stream.
struct Logs {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

impl Logs {
    fn file(&mut self, name: &str) -> std::fs::File {
        let path = self.dir.join(format!("{name}.log"));
        self.files.push(path.clone());
        std::fs::File::create(path).unwrap()
    }

    /// Runs a command to completion (killed after a minute: a service that should have
    /// refused to start must not hang the test), keeping what it printed; returns whether
    /// it succeeded and its stdout.
    fn run(&mut self, name: &str, command: &mut Command) -> (bool, String) {
        let mut running = self.spawn(name, command);
        let child = &mut running.0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = std::fs::read_to_string(self.dir.join(format!("{name}.stdout.log")));
        (status.success(), stdout.unwrap_or_default())
    }

    fn spawn(&mut self, name: &str, command: &mut Command) -> Running {
        let (stdout, stderr) = (
            self.file(&format!("{name}.stdout")),
            self.file(&format!("{name}.stderr")),
        );
        Running(
            command
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap(),
        )
    }

    fn text(&self) -> String {
        self.files
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A process of the run, killed if the test fails before it is stopped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM, then wait: the drain path logs too.
fn stop(mut running: Running) {
    let _ = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status();
    let _ = running.0.wait();
}

/// `hookline-ingest`, `hookline-worker` or `hookline` with `config`, logging everything.
fn service(binary: &Path, config: &Path, secrets: &Secrets) -> Command {
    let mut command = Command::new(binary);
    command
        .env("HOOKLINE_CONFIG", config)
        .env("RUST_LOG", "trace")
        .env("HL_SECRET_DB_URL", &secrets.db_url)
        .env("HL_SECRET_APIFY", &secrets.apify);
    command
}

async fn ready(client: &reqwest::Client, url: &str) {
    eventually(&format!("{url} ready"), Duration::from_secs(60), || async {
        let response = client.get(url).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await
    .unwrap();
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_logs_errors_or_debug_output_of_a_full_run() {
    let db = TestDb::empty().await;
    let prefix = amqp_prefix();
    let secrets = Secrets::new(&db);
    let dir = std::env::temp_dir().join(format!("{}_secrets", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut logs = Logs {
        dir: dir.clone(),
        files: Vec::new(),
    };
    let (ingest_bin, worker_bin) = (binary("hookline-ingest"), binary("hookline-worker"));
    let cli_bin = PathBuf::from(env!("CARGO_BIN_EXE_hookline"));

    // Secrets as Kubernetes mounts them: a file each, with a trailing newline.
    let admin_file = write(&dir, "admin-token", &format!("{}\n", secrets.admin));
    let amqp_file = write(&dir, "amqp-url", &format!("{}\n", secrets.amqp_url));
    let apify_old_file = write(&dir, "apify-old", &format!("{}\n", secrets.apify_old));
    let sw_file = write(
        &dir,
        "sw-secret",
        &format!("{}\n", secrets.standard_webhooks),
    );
    let (port, admin_port, worker_port) = (free_port(), free_port(), free_port());
    let config_text = format!(
        r#"
[http]
addr = "127.0.0.1:{port}"
workers = 1
[admin]
addr = "127.0.0.1:{admin_port}"
token = "file:{admin_file}"
[database]
url = "env:HL_SECRET_DB_URL"
pool_size = 4
migrate = false
[amqp]
url = "file:{amqp_file}"
prefix = "{prefix}"
[ingest]
relay_after_ms = 1000
relay_interval_ms = 200
[worker]
admin_addr = "127.0.0.1:{worker_port}"
concurrency = 8
max_attempts = 2
retry_base_ms = 100
retry_cap_ms = 200
[telemetry]
log_format = "json"
log_level = "trace"
[sources.apify]
preset = "apify"
secrets = ["env:HL_SECRET_APIFY", "file:{apify_old_file}"]
[sources.sw]
preset = "standard-webhooks"
secrets = ["file:{sw_file}"]
"#
    );
    let config = PathBuf::from(write(&dir, "hookline.toml", &config_text));

    // Debug output of the loaded config and of every resolved secret.
    let debug_toml = config_text
        .replace("env:HL_SECRET_DB_URL", &secrets.db_url)
        .replace(
            "env:HL_SECRET_APIFY",
            &format!("file:{}", write(&dir, "apify", &secrets.apify)),
        );
    let (loaded, sources) = hookline_config::Config::from_toml(&debug_toml).unwrap();
    let mut debug = format!("{loaded:?}\n{sources:?}\n{:?}\n", loaded.admin_token());
    for source in sources.iter() {
        debug.push_str(&format!(
            "{:?}\n{:?}\n",
            source.secrets(),
            source.resolved_config()
        ));
    }
    assert_eq!(
        loaded.admin_token().unwrap().unwrap().expose(),
        secrets.admin,
        "the Debug check looked at resolved secrets"
    );
    std::fs::write(dir.join("debug.log"), &debug).unwrap();
    logs.files.push(dir.join("debug.log"));

    // The CLI: migrate, check everything (resolves every secret).
    let cli = |args: &[&str]| {
        let mut command = service(&cli_bin, &config, &secrets);
        command.args(args);
        command
    };
    assert!(logs.run("migrate", &mut cli(&["migrate"])).0, "migrate");
    assert!(
        logs.run("check-config", &mut cli(&["check-config"])).0,
        "check-config"
    );

    let ingest = logs.spawn("ingest", &mut service(&ingest_bin, &config, &secrets));
    let mut worker_command = service(&worker_bin, &config, &secrets);
    // The readable formatter too, not only JSON.
    worker_command.env("HOOKLINE__TELEMETRY__LOG_FORMAT", "pretty");
    let worker = logs.spawn("worker", &mut worker_command);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    ready(&client, &format!("{base}/readyz")).await;
    ready(&client, &format!("http://127.0.0.1:{worker_port}/readyz")).await;

    let post = |path: String, headers: Vec<(&'static str, String)>, body: String| {
        let mut request = client.post(format!("{base}{path}")).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let token = |t: &str| vec![("x-hookline-token", t.to_string())];
    let mut accepted = 0;
    for (i, status) in ["RUNNING", "SUCCEEDED"].iter().enumerate() {
        // The current token, the old one (rotation), and the token as a query parameter.
        let run = format!("run-{i}");
        assert_eq!(
            post(
                "/webhooks/apify".into(),
                token(&secrets.apify),
                apify_body(&run, status)
            )
            .await,
            202
        );
        accepted += 1;
        assert_eq!(
            post(
                "/webhooks/apify".into(),
                token(&secrets.apify_old),
                apify_body(&run, status)
            )
            .await,
            200,
            "duplicate"
        );
        let other = format!("run-q{i}");
        let query = format!("/webhooks/apify?token={}", secrets.apify);
        assert_eq!(post(query, vec![], apify_body(&other, status)).await, 202);
        accepted += 1;
    }
    assert_eq!(
        post(
            "/webhooks/apify".into(),
            token("wrong-token"),
            apify_body("run-x", "RUNNING")
        )
        .await,
        401
    );
    // A near miss: the right token with one character more.
    let near = format!("{}x", secrets.apify);
    assert_eq!(
        post(
            "/webhooks/apify".into(),
            token(&near),
            apify_body("run-x", "RUNNING")
        )
        .await,
        401
    );
    assert_eq!(
        post(
            "/webhooks/apify".into(),
            token(&secrets.apify),
            "{\"no\":\"keys\"}".into()
        )
        .await,
        400
    );
    assert_eq!(
        post(
            "/webhooks/nosuch".into(),
            token(&secrets.apify),
            "{}".into()
        )
        .await,
        404
    );

    let signed = |id: &str, body: &str, secret: &str| {
        let ts = now_secs();
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                sign_standard_webhooks(secret, id, ts, body.as_bytes()),
            ),
        ]
    };
    let body = r#"{"type":"invoice.paid","data":{"id":"inv_1"}}"#.to_string();
    let sw = &secrets.standard_webhooks;
    assert_eq!(
        post(
            "/webhooks/sw".into(),
            signed("msg_1", &body, sw),
            body.clone()
        )
        .await,
        202
    );
    accepted += 1;
    assert_eq!(
        post(
            "/webhooks/sw".into(),
            signed("msg_1", &body, sw),
            body.clone()
        )
        .await,
        200
    );
    let mut tampered = signed("msg_2", &body, sw);
    tampered[2].1 = signed("msg_2", "{}", sw)[2].1.clone();
    assert_eq!(
        post("/webhooks/sw".into(), tampered, body.clone()).await,
        401
    );

    // The admin API: the right token, a wrong one, a near miss, none; and /metrics.
    let admin_get = |path: &str, bearer: Option<String>| {
        let mut request = client.get(format!("{admin}{path}"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let by_key = "/v1/events?source=apify&dedup_key=run-0:ACTOR.RUN.RUNNING";
    assert_eq!(admin_get(by_key, Some(secrets.admin.clone())).await, 200);
    assert_eq!(admin_get(by_key, Some("wrong".into())).await, 401);
    assert_eq!(
        admin_get(by_key, Some(format!("{}x", secrets.admin))).await,
        401
    );
    assert_eq!(admin_get(by_key, None).await, 401);
    assert_eq!(admin_get("/metrics", None).await, 200);
    assert_eq!(
        client
            .get(format!("http://127.0.0.1:{worker_port}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Every accepted event is processed: the worker's whole path ran.
    let processed = "SELECT count(*) AS n FROM events WHERE state = 'processed'";
    eventually(
        "every accepted event processed",
        Duration::from_secs(60),
        || async { (count(&db, processed).await.ok()? == accepted).then_some(()) },
    )
    .await
    .unwrap();

    // CLI reads; none of them print headers (events show does: see below).
    for args in [
        &["events", "list", "--source", "apify", "--since", "1h"][..],
        &["resources", "show", "apify", "run-0"],
        &["dead-letters", "list"],
        &["stats", "--since", "1h"],
        &["replay", "--source", "apify", "--since", "1h", "--dry-run"],
    ] {
        assert!(logs.run(args[0], &mut cli(args)).0, "hookline {args:?}");
    }

    // Error paths: a broker that refuses the password, for the worker and the CLI.
    let wrong_amqp = write(&dir, "amqp-url-wrong", &secrets.wrong_amqp_url());
    let mut wrong = service(&worker_bin, &config, &secrets);
    wrong
        .env("HOOKLINE__AMQP__URL", format!("file:{wrong_amqp}"))
        .env(
            "HOOKLINE__WORKER__ADMIN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        );
    let refused = logs.spawn("worker-wrong-password", &mut wrong);
    let refused_log = dir.join("worker-wrong-password.stdout.log");
    eventually(
        "the worker to log the refused login",
        Duration::from_secs(60),
        || {
            let text = std::fs::read_to_string(&refused_log).unwrap_or_default();
            std::future::ready(text.contains("reconnect").then_some(()))
        },
    )
    .await
    .unwrap();
    stop(refused);
    let mut replay = cli(&["replay", "--source", "apify", "--since", "1h", "--reset"]);
    replay.env("HOOKLINE__AMQP__URL", format!("file:{wrong_amqp}"));
    assert!(!logs.run("replay-wrong-password", &mut replay).0);
    // A database that is down, with a password in its URL.
    let mut down = cli(&["events", "list", "--source", "apify"]);
    let mut down_url = url::Url::parse(&secrets.db_url).unwrap();
    down_url.set_port(Some(1)).unwrap();
    down.env("HL_SECRET_DB_URL", down_url.as_str());
    assert!(!logs.run("database-down", &mut down).0);

    // Config errors whose bad value is a secret: each binary refuses to start, naming
    // the key, without quoting the value.
    for (name, toml, key) in [
        (
            "syntax",
            format!("[admin]\ntoken = {}\n", secrets.admin),
            "line 2",
        ),
        (
            "type",
            format!(
                "[sources.a]\npreset = \"apify\"\nsecrets = \"{}\"\n",
                secrets.apify
            ),
            "sources.a.secrets",
        ),
        (
            "broker-url",
            // With a database that works, so nothing else stops the binaries first.
            format!(
                "[amqp]\nurl = \"amqp:{}@localhost\"\n{LISTENERS}",
                secrets.wrong_amqp_password
            ),
            "amqp.url",
        ),
    ] {
        let bad = PathBuf::from(write(&dir, &format!("bad-{name}.toml"), &toml));
        for (bin, label) in [
            (&ingest_bin, "ingest"),
            (&worker_bin, "worker"),
            (&cli_bin, "cli"),
        ] {
            let mut command = service(bin, &bad, &secrets);
            if label == "cli" {
                command.arg("check-config");
            }
            let run = format!("bad-{name}-{label}");
            assert!(!logs.run(&run, &mut command).0, "{run} must fail");
            let stderr = std::fs::read_to_string(dir.join(format!("{run}.stderr.log"))).unwrap();
            assert!(stderr.contains(key), "{run} must name {key}: {stderr}");
        }
    }

    stop(worker);
    stop(ingest);
    delete_broker_state(&prefix).await;

    let text = logs.text();
    assert!(
        text.contains("webhook rejected") && text.contains("hookline-worker started"),
        "the logs are the services' (trace level): {}",
        &text[..text.len().min(2000)]
    );
    for needle in secrets.needles() {
        if let Some(at) = text.find(&needle) {
            let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
            panic!(
                "a secret appears in what the processes printed (logs in {}):\n{}",
                dir.display(),
                &text[from..to]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
