//! Idempotent set-up of a fresh Debian machine for shield: rust-src for the nightly toolchain,
//! bpf-linker 0.13 linked against the nightly's own LLVM 22, and the Debian packages the tests
//! and benchmarks use. Each step checks first and does nothing when already done.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::run as run_command;

/// Debian packages the tests, the demo and the benchmarks use.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",    // ip netns, veth
    "util-linux",  // nsenter, setpriv
    "curl",        // the HTTP client in end-to-end tests
    "python3",     // the HTTP server in end-to-end tests
    "bpftool",     // inspecting programs and maps
    "xdp-tools",   // xdp-filter, the benchmark baseline
    "nftables",    // the benchmark baseline
    "hping3",      // floods
    "netsniff-ng", // trafgen
    "wrk",         // HTTP load
    "prometheus",  // the real Prometheus server and promtool
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
        .context("rustup did not list the nightly toolchain's components; is the nightly toolchain installed?")?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: installing rust-src for the nightly toolchain");
    run_command(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker() -> anyhow::Result<()> {
    if let Some(v) = output(Command::new("bpf-linker").arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    let prefix = llvm_prefix()?;
    eprintln!(
        "setup: building bpf-linker {BPF_LINKER_VERSION} against {} (about two minutes)",
        prefix.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_command(
        Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
                "--force",
            ])
            .env("LLVM_PREFIX", &prefix)
            // Build with the toolchain the machine defaults to, not whatever invoked xtask.
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
}

/// A prefix whose lib/ holds the nightly toolchain's own libLLVM (the exact LLVM that emits
/// the bitcode bpf-linker links), under the user's cache directory so it outlives `cargo clean`.
fn llvm_prefix() -> anyhow::Result<PathBuf> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot failed; is the nightly toolchain installed?")?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let libllvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    if !libllvm.starts_with("libLLVM.so.22") {
        bail!(
            "the nightly toolchain ships {libllvm}; bpf-linker is built with its llvm-22 feature and needs LLVM 22"
        );
    }
    // Without a cache directory, the workspace's target directory (`cargo clean` then means
    // the next set-up rebuilds bpf-linker).
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let prefix = cache.join("shield").join("llvm-22-prefix");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(lib_dir.join(&libllvm), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(prefix)
}

fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    run_command(
        Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// cargo-fuzz, for `cargo xtask fuzz` (not needed by the tests).
pub fn cargo_fuzz() -> anyhow::Result<()> {
    if let Some(v) =
        output(Command::new("rustup").args(["run", "nightly", "cargo", "fuzz", "--version"]))
        && v.contains(CARGO_FUZZ_VERSION)
    {
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_command(Command::new(cargo).args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}
