//! Layer 3: the real `shield` binary attached to a veth in a network-namespace lab, driven by
//! its CLI exactly as an operator would, with real clients (curl against a real HTTP server)
//! and bounded UDP floods.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::Duration,
};

use shield_common::counters::{Action, Reason};
use shield_tests::{
    agent::{Agent, shield_bin},
    flood::{Sent, UdpCounter, send, udp_flood},
    lab::{Lab, SERVER_V4, SERVER_V6_A, SERVER_V6_B},
};

const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 9000;

/// Floods measure rates: run one at a time so they do not share the CPUs.
static FLOOD: Mutex<()> = Mutex::new(());

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn blocked_cidr_cannot_connect_while_others_can() {
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16", "198.18.1.10/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    for src in ["198.18.0.10", "198.18.0.20", "198.18.1.10"] {
        assert!(lab.http_get(src, SERVER_V4, HTTP_PORT, 3), "{src} before any block");
    }
    agent.ok(&["block", "add", "198.18.0.0/24"]);
    assert!(!lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 2), "blocked .0.10 connected");
    assert!(!lab.http_get("198.18.0.20", SERVER_V4, HTTP_PORT, 2), "blocked .0.20 connected");
    assert!(lab.http_get("198.18.1.10", SERVER_V4, HTTP_PORT, 3), "unblocked 198.18.1.10 refused");
    assert!(agent.counter("blocklisted", "drop") > 0);
    let list = agent.json(&["block", "list"]);
    assert_eq!(list["entries"][0]["net"], "198.18.0.0/24");
    assert_eq!(list["entries"][0]["origin"], "manual");

    agent.ok(&["block", "delete", "198.18.0.0/24"]);
    assert!(lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 3), "unblocked source still refused");
    assert_eq!(agent.json(&["block", "list"])["entries"].as_array().unwrap().len(), 0);
}

#[test]
fn blocked_ipv6_prefix_cannot_connect_while_others_can() {
    let mut lab = Lab::new(&["2001:db8:1::10/64", "2001:db8:2::10/64"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    assert!(lab.http_get("2001:db8:1::10", SERVER_V6_A, HTTP_PORT, 3));
    agent.ok(&["block", "add", "2001:db8:1::/48"]);
    assert!(
        !lab.http_get("2001:db8:1::10", SERVER_V6_A, HTTP_PORT, 2),
        "blocked IPv6 source connected"
    );
    assert!(
        lab.http_get("2001:db8:2::10", SERVER_V6_B, HTTP_PORT, 3),
        "unblocked IPv6 source refused"
    );
    agent.ok(&["block", "delete", "2001:db8:1::/48"]);
    assert!(lab.http_get("2001:db8:1::10", SERVER_V6_A, HTTP_PORT, 3));
}

#[test]
fn block_with_ttl_expires_by_itself() {
    let mut lab = Lab::new(&["198.18.0.10/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10", "--ttl", "2s"]);
    assert!(!lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 1), "blocked source connected");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 3), "block did not expire");
    // The agent removes expired entries from the map too.
    std::thread::sleep(Duration::from_millis(1500));
    let status = agent.json(&["status"]);
    let block_v4 = status["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "block_v4")
        .unwrap()
        .clone();
    assert_eq!(block_v4["entries"], 0, "expired entry still in the map");
}

#[test]
fn allowlisted_source_passes_a_covering_block() {
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["allow", "add", "198.18.0.10"]);
    // Lockout protection: a block over an allowlisted address needs --force.
    let refused = agent.cli(&["block", "add", "198.18.0.0/24"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("covers allowlisted 198.18.0.10/32"), "{}", stderr(&refused));
    assert_eq!(
        agent.json(&["block", "list"])["entries"].as_array().unwrap().len(),
        0,
        "a refused block changed the list"
    );
    agent.ok(&["block", "add", "198.18.0.0/24", "--force"]);
    assert!(lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 3), "allowlisted source refused");
    assert!(!lab.http_get("198.18.0.20", SERVER_V4, HTTP_PORT, 2), "blocked source connected");
    assert!(agent.counter("allowlisted", "pass") > 0);
}

/// Received from `src`, and the most its limit allows for what was sent.
fn expected_under_limit(sent: &Sent, rate: u64, burst: u64) -> f64 {
    burst as f64 + rate as f64 * sent.elapsed.as_secs_f64()
}

