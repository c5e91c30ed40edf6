//! Rate policies as operators write them (`PolicySpec`), their validation, and their kernel
//! form: a `POLICIES` slot plus the `PORT_POLICY` entries of its ports.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use shield_common::{
    gcra::{Limit, LimitError},
    policy::{
        DEFAULT_POLICY_ID, DEFAULT_V4_PREFIX, DEFAULT_V6_PREFIX, IPPROTO_TCP, IPPROTO_UDP,
        MAX_POLICIES, POLICY_ENABLED, POLICY_MONITOR, POLICY_NAME_LEN, Policy, port_policy_slot,
    },
};
use thiserror::Error;

/// Name of the policy in slot 0, used when no port policy matches.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// Smallest bytes burst: one full-size Ethernet frame must fit, or it could never pass.
pub const MIN_BYTES_BURST: u64 = 1514;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "policy name '{0}' is invalid: use 1..={POLICY_NAME_LEN} characters of a-z, 0-9, '-' and '_'"
    )]
    BadName(String),
    #[error("{field}: {source}")]
    Limit {
        field: &'static str,
        #[source]
        source: LimitError,
    },
    #[error("bytes burst {0} is below {MIN_BYTES_BURST}: a full-size frame could never pass")]
    BytesBurstTooSmall(u64),
    #[error("{family} prefix length {len} is out of range: use 1..={max}")]
    Prefix { family: &'static str, len: u8, max: u8 },
    #[error("'{0}' is not a port: use tcp/PORT or udp/PORT, e.g. tcp/443")]
    BadPort(String),
    #[error(
        "the default policy applies to every port not claimed by another policy; it cannot list ports"
    )]
    DefaultHasPorts,
    #[error("{port} already belongs to policy '{owner}'; remove it there first")]
    PortTaken { port: PortSpec, owner: String },
    #[error("no room for another policy ({max} at most, the default included)")]
    TooMany { max: u32 },
    #[error("no policy named '{0}'")]
    Unknown(String),
}

/// A protected destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    pub proto: u8,
    pub port: u16,
}

impl PortSpec {
    pub fn slot(self) -> u32 {
        // Only TCP and UDP ports are ever constructed.
        port_policy_slot(self.proto, self.port).unwrap_or(0)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = if self.proto == IPPROTO_UDP { "udp" } else { "tcp" };
        write!(f, "{proto}/{}", self.port)
    }
}

impl FromStr for PortSpec {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::BadPort(s.to_owned());
        let (proto, port) = match s.split_once('/') {
            Some(("tcp", p)) => (IPPROTO_TCP, p),
            Some(("udp", p)) => (IPPROTO_UDP, p),
            None => (IPPROTO_TCP, s),
            _ => return Err(bad()),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(PortSpec { proto, port })
    }
}

impl Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A rate (per second) and burst. A rate of 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSpec {
    pub rate: u64,
    pub burst: u64,
}

/// A policy as operators configure it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    pub name: String,
    /// Destination ports this policy protects; empty for the default policy.
    pub ports: Vec<PortSpec>,
    pub packets: RateSpec,
    pub bytes: RateSpec,
    pub syn: RateSpec,
    pub v4_prefix: u8,
    pub v6_prefix: u8,
    pub monitor: bool,
}

impl PolicySpec {
    /// The built-in default policy: generous enough not to get in the way of normal clients,
    /// tight enough that one source cannot flood the host or open connections by the thousand.
    pub fn builtin_default() -> PolicySpec {
        PolicySpec {
            name: DEFAULT_POLICY_NAME.to_owned(),
            ports: Vec::new(),
            packets: RateSpec { rate: 10_000, burst: 20_000 },
            bytes: RateSpec::default(),
            syn: RateSpec { rate: 200, burst: 400 },
            v4_prefix: DEFAULT_V4_PREFIX,
            v6_prefix: DEFAULT_V6_PREFIX,
            monitor: false,
        }
    }

