//! The real `shield` binary in a lab: build it once, start the agent in the server namespace
//! with its own socket and pins, run CLI commands against it, stop it on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use aya::maps::{MapData, PerCpuArray};
use shield_common::counters::{Action, Counter, POLICY_LABELS, Reason, counter_slot};

use crate::lab::Lab;

/// Path of a freshly built `shield` binary (built once per test process).
pub fn shield_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // The binary of the profile this program was built with (release for benchmarks).
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "shield-user", "--bin", "shield"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the shield binary");
        assert!(status.success(), "building the shield binary failed");
        // Tests run from target/<profile>/deps/, binaries from target/<profile>/.
        let exe = std::env::current_exe().unwrap();
        let mut dir = exe.parent().unwrap();
        if dir.ends_with("deps") {
            dir = dir.parent().unwrap();
        }
        let bin = dir.join("shield");
        assert!(bin.exists(), "no shield binary at {}", bin.display());
        bin
    })
}

/// A running agent. Stopped (SIGTERM) on drop; its pins are removed afterwards.
pub struct Agent {
    /// Holds the socket and the log; removed on drop.
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub pin_root: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Leave pins, configuration and state behind on drop (for a restart with a new agent).
    keep_on_drop: bool,
    /// A command that runs `shield run` (e.g. setpriv with a reduced capability set).
    pub wrapper: Vec<String>,
}

impl Agent {
    /// Start `shield run` on the lab's server interface with an empty configuration file and
    /// wait for its socket.
    pub fn start(lab: &Lab, extra: &[&str]) -> Agent {
        Self::start_configured(lab, "", extra)
    }

    /// Start `shield run` with `config` as its configuration file.
    pub fn start_configured(lab: &Lab, config: &str, extra: &[&str]) -> Agent {
        let dir = Self::dir_for(lab);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shield.toml"), config).unwrap();
        Self::start_with(lab, &dir.join("shield.sock"), &Self::pin_root_for(lab), extra)
    }

    /// A handle on an agent that is not running (yet): to spawn one and read its log.
    pub fn handle(socket: PathBuf, pin_root: PathBuf) -> Agent {
        let dir = socket.parent().unwrap().to_owned();
        Agent {
            dir,
            log: socket.with_extension("log"),
            socket,
            pin_root,
            child: None,
            keep_on_drop: false,
            wrapper: Vec::new(),
        }
    }

    /// The directory of this lab's agent: socket, log, configuration, state.
    pub fn dir_for(lab: &Lab) -> PathBuf {
        std::env::temp_dir().join(format!("shield-e2e-{}", lab.id))
    }

    pub fn pin_root_for(lab: &Lab) -> PathBuf {
        PathBuf::from(format!("/sys/fs/bpf/shield-e2e-{}", lab.id))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("shield.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Start an agent with this socket and pin root; its configuration and state live next to
    /// the socket.
    pub fn start_with(lab: &Lab, socket: &Path, pin_root: &Path, extra: &[&str]) -> Agent {
        Self::start_wrapped(lab, socket, pin_root, &[], extra)
    }

    /// Start an agent through `wrapper` (a command prefix such as setpriv).
    pub fn start_wrapped(
        lab: &Lab,
        socket: &Path,
        pin_root: &Path,
        wrapper: &[&str],
        extra: &[&str],
    ) -> Agent {
        let mut agent = Agent::handle(socket.to_owned(), pin_root.to_owned());
        agent.wrapper = wrapper.iter().map(|s| (*s).to_owned()).collect();
        let child = agent.spawn(lab, extra);
        agent.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !agent.cli(&["status"]).status.success() {
            if let Some(status) = agent.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the agent exited ({status}) before it was ready:\n{}", agent.log_text());
            }
            assert!(Instant::now() < deadline, "the agent did not come up:\n{}", agent.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    /// `shield run` as a child, without waiting (for error-case tests).
    pub fn spawn(&self, lab: &Lab, extra: &[&str]) -> Child {
        let log = std::fs::File::create(&self.log).unwrap();
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.server_ns))
            .args(&self.wrapper)
            .arg(shield_bin())
            .args(["run", "--iface", &lab.server_if, "--socket"])
            .arg(&self.socket)
            .arg("--pin-root")
            .arg(&self.pin_root)
            .arg("--config")
            .arg(self.config_path())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Run a CLI command against this agent.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(shield_bin()).arg("--socket").arg(&self.socket).args(args).output().unwrap()
    }

    /// Run a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "shield {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run a CLI command with `-o json` and parse its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Packets counted under (reason, action).
    pub fn counter(&self, reason: &str, action: &str) -> u64 {
        let stats = self.json(&["stats"]);
        stats["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["reason"] == reason && c["action"] == action)
            .map_or(0, |c| c["packets"].as_u64().unwrap())
    }

    /// Frames counted under (reason, action) by each CPU, read from the pinned map.
    pub fn per_cpu_packets(&self, reason: Reason, action: Action) -> Vec<u64> {
        let path =
            shield_user::program::pin_dir(&self.pin_root).join(shield_common::maps::COUNTERS);
        let data = MapData::from_pin(&path).unwrap();
        let counters: PerCpuArray<MapData, Counter> =
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).unwrap();
        let mut per_cpu: Vec<u64> = Vec::new();
        for policy in 0..POLICY_LABELS {
            let values = counters.get(&counter_slot(0, policy, reason, action), 0).unwrap();
            per_cpu.resize(values.len(), 0);
            for (total, c) in per_cpu.iter_mut().zip(values.iter()) {
                *total += c.packets;
            }
        }
        per_cpu
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal to the agent.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill with a valid pid of our own child.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// `kill -9`: the agent gets no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Keep pins, configuration and state when this handle is dropped, so a new agent can
    /// take over.
    pub fn keep_on_drop(mut self) {
        self.keep_on_drop = true;
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill with a valid pid of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        if self.keep_on_drop {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.pin_root);
        if self.dir.starts_with(std::env::temp_dir()) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
