//! The configuration file (`/etc/shield/shield.toml`): every key has a default, unknown keys
//! are errors, and every invalid value is reported with its key, its value and the rule.
//! `Config::validate` turns a parsed file into the checked form the agent applies.

use std::{collections::BTreeMap, path::Path, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    agent::attach::AttachMode,
    lists::parse_net,
    policies::{DEFAULT_POLICY_NAME, PolicySpec, PortSpec, RateSpec},
};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/shield/shield.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {key} = {value}: {rule}")]
    Invalid { path: String, key: String, value: String, rule: String },
}

/// The file as written (every section optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub agent: AgentSection,
    pub global: GlobalSection,
    pub management: ManagementSection,
    pub lists: ListsSection,
    pub autoban: AutobanSection,
    pub events: EventsSection,
    pub metrics: MetricsSection,
    pub sources: SourcesSection,
    /// Rate policies by name; `default` applies to every port not claimed by another.
    pub policies: BTreeMap<String, PolicySection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// Interfaces to protect; `shield run --iface` replaces this list.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    pub socket: String,
    pub pin_root: String,
    pub state_dir: String,
    /// On stop, leave the program attached (the next agent adopts it: upgrades).
    pub keep_attached: bool,
    /// Group that owns the control socket (mode 0660): its members may use the CLI without
    /// root. Empty: root only.
    pub socket_group: String,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            interfaces: Vec::new(),
            mode: AttachMode::Auto,
            socket: crate::api::DEFAULT_SOCKET.into(),
            pin_root: shield_common::maps::DEFAULT_PIN_ROOT.into(),
            state_dir: "/var/lib/shield".into(),
            keep_attached: false,
            socket_group: String::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MalformedVerdict {
    #[default]
    Pass,
    Drop,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalSection {
    /// Monitor mode everywhere: nothing is dropped, would-be drops are counted.
    pub monitor: bool,
    pub malformed: MalformedVerdict,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagementSection {
    /// Always allowed (lockout protection); blocks covering them are refused.
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListsSection {
    pub allow: Vec<String>,
    pub block: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutobanSection {
    pub enabled: bool,
    /// Frames over a limit within `window` that get a source banned.
    pub threshold: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// The first ban; each repeat offence doubles it, up to `max_ban`.
    #[serde(with = "humantime_serde")]
    pub ban: Duration,
    #[serde(with = "humantime_serde")]
    pub max_ban: Duration,
}

impl Default for AutobanSection {
    fn default() -> Self {
        AutobanSection {
            enabled: false,
            threshold: 1000,
            window: Duration::from_secs(10),
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSection {
    /// Sampled drop events per second, at most (0: none). Bans are always reported.
    pub drop_samples_per_sec: u64,
    /// Recent events kept for `shield events`.
    pub keep: usize,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection { drop_samples_per_sec: 10, keep: 1000 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the Prometheus listener (`/metrics`, and a landing page at `/`); loopback by
    /// default; an empty string switches it off.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { listen: DEFAULT_METRICS_LISTEN.into() }
    }
}

pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9477";

/// How new sources enter per-source tracking (resistance to spoofed floods).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesSection {
    /// New sources admitted to buckets of their own per second (0: no limit). Beyond it, a
    /// new source shares one bucket with its aggregate prefix: a flood of spoofed sources
    /// cannot churn the source map, nor pass as a stream of fresh, full buckets.
    pub admit_per_sec: u64,
    /// How many may be admitted at once.
    pub admit_burst: u64,
    /// Aggregate prefixes for sources beyond the admission budget.
    pub aggregate_v4_prefix: u8,
    pub aggregate_v6_prefix: u8,
}

impl Default for SourcesSection {
    fn default() -> Self {
        SourcesSection {
            admit_per_sec: 20_000,
            admit_burst: 40_000,
            aggregate_v4_prefix: 24,
            aggregate_v6_prefix: 48,
        }
    }
}

/// One policy as written; missing keys take the built-in default policy's values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    pub ports: Vec<String>,
    pub pps: Option<u64>,
    pub pps_burst: Option<u64>,
    pub bps: Option<u64>,
    pub bps_burst: Option<u64>,
    pub syn: Option<u64>,
    pub syn_burst: Option<u64>,
    pub v4_prefix: Option<u8>,
    pub v6_prefix: Option<u8>,
    pub monitor: Option<bool>,
}

/// A configuration that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub file: Config,
    pub management: Vec<IpNet>,
    pub allow: Vec<IpNet>,
    pub block: Vec<IpNet>,
    /// Every policy, `default` first.
    pub policies: Vec<PolicySpec>,
}

impl Config {
    /// Read and validate a file.
    pub fn load(path: &Path) -> Result<Checked, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        Self::parse(&text, &p)?.validate(&p)
    }

    /// Read a file if it exists; the built-in defaults when `path` is the default path and
    /// there is no file there.
    pub fn load_or_default(path: &Path) -> Result<Checked, ConfigError> {
        if path == Path::new(DEFAULT_CONFIG_PATH) && !path.exists() {
            return Config::default().validate("(built-in defaults)");
        }
        Self::load(path)
    }

    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Check every value; the first error names its key, value and rule.
    pub fn validate(self, path: &str) -> Result<Checked, ConfigError> {
        let invalid = |key: String, value: String, rule: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            value,
            rule,
        };
        let nets = |key: &str, list: &[String]| -> Result<Vec<IpNet>, ConfigError> {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    parse_net(s).map_err(|e| {
                        invalid(format!("{key}[{i}]"), format!("{s:?}"), e.to_string())
                    })
                })
                .collect()
        };
        let management = nets("management.allow", &self.management.allow)?;
        let allow = nets("lists.allow", &self.lists.allow)?;
        let block = nets("lists.block", &self.lists.block)?;
        for (i, b) in block.iter().enumerate() {
            if let Some(m) =
                management.iter().chain(&allow).find(|m| m.contains(b) || b.contains(*m))
            {
                return Err(invalid(
                    format!("lists.block[{i}]"),
                    format!("\"{b}\""),
                    format!("covers allowlisted {m}; allow wins over block, so remove one of them"),
                ));
            }
        }
        let a = &self.autoban;
        if a.enabled {
            if a.threshold == 0 {
                return Err(invalid(
                    "autoban.threshold".into(),
                    "0".into(),
                    "must be at least 1".into(),
                ));
            }
            for (key, d) in [
                ("autoban.window", a.window),
                ("autoban.ban", a.ban),
                ("autoban.max_ban", a.max_ban),
            ] {
                if d < Duration::from_secs(1) {
                    return Err(invalid(
                        key.into(),
                        format!("{:?}", humantime::format_duration(d).to_string()),
                        "must be at least 1s".into(),
                    ));
                }
            }
            if a.max_ban < a.ban {
                return Err(invalid(
                    "autoban.max_ban".into(),
                    humantime::format_duration(a.max_ban).to_string(),
                    "must not be shorter than autoban.ban".into(),
                ));
            }
        }
        if self.events.drop_samples_per_sec > 100_000 {
            return Err(invalid(
                "events.drop_samples_per_sec".into(),
                self.events.drop_samples_per_sec.to_string(),
                "use 0..=100000".into(),
            ));
        }
        if self.events.keep > 1_000_000 {
            return Err(invalid(
                "events.keep".into(),
                self.events.keep.to_string(),
                "use 0..=1000000".into(),
            ));
        }
        let s = &self.sources;
        if s.admit_per_sec > 0 {
            shield_common::gcra::Limit::new(s.admit_per_sec, s.admit_burst.max(1)).map_err(
                |e| {
                    invalid(
                        "sources.admit_per_sec".into(),
                        s.admit_per_sec.to_string(),
                        e.to_string(),
                    )
                },
            )?;
        }
        if !(1..=32).contains(&s.aggregate_v4_prefix) {
            return Err(invalid(
                "sources.aggregate_v4_prefix".into(),
                s.aggregate_v4_prefix.to_string(),
                "use 1..=32".into(),
            ));
        }
        if !(1..=128).contains(&s.aggregate_v6_prefix) {
            return Err(invalid(
                "sources.aggregate_v6_prefix".into(),
                s.aggregate_v6_prefix.to_string(),
                "use 1..=128".into(),
            ));
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen".into(),
                format!("{:?}", self.metrics.listen),
                "use ADDRESS:PORT, e.g. 127.0.0.1:9477, or \"\" to switch metrics off".into(),
            ));
        }
        if self.agent.socket.is_empty()
            || self.agent.pin_root.is_empty()
            || self.agent.state_dir.is_empty()
        {
            return Err(invalid(
                "agent".into(),
                "\"\"".into(),
                "socket, pin_root and state_dir must not be empty".into(),
            ));
        }
        let mut policies = Vec::new();
        let default = self.policies.get(DEFAULT_POLICY_NAME).cloned().unwrap_or_default();
        policies.push(
            policy_spec(DEFAULT_POLICY_NAME, &default).map_err(|(k, v, r)| invalid(k, v, r))?,
        );
        for (name, section) in &self.policies {
            if name != DEFAULT_POLICY_NAME {
                policies.push(policy_spec(name, section).map_err(|(k, v, r)| invalid(k, v, r))?);
            }
        }
        crate::policies::PolicyTable::default()
            .assign(&policies)
            .map_err(|e| invalid("policies".into(), "…".into(), e.to_string()))?;
        Ok(Checked { file: self, management, allow, block, policies })
    }
}