    /// Validate and convert to the kernel's form.
    pub fn to_kernel(&self) -> Result<Policy, PolicyError> {
        validate_name(&self.name)?;
        if self.name == DEFAULT_POLICY_NAME && !self.ports.is_empty() {
            return Err(PolicyError::DefaultHasPorts);
        }
        let limit = |field, r: RateSpec| {
            Limit::new(r.rate, r.burst).map_err(|source| PolicyError::Limit { field, source })
        };
        if self.bytes.rate != 0 && self.bytes.burst < MIN_BYTES_BURST {
            return Err(PolicyError::BytesBurstTooSmall(self.bytes.burst));
        }
        if !(1..=32).contains(&self.v4_prefix) {
            return Err(PolicyError::Prefix { family: "IPv4", len: self.v4_prefix, max: 32 });
        }
        if !(1..=128).contains(&self.v6_prefix) {
            return Err(PolicyError::Prefix { family: "IPv6", len: self.v6_prefix, max: 128 });
        }
        let mut name = [0u8; POLICY_NAME_LEN];
        name[..self.name.len()].copy_from_slice(self.name.as_bytes());
        let (packets, bytes, syn) =
            (limit("packets", self.packets)?, limit("bytes", self.bytes)?, limit("syn", self.syn)?);
        let mut flags = POLICY_ENABLED;
        if self.monitor {
            flags |= POLICY_MONITOR;
        }
        if shield_common::policy::needs_fine_clock(
            &[packets, bytes, syn],
            crate::clock::coarse_tick_ns(),
        ) {
            flags |= shield_common::policy::POLICY_FINE_CLOCK;
        }
        Ok(Policy {
            packets,
            bytes,
            syn,
            name,
            v4_prefix_len: self.v4_prefix,
            v6_prefix_len: self.v6_prefix,
            flags,
            _reserved: [0; 5],
        })
    }

    /// The operator's view of a kernel policy and its ports.
    pub fn from_kernel(policy: &Policy, ports: Vec<PortSpec>) -> PolicySpec {
        let rate = |l: &Limit| RateSpec { rate: l.rate, burst: l.burst };
        PolicySpec {
            name: policy.name_str().to_owned(),
            ports,
            packets: rate(&policy.packets),
            bytes: rate(&policy.bytes),
            syn: rate(&policy.syn),
            v4_prefix: policy.v4_prefix_len,
            v6_prefix: policy.v6_prefix_len,
            monitor: policy.monitor(),
        }
    }
}

/// Policy names: 1..=16 of a-z, 0-9, `-` and `_` (they go into URLs and metric labels).
pub fn validate_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= POLICY_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(PolicyError::BadName(name.to_owned())) }
}

/// The policies in force, by slot. Slot 0 is always the default policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTable {
    pub slots: Vec<Option<PolicySpec>>,
}

impl PolicyTable {
    pub fn policies(&self) -> impl Iterator<Item = &PolicySpec> {
        self.slots.iter().flatten()
    }

