//! A flood from more distinct (spoofed, lab-range) sources than the source map holds: with the
//! new-source admission budget, legitimate clients keep being served, a real heavy source stays
//! limited, and the flood is limited as one aggregate; without it, every spoofed source gets a
//! fresh full bucket and the flood passes. Both in one test, side by side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};

use shield_tests::{
    agent::Agent,
    flood::{UdpCounter, trafgen, udp_flood},
    lab::{Lab, SERVER_V4},
};

const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 9000;
const FLOOD_SECS: u64 = 4;

/// UDP over IPv6 to udp/9000 from random addresses of 2001:db8:ffff::/48 (more than 10^9 of
/// them: every frame is a new source when sources are keyed per address).
fn spoofed_v6_packet() -> String {
    let [p0, p1] = UDP_PORT.to_be_bytes();
    format!(
        "0x86, 0xdd,\n  0x60, 0x00, 0x00, 0x00, 0x00, 0x1a, 17, 64,\n  0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, drnd(10),\n  0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,\n  drnd(2), {p0}, {p1}, 0x00, 0x1a, csumudp6(14, 54),\n  fill(0x41, 18)"
    )
}

struct Outcome {
    flood_frames: u64,
    flood_dropped: u64,
    heavy_received: u64,
    heavy_allowed: f64,
    legit_ok: usize,
    legit_total: usize,
    aggregated: u64,
}

fn run(admit_per_sec: u64) -> Outcome {
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16", "2001:db8:1::10/64"]);
    lab.start_http_server(HTTP_PORT);
    let (rate, burst) = (1_000u64, 100u64);
    let config = format!(
        "[sources]\nadmit_per_sec = {admit_per_sec}\nadmit_burst = {}\naggregate_v6_prefix = 48\n\n[policies.api]\nports = [\"udp/{UDP_PORT}\"]\npps = {rate}\npps_burst = {burst}\nv6_prefix = 128\n",
        admit_per_sec.max(1) * 2
    );
    let agent = Agent::start_configured(&lab, &config, &["--metrics-listen", ""]);
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, format!("[::]:{UDP_PORT}").parse().unwrap());
    // The heavy source is tracked before the flood starts, then keeps sending 5x its rate.
    let heavy = udp_flood(
        &lab.client_ns,
        "198.18.0.20:0".parse().unwrap(),
        server,
        5_000,
        5_000 * (FLOOD_SECS + 1),
        Duration::from_secs(FLOOD_SECS + 1),
        None,
    );
    // The legitimate client keeps making HTTP requests while the flood runs.
    let stop = AtomicBool::new(false);
    let (ok, total) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (flood_frames, heavy) = std::thread::scope(|scope| {
        let lab_ref = &lab;
        let (stop, ok, total) = (&stop, &ok, &total);
        let client = scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                total.fetch_add(1, Ordering::Relaxed);
                if lab_ref.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 2) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let (frames, _) =
            trafgen(lab_ref, &spoofed_v6_packet(), 3_000_000, Duration::from_secs(FLOOD_SECS));
        let heavy = heavy.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap();
        (frames, heavy)
    });
    let got = counter.finish();
    let heavy_received = got.get(&"198.18.0.20".parse::<IpAddr>().unwrap()).copied().unwrap_or(0);
    let flood_dropped = agent.counter("rate_limited_packets", "drop");
    let status = agent.json(&["status"]);
    let aggregated = status["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "sources_aggregated")
        .map_or(0, |h| h[1].as_u64().unwrap());
    Outcome {
        flood_frames,
        flood_dropped: flood_dropped.saturating_sub(heavy.packets - heavy_received),
        heavy_received,
        heavy_allowed: burst as f64 + rate as f64 * heavy.elapsed.as_secs_f64(),
        legit_ok: ok.load(Ordering::Relaxed),
        legit_total: total.load(Ordering::Relaxed),
        aggregated,
    }
}

#[test]
fn spoofed_flood_larger_than_the_source_map_does_not_break_the_limits() {
    let with = run(5_000);
    let without = run(0);
    for (name, o) in [("with admission", &with), ("without admission", &without)] {
        eprintln!(
            "{name}: flood {} frames, {} dropped; heavy received {} (allowed {:.0}); legit {}/{}; aggregated {}",
            o.flood_frames,
            o.flood_dropped,
            o.heavy_received,
            o.heavy_allowed,
            o.legit_ok,
            o.legit_total,
            o.aggregated
        );
    }
    let capacity = u64::from(shield_common::maps::BUCKETS_CAPACITY);
    assert!(
        with.flood_frames > capacity,
        "the flood ({} frames, one new source each) did not outnumber the source map ({capacity})",
        with.flood_frames
    );
    // With the admission budget: the heavy source stays at its rate, legitimate requests are
    // served, and the flood is limited as one aggregate.
    assert!(
        (with.heavy_received as f64 - with.heavy_allowed).abs() <= with.heavy_allowed * 0.10,
        "heavy source got {} for {:.0} allowed",
        with.heavy_received,
        with.heavy_allowed
    );
    assert!(
        with.legit_total > 0 && with.legit_ok * 100 >= with.legit_total * 99,
        "legitimate client served {}/{}",
        with.legit_ok,
        with.legit_total
    );
    assert!(
        with.flood_dropped * 10 >= with.flood_frames * 9,
        "only {} of {} flood frames dropped",
        with.flood_dropped,
        with.flood_frames
    );
    assert!(with.aggregated > 0);
    // Without it, every spoofed source is a fresh, full bucket: the flood passes.
    assert!(
        without.flood_dropped * 10 < without.flood_frames,
        "without admission {} of {} flood frames were dropped",
        without.flood_dropped,
        without.flood_frames
    );
}