/// A policy section as a validated spec, or (key, value, rule).
fn policy_spec(name: &str, s: &PolicySection) -> Result<PolicySpec, (String, String, String)> {
    let key = |field: &str| format!("policies.{name}.{field}");
    let base = PolicySpec::builtin_default();
    let mut ports = Vec::new();
    for (i, p) in s.ports.iter().enumerate() {
        ports
            .push(p.parse::<PortSpec>().map_err(|e| {
                (format!("{}[{i}]", key("ports")), format!("{p:?}"), e.to_string())
            })?);
    }
    let rate = |r: Option<u64>, b: Option<u64>, base: RateSpec, floor: u64| match (r, b) {
        (None, None) => base,
        (Some(0), _) => RateSpec { rate: 0, burst: 0 },
        (Some(r), b) => RateSpec { rate: r, burst: b.unwrap_or(r.max(floor)) },
        (None, Some(b)) => RateSpec { rate: base.rate, burst: b },
    };
    let spec = PolicySpec {
        name: name.to_owned(),
        ports,
        packets: rate(s.pps, s.pps_burst, base.packets, 1),
        bytes: rate(s.bps, s.bps_burst, base.bytes, crate::policies::MIN_BYTES_BURST),
        syn: rate(s.syn, s.syn_burst, base.syn, 1),
        v4_prefix: s.v4_prefix.unwrap_or(base.v4_prefix),
        v6_prefix: s.v6_prefix.unwrap_or(base.v6_prefix),
        monitor: s.monitor.unwrap_or(false),
    };
    spec.to_kernel().map_err(|e| (format!("policies.{name}"), "…".into(), e.to_string()))?;
    Ok(spec)
}