    pub fn find(&self, name: &str) -> Option<(u32, &PolicySpec)> {
        self.slots
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.as_ref().filter(|p| p.name == name).map(|p| (i as u32, p)))
    }

    /// The table that holds exactly `desired` (the default policy included), keeping the slot
    /// of every policy that `self` already has, so the kernel can be moved from one to the
    /// other without a moment where a kept policy's ports point elsewhere.
    pub fn assign(&self, desired: &[PolicySpec]) -> Result<PolicyTable, PolicyError> {
        let mut table = PolicyTable::default();
        let mut pending = Vec::new();
        for spec in desired {
            match self.find(&spec.name) {
                Some((slot, _)) => table.apply(slot, placeholder(&spec.name)),
                None if spec.name == DEFAULT_POLICY_NAME => {
                    table.apply(DEFAULT_POLICY_ID, placeholder(&spec.name))
                }
                None => pending.push(spec),
            }
        }
        for spec in pending {
            let slot = (1..MAX_POLICIES)
                .find(|&i| table.slots.get(i as usize).is_none_or(Option::is_none))
                .ok_or(PolicyError::TooMany { max: MAX_POLICIES })?;
            table.apply(slot, placeholder(&spec.name));
        }
        // Now fill the slots for real, checking each spec and port ownership.
        let slots: Vec<(u32, String)> = table
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|p| (i as u32, p.name.clone())))
            .collect();
        let mut filled = PolicyTable::default();
        for (slot, name) in slots {
            let spec = desired
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| PolicyError::Unknown(name.clone()))?;
            spec.to_kernel()?;
            for port in &spec.ports {
                if let Some(owner) = filled.policies().find(|p| p.ports.contains(port)) {
                    return Err(PolicyError::PortTaken { port: *port, owner: owner.name.clone() });
                }
            }
            filled.apply(slot, spec.clone());
        }
        if filled.find(DEFAULT_POLICY_NAME).is_none() {
            return Err(PolicyError::Unknown(DEFAULT_POLICY_NAME.into()));
        }
        Ok(filled)
    }

    /// Record an applied change.
    pub fn apply(&mut self, slot: u32, spec: PolicySpec) {
        let slot = slot as usize;
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        self.slots[slot] = Some(spec);
    }
}

