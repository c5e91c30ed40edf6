//! `cargo xtask demo`: shield protecting a real HTTP server in a namespace lab, driven by its
//! CLI. A blocked source is refused; a flooding source is held to its rate while a legitimate
//! client keeps being served; the counters show what happened. Everything is removed at the end.
#![expect(clippy::unwrap_used, reason = "a demo program: any failure ends it with the reason")]

use std::{net::SocketAddr, time::Duration};

use shield_tests::{
    agent::Agent,
    flood::{UdpCounter, udp_flood},
    lab::{Lab, SERVER_V4},
};

const HTTP_PORT: u16 = 8080;
const UDP_PORT: u16 = 9000;
const LEGIT: &str = "198.18.0.10";
const ATTACKER: &str = "198.18.0.66";
const FLOODER: &str = "198.18.0.77";

fn shield(agent: &Agent, args: &[&str]) {
    println!("$ shield {}", args.join(" "));
    print!("{}", agent.ok(args));
}

fn main() {
    println!("== shield demo: a lab of two network namespaces joined by a veth pair ==");
    let mut lab =
        Lab::new(&[&format!("{LEGIT}/16"), &format!("{ATTACKER}/16"), &format!("{FLOODER}/16")]);
    lab.start_http_server(HTTP_PORT);
    println!(
        "server {SERVER_V4} (namespace {}, interface {}) runs an HTTP server on port {HTTP_PORT}",
        lab.server_ns, lab.server_if
    );
    println!(
        "clients: legitimate {LEGIT}, attacker {ATTACKER}, flooder {FLOODER} (namespace {})\n",
        lab.client_ns
    );

    let agent = Agent::start(&lab, &[]);
    println!(
        "$ shield run --iface {}   (agent started, built-in defaults, no config file)",
        lab.server_if
    );
    shield(&agent, &["status"]);

    println!("\n== 1. everyone is served ==");
    for src in [LEGIT, ATTACKER] {
        println!(
            "GET http://{SERVER_V4}:{HTTP_PORT}/ from {src}: {}",
            verdict(lab.http_get(src, SERVER_V4, HTTP_PORT, 3))
        );
    }

    println!("\n== 2. block the attacker ==");
    shield(&agent, &["block", "add", &format!("{ATTACKER}/32"), "--ttl", "1h"]);
    shield(&agent, &["block", "list"]);
    println!("GET from {ATTACKER}: {}", verdict(lab.http_get(ATTACKER, SERVER_V4, HTTP_PORT, 2)));
    println!("GET from {LEGIT}: {}", verdict(lab.http_get(LEGIT, SERVER_V4, HTTP_PORT, 3)));

    println!("\n== 3. a flood, held to its rate while the legitimate client is served ==");
    let (rate, burst) = (1_000u64, 100u64);
    shield(
        &agent,
        &[
            "policy",
            "set",
            "api",
            "--ports",
            &format!("tcp/{HTTP_PORT},udp/{UDP_PORT}"),
            "--pps",
            &rate.to_string(),
            "--pps-burst",
            &burst.to_string(),
        ],
    );
    shield(&agent, &["policy", "list"]);
    let server: SocketAddr = format!("{SERVER_V4}:{UDP_PORT}").parse().unwrap();
    let counter = UdpCounter::start(&lab.server_ns, server);
    let flood = udp_flood(
        &lab.client_ns,
        format!("{FLOODER}:0").parse().unwrap(),
        server,
        20_000,
        60_000,
        Duration::from_secs(3),
        None,
    );
    let mut served = 0;
    let requests = 20;
    for _ in 0..requests {
        if lab.http_get(LEGIT, SERVER_V4, HTTP_PORT, 2) {
            served += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = flood.join().unwrap();
    let got = counter.finish();
    let delivered = got.get(&FLOODER.parse().unwrap()).copied().unwrap_or(0);
    let allowed = burst as f64 + rate as f64 * sent.elapsed.as_secs_f64();
    println!(
        "flooder {FLOODER}: sent {} UDP packets in {:.2}s ({:.0}/s), {delivered} reached the server ({:.0}/s; its limit allows {allowed:.0})",
        sent.packets,
        sent.elapsed.as_secs_f64(),
        sent.packets as f64 / sent.elapsed.as_secs_f64(),
        delivered as f64 / sent.elapsed.as_secs_f64()
    );
    println!(
        "legitimate client {LEGIT} during the flood: {served}/{requests} HTTP requests served"
    );

    println!("\n== 4. what shield counted ==");
    shield(&agent, &["stats"]);
    drop(agent);
    drop(lab);
    println!("lab removed; the agent detached cleanly.");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "200 OK" } else { "refused (no answer)" }
}
