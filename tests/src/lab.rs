//! Network-namespace labs for end-to-end tests: a server and a client namespace joined by a
//! veth pair, lab addresses only (198.18.0.0/15, 2001:db8::/32), no default route, unique
//! names per run, and a guard that removes everything even when the test fails.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// Server-side addresses.
pub const SERVER_V4: &str = "198.18.0.1";
pub const SERVER_V6_A: &str = "2001:db8:1::1";
pub const SERVER_V6_B: &str = "2001:db8:2::1";

/// Run a command; panic with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out =
        Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Two namespaces joined by a veth pair with two queues per side (so traffic can arrive on
/// both CPUs). Removed on drop.
pub struct Lab {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    pub id: u32,
    children: Vec<Child>,
}

impl Lab {
    /// A lab whose client namespace holds `client_addrs` (CIDR notation, lab ranges only).
    pub fn new(client_addrs: &[&str]) -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() % 100_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed);
        let lab = Lab {
            server_ns: format!("shield-s{id}"),
            client_ns: format!("shield-c{id}"),
            server_if: format!("shs{id}"),
            client_if: format!("shc{id}"),
            id,
            children: Vec::new(),
        };
        sh(&["ip", "netns", "add", &lab.server_ns]);
        sh(&["ip", "netns", "add", &lab.client_ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &lab.server_if,
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "netns",
            &lab.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.client_if,
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "netns",
            &lab.client_ns,
        ]);
        for (ns, ifname) in [(&lab.server_ns, &lab.server_if), (&lab.client_ns, &lab.client_if)] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
        lab.addr(&lab.server_ns, &lab.server_if, &format!("{SERVER_V4}/16"));
        lab.addr(&lab.server_ns, &lab.server_if, &format!("{SERVER_V6_A}/64"));
        lab.addr(&lab.server_ns, &lab.server_if, &format!("{SERVER_V6_B}/64"));
        for a in client_addrs {
            lab.addr(&lab.client_ns, &lab.client_if, a);
        }
        lab
    }

    fn addr(&self, ns: &str, ifname: &str, cidr: &str) {
        assert!(
            cidr.starts_with("198.18.")
                || cidr.starts_with("198.19.")
                || cidr.starts_with("2001:db8:"),
            "lab ranges only: {cidr}"
        );
        if cidr.contains(':') {
            sh(&["ip", "-n", ns, "addr", "add", cidr, "dev", ifname, "nodad"]);
        } else {
            sh(&["ip", "-n", ns, "addr", "add", cidr, "dev", ifname]);
        }
    }

    /// Start a process inside a namespace (network namespace only, so it shares the host's
    /// mounts, /sys/fs/bpf included); killed on drop.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) -> &mut Child {
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nsenter {args:?}: {e}"));
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    /// Run a command in a namespace and return its output (success or not).
    pub fn run_in(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("nsenter").arg(format!("--net=/run/netns/{ns}")).args(args).output().unwrap()
    }

    /// Start a real HTTP server (Python's) on port `port` in the server namespace, on every
    /// lab address, and wait until it answers.
    pub fn start_http_server(&mut self, port: u16) {
        let port_s = port.to_string();
        let ns = self.server_ns.clone();
        self.spawn_in(&ns, &["python3", "-m", "http.server", &port_s, "--bind", "::"]);
        for _ in 0..100 {
            if self
                .run_in(
                    &ns,
                    &["curl", "-s", "-o", "/dev/null", "-m", "1", &format!("http://[::1]:{port}/")],
                )
                .status
                .success()
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the HTTP server in {ns} did not start");
    }

    /// An HTTP GET from `source` (a client address) to `server` (address, no brackets);
    /// whether it got an answer within `timeout_secs`.
    pub fn http_get(&self, source: &str, server: &str, port: u16, timeout_secs: u32) -> bool {
        let url = if server.contains(':') {
            format!("http://[{server}]:{port}/")
        } else {
            format!("http://{server}:{port}/")
        };
        let out = self.run_in(
            &self.client_ns,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--interface",
                source,
                "-m",
                &timeout_secs.to_string(),
                &url,
            ],
        );
        out.status.success() && out.stdout == b"200"
    }

    /// Run `f` on a thread that has entered namespace `ns` (network only).
    pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(ns);
                f()
            })
            .join()
            .unwrap()
        })
    }
}

/// Move the calling thread into network namespace `ns`.
pub fn enter_netns(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: a valid namespace fd; setns affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.server_ns]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.client_ns]).status();
    }
}
