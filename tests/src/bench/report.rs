//! The benchmark report: Markdown for people, JSON for tools, an SVG plot of the cost per
//! packet. Every number in it was measured in the same run.

use std::{fmt::Write as _, path::Path};

use serde::Serialize;

use super::{Plan, control::ControlResult, cost::PathCost, flood::FloodResult};

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub repeat: u32,
    pub runs: usize,
    pub floor: PathCost,
    pub xdp_filter: Vec<PathCost>,
    pub shield: Vec<PathCost>,
    pub flood: Vec<FloodResult>,
    pub control: ControlResult,
    pub targets: Vec<Target>,
}

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub date: String,
    pub commit: String,
}

#[derive(Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or("unknown".into(), |s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let run = |cmd: &[&str]| {
            std::process::Command::new(cmd[0])
                .args(&cmd[1..])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel: run(&["uname", "-r"]),
            date: run(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: run(&["git", "rev-parse", "--short", "HEAD"]),
        }
    }
}

fn path<'a>(report: &'a Report, name: &str, size: usize) -> Option<&'a PathCost> {
    report.shield.iter().find(|p| p.path == name && p.map_entries == size)
}

fn cost(report: &Report, name: &str, size: usize) -> Option<f64> {
    path(report, name, size).map(|p| p.ns)
}

/// Check the issue's targets against what was measured.
pub fn targets(report: &Report, plan: &Plan) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(under) = path(report, "under limit (16 sources)", 1) {
        let r = under.x_xdp_filter;
        out.push(Target {
            target: "pass path under limit ≤ 1.0 × xdp-filter's simple match".into(),
            measured: format!("{:.0} ns; {r:.2}× xdp-filter run next to it", under.ns),
            met: r <= 1.0,
        });
    }
    if let Some(blocked) = path(report, "blocked /32", 1) {
        let r = blocked.x_floor;
        out.push(Target {
            target: "blocklisted drop ≤ 2.5 × the floor".into(),
            measured: format!("{:.0} ns; {r:.2}× the floor run next to it", blocked.ns),
            met: r <= 2.5,
        });
    }
    let largest = plan.sizes.last().copied().unwrap_or(1);
    for name in ["blocked /32", "blocked CIDR", "under limit (16 sources)"] {
        if let (Some(small), Some(big)) = (path(report, name, 1), path(report, name, largest)) {
            // Each size's cost over the floor measured next to it, so drift between the sizes'
            // measurements cancels.
            let r = big.x_floor / small.x_floor;
            out.push(Target {
                target: format!("{name}: cost grows ≤ 1.5× from 1 to {largest} entries"),
                measured: format!(
                    "{:.0} → {:.0} ns; {:.2}× → {:.2}× the floor: {r:.2}×",
                    small.ns, big.ns, small.x_floor, big.x_floor
                ),
                met: r <= 1.5,
            });
        }
    }
    if let Some(shield) =
        report.flood.iter().find(|f| f.protection == super::flood::Protection::Shield)
    {
        let others_below = report
            .flood
            .iter()
            .filter(|f| f.protection != super::flood::Protection::Shield)
            .all(|f| f.success_rate < 0.99);
        out.push(Target {
            target:
                "under flood: legitimate success ≥ 99 % with shield, where the others fall below"
                    .into(),
            measured: report
                .flood
                .iter()
                .map(|f| format!("{}: {:.1} %", f.protection.name(), f.success_rate * 100.0))
                .collect::<Vec<_>>()
                .join("; "),
            met: shield.success_rate >= 0.99 && others_below,
        });
    }
    out.push(Target {
        target: format!("{} blocklist entries load in < 5 s", report.control.blocklist_entries),
        measured: format!("{:.2} s", report.control.load_secs),
        met: report.control.load_secs < 5.0,
    });
    out
}

pub fn write(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(report).unwrap_or_default(),
    )?;
    std::fs::write(dir.join("cost-per-packet.svg"), svg(report))?;
    std::fs::write(dir.join("report.md"), markdown(report))?;
    Ok(())
}

fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# shield benchmark report{}\n",
        if r.quick {
            " (quick mode: small repeat counts, smaller maps; not for quoting)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "Measured {} at commit {} on {} × {}, {:.1} GiB, kernel {}. Written by `cargo xtask bench{}`; every number below comes from this one run.\n",
        m.date,
        m.commit,
        m.cpus,
        m.cpu,
        m.memory_gib,
        m.kernel,
        if r.quick { " --quick" } else { "" }
    );
    let _ = writeln!(s, "## Targets\n\n| target | measured | met |\n|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            t.target,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(
        s,
        "\n## Cost per packet (BPF_PROG_TEST_RUN)\n\nAverage ns per run over {} repeats, median of {} runs (for \"16 sources\": the median over 16 distinct sources of each one's median). The bucket map holds tens of thousands of other sources. Floor: a program that only returns XDP_PASS. xdp-filter: xdp-tools' program with one source-address rule, run with `bpftool prog run`. All on one CPU; every shield run follows a run of the floor and of xdp-filter (no match), and the ratios are the medians of these adjacent pairs, at the smallest map size.\n",
        r.repeat, r.runs
    );
    let _ = writeln!(s, "![cost per packet](cost-per-packet.svg)\n");
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = r.shield.iter().map(|p| p.map_entries).collect();
        v.dedup();
        v
    };
    let _ = write!(s, "| path |");
    for z in &sizes {
        let _ = write!(s, " {z} entries (ns) |");
    }
    let _ = writeln!(s, " × floor | × xdp-filter |");
    let _ = writeln!(s, "|---|{}---|---|", "---|".repeat(sizes.len()));
    let mut paths: Vec<&str> = r.shield.iter().map(|p| p.path.as_str()).collect();
    paths.dedup();
    paths.truncate(r.shield.len() / sizes.len().max(1));
    for path in paths {
        let _ = write!(s, "| {path} |");
        for z in &sizes {
            let _ = write!(s, " {:.0} |", cost(r, path, *z).unwrap_or(f64::NAN));
        }
        let (x_floor, x_filter) = self::path(r, path, sizes[0])
            .map_or((f64::NAN, f64::NAN), |p| (p.x_floor, p.x_xdp_filter));
        let _ = writeln!(s, " {x_floor:.2} | {x_filter:.2} |");
    }
    let _ = writeln!(s, "| {} | {:.0} | | | |", r.floor.path, r.floor.ns);
    for p in &r.xdp_filter {
        let _ = writeln!(s, "| {} | {:.0} | | | |", p.path, p.ns);
    }
    let _ = writeln!(
        s,
        "\n## Under flood (veth lab)\n\ntrafgen sends 60-byte UDP frames from random spoofed sources in 198.19.0.0/16 (a blocked range) at the highest rate it reaches on one CPU, bounded in frames and time; a legitimate client makes sequential HTTP requests (1 s timeout) to a real HTTP server meanwhile. nftables: netdev ingress, a blocklist set and a per-source `limit rate` dynamic set. All three in this run.\n"
    );
    let _ = writeln!(
        s,
        "| protection | flood (frames/s) | dropped by the filter (frames/s) | legitimate success | latency p50 (ms) | latency p99 (ms) | CPU busy (both cores) |\n|---|---|---|---|---|---|---|"
    );
    for f in &r.flood {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {}/{} ({:.1} %) | {:.2} | {:.2} | {:.0} % |",
            f.protection.name(),
            f.flood_pps,
            f.dropped_pps,
            f.succeeded,
            f.requests,
            f.success_rate * 100.0,
            f.latency_p50_ms,
            f.latency_p99_ms,
            f.cpu_busy * 100.0
        );
    }
    let c = &r.control;
    let _ = writeln!(s, "\n## Control plane\n\n| measure | value |\n|---|---|");
    let _ = writeln!(
        s,
        "| load {} blocklist entries (`shield block import`: parse, API, map writes, state file) | {:.2} s |",
        c.blocklist_entries, c.load_secs
    );
    let _ = writeln!(s, "| agent resident memory at rest | {:.1} MiB |", c.rss_at_rest_mib);
    let _ = writeln!(s, "| agent resident memory with full maps | {:.1} MiB |", c.rss_full_mib);
    let _ = writeln!(s, "| kernel memory of the maps, full | {:.1} MiB |", c.maps_kernel_mib);
    let _ = writeln!(
        s,
        "| `/metrics` scrape with {} tracked sources (median of 5) | {:.1} ms |",
        c.tracked_sources, c.scrape_ms_median
    );
    let _ = writeln!(
        s,
        "| prefilter rebuild over {} blocklist entries (reads every key; after removals, at most every 30 s) | {:.2} s |",
        c.blocklist_entries, c.prefilter_rebuild_secs
    );
    s
}