fn within(got: u64, expected: f64, tolerance: f64) -> bool {
    (got as f64 - expected).abs() <= expected * tolerance
}

#[test]
fn flooding_source_gets_its_rate_quiet_source_unaffected() {
    let _serial = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    let agent = Agent::start(&lab, &[]);
    let (rate, burst) = (2_000u64, 200u64);
    agent.ok(&[
        "policy",
        "set",
        "api",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        &rate.to_string(),
        "--pps-burst",
        &burst.to_string(),
    ]);
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server);
    let flood = udp_flood(
        &lab.client_ns,
        "198.18.0.10:0".parse().unwrap(),
        server,
        20_000,
        40_000,
        Duration::from_secs(3),
        None,
    );
    let quiet = udp_flood(
        &lab.client_ns,
        "198.18.0.20:0".parse().unwrap(),
        server,
        200,
        400,
        Duration::from_secs(3),
        None,
    );
    let flood = flood.join().unwrap();
    let quiet = quiet.join().unwrap();
    let got = counter.finish();
    let heavy: IpAddr = "198.18.0.10".parse().unwrap();
    let light: IpAddr = "198.18.0.20".parse().unwrap();
    let expected = expected_under_limit(&flood, rate, burst);
    let received = got.get(&heavy).copied().unwrap_or(0);
    eprintln!(
        "flood sent {} in {:?}, received {received}, expected {expected:.0}; quiet sent {}, received {:?}",
        flood.packets,
        flood.elapsed,
        quiet.packets,
        got.get(&light)
    );
    assert!(
        flood.packets as f64 > expected * 3.0,
        "the flood was not far above its rate (sent {})",
        flood.packets
    );
    assert!(
        within(received, expected, 0.10),
        "flooding source got {received}, its rate allows {expected:.0} (±10%)"
    );
    assert_eq!(
        got.get(&light).copied().unwrap_or(0),
        quiet.packets,
        "the quiet source lost packets"
    );
    // The counters agree with the traffic: every flood packet is either passed or limited.
    let limited = agent.counter("rate_limited_packets", "drop");
    assert!(
        within(limited, (flood.packets - received) as f64, 0.01),
        "limited {limited} vs dropped {}",
        flood.packets - received
    );
}

#[test]
fn limit_holds_when_one_source_arrives_on_both_cpus() {
    let _serial = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent = Agent::start(&lab, &[]);
    let (rate, burst) = (2_000u64, 200u64);
    agent.ok(&[
        "policy",
        "set",
        "api",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        &rate.to_string(),
        "--pps-burst",
        &burst.to_string(),
    ]);
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server);
    let senders: Vec<_> = (0..2)
        .map(|cpu| {
            udp_flood(
                &lab.client_ns,
                "198.18.0.10:0".parse().unwrap(),
                server,
                10_000,
                20_000,
                Duration::from_secs(3),
                Some(cpu),
            )
        })
        .collect();
    let sent: Vec<Sent> = senders.into_iter().map(|h| h.join().unwrap()).collect();
    let got = counter.finish();
    let received = got.get(&"198.18.0.10".parse::<IpAddr>().unwrap()).copied().unwrap_or(0);
    let elapsed = sent.iter().map(|s| s.elapsed).max().unwrap();
    let expected = expected_under_limit(&Sent { packets: 0, elapsed }, rate, burst);
    eprintln!(
        "sent {:?}, received {received}, expected {expected:.0}",
        sent.iter().map(|s| s.packets).collect::<Vec<_>>()
    );
    assert!(
        within(received, expected, 0.10),
        "one source on two CPUs got {received}, its rate allows {expected:.0} (±10%)"
    );
    // The program really ran on both CPUs for this source.
    let per_cpu = agent.per_cpu_packets(Reason::RateLimitedPackets, Action::Drop);
    eprintln!("limited per CPU: {per_cpu:?}");
    assert!(
        per_cpu.iter().filter(|&&n| n > 1_000).count() >= 2,
        "frames were not limited on two CPUs: {per_cpu:?}"
    );
}

