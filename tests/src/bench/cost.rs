//! Cost per packet through BPF_PROG_TEST_RUN: every verdict path of shield, the floor (a
//! program that only passes) and xdp-filter with an equivalent one-address rule on the same
//! frames, at several map sizes and over many distinct sources.

use std::{io::Write as _, net::Ipv4Addr, process::Command};

use serde::Serialize;
use shield_common::{
    lists::Origin,
    policy::{IPPROTO_TCP, port_policy_slot},
    source::{SourceKey, SourceState},
};
use shield_user::{lists::ListKind, policies::PolicySpec};

use super::{Plan, median};
use crate::{
    frames::*,
    kernel::Kernel,
    lab::{Lab, sh},
};

/// One measured path.
#[derive(Clone, Debug, Serialize)]
pub struct PathCost {
    pub path: String,
    pub map_entries: usize,
    /// Median of the runs' average ns per packet.
    pub ns: f64,
    pub runs: Vec<f64>,
    pub verdict: u32,
}

/// An IPv4 address outside the lab range the frames come from, scrambled from `i` (no
/// traffic is ever sent to it).
pub fn filler_addr(i: usize) -> Ipv4Addr {
    let mut x = (i as u32).wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x5bd1_e995;
    if x >> 17 == (198u32 << 24 | 18 << 16) >> 17 {
        x ^= 0x8000_0000;
    }
    Ipv4Addr::from(x)
}

/// A feed of `n` entries the way large ones look: mostly addresses, plus up to 1000 CIDRs (the
/// size of the Spamhaus DROP list).
pub fn feed(n: usize) -> Vec<String> {
    let cidrs = (n / 10).min(1000);
    let mut out: Vec<String> = (0..n - cidrs).map(|i| format!("{}/32", filler_addr(i))).collect();
    out.extend((0..cidrs).map(|i| {
        let a = u32::from(filler_addr(1 << 30 | i)) & 0xffff_ff00;
        format!("{}/24", Ipv4Addr::from(a))
    }));
    out
}

fn fill(k: &mut Kernel, kind: ListKind, n: usize) {
    let mut list = k.list(kind);
    for net in feed(n) {
        let _ = list.insert(net.parse().unwrap(), None, Origin::Import);
    }
}

/// Distinct tracked sources in the bucket map, so the hash is not near-empty.
fn fill_sources(k: &mut Kernel, n: u32) {
    for i in 0..n {
        let key =
            SourceKey::v4((0x0a00_0000u32.wrapping_add(i << 8) ^ 0x4000_0000).to_be_bytes(), 32, 0);
        let _ = k.loaded.maps.buckets.insert(key, SourceState::default(), 0);
    }
}

fn time(k: &Kernel, frame: &[u8], plan: &Plan) -> (Vec<f64>, u32) {
    let mut runs = Vec::new();
    let mut verdict = 0;
    for _ in 0..plan.runs {
        let (v, d) = k.run_shared(frame, plan.repeat);
        verdict = v;
        runs.push(d.as_nanos() as f64);
    }
    (runs, verdict)
}

/// Measure every path at every map size.
pub fn shield_paths(plan: &Plan) -> Vec<PathCost> {
    let mut out = Vec::new();
    for &size in plan.sizes {
        let mut k = Kernel::load();
        // Under-limit traffic must never run out of budget over millions of repeats, so the
        // default policy allows 10^9/s: the bucket work (lookup, compare-and-swap) still runs.
        let generous = PolicySpec {
            packets: shield_user::policies::RateSpec { rate: 1_000_000_000, burst: 1_000_000_000 },
            syn: shield_user::policies::RateSpec { rate: 1_000_000_000, burst: 1_000_000_000 },
            ..PolicySpec::builtin_default()
        };
        k.set_policy(0, &generous.to_kernel().unwrap());
        let tight = PolicySpec {
            name: "tight".into(),
            packets: shield_user::policies::RateSpec { rate: 1, burst: 1 },
            ..PolicySpec::builtin_default()
        };
        k.set_policy(1, &tight.to_kernel().unwrap());
        k.set_port_policy(port_policy_slot(IPPROTO_TCP, 9).unwrap(), 1);
        fill(&mut k, ListKind::Block, size.saturating_sub(4));
        // Allowlists stay small (management ranges, partners): 16 entries at every size.
        fill(&mut k, ListKind::Allow, 15);
        fill_sources(&mut k, if plan.quick { 10_000 } else { 100_000 });
        k.add(ListKind::Allow, "198.18.7.7", None);
        k.add(ListKind::Block, "198.18.2.2", None);
        k.add(ListKind::Block, "198.18.3.0/24", None);
        k.list(ListKind::Block)
            .insert("198.18.4.4/32".parse().unwrap(), None, Origin::Auto)
            .unwrap();
        let mut path = |name: &str, frame: Vec<u8>| {
            let (runs, verdict) = time(&k, &frame, plan);
            out.push(PathCost {
                path: name.into(),
                map_entries: size,
                ns: median(runs.clone()),
                runs,
                verdict,
            });
        };
        path("allowlisted", ipv4_tcp(v4(7, 7), 443, TCP_SYN));
        path("blocked /32", ipv4_tcp(v4(2, 2), 443, TCP_SYN));
        path("blocked CIDR", ipv4_tcp(v4(3, 3), 443, TCP_SYN));
        path("banned (auto)", ipv4_tcp(v4(4, 4), 443, TCP_SYN));
        path("malformed", {
            let mut f = ipv4_tcp(v4(1, 1), 443, TCP_SYN);
            f[14] = 0x43;
            f
        });
        path("ipv6 under limit", ipv6_tcp(v6(1, 1), 443, TCP_ACK));
        // Over limit: a source already out of budget under the 1/s policy (the first run of
        // its first measurement spends the budget).
        path("over limit", ipv4_tcp(v4(5, 5), 9, TCP_ACK));
        // Under limit, over many distinct sources: the median over 16 of them.
        let mut per_source = Vec::new();
        let mut verdict = 0;
        for s in 0..16u8 {
            let (runs, v) = time(&k, &ipv4_tcp(v4(1, 10 + s), 443, TCP_SYN), plan);
            verdict = v;
            per_source.push(median(runs));
        }
        out.push(PathCost {
            path: "under limit (16 sources)".into(),
            map_entries: size,
            ns: median(per_source.clone()),
            runs: per_source,
            verdict,
        });
    }
    out
}

