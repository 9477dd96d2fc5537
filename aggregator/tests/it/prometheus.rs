//! The operations contract of the metrics: a real Prometheus (Debian's package) scrapes a
//! running aggregator with `deploy/prometheus/prometheus.yml`'s job, and every metric that the
//! alert rules and the Grafana dashboard use is one the aggregator exports.

use crate::helpers::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Families in a Prometheus text exposition (`# TYPE` lines and sample names).
fn exported_families(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                out.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// The `expr:` values of a rules file: inline, or a `|` block of more-indented lines.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            if value == "|" || value == ">" {
                let indent = line.len() - trimmed.len();
                let mut block = String::new();
                i += 1;
                while i < lines.len() {
                    let l = lines[i];
                    let ind = l.len() - l.trim_start().len();
                    if !l.trim().is_empty() && ind <= indent {
                        break;
                    }
                    block.push_str(l.trim());
                    block.push(' ');
                    i += 1;
                }
                out.push(block);
                continue;
            }
            out.push(value.to_owned());
        }
        i += 1;
    }
    out
}

/// Every `"expr"` string anywhere in a dashboard.
fn dashboard_expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                match (k.as_str(), val) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_expressions(val, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_expressions(i, out)),
        _ => {}
    }
}

/// Drops every `open … close` span (nesting-aware), e.g. label matchers and ranges.
fn without_spans(s: &str, open: char, close: char) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    let mut in_string = false;
    for c in s.chars() {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && c == open {
            depth += 1;
            continue;
        }
        if !in_string && c == close && depth > 0 {
            depth -= 1;
            continue;
        }
        if depth == 0 && !in_string && c != '"' {
            out.push(c);
        }
    }
    out
}

/// Metric names referenced by a PromQL expression: identifiers that are not functions,
/// aggregations, keywords, label lists, numbers, durations or recording rules (`a:b:c`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 11] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let s = without_spans(&without_spans(expr, '{', '}'), '[', ']');
    // Label lists (`by (a, b)`, `on(instance)`) hold label names, not metrics: drop them.
    let mut words: Vec<String> = Vec::new();
    let mut token = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '$' | '.') {
            token.push(c);
        } else {
            if !token.is_empty() {
                words.push(std::mem::take(&mut token));
            }
            if !c.is_whitespace() {
                words.push(c.to_string());
            }
        }
    }
    if !token.is_empty() {
        words.push(token);
    }
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        if KEYWORDS.contains(&w) {
            if next == Some("(") {
                while i < words.len() && words[i] != ")" {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        let first = w.chars().next().unwrap_or(' ');
        let is_identifier = first.is_ascii_alphabetic() || first == '_';
        let is_call = next == Some("(") || matches!(next, Some("by" | "without"));
        if is_identifier && !is_call && !w.contains(':') {
            names.insert(w.to_owned());
        }
        i += 1;
    }
    names
}

/// A name used in a query is exported when its family is, directly or as a histogram series.
fn is_exported(name: &str, families: &BTreeSet<String>) -> bool {
    if name == "up" {
        return true; // written by Prometheus for every target
    }
    families.contains(name)
        || ["_bucket", "_count", "_sum"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| families.contains(base))
        })
}

async fn one_applied_update(app: &TestApp) {
    let p = app.guest("Scraped").await;
    let token = mint(&p.id, 7, 0, 300, now());
    let r = app.post_score(&p.token, &token).await;
    assert_eq!(r.status(), 200);
}

/// The parser above finds names where they are, and only there.
#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{path!~"/a|/b"}[5m]))) > 0.2 and on(instance) up == 0 or scoreboard:x:rate5m"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["http_request_duration_seconds_bucket", "up"]
    );
}

/// Every metric in `deploy/prometheus/alerts.yml` and `deploy/grafana/aggregator.json` is in
/// the aggregator's `/metrics` once it has served one update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_alerts_and_the_dashboard_is_exported() {
    // With Redis and a read replica, so that their gauges exist too (the "replica" is the
    // primary itself, which the aggregator does not read, but it reports it).
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let app = spawn_app_with(|v| {
        v.insert("REDIS_URL".into(), redis.url.clone());
        v.insert("REDIS_KEY_PREFIX".into(), redis.key_prefix.clone());
        let primary = v["DATABASE_URL"].clone();
        v.insert("DATABASE_REPLICA_URL".into(), primary);
    })
    .await;
    one_applied_update(&app).await;
    let text = client::get_text(&app.http, &app.metrics).await;
    let families = exported_families(&text);

    let rules = std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yml")).unwrap();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_dir().join("grafana/aggregator.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = rule_expressions(&rules);
    let from_rules = exprs.len();
    dashboard_expressions(&dashboard, &mut exprs);
    assert!(from_rules >= 10, "found {from_rules} rule expressions");
    assert!(
        exprs.len() > from_rules + 10,
        "found too few dashboard queries"
    );

    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let missing: Vec<&String> = used.iter().filter(|n| !is_exported(n, &families)).collect();
    assert!(
        missing.is_empty(),
        "used in deploy/ but not exported: {missing:?}\nexported: {families:?}"
    );
    for needed in [
        "http_requests_total",
        "score_updates_total",
        "action_token_validations_total",
        "sse_connections_max",
        "database_up",
        "apply_batch_size",
    ] {
        assert!(used.contains(needed) || used.contains(&format!("{needed}_bucket")));
    }
}

/// A real Prometheus scrapes the aggregator with the shipped job: the target is up and the
/// applied update shows in `score_updates_total`. The shipped rules load with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_aggregator() {
    let prometheus = which("prometheus").expect("scripts/setup installs Debian's prometheus");
    let app = spawn_app().await;
    let metrics_addr = app
        .metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();

    // The shipped configuration, with the static target pointed at this instance, a fast
    // scrape, and without the Kubernetes job (no cluster DNS here).
    let shipped = std::fs::read_to_string(deploy_dir().join("prometheus/prometheus.yml")).unwrap();
    assert!(shipped.contains(r#"targets: ["127.0.0.1:9100"]"#));
    let k8s = shipped
        .find("  # In Kubernetes")
        .expect("the k8s job is last");
    let config = shipped[..k8s]
        .replace("127.0.0.1:9100", &metrics_addr)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    let dir = tempfile_dir();
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        deploy_dir().join("prometheus/alerts.yml"),
        dir.join("alerts.yml"),
    )
    .unwrap();
    let port = scoreboard_tests::free_port();
    let mut child = tokio::process::Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    one_applied_update(&app).await;
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let query = |q: &'static str| {
        let http = app.http.clone();
        let api = api.clone();
        async move {
            let r = http
                .get(format!("{api}/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut up, mut applied) = (None, None);
    while Instant::now() < deadline {
        up = query(r#"up{job="scoreboard-aggregator"}"#).await;
        applied =
            query(r#"sum(score_updates_total{job="scoreboard-aggregator",status="applied"})"#)
                .await;
        if up == Some(1.0) && applied.is_some_and(|a| a >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rules = client::get_json::<Value>(&app.http, &format!("{api}/rules")).await;
    let _ = child.start_kill();
    assert_eq!(up, Some(1.0), "the aggregator target is up");
    // At least this test's update (the recorder is per process: other tests add theirs).
    assert!(
        applied.is_some_and(|a| a >= 1.0),
        "the applied update was scraped: {applied:?}"
    );
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(loaded >= 10, "Prometheus loaded the shipped rules: {rules}");
    let _ = std::fs::remove_dir_all(dir);
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "scoreboard-prometheus-{}-{}",
        std::process::id(),
        now()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