#[test]
fn ipv6_sources_are_limited_per_64() {
    let _serial = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(&["2001:db8:1::10/64", "2001:db8:1::11/64", "2001:db8:2::10/64"]);
    let agent = Agent::start(&lab, &[]);
    let (rate, burst) = (1_000u64, 100u64);
    agent.ok(&[
        "policy",
        "set",
        "api",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        &rate.to_string(),
        "--pps-burst",
        &burst.to_string(),
    ]);
    let counter = UdpCounter::start(&lab.server_ns, format!("[::]:{UDP_PORT}").parse().unwrap());
    let to_a: SocketAddr = format!("[{SERVER_V6_A}]:{UDP_PORT}").parse().unwrap();
    let to_b: SocketAddr = format!("[{SERVER_V6_B}]:{UDP_PORT}").parse().unwrap();
    // Two addresses of one /64 flood together; a source in another /64 stays quiet.
    let f1 = send(&lab, "2001:db8:1::10", to_a, 5_000, 2);
    let f2 = send(&lab, "2001:db8:1::11", to_a, 5_000, 2);
    let quiet = send(&lab, "2001:db8:2::10", to_b, 100, 2);
    let (s1, s2, sq) = (f1.join().unwrap(), f2.join().unwrap(), quiet.join().unwrap());
    let got = counter.finish();
    let get = |a: &str| got.get(&a.parse::<IpAddr>().unwrap()).copied().unwrap_or(0);
    let received = get("2001:db8:1::10") + get("2001:db8:1::11");
    let expected = expected_under_limit(
        &Sent { packets: 0, elapsed: s1.elapsed.max(s2.elapsed) },
        rate,
        burst,
    );
    eprintln!(
        "/64 sent {}, received {received}, expected {expected:.0}; quiet {} of {}",
        s1.packets + s2.packets,
        get("2001:db8:2::10"),
        sq.packets
    );
    assert!(
        within(received, expected, 0.10),
        "the /64 got {received}, its rate allows {expected:.0} (±10%)"
    );
    assert_eq!(get("2001:db8:2::10"), sq.packets, "the quiet /64 lost packets");
}

/// Send `pps` datagrams per second for `secs` seconds from `src` to the server's UDP port;
/// returns how many were sent and how many the server received from `src`.
fn udp_through(lab: &Lab, src: &str, pps: u64, secs: u64) -> (u64, u64) {
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server);
    let sent = send(lab, src, server, pps, secs).join().unwrap();
    let got = counter.finish();
    (sent.packets, got.get(&src.parse::<IpAddr>().unwrap()).copied().unwrap_or(0))
}

#[test]
fn monitor_mode_passes_everything_and_counts_would_drops() {
    let _serial = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &["--monitor"]);
    assert_eq!(agent.json(&["policy", "global"])["monitor"], true);
    agent.ok(&["block", "add", "198.18.0.10"]);
    agent.ok(&[
        "policy",
        "set",
        "api",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        "100",
        "--pps-burst",
        "10",
    ]);
    assert!(
        lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 3),
        "monitor mode dropped a blocked source"
    );
    assert!(agent.counter("blocklisted", "would_drop") > 0);
    assert_eq!(agent.counter("blocklisted", "drop"), 0);
    let (sent, received) = udp_through(&lab, "198.18.0.20", 2_000, 1);
    assert_eq!(received, sent, "monitor mode dropped over-limit traffic");
    assert!(agent.counter("rate_limited_packets", "would_drop") > sent / 2);
    assert_eq!(agent.counter("rate_limited_packets", "drop"), 0);
    // Switching monitor off enforces again, without a restart.
    agent.ok(&["policy", "global", "--monitor", "off"]);
    assert!(
        !lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 2),
        "blocked source connected after monitor off"
    );
}

#[test]
fn per_policy_monitor_mode_counts_without_dropping() {
    let _serial = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new(&["198.18.0.20/16"]);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&[
        "policy",
        "set",
        "trial",
        "--ports",
        &format!("udp/{UDP_PORT}"),
        "--pps",
        "100",
        "--pps-burst",
        "10",
        "--monitor",
        "on",
    ]);
    let (sent, received) = udp_through(&lab, "198.18.0.20", 2_000, 1);
    assert_eq!(received, sent, "policy monitor mode dropped over-limit traffic");
    assert!(agent.counter("rate_limited_packets", "would_drop") > 0);
    let policies = agent.json(&["policy", "list"]);
    let trial = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "trial")
        .unwrap()
        .clone();
    assert_eq!(trial["monitor"], true);
    assert_eq!(trial["ports"][0], "udp/9000");
}

