//! Project tasks: `cargo xtask setup|test|demo|lint`. Every task installs what it needs first,
//! idempotently, so the README's two commands work on a fresh machine.

mod setup;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "shield's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: rust-src (nightly), bpf-linker, Debian packages.
    Setup,
    /// Set up, then run every test: host unit tests, kernel (BPF_PROG_TEST_RUN) tests and
    /// end-to-end tests in network namespaces. Needs root and BPF; never skips.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Set up, then show shield protecting a lab server: a blocked source refused, a flooding
    /// source held to its rate while a legitimate client is served. Cleans up after itself.
    Demo,
    /// Set up, then benchmark: cost per packet against the floor and xdp-filter, behaviour
    /// under a flood against no protection and nftables, control-plane costs. Writes
    /// bench/report.md, bench/report.json and bench/cost-per-packet.svg (quick mode:
    /// bench/out/quick/). Needs root; not part of the tests.
    Bench {
        /// Small repeat counts and maps (under a minute): keeps the benchmark from rotting.
        #[arg(long)]
        quick: bool,
    },
    /// Set up (cargo-fuzz too), then fuzz the frame parser, the configuration parser and the
    /// import parser for a while each (libFuzzer, address sanitizer).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (frame, config, import).
        target: Option<String>,
    },
    /// rustfmt and clippy (eBPF crate and the rest), warnings as errors.
    Lint,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test { args } => {
            setup::run()?;
            let mut test = cargo();
            test.args(["test", "--locked"]).args(&args);
            run(&mut test)
        }
        Task::Demo => {
            setup::run()?;
            run(cargo().args([
                "run",
                "--locked",
                "--quiet",
                "-p",
                "shield-tests",
                "--bin",
                "shield-demo",
            ]))
        }
        Task::Bench { quick } => {
            setup::run()?;
            let mut bench = cargo();
            bench.args([
                "run",
                "--locked",
                "--release",
                "--quiet",
                "-p",
                "shield-tests",
                "--bin",
                "shield-bench",
                "--",
            ]);
            if quick {
                bench.arg("--quick");
            }
            run(&mut bench)
        }
        Task::Fuzz { seconds, target } => {
            setup::run()?;
            setup::cargo_fuzz()?;
            let fuzz_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
            let targets = ["frame", "config", "import"];
            for t in targets.iter().filter(|t| target.as_deref().is_none_or(|want| want == **t)) {
                run(rustup_nightly()
                    .args([
                        "cargo",
                        "fuzz",
                        "run",
                        "-O",
                        t,
                        "--",
                        &format!("-max_total_time={seconds}"),
                    ])
                    .current_dir(&fuzz_dir))?;
            }
            Ok(())
        }
        Task::Lint => {
            setup::run()?;
            run(rustup_nightly().args(["cargo", "fmt", "--all", "--check"]))?;
            run(cargo().args([
                "clippy",
                "--locked",
                "--workspace",
                "--exclude",
                "shield-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            run(rustup_nightly().args([
                "cargo",
                "clippy",
                "--locked",
                "-p",
                "shield-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]))
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn rustup_nightly() -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly"]);
    c
}

/// Run a command, inheriting stdio; fail if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