fn placeholder(name: &str) -> PolicySpec {
    PolicySpec { name: name.to_owned(), ..PolicySpec::builtin_default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_keeps_slots_and_fills_gaps() {
        let mut old = PolicyTable::default();
        old.apply(0, PolicySpec::builtin_default());
        old.apply(2, api(&["tcp/443"]));
        let mut other = api(&["tcp/80"]);
        other.name = "web".into();
        let new = old
            .assign(&[PolicySpec::builtin_default(), other.clone(), api(&["tcp/8443"])])
            .unwrap();
        assert_eq!(new.find("api").map(|(s, _)| s), Some(2));
        assert_eq!(new.find("web").map(|(s, _)| s), Some(1));
        assert_eq!(new.find("default").map(|(s, _)| s), Some(0));
        assert_eq!(new.find("api").unwrap().1.ports, vec!["tcp/8443".parse().unwrap()]);
    }

    #[test]
    fn assign_refuses_shared_ports_and_a_missing_default() {
        let t = PolicyTable::default();
        let mut b = api(&["tcp/443"]);
        b.name = "b".into();
        assert!(matches!(
            t.assign(&[PolicySpec::builtin_default(), api(&["tcp/443"]), b]),
            Err(PolicyError::PortTaken { .. })
        ));
        assert_eq!(t.assign(&[api(&[])]), Err(PolicyError::Unknown("default".into())));
    }

    fn api(ports: &[&str]) -> PolicySpec {
        PolicySpec {
            name: "api".into(),
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            ..PolicySpec::builtin_default()
        }
    }

    #[test]
    fn builtin_default_is_valid() {
        let p = PolicySpec::builtin_default().to_kernel().unwrap();
        assert!(p.enabled());
        assert!(!p.monitor());
        assert_eq!(p.name_str(), "default");
    }

    #[test]
    fn only_policies_with_short_bursts_pay_for_the_fine_clock() {
        // The default's bursts are two seconds of tokens: the coarse clock serves them.
        assert!(!PolicySpec::builtin_default().to_kernel().unwrap().fine_clock());
        // A burst of one packet at 1000/s is a millisecond of tokens, under one tick.
        let mut s = PolicySpec::builtin_default();
        s.syn = RateSpec { rate: 1000, burst: 1 };
        assert!(s.to_kernel().unwrap().fine_clock());
    }

    #[test]
    fn kernel_round_trip_keeps_every_field() {
        let mut spec = api(&["tcp/443", "udp/53"]);
        spec.bytes = RateSpec { rate: 1_000_000, burst: 100_000 };
        spec.monitor = true;
        spec.v6_prefix = 48;
        let k = spec.to_kernel().unwrap();
        assert_eq!(PolicySpec::from_kernel(&k, spec.ports.clone()), spec);
    }

    #[test]
    fn ports_parse() {
        assert_eq!(
            "tcp/443".parse::<PortSpec>().unwrap(),
            PortSpec { proto: IPPROTO_TCP, port: 443 }
        );
        assert_eq!(
            "8080".parse::<PortSpec>().unwrap(),
            PortSpec { proto: IPPROTO_TCP, port: 8080 }
        );
        assert_eq!("udp/53".parse::<PortSpec>().unwrap().to_string(), "udp/53");
        for bad in ["sctp/80", "tcp/0", "tcp/65536", "tcp/", "x"] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut s = api(&[]);
        s.name = "Bad Name".into();
        assert!(matches!(s.to_kernel(), Err(PolicyError::BadName(_))));
        let mut s = api(&[]);
        s.v4_prefix = 0;
        assert!(matches!(s.to_kernel(), Err(PolicyError::Prefix { .. })));
        let mut s = api(&[]);
        s.v6_prefix = 129;
        assert!(matches!(s.to_kernel(), Err(PolicyError::Prefix { .. })));
        let mut s = api(&[]);
        s.packets = RateSpec { rate: 10, burst: 0 };
        assert!(matches!(s.to_kernel(), Err(PolicyError::Limit { field: "packets", .. })));
        let mut s = api(&[]);
        s.bytes = RateSpec { rate: 10, burst: 100 };
        assert_eq!(s.to_kernel(), Err(PolicyError::BytesBurstTooSmall(100)));
        let mut s = PolicySpec::builtin_default();
        s.ports = vec!["tcp/80".parse().unwrap()];
        assert_eq!(s.to_kernel(), Err(PolicyError::DefaultHasPorts));
    }

    #[test]
    fn a_new_policy_takes_the_first_free_slot_and_a_port_belongs_to_one_policy() {
        let mut t = PolicyTable::default();
        t.apply(0, PolicySpec::builtin_default());
        let t = t.assign(&[PolicySpec::builtin_default(), api(&["tcp/443"])]).unwrap();
        assert_eq!(t.find("api").map(|(slot, _)| slot), Some(1));
        let mut other = api(&["tcp/443"]);
        other.name = "other".into();
        let desired = [PolicySpec::builtin_default(), api(&["tcp/443"]), other];
        assert!(matches!(t.assign(&desired), Err(PolicyError::PortTaken { .. })));
    }

    #[test]
    fn replacing_a_policy_keeps_its_slot_and_drops_its_old_ports() {
        let mut t = PolicyTable::default();
        t.apply(0, PolicySpec::builtin_default());
        t.apply(1, api(&["tcp/443", "tcp/8443"]));
        let t = t.assign(&[PolicySpec::builtin_default(), api(&["tcp/443"])]).unwrap();
        let (slot, spec) = t.find("api").unwrap();
        assert_eq!(slot, 1);
        assert_eq!(spec.ports, vec!["tcp/443".parse::<PortSpec>().unwrap()]);
        let dropped: PortSpec = "tcp/8443".parse().unwrap();
        assert!(t.policies().all(|p| !p.ports.contains(&dropped)));
    }

    #[test]
    fn slots_run_out() {
        let mut desired = vec![PolicySpec::builtin_default()];
        for i in 1..MAX_POLICIES {
            let mut s = api(&[]);
            s.name = format!("p{i}");
            desired.push(s);
        }
        assert!(PolicyTable::default().assign(&desired).is_ok());
        let mut s = api(&[]);
        s.name = "one-more".into();
        desired.push(s);
        assert_eq!(
            PolicyTable::default().assign(&desired),
            Err(PolicyError::TooMany { max: MAX_POLICIES })
        );
    }
}
