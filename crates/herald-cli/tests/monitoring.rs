//! `deploy/monitoring/`: the Prometheus alerting rules and the Grafana dashboard, against the
//! real binary. Every series they name is one a node's `/metrics` exports after a publish and a
//! subscribe (with the label values they match on), every metric family it exports is on the
//! dashboard, the rules have what Alertmanager and a reader need (severity, summary,
//! description) and each is explained in the README's "Operating Herald"; `promtool check
//! rules` parses them as Prometheus will (skipped with a message where promtool is missing,
//! failing in CI, where `.ci/run` installs it).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{get, publish, Node, RawStream};
use serde_json::Value;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring")
}

fn rules() -> Value {
    let text = std::fs::read_to_string(monitoring().join("herald-alerts.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(monitoring().join("herald-dashboard.json")).unwrap()).unwrap()
}

/// A selector in a PromQL expression: the metric name and its `label="value"` matchers (only
/// exact ones: regular expressions and Grafana variables match anything here).
#[derive(Debug)]
struct Selector {
    name: String,
    exact: Vec<(String, String)>,
}

/// The metric names of `expr`: identifiers that start with `herald_`, or are followed by a
/// label matcher `{...}` (functions, keywords and label names are neither). Quoted strings,
/// numbers, durations and `$variables` are skipped.
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' => {
                // A `{` right after a name is read with the name below; one here opens a bare
                // selector (`{__name__="..."}`), which names no metric this check can use.
                while i < b.len() && b[i] != b'}' {
                    i += 1;
                }
            }
            c if c == b'$' || c.is_ascii_digit() => {
                while i < b.len() && (ident(b[i]) || b[i] == b'$' || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident(c) => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let name = &expr[start..i];
                let mut j = i;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                let braces = j < b.len() && b[j] == b'{';
                if !(braces || name.starts_with("herald_")) {
                    continue;
                }
                let mut exact = Vec::new();
                if braces {
                    let end = j + expr[j..].find('}').unwrap();
                    for matcher in expr[j + 1..end].split(',').map(str::trim).filter(|m| !m.is_empty()) {
                        if let Some((label, value)) = matcher.split_once('=') {
                            let value = value.trim();
                            if !value.starts_with('~') && !label.ends_with('!') && !value.contains('$') {
                                exact.push((label.trim().to_owned(), value.trim_matches('"').to_owned()));
                            }
                        }
                    }
                    i = end + 1;
                }
                out.push(Selector { name: name.to_owned(), exact });
            }
            _ => i += 1,
        }
    }
    out
}

/// Every PromQL expression of the rules (`expr`) and the dashboard (targets, template queries).
fn expressions() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for group in rules()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            all.push((format!("rule {name}"), rule["expr"].as_str().unwrap().to_owned()));
        }
    }
    let dash = dashboard();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            all.push((format!("panel {}", panel["title"]), target["expr"].as_str().unwrap().to_owned()));
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(query) = var["query"]["query"].as_str() {
            all.push((format!("variable {}", var["name"]), query.to_owned()));
        }
    }
    all
}

/// Series name → the label sets it is exported with.
type Series = BTreeMap<String, Vec<BTreeMap<String, String>>>;

/// `/metrics` as series, and the metric families (`# TYPE`).
fn scrape(node: &Node) -> (Series, BTreeSet<String>) {
    let (status, text) = get(node.addr, "/metrics");
    assert_eq!(status, 200);
    let mut series = Series::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split_whitespace().next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap();
        let labels = match line[end..].strip_prefix('{') {
            Some(rest) => rest[..rest.find('}').unwrap()]
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                .collect(),
            None => BTreeMap::new(),
        };
        series.entry(line[..end].to_owned()).or_default().push(labels);
    }
    (series, families)
}