#[test]
fn clean_stop_detaches_the_program() {
    let mut lab = Lab::new(&["198.18.0.10/16"]);
    lab.start_http_server(HTTP_PORT);
    let mut agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    assert!(!lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 1));
    let status = agent.stop().unwrap();
    assert!(status.success(), "agent exit status {status}:\n{}", agent.log_text());
    let link = lab.run_in(&lab.server_ns, &["ip", "link", "show", &lab.server_if]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "program still attached after a clean stop"
    );
    assert!(
        lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 3),
        "traffic still dropped after a clean stop"
    );
}

// ---- the CLI's error cases: one clear line, non-zero exit, nothing changed ----

#[test]
fn invalid_addresses_are_refused_and_change_nothing() {
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.5.0/24"]);
    let before = agent.ok(&["block", "list", "-o", "json"]);
    for args in [
        vec!["block", "add", "198.18.0.999"],
        vec!["block", "add", "not-an-ip"],
        vec!["block", "add", "198.18.0.7/16"],
        vec!["block", "add", "2001:db8::/129"],
        vec!["block", "add", "198.18.9.9", "bogus"],
        vec!["block", "add", "198.18.9.9", "--ttl", "soon"],
        vec!["block", "delete", "198.18.7.0/24"],
        vec!["allow", "add", "::g"],
        vec!["policy", "set", "api", "--ports", "tcp/99999"],
        vec!["policy", "set", "Bad Name", "--pps", "10"],
        vec!["policy", "set", "api", "--v4-prefix", "33"],
        vec!["policy", "set", "default", "--ports", "tcp/80"],
        vec!["policy", "set", "api", "--pps", "2000000000"],
    ] {
        let out = agent.cli(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        let extra: Vec<&str> = err.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
        assert!(
            extra.is_empty() || extra == ["For more information, try '--help'."],
            "{args:?}: not one line: {err}"
        );
    }
    assert_eq!(
        agent.ok(&["block", "list", "-o", "json"]),
        before,
        "a refused command changed the blocklist"
    );
    assert_eq!(
        agent.json(&["policy", "list"])["policies"].as_array().unwrap().len(),
        1,
        "a refused command added a policy"
    );
}

#[test]
fn cli_without_an_agent_says_so() {
    let out = std::process::Command::new(shield_bin())
        .args(["--socket", "/nonexistent/shield.sock", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no shield agent is running"), "{}", stderr(&out));
}

#[test]
fn unknown_interface_is_refused() {
    let lab = Lab::new(&[]);
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.server_ns))
        .arg(shield_bin())
        .args([
            "run",
            "--iface",
            "nosuch0",
            "--socket",
            &format!("/tmp/shield-e2e-{}-x.sock", lab.id),
            "--pin-root",
            &format!("/sys/fs/bpf/shield-e2e-{}-x", lab.id),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("interface 'nosuch0' does not exist"), "{}", stderr(&out));
}

#[test]
fn second_agent_on_the_same_interface_is_refused() {
    let mut lab = Lab::new(&["198.18.0.10/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    // Same socket and pins: the lock refuses it.
    let same = agent.spawn(&lab, &[]).wait_with_output().unwrap();
    assert!(!same.status.success());
    assert!(
        std::fs::read_to_string(&agent.log)
            .unwrap()
            .contains("another shield agent is already running")
    );
    // Other socket and pins, same interface: the kernel already has a program there.
    let dir = std::env::temp_dir().join(format!("shield-e2e-{}-second", lab.id));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("none.toml"), "").unwrap();
    let other = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.server_ns))
        .arg(shield_bin())
        .args(["run", "--iface", &lab.server_if, "--socket"])
        .arg(dir.join("s.sock"))
        .args(["--pin-root", &format!("/sys/fs/bpf/shield-e2e-{}-second", lab.id)])
        .arg("--config")
        .arg(dir.join("none.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/shield-e2e-{}-second", lab.id));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!other.status.success());
    assert!(stderr(&other).contains("already has an XDP program attached"), "{}", stderr(&other));
    // The first agent is untouched and still protecting.
    assert!(agent.cli(&["status"]).status.success());
    assert!(
        !lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 1),
        "the refused agent disturbed the running one"
    );
}

