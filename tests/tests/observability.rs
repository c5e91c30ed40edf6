//! Metrics, dashboard and alerts, proven against a real Prometheus server: it scrapes a real
//! agent in a namespace lab while known traffic is sent; every dashboard query and every alert
//! expression runs through Prometheus' HTTP API, and the answers are checked against the
//! traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use shield_tests::{
    agent::Agent,
    flood::{UdpCounter, udp_flood},
    lab::{Lab, SERVER_V4, sh},
    prometheus::Prometheus,
};

const UDP_PORT: u16 = 9000;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy")).join(path)
}

#[test]
fn alert_rules_and_scrape_config_pass_promtool() {
    sh(&["promtool", "check", "rules", deploy("prometheus/shield-alerts.yml").to_str().unwrap()]);
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "shield-alerts_test.yml"])
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sh(&["promtool", "check", "config", deploy("prometheus/prometheus.yml").to_str().unwrap()]);
}

#[test]
fn dashboard_is_provisionable_and_parameterised() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/dashboards/shield.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "shield-overview");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "interface"]);
    for p in dash["panels"].as_array().unwrap() {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} has a fixed datasource",
            p["title"]
        );
    }
    let provisioning =
        std::fs::read_to_string(deploy("grafana/provisioning/dashboards/shield.yaml")).unwrap();
    assert!(provisioning.contains("type: file") && provisioning.contains("apiVersion: 1"));
}

/// Every query of the dashboard, with Grafana's variables bound.
fn dashboard_queries(interface: &str) -> Vec<(String, String)> {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/dashboards/shield.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$interface", interface)
                .replace("$__rate_interval", "20s");
            out.push((p["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

#[test]
fn prometheus_sees_what_was_sent_and_every_query_answers() {
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16", "198.18.0.30/16"]);
    let agent = Agent::start(&lab, &["--metrics-listen", "127.0.0.1:9477"]);
    let (rate, burst) = (500u64, 50u64);
    agent.ok(&[
        "policy",
        "set",
        "api",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        &rate.to_string(),
        "--pps-burst",
        &burst.to_string(),
    ]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    let prom =
        Prometheus::start(&mut lab, "127.0.0.1:9477", &deploy("prometheus/shield-alerts.yml"));
    prom.wait_for_scrape(&lab);

    // The exposition itself is valid.
    let metrics = lab.run_in(&lab.server_ns, &["curl", "-s", "http://127.0.0.1:9477/metrics"]);
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), &metrics.stdout).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let landing = lab.run_in(&lab.server_ns, &["curl", "-s", "http://127.0.0.1:9477/"]);
    assert!(String::from_utf8_lossy(&landing.stdout).contains("href=\"/metrics\""));

    // Known traffic: a blocked source, a source over its limit, a quiet one.
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server);
    let blocked = udp_flood(
        &lab.client_ns,
        "198.18.0.10:0".parse().unwrap(),
        server,
        2_000,
        3_000,
        Duration::from_secs(3),
        None,
    );
    let flood = udp_flood(
        &lab.client_ns,
        "198.18.0.20:0".parse().unwrap(),
        server,
        5_000,
        10_000,
        Duration::from_secs(3),
        None,
    );
    let quiet = udp_flood(
        &lab.client_ns,
        "198.18.0.30:0".parse().unwrap(),
        server,
        100,
        200,
        Duration::from_secs(3),
        None,
    );
    let (blocked, flood, quiet) =
        (blocked.join().unwrap(), flood.join().unwrap(), quiet.join().unwrap());
    let got = counter.finish();
    let flood_received = got.get(&"198.18.0.20".parse().unwrap()).copied().unwrap_or(0);
    assert_eq!(got.get(&"198.18.0.30".parse().unwrap()).copied().unwrap_or(0), quiet.packets);
    std::thread::sleep(Duration::from_millis(500));
    prom.wait_for_scrape(&lab);

    // Drops by reason, through Prometheus, within 1 % of what was sent.
    let iface = lab.server_if.clone();
    let drops = |reason: &str| {
        prom.value(&lab, &format!("sum(shield_packets_total{{interface=\"{iface}\",reason=\"{reason}\",action=\"drop\"}})"))
    };
    let within = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
    assert!(
        within(drops("blocklisted"), blocked.packets as f64),
        "blocklisted drops {} vs {} sent",
        drops("blocklisted"),
        blocked.packets
    );
    let limited = (flood.packets - flood_received) as f64;
    assert!(
        within(drops("rate_limited_packets"), limited),
        "rate-limited drops {} vs {limited}",
        drops("rate_limited_packets")
    );
    let api_passed = prom.value(
        &lab,
        &format!(
            "sum(shield_packets_total{{interface=\"{iface}\",policy=\"api\",action=\"pass\"}})"
        ),
    );
    let expected_pass = (flood_received + quiet.packets) as f64;
    assert!(
        within(api_passed, expected_pass),
        "api policy passed {api_passed} vs {expected_pass} received"
    );
    assert_eq!(prom.value(&lab, "sum(shield_list_entries{list=\"block\"})"), 1.0);
    // One blocked address: one /24 slot of the prefilter sends its sources to the lookups.
    assert_eq!(prom.value(&lab, "shield_prefilter_slots{list=\"block\"}"), 1.0);
    assert_eq!(prom.value(&lab, "sum(shield_prefilter_bypass)"), 0.0);
    assert_eq!(prom.value(&lab, "shield_sources_capacity"), 262_144.0);

    // Every dashboard query answers, with data: a metric the dashboard uses that the agent
    // does not export would come back empty.
    for (panel, expr) in dashboard_queries(&iface) {
        let result = prom.query(&lab, &expr);
        assert!(!result.is_empty(), "dashboard panel {panel:?}: {expr} returned no data");
    }
    let traffic = prom.query(
        &lab,
        &format!("sum by (action) (rate(shield_packets_total{{interface=~\"{iface}\"}}[20s]))"),
    );
    assert!(traffic.iter().any(|s| s["metric"]["action"] == "drop"
        && s["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 0.0));

    // Every alert expression evaluates; none fires on a healthy agent.
    let rules = prom.rule_queries(&lab);
    assert_eq!(rules.len(), 6, "{rules:?}");
    for (name, expr) in &rules {
        let result = prom.query(&lab, expr);
        assert!(result.is_empty(), "alert {name} fires on a healthy agent: {result:?}");
    }

    // A detached program shows in the attach state, and its alert expression fires.
    let link =
        agent.pin_root.join(format!("v{}/link-{iface}", shield_common::maps::LAYOUT_VERSION));
    let info = sh(&["bpftool", "-j", "link", "show", "pinned", link.to_str().unwrap()]);
    let id =
        serde_json::from_slice::<serde_json::Value>(&info.stdout).unwrap()["id"].as_u64().unwrap();
    sh(&["bpftool", "link", "detach", "id", &id.to_string()]);
    prom.wait_for_scrape(&lab);
    assert_eq!(prom.value(&lab, &format!("shield_program_attached{{interface=\"{iface}\"}}")), 0.0);
    let (_, detached) = rules.iter().find(|(n, _)| n == "ShieldProgramDetached").unwrap();
    assert_eq!(
        prom.query(&lab, detached).len(),
        1,
        "the detached-program alert expression does not fire"
    );
}