/// Bars: one group per path, one bar per map size; dashed lines for the floor and xdp-filter.
fn svg(r: &Report) -> String {
    let mut paths: Vec<&str> = Vec::new();
    for p in &r.shield {
        if !paths.contains(&p.path.as_str()) {
            paths.push(&p.path);
        }
    }
    let mut sizes: Vec<usize> = Vec::new();
    for p in &r.shield {
        if !sizes.contains(&p.map_entries) {
            sizes.push(p.map_entries);
        }
    }
    let filter = r.xdp_filter.first().map_or(0.0, |p| p.ns);
    let max = r.shield.iter().map(|p| p.ns).fold(filter.max(r.floor.ns), f64::max) * 1.1;
    let (w, h, left, bottom, top) = (900.0, 420.0, 60.0, 90.0, 30.0);
    let plot_h = h - bottom - top;
    let group_w = (w - left - 20.0) / paths.len().max(1) as f64;
    let bar_w = group_w * 0.8 / sizes.len().max(1) as f64;
    let y = |ns: f64| top + plot_h * (1.0 - ns / max);
    let colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"14\">shield: cost per packet (ns, BPF_PROG_TEST_RUN)</text>\n"
    );
    for tick in 0..=5 {
        let ns = max * f64::from(tick) / 5.0;
        let (x2, yy, tx, ty) = (w - 20.0, y(ns), left - 5.0, y(ns) + 4.0);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{ns:.0}</text>"
        );
    }
    for (gi, path) in paths.iter().enumerate() {
        let gx = left + group_w * gi as f64 + group_w * 0.1;
        for (si, size) in sizes.iter().enumerate() {
            if let Some(ns) = cost(r, path, *size) {
                let x = gx + bar_w * si as f64;
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{path}, {size} entries: {ns:.0} ns</title></rect>",
                    y(ns),
                    bar_w * 0.9,
                    top + plot_h - y(ns),
                    colors[si % colors.len()]
                );
            }
        }
        let _ = writeln!(
            s,
            "<text transform=\"translate({:.1},{:.1}) rotate(30)\">{path}</text>",
            gx,
            h - bottom + 14.0
        );
    }
    for (label, ns, color) in [("floor", r.floor.ns, "#000"), ("xdp-filter", filter, "#b279a2")] {
        let (x2, yy, tx, ty) = (w - 20.0, y(ns), w - 22.0, y(ns) - 4.0);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{color}\" stroke-dasharray=\"6,4\"/><text x=\"{tx}\" y=\"{ty:.1}\" fill=\"{color}\" text-anchor=\"end\">{label} {ns:.0} ns</text>"
        );
    }
    for (si, size) in sizes.iter().enumerate() {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{size} entries</text>",
            left + 10.0 + 110.0 * si as f64,
            h - 16.0,
            colors[si % colors.len()],
            left + 24.0 + 110.0 * si as f64,
            h - 7.0
        );
    }
    s.push_str("</svg>\n");
    s
}