impl Checked {
    /// The effective configuration as TOML, every key present.
    pub fn to_toml(&self) -> String {
        let mut file = self.file.clone();
        for spec in &self.policies {
            file.policies.insert(
                spec.name.clone(),
                PolicySection {
                    ports: spec.ports.iter().map(ToString::to_string).collect(),
                    pps: Some(spec.packets.rate),
                    pps_burst: Some(spec.packets.burst),
                    bps: Some(spec.bytes.rate),
                    bps_burst: Some(spec.bytes.burst),
                    syn: Some(spec.syn.rate),
                    syn_burst: Some(spec.syn.burst),
                    v4_prefix: Some(spec.v4_prefix),
                    v6_prefix: Some(spec.v6_prefix),
                    monitor: Some(spec.monitor),
                },
            );
        }
        toml::to_string_pretty(&file)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Checked, ConfigError> {
        Config::parse(text, "t.toml")?.validate("t.toml")
    }

    fn err(text: &str) -> String {
        check(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_is_the_builtin_defaults() {
        let c = check("").unwrap();
        assert_eq!(c.policies, vec![PolicySpec::builtin_default()]);
        assert_eq!(c.file.agent.socket, "/run/shield/shield.sock");
        assert!(!c.file.autoban.enabled);
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../deploy/shield.toml");
        let c = check(text).unwrap();
        assert!(c.policies.len() >= 2);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let e = err("[global]\nmonitr = true\n");
        assert!(e.contains("monitr"), "{e}");
        let e = err("[nonsense]\n");
        assert!(e.contains("nonsense"), "{e}");
        let e = err("[policies.api]\npps_brust = 4\n");
        assert!(e.contains("pps_brust"), "{e}");
    }

    #[test]
    fn invalid_values_name_key_value_and_rule() {
        assert_eq!(
            err("[lists]\nblock = [\"198.18.0.999\"]\n").split(": ").nth(1),
            Some("lists.block[0] = \"198.18.0.999\"")
        );
        let e = err("[policies.api]\nports = [\"tcp/80\"]\nv4_prefix = 33\n");
        assert!(e.contains("policies.api") && e.contains("IPv4 prefix length 33"), "{e}");
        let e = err("[autoban]\nenabled = true\nthreshold = 0\n");
        assert!(e.contains("autoban.threshold = 0: must be at least 1"), "{e}");
        let e = err("[autoban]\nenabled = true\nban = \"2h\"\nmax_ban = \"1h\"\n");
        assert!(e.contains("autoban.max_ban"), "{e}");
        let e = err("[autoban]\nwindow = \"ten seconds\"\n");
        assert!(e.contains("window"), "{e}");
        let e = err("[global]\nmalformed = \"maybe\"\n");
        assert!(e.contains("maybe"), "{e}");
        let e = err("[agent]\nmode = \"turbo\"\n");
        assert!(e.contains("turbo"), "{e}");
    }

    #[test]
    fn metrics_listen_must_be_an_address() {
        assert!(err("[metrics]\nlisten = \"localhost\"\n").contains("metrics.listen"));
        assert_eq!(check("[metrics]\nlisten = \"\"\n").unwrap().file.metrics.listen, "");
        assert_eq!(check("").unwrap().file.metrics.listen, "127.0.0.1:9477");
    }

    #[test]
    fn a_port_in_two_policies_is_an_error() {
        let e = err("[policies.a]\nports = [\"tcp/443\"]\n[policies.b]\nports = [\"tcp/443\"]\n");
        assert!(e.contains("tcp/443 already belongs to policy"), "{e}");
    }

    #[test]
    fn a_block_over_management_is_an_error() {
        let e =
            err("[management]\nallow = [\"198.18.0.5\"]\n[lists]\nblock = [\"198.18.0.0/24\"]\n");
        assert!(e.contains("covers allowlisted 198.18.0.5/32"), "{e}");
    }

    #[test]
    fn policy_rates_without_bursts_get_a_second() {
        let c = check("[policies.api]\nports = [\"tcp/443\"]\npps = 300\nbps = 1000\n").unwrap();
        let api = c.policies.iter().find(|p| p.name == "api").unwrap();
        assert_eq!(api.packets, RateSpec { rate: 300, burst: 300 });
        assert_eq!(api.bytes, RateSpec { rate: 1000, burst: 1514 });
        assert_eq!(api.syn, PolicySpec::builtin_default().syn);
    }

    #[test]
    fn show_round_trips() {
        let c = check("[policies.api]\nports = [\"tcp/443\"]\npps = 300\n").unwrap();
        let again = check(&c.to_toml()).unwrap();
        assert_eq!(again.policies, c.policies);
    }
}
