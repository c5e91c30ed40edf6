//! Cost per packet through BPF_PROG_TEST_RUN: every verdict path of shield, the floor (a
//! program that only passes) and xdp-filter with an equivalent one-address rule on the same
//! frames, at several map sizes and over many distinct sources.
//!
//! Everything runs on one CPU, and every run of a shield path is preceded by a run of the
//! floor and of xdp-filter: a path's ratios are the medians of these adjacent pairs, so a
//! machine whose speed drifts during the benchmark (a shared VM) does not bias them.

use std::{io::Write as _, net::Ipv4Addr, process::Command};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
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
    /// Median of each run's cost over the floor's, measured just before it.
    pub x_floor: f64,
    /// Median of each run's cost over xdp-filter's (no match, pass), measured just before it.
    pub x_xdp_filter: f64,
}

/// The CPU every cost measurement runs on.
const BENCH_CPU: usize = 1;

/// Run `f` with the calling thread on [`BENCH_CPU`], then give it back the CPUs it had.
fn on_bench_cpu<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity/sched_setaffinity(0) read and write
    // the calling thread's mask through a valid pointer.
    let before = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        set
    };
    crate::flood::pin_to_cpu(BENCH_CPU);
    let out = f();
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &before) };
    out
}

/// Runs of a path with the baselines measured next to each.
#[derive(Default)]
struct Runs {
    ns: Vec<f64>,
    x_floor: Vec<f64>,
    x_xdp_filter: Vec<f64>,
    verdict: u32,
}

impl Runs {
    fn into_cost(self, path: &str, map_entries: usize) -> PathCost {
        PathCost {
            path: path.into(),
            map_entries,
            ns: median(self.ns.clone()),
            runs: self.ns,
            verdict: self.verdict,
            x_floor: median(self.x_floor),
            x_xdp_filter: median(self.x_xdp_filter),
        }
    }
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

fn time(k: &Kernel, frame: &[u8], plan: &Plan, base: &Baselines) -> Runs {
    let mut runs = Runs::default();
    for _ in 0..plan.runs {
        let (floor, _) = base.floor(plan);
        let (filter, _) = base.xdp_filter(plan, false);
        let (v, d) = k.run_shared(frame, plan.repeat);
        let ns = d.as_nanos() as f64;
        runs.verdict = v;
        runs.ns.push(ns);
        runs.x_floor.push(ns / floor);
        runs.x_xdp_filter.push(ns / filter);
    }
    runs
}

/// Measure every path at every map size.
pub fn shield_paths(plan: &Plan, base: &Baselines) -> Vec<PathCost> {
    on_bench_cpu(|| measure_paths(plan, base))
}

fn measure_paths(plan: &Plan, base: &Baselines) -> Vec<PathCost> {
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
            out.push(time(&k, &frame, plan, base).into_cost(name, size));
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
        // Under limit, over many distinct sources: the median over 16 of them of each one's
        // median.
        let mut sources = Runs::default();
        for s in 0..16u8 {
            let one = time(&k, &ipv4_tcp(v4(1, 10 + s), 443, TCP_SYN), plan, base);
            sources.verdict = one.verdict;
            sources.ns.push(median(one.ns));
            sources.x_floor.push(median(one.x_floor));
            sources.x_xdp_filter.push(median(one.x_xdp_filter));
        }
        out.push(sources.into_cost("under limit (16 sources)", size));
    }
    out
}

/// The baselines: the floor (a program that only passes) and xdp-filter (xdp-tools) loaded
/// on a veth in a namespace of its own with one source-address rule, run with `bpftool prog
/// run` on a frame that matches the rule and one that does not.
pub struct Baselines {
    floor: Kernel,
    lab: Lab,
    xdp_filter_id: u32,
    frames: std::path::PathBuf,
}

