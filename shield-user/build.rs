//! Builds the XDP program (shield-ebpf) with the nightly toolchain and bpf-linker, so the agent
//! can embed the object.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    // The eBPF crate sits next to this one in the workspace.
    let root = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("shield-user has no parent directory"))?
        .join("shield-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", root.display()))?;
    aya_build::build_ebpf(
        [Package { name: "shield-ebpf", root_dir: root, ..Default::default() }],
        Toolchain::default(),
    )
}
