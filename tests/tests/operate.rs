//! Layer 3, operating shield for months: configuration and reload, durable state, crash,
//! restart and upgrade, auto-bans, lockout protection, events, top and imports. The real
//! binary in network-namespace labs, real traffic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use shield_tests::{
    agent::{Agent, shield_bin},
    flood::{UdpCounter, send},
    lab::{Lab, SERVER_V4, sh},
};

const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 9000;

/// Traffic-measuring tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn server() -> SocketAddr {
    format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nets(agent: &Agent, list: &str) -> Vec<(String, String)> {
    agent.json(&[list, "list"])["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["net"].as_str().unwrap().to_owned(), e["origin"].as_str().unwrap().to_owned()))
        .collect()
}

/// Poll `f` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

// ---- configuration ----

#[test]
fn config_check_accepts_the_example_and_names_bad_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/shield.toml");
    let ok = std::process::Command::new(shield_bin())
        .args(["config", "check", example])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let dir = std::env::temp_dir().join(format!("shield-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (text, needle) in [
        ("[global]\nmonitr = true\n", "monitr"),
        ("[policies.api]\nports = [\"tcp/99999\"]\n", "policies.api.ports[0]"),
        ("[lists]\nblock = [\"198.18.0.7/16\"]\n", "lists.block[0]"),
        ("[autoban]\nenabled = true\nthreshold = 0\n", "autoban.threshold"),
        ("not toml at all [", "shield.toml"),
    ] {
        let f = dir.join("shield.toml");
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new(shield_bin())
            .args(["config", "check"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text:?} passed the check");
        assert!(stderr(&out).contains(needle), "{text:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
    let show = std::process::Command::new(shield_bin())
        .args(["config", "show", "-c", example])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("[policies.api]")
            && shown.contains("pps = 500")
            && shown.contains("syn_burst = 40"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_applies_a_valid_config_and_refuses_a_bad_one() {
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent =
        Agent::start_configured(&lab, "[policies.api]\nports = [\"udp/9000\"]\npps = 100\n", &[]);
    agent.ok(&["block", "add", "198.18.0.66"]);
    let pps = |agent: &Agent, name: &str| {
        agent.json(&["policy", "list"])["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["packets"]["rate"].as_u64().unwrap())
    };
    assert_eq!(pps(&agent, "api"), Some(100));

    std::fs::write(agent.config_path(), "[policies.api]\nports = [\"udp/9000\"]\npps = 500\n[policies.web]\nports = [\"tcp/8080\"]\npps = 50\n").unwrap();
    agent.ok(&["reload"]);
    assert_eq!(pps(&agent, "api"), Some(500));
    assert_eq!(pps(&agent, "web"), Some(50));

    // A bad file: refused with the key named, the previous configuration stays in force.
    std::fs::write(
        agent.config_path(),
        "[policies.api]\nports = [\"udp/9000\"]\npps = 1\n[policies.web]\nburst = 3\n",
    )
    .unwrap();
    let out = agent.cli(&["reload"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("burst"), "{}", stderr(&out));
    assert_eq!(pps(&agent, "api"), Some(500), "a refused reload changed a policy");
    let status = agent.json(&["status"]);
    assert_eq!(status["reload"]["last_ok"], false);
    assert_eq!(status["reload"]["failed"], 1);

    // SIGHUP reloads too; blocks and counters are untouched by reloads.
    std::fs::write(agent.config_path(), "[policies.api]\nports = [\"udp/9000\"]\npps = 42\n")
        .unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(5), || pps(&agent, "api") == Some(42)),
        "SIGHUP did not reload"
    );
    assert_eq!(pps(&agent, "web"), None, "a policy removed from the file is still there");
    assert_eq!(nets(&agent, "block"), vec![("198.18.0.66/32".to_owned(), "manual".to_owned())]);
}

// ---- durable state ----

#[test]
fn dynamic_entries_and_policies_survive_a_restart_and_expire() {
    let _s = serial();
    let mut lab = Lab::new(&["198.18.0.10/16", "198.18.0.11/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10", "--reason", "credential stuffing"]);
    agent.ok(&["block", "add", "198.18.0.11", "--ttl", "4s"]);
    agent.ok(&["allow", "add", "2001:db8:1::/64"]);
    agent.ok(&["policy", "set", "api", "--ports", "udp/9000", "--pps", "77"]);
    let state = std::fs::read_to_string(agent.state_dir().join("state.json")).unwrap();
    assert!(
        state.contains("198.18.0.10/32")
            && state.contains("198.18.0.11/32")
            && state.contains("2001:db8:1::/64")
            && state.contains("\"api\""),
        "{state}"
    );
    let dir = agent.dir.clone();
    agent.keep_on_drop(); // clean stop: the program is detached, pins and state stay

    let agent = Agent::start_with(&lab, &dir.join("shield.sock"), &Agent::pin_root_for(&lab), &[]);
    let blocks = nets(&agent, "block");
    assert!(blocks.contains(&("198.18.0.10/32".to_owned(), "manual".to_owned())), "{blocks:?}");
    let listed = agent.json(&["block", "list"]);
    let entry = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["net"] == "198.18.0.10/32")
        .unwrap()
        .clone();
    assert_eq!(entry["reason"], "credential stuffing");
    assert!(entry["created_at_unix"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(nets(&agent, "allow"), vec![("2001:db8:1::/64".to_owned(), "manual".to_owned())]);
    assert!(agent.ok(&["policy", "list"]).contains("77/s"));
    assert!(
        !lab.http_get("198.18.0.10", SERVER_V4, HTTP_PORT, 1),
        "a restored block does not block"
    );
    // The TTL entry expires from the maps and the state file.
    assert!(eventually(Duration::from_secs(8), || !nets(&agent, "block")
        .iter()
        .any(|(n, _)| n == "198.18.0.11/32")));
    assert!(eventually(Duration::from_secs(3), || !std::fs::read_to_string(
        agent.state_dir().join("state.json")
    )
    .unwrap()
    .contains("198.18.0.11/32")));
    assert!(lab.http_get("198.18.0.11", SERVER_V4, HTTP_PORT, 3));
}

#[test]
fn a_corrupt_state_file_stops_the_agent_with_a_kept_copy() {
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    let state_dir = agent.state_dir();
    let dir = agent.dir.clone();
    agent.keep_on_drop();
    let file = state_dir.join("state.json");
    let full = std::fs::read(&file).unwrap();
    std::fs::write(&file, &full[..full.len() / 2]).unwrap();

    let probe = probe_handle(&lab, &dir);
    let out = probe.spawn(&lab, &[]).wait_with_output().unwrap();
    assert!(!out.status.success(), "the agent started over a corrupt state file");
    let log = probe.log_text();
    assert!(log.contains("is unreadable") && log.contains("corrupt"), "{log}");
    let kept: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert_eq!(kept.len(), 1, "no kept copy");
    assert_eq!(std::fs::read(&file).unwrap(), &full[..full.len() / 2], "the state file was reset");
}

/// An agent handle for a lab whose agent is not running (to spawn one and read its log).
fn probe_handle(lab: &Lab, dir: &std::path::Path) -> Agent {
    Agent::handle(dir.join("shield.sock"), Agent::pin_root_for(lab))
}

// ---- crash, restart, upgrade ----

#[test]
fn kill_dash_9_keeps_protection_and_the_next_agent_adopts_it() {
    let _s = serial();
    let lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    let mut agent = Agent::start(&lab, &[]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    let counter = UdpCounter::start(&lab.server_ns, server());
    let blocked = send(&lab, "198.18.0.10", server(), 2_000, 4);
    let allowed = send(&lab, "198.18.0.20", server(), 500, 4);
    std::thread::sleep(Duration::from_millis(1000));
    agent.kill9();
    let (b, a) = (blocked.join().unwrap(), allowed.join().unwrap());
    let got = counter.finish();
    assert_eq!(
        got.get(&ip("198.18.0.10")).copied().unwrap_or(0),
        0,
        "a blocked source got packets through while the agent was dead"
    );
    assert_eq!(
        got.get(&ip("198.18.0.20")).copied().unwrap_or(0),
        a.packets,
        "allowed traffic was lost"
    );
    let link = lab.run_in(&lab.server_ns, &["ip", "link", "show", &lab.server_if]);
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "no program attached after kill -9"
    );

    let dir = agent.dir.clone();
    agent.keep_on_drop();
    let agent = Agent::start_with(&lab, &dir.join("shield.sock"), &Agent::pin_root_for(&lab), &[]);
    let status = agent.json(&["status"]);
    assert_eq!(status["interfaces"][0]["mode"], "adopted");
    assert!(agent.counter("blocklisted", "drop") >= b.packets, "the counters did not continue");
    assert_eq!(nets(&agent, "block"), vec![("198.18.0.10/32".to_owned(), "manual".to_owned())]);
}

#[test]
fn upgrade_replaces_the_program_with_no_packet_through() {
    let _s = serial();
    let lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    let old = Agent::start(&lab, &["--keep-attached"]);
    old.ok(&["block", "add", "198.18.0.10"]);
    let old_id = old.json(&["status"])["program_id"].as_u64().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server());
    let blocked = send(&lab, "198.18.0.10", server(), 5_000, 4);
    let allowed = send(&lab, "198.18.0.20", server(), 500, 4);
    std::thread::sleep(Duration::from_millis(800));
    let dir = old.dir.clone();
    old.keep_on_drop(); // SIGTERM with --keep-attached: the program stays
    let new = Agent::start_with(&lab, &dir.join("shield.sock"), &Agent::pin_root_for(&lab), &[]);
    let (b, a) = (blocked.join().unwrap(), allowed.join().unwrap());
    let got = counter.finish();
    let new_id = new.json(&["status"])["program_id"].as_u64().unwrap();
    assert_ne!(old_id, new_id, "the program was not replaced");
    assert!(b.packets > 10_000);
    assert_eq!(
        got.get(&ip("198.18.0.10")).copied().unwrap_or(0),
        0,
        "a blocked source got packets through the upgrade"
    );
    assert_eq!(
        got.get(&ip("198.18.0.20")).copied().unwrap_or(0),
        a.packets,
        "allowed traffic was lost in the upgrade"
    );
}

#[test]
fn pinned_maps_of_another_layout_are_refused() {
    let lab = Lab::new(&[]);
    let pin_root = Agent::pin_root_for(&lab);
    let pin_dir = shield_user::program::pin_dir(&pin_root);
    std::fs::create_dir_all(&pin_dir).unwrap();
    let bogus = pin_dir.join("BLOCK_V4");
    sh(&[
        "bpftool",
        "map",
        "create",
        bogus.to_str().unwrap(),
        "type",
        "hash",
        "key",
        "8",
        "value",
        "8",
        "entries",
        "16",
        "name",
        "BLOCK_V4",
    ]);
    let dir = Agent::dir_for(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shield.toml"), "").unwrap();
    let probe = probe_handle(&lab, &dir);
    let out = probe.spawn(&lab, &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let log = probe.log_text();
    assert!(log.contains("does not match this build") && log.contains("BLOCK_V4"), "{log}");
    let link = lab.run_in(&lab.server_ns, &["ip", "link", "show", &lab.server_if]);
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "attached despite the mismatch"
    );
}

// ---- auto-bans, lockout protection, events, top ----

#[test]
fn repeat_offenders_are_banned_with_escalating_ttls() {
    let _s = serial();
    let lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    let config = "[autoban]\nenabled = true\nthreshold = 50\nwindow = \"10s\"\nban = \"2s\"\nmax_ban = \"8s\"\n\n[policies.api]\nports = [\"udp/9000\"]\npps = 100\npps_burst = 10\n";
    let agent = Agent::start_configured(&lab, config, &[]);
    let flood = || send(&lab, "198.18.0.10", server(), 2_000, 1).join().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server());
    let quiet = send(&lab, "198.18.0.20", server(), 50, 1);
    flood();
    assert_eq!(nets(&agent, "block"), vec![("198.18.0.10/32".to_owned(), "auto".to_owned())]);
    let listed = agent.json(&["block", "list"]);
    let ban = &listed["entries"][0];
    assert!(ban["expires_in_secs"].as_u64().unwrap() <= 2, "{ban}");
    assert!(
        ban["created_at_unix"].as_u64().unwrap() > 1_700_000_000,
        "the kernel did not stamp the ban: {ban}"
    );
    let bans = |agent: &Agent| -> Vec<serde_json::Value> {
        agent.json(&["events"])["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "ban")
            .cloned()
            .collect()
    };
    let first = bans(&agent);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["source"], "198.18.0.10/32");
    assert_eq!(first[0]["ban_secs"], 2);
    assert_eq!(first[0]["offences"], 1);
    assert!(agent.counter("banned", "drop") > 0, "the ban does not drop");
    // The quiet source is not affected.
    quiet.join().unwrap();
    let got = counter.finish();
    assert_eq!(got.get(&ip("198.18.0.20")).copied().unwrap_or(0), 50);
    // Persisted within a second.
    assert!(eventually(Duration::from_secs(3), || {
        let state = std::fs::read_to_string(agent.state_dir().join("state.json")).unwrap();
        state.contains("\"auto\"") && state.contains("auto-ban: rate_limited_packets (offence 1)")
    }));

    // After the ban expires, offending again doubles the ban.
    assert!(
        eventually(Duration::from_secs(5), || nets(&agent, "block").is_empty()),
        "the ban did not expire"
    );
    flood();
    let second = bans(&agent);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[1]["ban_secs"], 4);
    assert_eq!(second[1]["offences"], 2);
    // Bans can be deleted like any block.
    agent.ok(&["block", "delete", "198.18.0.10"]);
    assert!(nets(&agent, "block").is_empty());
}

#[test]
fn management_addresses_cannot_be_blocked_or_removed() {
    let lab = Lab::new(&["198.18.0.10/16"]);
    let agent = Agent::start_configured(&lab, "[management]\nallow = [\"198.18.0.10\"]\n", &[]);
    assert_eq!(nets(&agent, "allow"), vec![("198.18.0.10/32".to_owned(), "config".to_owned())]);
    let out = agent.cli(&["block", "add", "198.18.0.0/16"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("covers allowlisted 198.18.0.10/32"), "{}", stderr(&out));
    let out = agent.cli(&["allow", "delete", "198.18.0.10"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("management address"), "{}", stderr(&out));
    let feed = agent.dir.join("feed.txt");
    std::fs::write(&feed, "198.18.0.0/24\n").unwrap();
    let out = agent.cli(&["block", "import", feed.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("covers allowlisted"), "{}", stderr(&out));
    assert!(nets(&agent, "block").is_empty(), "a refused block changed the list");
}

#[test]
fn events_show_sampled_drops_and_top_shows_the_heaviest_source() {
    let _s = serial();
    let lab = Lab::new(&["198.18.0.10/16", "198.18.0.20/16"]);
    let agent = Agent::start_configured(&lab, "[events]\ndrop_samples_per_sec = 5\n", &[]);
    agent.ok(&["block", "add", "198.18.0.10"]);
    send(&lab, "198.18.0.10", server(), 2_000, 1).join().unwrap();
    let events = agent.json(&["events", "--limit", "1000"]);
    let drops: Vec<_> =
        events["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "drop").collect();
    assert!(!drops.is_empty(), "no sampled drops");
    assert!(drops.iter().all(|e| e["source"] == "198.18.0.10/32" && e["reason"] == "blocklisted"));
    // Sampling is bounded in the kernel: ~5/s with a burst of 5, over about a second.
    assert!(drops.len() <= 12, "{} samples for a 5/s budget", drops.len());

    let flood = send(&lab, "198.18.0.20", server(), 3_000, 3);
    std::thread::sleep(Duration::from_millis(500));
    let top = agent.json(&["top", "--interval", "1s"]);
    flood.join().unwrap();
    let first = &top["sources"][0];
    assert_eq!(first["source"], "198.18.0.20/32", "{top}");
    let pps = first["packets_per_sec"].as_f64().unwrap();
    assert!((2_000.0..=4_000.0).contains(&pps), "top measured {pps} packets/s for a 3000/s sender");
}

// ---- imports ----

#[test]
fn imports_are_all_or_nothing_and_replace_swaps_the_set() {
    let _s = serial();
    let mut lab = Lab::new(&["198.18.0.20/16", "198.18.0.30/16"]);
    lab.start_http_server(HTTP_PORT);
    let agent = Agent::start(&lab, &[]);
    let dir = agent.dir.clone();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    // One bad line: refused with its number, nothing changes.
    let bad = file("bad.txt", "; a feed\n198.19.0.1\n198.19.0.300 ; SBL1\n198.19.0.2\n");
    let out = agent.cli(&["block", "import", &bad]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert!(nets(&agent, "block").is_empty());

    // 100 000 entries, both families, with the lab client 198.18.0.20 among them.
    let mut big = String::from("# generated feed\n198.18.0.20\n");
    for i in 0..65_536u32 {
        big.push_str(&format!("198.19.{}.{}\n", i >> 8, i & 0xff));
    }
    for i in 0..(100_000 - 65_537u32) {
        big.push_str(&format!("2001:db8:ffff::{:x}:{:x}\n", i >> 16, i & 0xffff));
    }
    let big = file("big.txt", &big);
    let dry = agent.ok(&["block", "import", &big, "--dry-run"]);
    assert!(dry.contains("would import 100000"), "{dry}");
    assert!(nets(&agent, "block").is_empty(), "a dry run changed the blocklist");
    let started = Instant::now();
    let report = agent.json(&["block", "import", &big]);
    eprintln!("imported 100000 entries in {:?}", started.elapsed());
    assert_eq!(report["added"], 100_000);
    assert_eq!(report["total"], 100_000);
    assert!(
        !lab.http_get("198.18.0.20", SERVER_V4, HTTP_PORT, 1),
        "an imported address is not blocked"
    );
    assert!(lab.http_get("198.18.0.30", SERVER_V4, HTTP_PORT, 3));

    // --replace: the new set goes in first, then what only the old set had goes.
    let small = file("small.txt", "198.19.0.1\n198.19.0.2\n198.18.0.30\n");
    let report = agent.json(&["block", "import", &small, "--replace"]);
    assert_eq!(report["removed"], 99_998);
    assert_eq!(report["total"], 3);
    assert!(
        lab.http_get("198.18.0.20", SERVER_V4, HTTP_PORT, 3),
        "a replaced-away entry still blocks"
    );
    assert!(!lab.http_get("198.18.0.30", SERVER_V4, HTTP_PORT, 1));
    let list: Vec<_> = nets(&agent, "block");
    assert!(list.iter().all(|(_, o)| o == "import") && list.len() == 3, "{list:?}");
}
