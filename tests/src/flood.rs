//! Bounded UDP traffic for end-to-end tests: a paced sender (count- and time-bounded, from a
//! chosen lab source, optionally pinned to a CPU) and a receiver that counts per source.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::lab::{Lab, enter_netns};

/// What a sender did.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub packets: u64,
    /// From the first to the last datagram.
    pub elapsed: Duration,
}

/// Hard bounds on every flood, whatever the caller asks.
pub const MAX_PACKETS: u64 = 200_000;
pub const MAX_TIME: Duration = Duration::from_secs(10);

/// Start sending `count` datagrams of `payload` bytes from `src` to `dst` at about `pps`,
/// from namespace `ns`, on CPU `cpu` if given. Stops at `count` or `duration`.
pub fn udp_flood(
    ns: &str,
    src: SocketAddr,
    dst: SocketAddr,
    pps: u64,
    count: u64,
    duration: Duration,
    cpu: Option<usize>,
) -> JoinHandle<Sent> {
    let ns = ns.to_owned();
    let count = count.min(MAX_PACKETS);
    let duration = duration.min(MAX_TIME);
    std::thread::spawn(move || {
        enter_netns(&ns);
        if let Some(cpu) = cpu {
            pin_to_cpu(cpu);
        }
        let socket = UdpSocket::bind(src).unwrap_or_else(|e| panic!("bind {src}: {e}"));
        let payload = [0x5au8; 64];
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            let due = (elapsed.as_secs_f64() * pps as f64) as u64 + 1;
            while sent < due.min(count) {
                // A full socket buffer is not an error for a flood; the next round retries.
                if socket.send_to(&payload, dst).is_ok() {
                    sent += 1;
                } else {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Sent { packets: sent, elapsed: start.elapsed() }
    })
}

/// `udp_flood` from the lab's client namespace: `pps` datagrams per second from `src` (an
/// address of the client namespace) for `secs` seconds.
pub fn send(lab: &Lab, src: &str, dst: SocketAddr, pps: u64, secs: u64) -> JoinHandle<Sent> {
    let ip: std::net::IpAddr = src.parse().unwrap_or_else(|e| panic!("{src}: {e}"));
    udp_flood(
        &lab.client_ns,
        SocketAddr::new(ip, 0),
        dst,
        pps,
        pps * secs,
        Duration::from_secs(secs),
        None,
    )
}

/// Counts datagrams per source address until finished.
pub struct UdpCounter {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<HashMap<IpAddr, u64>>,
}

impl UdpCounter {
    /// Listen on `bind` inside namespace `ns`.
    pub fn start(ns: &str, bind: SocketAddr) -> UdpCounter {
        let ns = ns.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop_flag = stop.clone();
        let handle = std::thread::spawn(move || {
            enter_netns(&ns);
            let socket = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
            socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            ready_tx.send(()).unwrap();
            let mut counts = HashMap::new();
            let mut buf = [0u8; 2048];
            while !stop_flag.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    // A dual-stack socket sees IPv4 senders as ::ffff:a.b.c.d.
                    *counts.entry(from.ip().to_canonical()).or_insert(0) += 1;
                }
            }
            counts
        });
        ready_rx.recv().unwrap();
        UdpCounter { stop, handle }
    }

    /// Drain for a moment, stop, and return the counts.
    pub fn finish(self) -> HashMap<IpAddr, u64> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write inside it; sched_setaffinity(0)
    // applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
}

/// Send frames built by trafgen from the lab's client namespace at the highest rate it
/// reaches on one CPU: `packet` is the trafgen description of everything after the Ethernet
/// addresses (the EtherType first). Bounded by `max_frames` and `duration` (and by MAX_TIME).
/// Returns (frames sent, seconds).
pub fn trafgen(lab: &Lab, packet: &str, max_frames: u64, duration: Duration) -> (u64, f64) {
    let mac = |ns: &str, dev: &str| -> String {
        let o = lab.run_in(ns, &["ip", "-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["address"].as_str().unwrap().to_owned()
    };
    let bytes = |m: String| m.split(':').map(|b| format!("0x{b}")).collect::<Vec<_>>().join(", ");
    let dst = bytes(mac(&lab.server_ns, &lab.server_if));
    let src = bytes(mac(&lab.client_ns, &lab.client_if));
    let config = format!("{{\n  {dst}, {src},\n  {packet}\n}}\n");
    let file = std::env::temp_dir().join(format!("shield-trafgen-{}.cfg", lab.id));
    std::fs::write(&file, config).unwrap();
    let secs = duration.min(MAX_TIME).as_secs_f64().max(1.0).ceil() as u64;
    let started = Instant::now();
    let out = lab.run_in(
        &lab.client_ns,
        &[
            "timeout",
            "--signal=INT",
            &format!("{secs}s"),
            "trafgen",
            "--dev",
            &lab.client_if,
            "--conf",
            file.to_str().unwrap(),
            "--num",
            &max_frames.to_string(),
            "--cpus",
            "1",
            "--gap",
            "0",
        ],
    );
    let elapsed = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // trafgen ends with e.g. "   1234567 packets outgoing".
    let frames = text
        .lines()
        .find(|l| l.contains("packets outgoing"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("trafgen did not report its packets: {text}"));
    (frames, elapsed)
}
