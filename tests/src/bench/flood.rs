//! Survival under a flood, on a veth lab: trafgen sends a bounded flood of UDP frames from
//! random spoofed sources in 198.19.0.0/16 (a range the operator has blocked) at the highest
//! rate it reaches, while a legitimate client makes real HTTP requests to a real server. The
//! same flood is measured with no protection, with nftables doing the same job (netdev ingress,
//! blocklist set and a per-source limit), and with shield, in one run.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{Plan, median};
use crate::{
    agent::Agent,
    lab::{Lab, SERVER_V4, enter_netns, sh},
};

const HTTP_PORT: u16 = 8080;
const FLOOD_PORT: u16 = 9000;
const LEGIT: &str = "198.18.0.10";
/// Hard bound on the flood, whatever the plan asks.
const MAX_FLOOD_FRAMES: u64 = 50_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Protection {
    None,
    Nftables,
    Shield,
}

impl Protection {
    pub fn name(self) -> &'static str {
        match self {
            Protection::None => "no protection",
            Protection::Nftables => "nftables (netdev ingress)",
            Protection::Shield => "shield (XDP)",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FloodResult {
    pub protection: Protection,
    pub flood_frames: u64,
    pub flood_secs: f64,
    pub flood_pps: f64,
    /// Frames the protection itself counted as dropped, per second of flood.
    pub dropped_pps: f64,
    pub requests: usize,
    pub succeeded: usize,
    pub success_rate: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Share of both CPUs busy (not idle) during the flood: sender, stack and filter together.
    pub cpu_busy: f64,
}

pub fn run_all(plan: &Plan) -> Vec<FloodResult> {
    [Protection::None, Protection::Nftables, Protection::Shield]
        .iter()
        .map(|p| run(plan, *p))
        .collect()
}

fn run(plan: &Plan, protection: Protection) -> FloodResult {
    let mut lab = Lab::new(&[&format!("{LEGIT}/16")]);
    lab.start_http_server(HTTP_PORT);
    let agent = match protection {
        Protection::Shield => {
            let a = Agent::start(&lab, &["--metrics-listen", ""]);
            a.ok(&["block", "add", "198.19.0.0/16"]);
            Some(a)
        }
        _ => None,
    };
    if protection == Protection::Nftables {
        nft_protect(&lab);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let client = legit_client(&lab.client_ns, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu_times();
    let (frames, secs) = trafgen_flood(&lab, plan.flood);
    let cpu_after = cpu_times();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let latencies = client.join().unwrap();
    let dropped = match protection {
        Protection::None => 0,
        Protection::Nftables => nft_dropped(&lab),
        Protection::Shield => agent.as_ref().map_or(0, |a| {
            a.counter("blocklisted", "drop") + a.counter("rate_limited_packets", "drop")
        }),
    };
    let requests = latencies.len();
    let ok: Vec<f64> = latencies.iter().filter_map(|l| *l).collect();
    let mut sorted = ok.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            sorted[((sorted.len() - 1) as f64 * p).round() as usize]
        }
    };
    drop(agent);
    FloodResult {
        protection,
        flood_frames: frames,
        flood_secs: secs,
        flood_pps: frames as f64 / secs.max(1e-9),
        dropped_pps: dropped as f64 / secs.max(1e-9),
        requests,
        succeeded: ok.len(),
        success_rate: ok.len() as f64 / requests.max(1) as f64,
        latency_p50_ms: median(ok),
        latency_p99_ms: pct(0.99),
        cpu_busy: {
            let total = (cpu_after.0 - cpu_before.0) as f64;
            let idle = (cpu_after.1 - cpu_before.1) as f64;
            if total > 0.0 { 1.0 - idle / total } else { f64::NAN }
        },
    }
}

/// (all jiffies, idle + iowait jiffies) from /proc/stat's "cpu" line.
fn cpu_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total, idle)
}

/// The legitimate client: sequential HTTP requests (1 s timeout each) until stopped; each
/// request's latency in ms, or None when it failed.
fn legit_client(ns: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Option<f64>>> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let server: SocketAddr = format!("{SERVER_V4}:{HTTP_PORT}").parse().unwrap();
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            out.push(http_get(server).then(|| started.elapsed().as_secs_f64() * 1000.0));
            std::thread::sleep(Duration::from_millis(20));
        }
        out
    })
}

fn http_get(server: SocketAddr) -> bool {
    let timeout = Duration::from_secs(1);
    let Ok(mut s) = TcpStream::connect_timeout(&server, timeout) else { return false };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

/// Flood with trafgen from the client namespace: UDP from random 198.19.x.y sources, bounded
/// in frames and in time. Returns (frames sent, seconds).
fn trafgen_flood(lab: &Lab, duration: Duration) -> (u64, f64) {
    let [p0, p1] = FLOOD_PORT.to_be_bytes();
    // 60-byte frames: IPv4 (total 46), UDP (26) with 18 bytes of payload.
    let packet = format!(
        "0x08, 0x00,\n  0x45, 0x00, 0x00, 0x2e, drnd(2), 0x00, 0x00, 0x40, 0x11, csumip(14, 33),\n  198, 19, drnd(2),\n  198, 18, 0, 1,\n  drnd(2), {p0}, {p1}, 0x00, 0x1a, 0x00, 0x00,\n  fill(0x41, 18)"
    );
    crate::flood::trafgen(lab, &packet, MAX_FLOOD_FRAMES, duration)
}

fn nft_protect(lab: &Lab) {
    let rules = format!(
        "table netdev shieldbench {{\n  set blocklist {{ type ipv4_addr; flags interval; elements = {{ 198.19.0.0/16 }} }}\n  set limiter {{ type ipv4_addr; size 262144; flags dynamic,timeout; timeout 60s; }}\n  chain ingress {{\n    type filter hook ingress device \"{}\" priority -500; policy accept;\n    ip saddr @blocklist counter drop\n    ip saddr 198.18.0.0/15 add @limiter {{ ip saddr limit rate over 10000/second burst 20000 packets }} counter drop\n  }}\n}}\n",
        lab.server_if
    );
    let file = std::env::temp_dir().join(format!("shield-bench-nft-{}.nft", lab.id));
    std::fs::write(&file, rules).unwrap();
    sh(&[
        "nsenter",
        &format!("--net=/run/netns/{}", lab.server_ns),
        "nft",
        "-f",
        file.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&file);
}

fn nft_dropped(lab: &Lab) -> u64 {
    let o = lab.run_in(&lab.server_ns, &["nft", "-j", "list", "table", "netdev", "shieldbench"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let mut total = 0;
    for item in v["nftables"].as_array().into_iter().flatten() {
        for expr in item["rule"]["expr"].as_array().into_iter().flatten() {
            total += expr["counter"]["packets"].as_u64().unwrap_or(0);
        }
    }
    total
}
