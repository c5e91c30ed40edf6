//! `cargo xtask bench [--quick]`: cost per packet against the floor and xdp-filter, survival
//! under a flood against no protection and nftables, control-plane costs; one run, one report.
#![expect(clippy::print_stdout, reason = "a benchmark program reports on stdout")]

use std::path::PathBuf;

use shield_tests::bench::{
    Plan, control, cost, flood,
    report::{self, Machine, Report},
};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    let out: PathBuf =
        std::env::args().skip_while(|a| a != "--out").nth(1).map(PathBuf::from).unwrap_or_else(
            || {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../bench")).join(if quick {
                    "out/quick"
                } else {
                    ""
                })
            },
        );
    if std::env::args().any(|a| a == "--control-only") {
        println!("{}", serde_json::to_string_pretty(&control::run(&plan)).unwrap_or_default());
        return;
    }
    println!("bench: cost per packet ({} repeats × {} runs)", plan.repeat, plan.runs);
    let baselines = cost::Baselines::load();
    let (floor, xdp_filter) = baselines.measure(&plan);
    let shield = cost::shield_paths(&plan, &baselines);
    drop(baselines);
    if std::env::args().any(|a| a == "--cost-only") {
        // For tuning the program: the cost table alone, no report written.
        for c in std::iter::once(&floor).chain(&xdp_filter).chain(&shield) {
            println!(
                "{:>28} {:>8} entries {:>7.1} ns {:>5.2}× floor {:>5.2}× xdp-filter  runs {:?}",
                c.path, c.map_entries, c.ns, c.x_floor, c.x_xdp_filter, c.runs
            );
        }
        return;
    }
    println!("bench: under flood ({:?} per protection)", plan.flood);
    let flood = flood::run_all(&plan);
    println!("bench: control plane ({} blocklist entries)", plan.load_entries);
    let control = control::run(&plan);

    let mut report = Report {
        machine: Machine::read(),
        quick,
        repeat: plan.repeat,
        runs: plan.runs,
        floor,
        xdp_filter,
        shield,
        flood,
        control,
        targets: Vec::new(),
    };
    report.targets = report::targets(&report, &plan);
    if let Err(e) = report::write(&report, &out) {
        eprintln!("error: writing the report to {}: {e}", out.display());
        std::process::exit(1);
    }
    for t in &report.targets {
        println!("{} {}: {}", if t.met { "met    " } else { "NOT MET" }, t.target, t.measured);
    }
    println!("report: {}", out.join("report.md").display());
}
