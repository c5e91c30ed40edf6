//! A harness around the real program in the kernel: load it with its own pins, fill its maps
//! through the agent's own code, feed frames with BPF_PROG_TEST_RUN, read the counters.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use shield_common::{
    config::RuntimeConfig,
    counters::{Action, Counter, Reason},
    lists::Origin,
    policy::Policy,
};
use shield_user::{
    agent::bpffs,
    lists::{List, ListKind, parse_net},
    program::Loaded,
    stats::{by_reason, read_counters, reason_index},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The program loaded into the kernel with maps pinned in a directory of its own, removed
/// again on drop.
pub struct Kernel {
    pub loaded: Loaded,
    pin_dir: PathBuf,
}

impl Kernel {
    /// Load the program. Panics (fails the test) when the kernel cannot load BPF: these tests
    /// must never skip silently.
    pub fn load() -> Kernel {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let root = PathBuf::from("/sys/fs/bpf");
        bpffs::ensure_mounted(&root)
            .expect("a bpffs at /sys/fs/bpf (these tests need root and BPF)");
        let pin_dir = root.join(format!(
            "shield-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&pin_dir).expect("create the pin directory");
        let loaded = match Loaded::load(&pin_dir) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&pin_dir);
                panic!("load the XDP program (needs root and BPF): {e:?}");
            }
        };
        let mut kernel = Kernel { loaded, pin_dir };
        kernel.set_policy(
            0,
            &shield_user::policies::PolicySpec::builtin_default().to_kernel().unwrap(),
        );
        kernel
    }

    /// Run one frame; returns the XDP verdict.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        self.run_shared(frame, 1).0
    }

    /// Run one frame `repeat` times; returns the last verdict and the kernel's average per
    /// run. Takes `&self` so threads on several CPUs can run the program at once.
    pub fn run_shared(&self, frame: &[u8], repeat: u32) -> (u32, Duration) {
        let xdp: &Xdp = self.loaded.instances[0]
            .program(shield_common::maps::PROGRAM)
            .unwrap()
            .try_into()
            .unwrap();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat;
        let result = xdp.test_run(opts).expect("BPF_PROG_TEST_RUN");
        (result.return_value, result.duration)
    }

    /// All counters, summed over CPUs, interfaces and policies, by `reason_index`.
    pub fn counters(&self) -> Vec<Counter> {
        by_reason(&read_counters(&self.loaded.maps))
    }

    pub fn counter(&self, reason: Reason, action: Action) -> Counter {
        self.counters()[reason_index(reason, action)]
    }

    /// Counters that differ between two snapshots, as (reason, action, delta packets).
    pub fn changed(before: &[Counter], after: &[Counter]) -> Vec<(Reason, Action, u64)> {
        let mut out = Vec::new();
        for reason in Reason::ALL {
            for action in Action::ALL {
                let slot = reason_index(reason, action);
                let d = after[slot].packets - before[slot].packets;
                if d != 0 {
                    out.push((reason, action, d));
                }
            }
        }
        out
    }

    pub fn set_policy(&mut self, slot: u32, policy: &Policy) {
        self.loaded.maps.policies.set(slot, policy, 0).unwrap();
    }

    pub fn set_port_policy(&mut self, port_slot: u32, policy_slot: u32) {
        self.loaded.maps.port_policy.set(port_slot, policy_slot, 0).unwrap();
    }

    pub fn set_config(&mut self, flags: u32) {
        self.loaded
            .maps
            .config
            .set(0, RuntimeConfig { flags, ..RuntimeConfig::default() }, 0)
            .unwrap();
    }

    pub fn list(&mut self, kind: ListKind) -> List<'_> {
        self.loaded.maps.list(kind)
    }

    pub fn add(&mut self, kind: ListKind, net: &str, ttl: Option<Duration>) {
        self.list(kind).insert(parse_net(net).unwrap(), ttl, Origin::Manual).unwrap();
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}