#[test]
fn every_series_the_rules_and_dashboard_name_is_exported_after_a_publish_and_a_subscribe() {
    let node = Node::start_with(&[], &[]);
    let mut stream = RawStream::open(node.addr, "/events?topic=monitoring/**");
    stream.wait_for("retry:");
    let ids = publish(node.addr, r#"{"topic":"monitoring/check","data":{"n":1}}"#);
    stream.wait_for(&format!("id: {}", ids[0]));
    let (series, families) = scrape(&node);
    let value = |name: &str| -> f64 {
        let (_, text) = get(node.addr, "/metrics");
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(value("herald_events_published_total") >= 1.0);
    assert!(value("herald_events_delivered_total") >= 1.0);
    assert_eq!(value("herald_clients_connected"), 1.0);

    let mut named = BTreeSet::new();
    for (place, expr) in expressions() {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{place}: no metric in {expr}");
        for s in found {
            named.insert(s.name.clone());
            // Prometheus's own per-target series; every other name is Herald's.
            if s.name == "up" {
                continue;
            }
            let exported = series.get(&s.name).unwrap_or_else(|| panic!("{place}: {} is not in /metrics", s.name));
            for (label, v) in &s.exact {
                assert!(
                    exported.iter().any(|labels| labels.get(label) == Some(v)),
                    "{place}: no {}{{{label}=\"{v}\"}} in /metrics",
                    s.name
                );
            }
        }
    }

    // The dashboard shows every family the node exports (a new metric gets a panel).
    let on_dashboard: Vec<String> = expressions()
        .into_iter()
        .filter(|(place, _)| !place.starts_with("rule "))
        .flat_map(|(_, e)| selectors(&e).into_iter().map(|s| s.name))
        .collect();
    for family in &families {
        assert!(
            on_dashboard
                .iter()
                .any(|n| n == family || n.strip_prefix(family.as_str()).is_some_and(|r| r.starts_with('_'))),
            "{family} is exported but on no dashboard panel"
        );
    }
    assert!(named.contains("up"));
}

#[test]
fn the_parser_finds_metric_names_and_exact_matchers() {
    let found = selectors(
        r#"histogram_quantile(0.99, sum by (instance, le) (rate(herald_publish_duration_seconds_bucket{job=~"$job"}[5m]))) > 0.25
           and sum(herlad_typo{reason="lagged", instance!="x"} offset 15m) or up{job="herald"} == 0"#,
    );
    let names: Vec<_> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["herald_publish_duration_seconds_bucket", "herlad_typo", "up"]);
    assert!(found[0].exact.is_empty());
    assert_eq!(found[1].exact, [("reason".to_owned(), "lagged".to_owned())]);
    assert_eq!(found[2].exact, [("job".to_owned(), "herald".to_owned())]);
}

#[test]
fn rules_say_what_they_mean_and_the_readme_explains_each() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let operating = readme.split("## Operating Herald").nth(1).expect("README: an \"Operating Herald\" section");
    let operating = operating.split("\n## ").next().unwrap();
    let mut alerts = 0;
    for group in rules()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            alerts += 1;
            assert!(name.starts_with("Herald"), "{name}");
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(["critical", "warning", "info"].contains(&severity), "{name}: severity {severity:?}");
            for field in ["summary", "description"] {
                assert!(rule["annotations"][field].as_str().is_some_and(|s| !s.is_empty()), "{name}: {field}");
            }
            assert!(operating.contains(&format!("`{name}`")), "README's Operating Herald does not explain {name}");
        }
    }
    assert!(alerts >= 4, "{alerts} alerts");

    let dash = dashboard();
    let datasource = dash["templating"]["list"].as_array().unwrap().iter().any(|v| v["type"] == "datasource");
    assert!(datasource, "a datasource variable, so the dashboard imports into any Grafana");
    let mut ids = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique");
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{}: gridPos", panel["title"]);
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
    }

    let promtool = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !promtool {
        let msg =
            "promtool is not installed: apt-get install -y --no-install-recommends prometheus (.ci/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED (tool missing): the promtool check; {msg}");
        return;
    }
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(monitoring().join("herald-alerts.yaml"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check rules:\n{text}");
    assert!(text.contains(&format!("SUCCESS: {alerts} rules found")), "{text}");
}