#[test]
fn unprivileged_users_get_a_clear_refusal() {
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent = Agent::start(&lab, &[]);
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(shield_bin())
            .args(args)
            .output()
            .unwrap()
    };
    let run = as_nobody(&["run", "--iface", "lo", "--socket", "/tmp/shield-nobody.sock"]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("lacks CAP_BPF"), "{}", stderr(&run));
    let socket = agent.socket.to_str().unwrap().to_owned();
    // The socket's directory is world-traversable here; the socket itself is 0660 root.
    std::fs::set_permissions(
        agent.socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let status = as_nobody(&["--socket", &socket, "status"]);
    assert!(!status.status.success());
    assert!(
        stderr(&status).contains("permission denied")
            && stderr(&status).contains("only root may use it"),
        "{}",
        stderr(&status)
    );
}

// ---- least privilege ----

#[test]
fn agent_runs_with_only_the_capabilities_it_needs() {
    let mut lab = Lab::new(&["198.18.0.10/16"]);
    lab.start_http_server(HTTP_PORT);
    let dir = Agent::dir_for(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shield.toml"), "").unwrap();
    let agent = Agent::start_wrapped(
        &lab,
        &dir.join("shield.sock"),
        &Agent::pin_root_for(&lab),
        &["setpriv", "--bounding-set=-all,+bpf,+perfmon,+net_admin", "--inh-caps=-all", "--"],
        &[],
    );
    agent.ok(&["block", "add", "198.18.0.10"]);
    assert!(!lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 1), "blocked source connected");
}

#[test]
fn a_missing_capability_is_named() {
    let lab = Lab::new(&[]);
    let dir = Agent::dir_for(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shield.toml"), "").unwrap();
    let mut probe = Agent::handle(dir.join("shield.sock"), Agent::pin_root_for(&lab));
    probe.wrapper = ["setpriv", "--bounding-set=-all,+perfmon,+net_admin", "--inh-caps=-all", "--"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let out = probe.spawn(&lab, &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let log = probe.log_text();
    // Only the missing one is named as missing.
    assert!(
        log.contains("lacks CAP_BPF (create maps and load the program); run it as root"),
        "{log}"
    );
    assert!(
        !Agent::pin_root_for(&lab).join("v4").exists()
            || std::fs::read_dir(Agent::pin_root_for(&lab)).unwrap().count() == 0,
        "a refused agent created pins"
    );
}

/// A user and a group that exist for one test, removed on drop.
struct TempAccount {
    user: String,
    group: Option<String>,
}

impl TempAccount {
    fn new(user: &str, group: Option<&str>) -> TempAccount {
        if let Some(g) = group {
            shield_tests::lab::sh(&["groupadd", g]);
        }
        let mut cmd = vec![
            "useradd",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--no-user-group",
            "--gid",
            "nogroup",
        ];
        if let Some(g) = group {
            cmd.extend(["--groups", g]);
        }
        cmd.push(user);
        shield_tests::lab::sh(&cmd);
        TempAccount { user: user.to_owned(), group: group.map(str::to_owned) }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("setpriv")
            .args(["--reuid", &self.user, "--regid", "nogroup", "--init-groups", "--"])
            .arg(shield_bin())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TempAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.user).output();
        if let Some(g) = &self.group {
            let _ = std::process::Command::new("groupdel").arg(g).output();
        }
    }
}

#[test]
fn socket_group_members_use_the_cli_and_others_are_told_why_not() {
    let lab = Lab::new(&[]);
    let group = format!("shg{}", lab.id);
    let member = TempAccount::new(&format!("shm{}", lab.id), Some(&group));
    let outsider = TempAccount::new(&format!("sho{}", lab.id), None);
    let agent =
        Agent::start_configured(&lab, &format!("[agent]\nsocket_group = \"{group}\"\n"), &[]);
    // The socket's directory must be traversable; the socket itself is 0660 root:group.
    std::fs::set_permissions(&agent.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let socket = agent.socket.to_str().unwrap().to_owned();
    let ok = member.run(&["--socket", &socket, "block", "add", "198.18.9.9"]);
    assert!(ok.status.success(), "a member of {group} could not use the CLI: {}", stderr(&ok));
    let refused = outsider.run(&["--socket", &socket, "status"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!("member of group '{group}'")),
        "{}",
        stderr(&refused)
    );
    let refused = outsider.run(&["--socket", &socket, "block", "add", "198.18.8.8"]);
    assert!(!refused.status.success());
    assert_eq!(agent.json(&["block", "list"])["entries"].as_array().unwrap().len(), 1);
}
