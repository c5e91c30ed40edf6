//! Control-plane costs, with the release binary in a lab: loading a large blocklist through
//! the CLI (an import: parse, API, map writes, state file), the agent's memory at rest and with
//! full maps, `/metrics` scrape time with a full bucket map, and a rebuild of the list
//! prefilter over a blocklist of the same size (which holds the agent's lock while it runs).

use std::time::Instant;

use aya::maps::{HashMap, MapData};
use serde::Serialize;
use shield_common::{
    maps::{BUCKETS, BUCKETS_CAPACITY},
    source::{SourceKey, SourceState},
};

use super::{Plan, median};
use crate::{agent::Agent, lab::Lab};

#[derive(Clone, Debug, Serialize)]
pub struct ControlResult {
    pub blocklist_entries: usize,
    pub load_secs: f64,
    pub rss_at_rest_mib: f64,
    pub rss_full_mib: f64,
    /// Kernel memory of the pinned maps (bpftool's memlock), full.
    pub maps_kernel_mib: f64,
    pub tracked_sources: usize,
    pub scrape_ms_median: f64,
    /// One prefilter rebuild (every list key read from the maps) over `blocklist_entries`.
    pub prefilter_rebuild_secs: f64,
}

/// Time one prefilter rebuild over a blocklist of `n` entries shaped like a real feed, on a
/// program of its own.
fn prefilter_rebuild_secs(n: usize) -> f64 {
    use shield_user::lists::ListKind;
    let mut k = crate::kernel::Kernel::load();
    let nets: Vec<ipnet::IpNet> = super::cost::feed(n).iter().map(|s| s.parse().unwrap()).collect();
    let entry = shield_user::lists::entry(None, shield_common::lists::Origin::Import, 0);
    k.list(ListKind::Block).insert_many(&nets, entry).unwrap();
    let started = Instant::now();
    let (_, read) = k.loaded.maps.rebuild_prefilter();
    let secs = started.elapsed().as_secs_f64();
    let distinct: std::collections::HashSet<_> = nets.iter().collect();
    assert_eq!(read, distinct.len(), "the rebuild read every entry");
    secs
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub fn run(plan: &Plan) -> ControlResult {
    let lab = Lab::new(&[]);
    let agent = Agent::start(&lab, &["--metrics-listen", "127.0.0.1:9477"]);
    let pid = agent.pid().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rss_at_rest = rss_mib(pid);

    // A large feed: addresses plus a DROP-sized set of CIDRs, outside the lab ranges.
    let mut feed = super::cost::feed(plan.load_entries).join("\n");
    feed.push('\n');
    let file = agent.dir.join("feed.txt");
    std::fs::write(&file, &feed).unwrap();
    let started = Instant::now();
    let report = agent.json(&["block", "import", file.to_str().unwrap()]);
    let load_secs = started.elapsed().as_secs_f64();
    if let Some(line) = agent.log_text().lines().find(|l| l.contains("blocklist imported")) {
        eprintln!("bench: {line}");
    }
    let entries = report["total"].as_u64().unwrap() as usize;

    // Fill the bucket map to capacity, as a flood from many sources would.
    let path = shield_user::program::pin_dir(&agent.pin_root).join(BUCKETS);
    let data = MapData::from_pin(&path).unwrap();
    let mut buckets: HashMap<MapData, SourceKey, SourceState> =
        HashMap::try_from(aya::maps::Map::LruHashMap(data)).unwrap();
    for i in 0..BUCKETS_CAPACITY {
        let key = SourceKey::v4(i.wrapping_mul(2_654_435_761).to_be_bytes(), 32, 0);
        let _ = buckets.insert(key, SourceState::default(), 0);
    }
    // Let the agent count the sources (every 5 s).
    std::thread::sleep(std::time::Duration::from_secs(6));
    let rss_full = rss_mib(pid);
    let mut scrapes = Vec::new();
    let mut tracked = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let out = lab.run_in(&lab.server_ns, &["curl", "-s", "http://127.0.0.1:9477/metrics"]);
        scrapes.push(t.elapsed().as_secs_f64() * 1000.0);
        let text = String::from_utf8_lossy(&out.stdout);
        tracked = text
            .lines()
            .find(|l| l.starts_with("shield_sources_tracked "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    let maps_kernel_mib =
        maps_memlock(&shield_user::program::pin_dir(&agent.pin_root)) / (1024.0 * 1024.0);
    ControlResult {
        blocklist_entries: entries,
        load_secs,
        rss_at_rest_mib: rss_at_rest,
        rss_full_mib: rss_full,
        maps_kernel_mib,
        tracked_sources: tracked,
        scrape_ms_median: median(scrapes),
        prefilter_rebuild_secs: prefilter_rebuild_secs(entries),
    }
}

/// Sum of bpftool's memlock over the pinned maps in `dir`.
fn maps_memlock(dir: &std::path::Path) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("link-") {
            continue;
        }
        let out = std::process::Command::new("bpftool")
            .args(["-j", "map", "show", "pinned"])
            .arg(entry.path())
            .output();
        if let Ok(o) = out
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        {
            total += v["bytes_memlock"].as_f64().unwrap_or(0.0);
        }
    }
    total
}