/// The floor: a program that only passes, on the same frame.
pub fn floor(plan: &Plan) -> PathCost {
    use aya::programs::{TestRun as _, TestRunOptions, Xdp};
    let mut k = Kernel::load();
    let frame = ipv4_tcp(v4(1, 10), 443, TCP_SYN);
    let xdp: &mut Xdp = k.loaded.instances[0]
        .program_mut(shield_common::maps::FLOOR_PROGRAM)
        .expect("the floor program")
        .try_into()
        .unwrap();
    xdp.load().unwrap();
    let mut runs = Vec::new();
    let mut verdict = 0;
    for _ in 0..plan.runs {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&frame);
        opts.repeat = plan.repeat;
        let r = xdp.test_run(opts).unwrap();
        verdict = r.return_value;
        runs.push(r.duration.as_nanos() as f64);
    }
    PathCost {
        path: "floor (XDP_PASS only)".into(),
        map_entries: 0,
        ns: median(runs.clone()),
        runs,
        verdict,
    }
}

/// xdp-filter (xdp-tools) loaded on a veth in a namespace of its own, with one source-address
/// rule; measured with `bpftool prog run` on its program, on frames that match the rule and
/// frames that do not.
pub fn xdp_filter(plan: &Plan) -> Vec<PathCost> {
    let lab = Lab::new(&[]);
    let ns = format!("--net=/run/netns/{}", lab.server_ns);
    sh(&["nsenter", &ns, "xdp-filter", "load", &lab.server_if, "--features", "ipv4,tcp,udp"]);
    sh(&["nsenter", &ns, "xdp-filter", "ip", "198.18.2.2", "--mode", "src"]);
    let id = xdp_prog_id(&lab);
    let dir = std::env::temp_dir().join(format!("shield-bench-frames-{}", lab.id));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    for (name, frame) in [
        ("xdp-filter no match (pass)", ipv4_tcp(v4(1, 10), 443, TCP_SYN)),
        ("xdp-filter match (drop)", ipv4_tcp(v4(2, 2), 443, TCP_SYN)),
    ] {
        let file = dir.join("frame.bin");
        std::fs::File::create(&file).unwrap().write_all(&frame).unwrap();
        let mut runs = Vec::new();
        let mut verdict = 0;
        for _ in 0..plan.runs {
            let o = sh(&[
                "bpftool",
                "prog",
                "run",
                "id",
                &id.to_string(),
                "data_in",
                file.to_str().unwrap(),
                "repeat",
                &plan.repeat.to_string(),
            ]);
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            // "Return value: 2, duration (average): 128ns"
            verdict = text
                .split("Return value: ")
                .nth(1)
                .and_then(|t| t.split(',').next())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let ns: f64 = text
                .split("(average): ")
                .nth(1)
                .and_then(|t| t.trim().trim_end_matches("ns").parse().ok())
                .unwrap_or_else(|| panic!("bpftool prog run: {text}"));
            runs.push(ns);
        }
        out.push(PathCost {
            path: name.into(),
            map_entries: 1,
            ns: median(runs.clone()),
            runs,
            verdict,
        });
    }
    let _ = Command::new("nsenter").args([&ns, "xdp-filter", "unload", &lab.server_if]).output();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn xdp_prog_id(lab: &Lab) -> u32 {
    let o = lab.run_in(&lab.server_ns, &["ip", "-j", "-d", "link", "show", "dev", &lab.server_if]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .or_else(|| v[0]["xdp"]["attached"][0]["prog"]["id"].as_u64())
        .expect("xdp-filter's program id") as u32
}
