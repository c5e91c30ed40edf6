//! A real Prometheus server in a lab's server namespace, scraping the agent there, and its
//! HTTP API for the tests (queries go through curl inside the namespace).

use std::time::{Duration, Instant};

use crate::lab::Lab;

/// Where the server listens inside the namespace.
pub const LISTEN: &str = "127.0.0.1:9090";

pub struct Prometheus {
    ns: String,
    pub dir: std::path::PathBuf,
}

impl Prometheus {
    /// Start Prometheus in `lab`'s server namespace, scraping `target` every second with job
    /// "shield", with the shipped alert rules loaded; wait until it is ready.
    pub fn start(lab: &mut Lab, target: &str, rules: &std::path::Path) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("shield-prometheus-{}", lab.id));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::copy(rules, dir.join("shield-alerts.yml")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - shield-alerts.yml\nscrape_configs:\n  - job_name: shield\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let ns = lab.server_ns.clone();
        let config_arg = format!("--config.file={}", dir.join("prometheus.yml").display());
        let data_arg = format!("--storage.tsdb.path={}", dir.join("data").display());
        let listen_arg = format!("--web.listen-address={LISTEN}");
        lab.spawn_in(
            &ns,
            &[
                "prometheus",
                &config_arg,
                &data_arg,
                &listen_arg,
                "--storage.tsdb.retention.time=1h",
            ],
        );
        let p = Prometheus { ns, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if p.get(lab, "/-/ready").is_some_and(|b| b.contains("Ready")) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Prometheus did not become ready");
    }

    fn get(&self, lab: &Lab, path: &str) -> Option<String> {
        let out =
            lab.run_in(&self.ns, &["curl", "-s", "-m", "5", &format!("http://{LISTEN}{path}")]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An instant query; returns the `data.result` array. Panics on an error answer.
    pub fn query(&self, lab: &Lab, expr: &str) -> Vec<serde_json::Value> {
        let out = lab.run_in(
            &self.ns,
            &[
                "curl",
                "-s",
                "-m",
                "10",
                "-G",
                "--data-urlencode",
                &format!("query={expr}"),
                &format!("http://{LISTEN}/api/v1/query"),
            ],
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("query {expr:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
        assert_eq!(body["status"], "success", "query {expr:?} failed: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of an instant query that returns one series.
    pub fn value(&self, lab: &Lab, expr: &str) -> f64 {
        let result = self.query(lab, expr);
        assert_eq!(result.len(), 1, "{expr:?} returned {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// Every rule's query, as loaded by the server.
    pub fn rule_queries(&self, lab: &Lab) -> Vec<(String, String)> {
        let body: serde_json::Value =
            serde_json::from_str(&self.get(lab, "/api/v1/rules").unwrap()).unwrap();
        body["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| {
                (r["name"].as_str().unwrap().to_owned(), r["query"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// Wait until Prometheus has scraped the target after `since` (a fresh sample exists).
    pub fn wait_for_scrape(&self, lab: &Lab) {
        let t0 = self.value(lab, "vector(time())");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let r = self.query(lab, "timestamp(up{job=\"shield\"})");
            if let Some(ts) =
                r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse::<f64>().ok())
                && ts > t0 + 0.5
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Prometheus did not scrape the agent");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
