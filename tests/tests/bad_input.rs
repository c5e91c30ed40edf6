//! Every bad input, table-driven: each CLI command and each configuration key with invalid
//! values gets a clear error and a non-zero exit, and leaves the maps, the state file and the
//! configuration exactly as they were. A full blocklist says "full (N/N)" and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use shield_tests::{agent::Agent, lab::Lab};

const CONFIG: &str =
    "[management]\nallow = [\"198.18.0.10\"]\n\n[policies.api]\nports = [\"tcp/443\"]\npps = 100\n";

/// What the operator can observe: lists, policies, global settings, the state file and the
/// configuration file.
fn snapshot(agent: &Agent) -> Vec<String> {
    // Time left counts down by itself; everything else must stay put.
    let list = |kind| {
        agent
            .ok(&[kind, "list", "-o", "json"])
            .lines()
            .filter(|l| !l.contains("expires_in_secs"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    vec![
        list("block"),
        list("allow"),
        agent.ok(&["policy", "list", "-o", "json"]),
        agent.ok(&["policy", "global", "-o", "json"]),
        std::fs::read_to_string(agent.state_dir().join("state.json")).unwrap(),
        std::fs::read_to_string(agent.config_path()).unwrap(),
    ]
}

fn assert_refused(agent: &Agent, args: &[&str], needle: &str, before: &[String]) {
    let out = agent.cli(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    // Import errors list each bad line (with its number) before the one-line summary;
    // everything else is exactly one line.
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    if args.contains(&"import") {
        assert!(lines.last().is_some_and(|l| l.starts_with("error: ")), "{args:?}: {err}");
    } else {
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "{args:?}: not one line: {err}"
        );
    }
    assert!(err.contains(needle), "{args:?}: {err:?} does not say {needle:?}");
    assert_eq!(snapshot(agent), before, "{args:?} changed something");
}

#[test]
fn every_cli_command_refuses_bad_input_and_changes_nothing() {
    let lab = Lab::new(&[]);
    let agent = Agent::start_configured(&lab, CONFIG, &[]);
    agent.ok(&["block", "add", "198.18.5.0/24", "--ttl", "1h", "--reason", "kept"]);
    agent.ok(&["allow", "add", "2001:db8:7::/48"]);
    let dir = agent.dir.clone();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let bad_feed = file("bad.txt", "198.18.20.1\n198.18.20.300\n");
    let covering_feed = file("cover.txt", "198.18.0.0/24\n");
    let long_reason = "x".repeat(201);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["block", "add", "198.18.0.999"], "not an IPv4 or IPv6 address"),
        (vec!["block", "add", "198.18.0.7/16"], "host bits set"),
        (vec!["block", "add", "198.18.9.9", "--ttl", "soon"], "not a duration"),
        (vec!["block", "add", "198.18.9.9", "--ttl", "0s"], "below one second"),
        (vec!["block", "add", "198.18.9.9", "--reason", &long_reason], "at most 200 characters"),
        (vec!["block", "add", "198.18.9.9", "--frobnicate"], "unexpected argument"),
        (vec!["block", "add", "198.18.0.0/16"], "covers allowlisted 198.18.0.10/32"),
        (vec!["block", "add"], "required"),
        (vec!["block", "delete", "198.18.6.0/24"], "is not in the blocklist"),
        (vec!["block", "delete", "nonsense"], "not an IPv4 or IPv6 address"),
        (vec!["block", "import", "/nonexistent/feed.txt"], "reading /nonexistent/feed.txt"),
        (vec!["block", "import", &bad_feed], "line 2"),
        (vec!["block", "import", &covering_feed], "covers allowlisted"),
        (vec!["allow", "add", "2001:db8::g"], "not an IPv4 or IPv6 address"),
        (vec!["allow", "delete", "198.18.0.10"], "management address"),
        (vec!["allow", "delete", "2001:db8:8::/48"], "is not in the allowlist"),
        (vec!["policy", "set", "Bad Name", "--pps", "1"], "policy name 'Bad Name' is invalid"),
        (vec!["policy", "set", "web", "--ports", "tcp/99999"], "is not a port"),
        (vec!["policy", "set", "web", "--ports", "sctp/80"], "is not a port"),
        (
            vec!["policy", "set", "web", "--ports", "tcp/443"],
            "tcp/443 already belongs to policy 'api'",
        ),
        (vec!["policy", "set", "web", "--v4-prefix", "0"], "IPv4 prefix length 0"),
        (vec!["policy", "set", "web", "--v6-prefix", "129"], "IPv6 prefix length 129"),
        (vec!["policy", "set", "web", "--pps", "2000000000"], "rate 2000000000 is out of range"),
        (
            vec!["policy", "set", "web", "--pps", "10", "--pps-burst", "2000000000"],
            "burst 2000000000 is out of range",
        ),
        (
            vec!["policy", "set", "web", "--bps", "1000", "--bps-burst", "100"],
            "bytes burst 100 is below 1514",
        ),
        (vec!["policy", "set", "default", "--ports", "tcp/80"], "cannot list ports"),
        (vec!["policy", "set", "web", "--monitor", "maybe"], "is not on or off"),
        (vec!["policy", "global", "--malformed", "sometimes"], "invalid value"),
        (vec!["events", "--limit", "many"], "invalid value"),
        (vec!["top", "--interval", "fortnight"], "invalid value"),
        (
            vec!["config", "check", "/nonexistent/shield.toml"],
            "cannot read /nonexistent/shield.toml",
        ),
        (vec!["completions", "tcsh"], "invalid value"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ];
    let before = snapshot(&agent);
    for (args, needle) in &cases {
        assert_refused(&agent, args, needle, &before);
    }
    // Without an agent, every client command says so.
    for args in
        [vec!["status"], vec!["stats"], vec!["block", "list"], vec!["reload"], vec!["events"]]
    {
        let mut all = vec!["--socket", "/nonexistent/shield.sock"];
        all.extend(args.iter());
        let out = std::process::Command::new(shield_tests::agent::shield_bin())
            .args(&all)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no shield agent is running"),
            "{all:?}"
        );
    }
}

#[test]
fn every_config_key_refuses_bad_values_on_check_and_reload() {
    let lab = Lab::new(&[]);
    let agent = Agent::start_configured(&lab, CONFIG, &[]);
    agent.ok(&["block", "add", "198.18.5.5"]);
    let before = snapshot(&agent);
    let cases: &[(&str, &str)] = &[
        ("[agent]\ninterfaces = \"eth0\"\n", "interfaces"),
        ("[agent]\nmode = \"turbo\"\n", "turbo"),
        ("[agent]\nsocket = \"\"\n", "must not be empty"),
        ("[agent]\npin_root = \"\"\n", "must not be empty"),
        ("[agent]\nstate_dir = \"\"\n", "must not be empty"),
        ("[agent]\nkeep_attached = \"yes\"\n", "keep_attached"),
        ("[agent]\nsocket_group = 7\n", "socket_group"),
        ("[agent]\nsokcet = \"/x\"\n", "sokcet"),
        ("[global]\nmonitor = 1\n", "monitor"),
        ("[global]\nmalformed = \"maybe\"\n", "maybe"),
        ("[management]\nallow = [\"198.18.0.999\"]\n", "management.allow[0]"),
        ("[lists]\nallow = [\"not-an-ip\"]\n", "lists.allow[0]"),
        ("[lists]\nblock = [\"198.18.0.7/16\"]\n", "lists.block[0]"),
        (
            "[lists]\nblock = [\"198.18.0.10\"]\n[management]\nallow = [\"198.18.0.10\"]\n",
            "covers allowlisted",
        ),
        ("[autoban]\nenabled = true\nthreshold = 0\n", "autoban.threshold"),
        ("[autoban]\nwindow = \"ten seconds\"\n", "window"),
        ("[autoban]\nenabled = true\nban = \"0s\"\n", "autoban.ban"),
        ("[autoban]\nenabled = true\nban = \"2h\"\nmax_ban = \"1h\"\n", "autoban.max_ban"),
        ("[events]\ndrop_samples_per_sec = 1000000\n", "events.drop_samples_per_sec"),
        ("[events]\nkeep = -1\n", "keep"),
        ("[metrics]\nlisten = \"localhost\"\n", "metrics.listen"),
        ("[policies.api]\nports = [\"tcp/0\"]\n", "policies.api.ports[0]"),
        ("[policies.api]\npps = -5\n", "pps"),
        ("[policies.api]\npps = 2000000000\n", "rate 2000000000 is out of range"),
        ("[policies.api]\npps_burst = 0\npps = 5\n", "burst 0 is out of range"),
        ("[policies.api]\nbps = 100\nbps_burst = 10\n", "bytes burst 10 is below 1514"),
        ("[policies.api]\nsyn = 5\nsyn_burst = 0\n", "burst 0 is out of range"),
        ("[policies.api]\nv4_prefix = 33\n", "IPv4 prefix length 33"),
        ("[policies.api]\nv6_prefix = 0\n", "IPv6 prefix length 0"),
        ("[policies.api]\nmonitor = \"on\"\n", "monitor"),
        ("[policies.default]\nports = [\"tcp/80\"]\n", "cannot list ports"),
        (
            "[policies.a]\nports = [\"tcp/1\"]\n[policies.b]\nports = [\"tcp/1\"]\n",
            "already belongs to policy",
        ),
        ("[policies.BAD]\npps = 1\n", "policy name 'BAD' is invalid"),
        ("[nonsense]\n", "nonsense"),
    ];
    for (text, needle) in cases {
        let candidate = agent.dir.join("candidate.toml");
        std::fs::write(&candidate, text).unwrap();
        let check = agent.cli(&["config", "check", candidate.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&check.stderr).into_owned();
        assert!(!check.status.success(), "config check passed {text:?}");
        assert!(err.contains(needle) && err.trim().lines().count() == 1, "{text:?}: {err}");
        // The same file, reloaded into the running agent: refused, nothing applied.
        std::fs::write(agent.config_path(), text).unwrap();
        let reload = agent.cli(&["reload"]);
        let err = String::from_utf8_lossy(&reload.stderr).into_owned();
        assert!(!reload.status.success(), "reload applied {text:?}");
        assert!(err.contains(needle), "{text:?}: {err}");
        std::fs::write(agent.config_path(), CONFIG).unwrap();
        assert_eq!(snapshot(&agent), before, "a refused reload of {text:?} changed something");
    }
}

#[test]
fn a_full_blocklist_says_so_and_changes_nothing() {
    let lab = Lab::new(&[]);
    let agent = Agent::start(&lab, &[]);
    let capacity = shield_common::maps::BLOCK_V6_CAPACITY;
    let mut feed = String::new();
    for i in 0..capacity {
        feed.push_str(&format!("2001:db8:aaaa::{:x}:{:x}\n", i >> 16, i & 0xffff));
    }
    let file = agent.dir.join("full.txt");
    std::fs::write(&file, feed).unwrap();
    agent.ok(&["block", "import", file.to_str().unwrap()]);
    let before = snapshot(&agent);
    let out = agent.cli(&["block", "add", "2001:db8:bbbb::1"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains(&format!("the blocklist is full ({capacity}/{capacity})")), "{err}");
    assert_eq!(snapshot(&agent), before, "a refused add changed something");
    // An import that does not fit is refused as a whole.
    let more = agent.dir.join("more.txt");
    std::fs::write(&more, "2001:db8:cccc::1\n198.18.40.1\n").unwrap();
    let out = agent.cli(&["block", "import", more.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("does not fit") && err.contains("nothing was imported"), "{err}");
    assert_eq!(snapshot(&agent), before, "a refused import changed something");
    // IPv4 still has room.
    agent.ok(&["block", "add", "198.18.40.1"]);
}
