//! `shield policy list|set|global`.

use clap::Subcommand;

use super::{
    Client,
    output::{self, Format, Table},
};
use crate::{
    api::{self, Global, GlobalUpdate, Policies, PolicyUpdate},
    policies::{PolicySpec, PortSpec, RateSpec},
};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// List the rate policies.
    List,
    /// Create or change a policy. Only the options given change; a new policy starts from the
    /// default policy's values. A rate of 0 switches that limit off; a rate without a burst
    /// gets one second's worth.
    Set {
        /// Policy name (a-z, 0-9, '-', '_'); `default` applies to every port not claimed by
        /// another policy.
        name: String,
        /// Destination ports this policy protects, e.g. tcp/443,tcp/8443,udp/53 (replaces the
        /// list; empty string for none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        ports: Option<Vec<String>>,
        /// Packets per second per source.
        #[arg(long)]
        pps: Option<u64>,
        /// Packets a source may send at once.
        #[arg(long)]
        pps_burst: Option<u64>,
        /// Bytes per second per source.
        #[arg(long)]
        bps: Option<u64>,
        /// Bytes a source may send at once (at least 1514).
        #[arg(long)]
        bps_burst: Option<u64>,
        /// New TCP connections (SYNs) per second per source.
        #[arg(long)]
        syn: Option<u64>,
        /// SYNs a source may send at once.
        #[arg(long)]
        syn_burst: Option<u64>,
        /// Count IPv4 sources by this prefix (1..=32; 32 = per address).
        #[arg(long)]
        v4_prefix: Option<u8>,
        /// Count IPv6 sources by this prefix (1..=128; 64 = per subnet).
        #[arg(long)]
        v6_prefix: Option<u8>,
        /// Monitor mode for this policy: over-limit traffic passes and is counted as would-drop.
        #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
        monitor: Option<bool>,
    },
    /// Show or change settings for all traffic.
    Global {
        /// Monitor mode for everything: nothing is dropped, would-be drops are counted.
        #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
        monitor: Option<bool>,
        /// What to do with malformed frames.
        #[arg(long, value_parser = ["pass", "drop"])]
        malformed: Option<String>,
    },
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not on or off")),
    }
}

pub fn run(client: &Client, format: Format, cmd: &PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::List => {
            let policies: Policies = client.get(api::POLICIES)?;
            output::print(format, &policies, |p| policy_table(&p.policies))
        }
        PolicyCommand::Set {
            name,
            ports,
            pps,
            pps_burst,
            bps,
            bps_burst,
            syn,
            syn_burst,
            v4_prefix,
            v6_prefix,
            monitor,
        } => {
            // Checked here too: the name goes into the request path.
            crate::policies::validate_name(name)?;
            let ports = match ports {
                None => None,
                Some(list) => Some(
                    list.iter()
                        .filter(|p| !p.is_empty())
                        .map(|p| p.parse::<PortSpec>())
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let update = PolicyUpdate {
                ports,
                packets_rate: *pps,
                packets_burst: *pps_burst,
                bytes_rate: *bps,
                bytes_burst: *bps_burst,
                syn_rate: *syn,
                syn_burst: *syn_burst,
                v4_prefix: *v4_prefix,
                v6_prefix: *v6_prefix,
                monitor: *monitor,
            };
            let spec: PolicySpec =
                client.send("PUT", &format!("{}/{name}", api::POLICIES), &update)?;
            output::print(format, &spec, |p| policy_table(std::slice::from_ref(p)))
        }
        PolicyCommand::Global { monitor, malformed } => {
            let global: Global = if monitor.is_none() && malformed.is_none() {
                client.get(api::GLOBAL)?
            } else {
                let update = GlobalUpdate {
                    monitor: *monitor,
                    drop_malformed: malformed.as_deref().map(|m| m == "drop"),
                };
                client.send("PUT", api::GLOBAL, &update)?
            };
            output::print(format, &global, |g| {
                let mut t = Table::new(&["monitor", "malformed"]);
                t.row(vec![
                    on_off(g.monitor).into(),
                    if g.drop_malformed { "drop" } else { "pass" }.into(),
                ]);
                t
            })
        }
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn rate(r: &RateSpec) -> String {
    if r.rate == 0 { "off".into() } else { format!("{}/s burst {}", r.rate, r.burst) }
}

fn policy_table(policies: &[PolicySpec]) -> Table {
    let mut t = Table::new(&[
        "name",
        "ports",
        "packets",
        "bytes",
        "syn",
        "prefix v4",
        "prefix v6",
        "monitor",
    ]);
    for p in policies {
        let ports = if p.ports.is_empty() {
            if p.name == crate::policies::DEFAULT_POLICY_NAME {
                "(all others)".into()
            } else {
                "-".into()
            }
        } else {
            p.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        };
        t.row(vec![
            p.name.clone(),
            ports,
            rate(&p.packets),
            rate(&p.bytes),
            rate(&p.syn),
            format!("/{}", p.v4_prefix),
            format!("/{}", p.v6_prefix),
            on_off(p.monitor).into(),
        ]);
    }
    t
}
