//! Every metric the Grafana dashboard (`deploy/grafana/hookline.json`) queries exists: a
//! renamed or removed metric fails here, not on an operator's empty panel. (Its own test
//! binary: the Prometheus recorder is process-wide.)

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestWorker;
use hookline_testkit::{
    APIFY_SOURCE, TestDb, TestIngest, amqp_prefix, apify_body, config_toml, count, eventually,
    new_event, store_event,
};

const TOKEN: (&str, &str) = ("x-hookline-token", "apify-token");
const WAIT: Duration = Duration::from_secs(60);

/// Metrics the dashboard takes from outside Hookline, with where they come from. Nothing
/// named `hookline_*` may be here: those must be in the scrape.
const EXTERNAL: &[(&str, &str)] = &[
    (
        "container_memory_working_set_bytes",
        "the kubelet's cAdvisor",
    ),
    (
        "container_cpu_usage_seconds_total",
        "the kubelet's cAdvisor",
    ),
    (
        "rabbitmq_queue_messages_ready",
        "RabbitMQ's rabbitmq_prometheus plugin (per-object metrics)",
    ),
];

/// PromQL words that look like identifiers but are not metrics: keywords, and the
/// aggregation operators (`sum by (le) (…)` puts a clause between them and their `(`).
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
];

/// The metric names in one PromQL expression: identifiers outside label matchers,
/// strings, ranges and grouping clauses that are not functions, keywords or Grafana
/// variables. `_bucket`, `_sum` and `_count` stay, as the scrape spells them.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut grouping = false;
    while i < chars.len() {
        let c = chars[i];
        let closing = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' => Some('"'),
            '(' if grouping => Some(')'),
            _ => None,
        };
        if let Some(closing) = closing {
            grouping = false;
            i += 1;
            while i < chars.len() && chars[i] != closing {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '$' {
            // A Grafana variable: $name, ${name} or $__rate_interval.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            // A number, with any exponent (1e-9) or unit suffix.
            while i < chars.len() && (chars[i].is_alphanumeric() || ".+-".contains(chars[i])) {
                if "+-".contains(chars[i]) && !matches!(chars[i - 1], 'e' | 'E') {
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                grouping = true;
            } else if next != Some(&'(') && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Every `expr` in the dashboard (panel targets, nested rows) and every query variable.
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    ("definition", serde_json::Value::String(query)) => {
                        // label_values(metric, label): the metric is the first argument.
                        if let Some(args) = query
                            .strip_prefix("label_values(")
                            .and_then(|q| q.strip_suffix(')'))
                        {
                            out.push(args.split(',').next().unwrap().to_string());
                        }
                    }
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Metric names in Prometheus text exposition, as spelled there (`x_bucket`, `x_sum`...).
fn scraped_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_promql_reader_finds_metric_names_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, source) (rate(hookline_x_seconds_bucket{outcome="accepted", source=~"$source"}[$__rate_interval]))) / clamp_min(sum without (pod) (hookline_y_total offset 5m), 1e-9) > bool 2"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["hookline_x_seconds_bucket", "hookline_y_total"]);
    assert_eq!(
        metric_names(r#"sum(rabbitmq_queue_messages_ready{queue="$prefix.work"})"#)
            .into_iter()
            .collect::<Vec<_>>(),
        ["rabbitmq_queue_messages_ready"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_is_exposed() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/hookline.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    let queried: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(queried.len() >= 12, "the dashboard queries {queried:?}");

    // A flow that creates every series: accepted, duplicate (from the committed-key
    // cache), rejected, processed, retried, dead-lettered, and one event the outbox relay
    // republishes (stored with its outbox row, as a crashed ingest leaves it).
    let db = TestDb::new().await;
    common::fail_processing_transiently(&db, Some("run-doomed")).await;
    let prefix = amqp_prefix();
    // A destination too, so the delivery series exist.
    let receiver = hookline_testkit::Receiver::start().await;
    let toml = config_toml(
        &db.url,
        &prefix,
        &format!(
            "{APIFY_SOURCE}\n[destinations.sink]\nurl = \"{}\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
            receiver.url("/")
        ),
    );
    let ingest = TestIngest::spawn(&toml).await;
    let worker = TestWorker::spawn(&toml).await;
    let mut orphan = new_event("apify", "orphan");
    orphan.resource_key = Some("run-orphan".into());
    orphan.status = Some("RUNNING".into());
    store_event(&db, orphan).await;
    for (body, want) in [
        (apify_body("run-1", "SUCCEEDED"), 202),
        (apify_body("run-1", "SUCCEEDED"), 200),
        (apify_body("run-doomed", "RUNNING"), 202),
        ("{}".to_string(), 400),
    ] {
        let status = ingest.post("apify", &[TOKEN], body).await.status();
        assert_eq!(status.as_u16(), want);
    }
    eventually("processed, dead and republished", WAIT, || async {
        let done = count(
            &db,
            "SELECT count(*) AS n FROM events WHERE state IN ('processed', 'dead')",
        )
        .await
        .ok()?;
        (done == 3).then_some(())
    })
    .await
    .unwrap();

    let scrape = |base: String| async move {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(text)
    };
    let exposed = eventually("every series on /metrics", WAIT, || {
        let (ingest, worker) = (scrape(ingest.admin.clone()), scrape(worker.admin.clone()));
        async move {
            let mut names = scraped_names(&ingest.await?);
            names.extend(scraped_names(&worker.await?));
            // Wait for the slowest: the dead letter and the relay's republish.
            (names.contains("hookline_worker_dead_lettered_total")
                && names.contains("hookline_outbox_republished_total")
                && names.contains("hookline_deliveries_lag_seconds_bucket"))
            .then_some(names)
        }
    })
    .await
    .unwrap();
    worker.stop().await.unwrap();
    ingest.stop().await;

    for (name, from) in EXTERNAL {
        assert!(
            !name.starts_with("hookline_"),
            "{name} ({from}) is Hookline's"
        );
    }
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !exposed.contains(*name) && !EXTERNAL.iter().any(|(n, _)| n == name))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/grafana/hookline.json queries metrics nothing exposes: {missing:?}\n\
         exposed: {exposed:?}"
    );
    // And the dashboard shows every Hookline metric family there is.
    let families: BTreeSet<&str> = exposed
        .iter()
        .filter(|n| n.starts_with("hookline_"))
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
        })
        .collect();
    let shown: BTreeSet<&str> = queried
        .iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
        })
        .collect();
    let unshown: Vec<&&str> = families.difference(&shown).collect();
    assert!(unshown.is_empty(), "metrics without a panel: {unshown:?}");
}