impl Baselines {
    pub fn load() -> Baselines {
        let mut floor = Kernel::load();
        let xdp: &mut Xdp = floor.loaded.instances[0]
            .program_mut(shield_common::maps::FLOOR_PROGRAM)
            .expect("the floor program")
            .try_into()
            .unwrap();
        xdp.load().unwrap();
        let lab = Lab::new(&[]);
        let ns = format!("--net=/run/netns/{}", lab.server_ns);
        sh(&["nsenter", &ns, "xdp-filter", "load", &lab.server_if, "--features", "ipv4,tcp,udp"]);
        sh(&["nsenter", &ns, "xdp-filter", "ip", "198.18.2.2", "--mode", "src"]);
        let xdp_filter_id = xdp_prog_id(&lab);
        let frames = std::env::temp_dir().join(format!("shield-bench-frames-{}", lab.id));
        std::fs::create_dir_all(&frames).unwrap();
        for (name, frame) in [
            ("pass.bin", ipv4_tcp(v4(1, 10), 443, TCP_SYN)),
            ("drop.bin", ipv4_tcp(v4(2, 2), 443, TCP_SYN)),
        ] {
            std::fs::File::create(frames.join(name)).unwrap().write_all(&frame).unwrap();
        }
        Baselines { floor, lab, xdp_filter_id, frames }
    }

    /// One run of the floor: (average ns, verdict).
    fn floor(&self, plan: &Plan) -> (f64, u32) {
        let xdp: &Xdp = self.floor.loaded.instances[0]
            .program(shield_common::maps::FLOOR_PROGRAM)
            .expect("the floor program")
            .try_into()
            .unwrap();
        let mut opts = TestRunOptions::new();
        let frame = ipv4_tcp(v4(1, 10), 443, TCP_SYN);
        opts.data_in = Some(&frame);
        opts.repeat = plan.repeat;
        let r = xdp.test_run(opts).unwrap();
        (r.duration.as_nanos() as f64, r.return_value)
    }

    /// One run of xdp-filter on a frame its rule matches (drop) or not (pass).
    fn xdp_filter(&self, plan: &Plan, matching: bool) -> (f64, u32) {
        let file = self.frames.join(if matching { "drop.bin" } else { "pass.bin" });
        let o = sh(&[
            "bpftool",
            "prog",
            "run",
            "id",
            &self.xdp_filter_id.to_string(),
            "data_in",
            file.to_str().unwrap(),
            "repeat",
            &plan.repeat.to_string(),
        ]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        // "Return value: 2, duration (average): 128ns"
        let verdict = text
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
        (ns, verdict)
    }

    /// The baselines on their own, several runs each.
    pub fn measure(&self, plan: &Plan) -> (PathCost, Vec<PathCost>) {
        on_bench_cpu(|| self.measure_alone(plan))
    }

    fn measure_alone(&self, plan: &Plan) -> (PathCost, Vec<PathCost>) {
        let alone = |name: &str, run: &dyn Fn() -> (f64, u32)| {
            let mut runs = Runs::default();
            for _ in 0..plan.runs {
                let (ns, v) = run();
                runs.ns.push(ns);
                runs.verdict = v;
            }
            PathCost { x_floor: f64::NAN, x_xdp_filter: f64::NAN, ..runs.into_cost(name, 1) }
        };
        let floor =
            PathCost { map_entries: 0, ..alone("floor (XDP_PASS only)", &|| self.floor(plan)) };
        let filter = vec![
            alone("xdp-filter no match (pass)", &|| self.xdp_filter(plan, false)),
            alone("xdp-filter match (drop)", &|| self.xdp_filter(plan, true)),
        ];
        (floor, filter)
    }
}

impl Drop for Baselines {
    fn drop(&mut self) {
        let ns = format!("--net=/run/netns/{}", self.lab.server_ns);
        let _ = Command::new("nsenter")
            .args([&ns, "xdp-filter", "unload", &self.lab.server_if])
            .output();
        let _ = std::fs::remove_dir_all(&self.frames);
    }
}

fn xdp_prog_id(lab: &Lab) -> u32 {
    let o = lab.run_in(&lab.server_ns, &["ip", "-j", "-d", "link", "show", "dev", &lab.server_if]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .or_else(|| v[0]["xdp"]["attached"][0]["prog"]["id"].as_u64())
        .expect("xdp-filter's program id") as u32
}
