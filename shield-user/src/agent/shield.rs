//! The running shield: the loaded program, its maps, its policies and interfaces, and every
//! operation the control API offers on them. All map writes go through here.

use std::time::Duration;

use ipnet::IpNet;
use shield_common::{
    config::{CONFIG_DROP_MALFORMED, CONFIG_MONITOR, RuntimeConfig},
    lists::Origin,
    maps::{
        ALLOW_V4_CAPACITY, ALLOW_V6_CAPACITY, BLOCK_V4_CAPACITY, BLOCK_V6_CAPACITY,
        BUCKETS_CAPACITY,
    },
    policy::{DEFAULT_POLICY_ID, MAX_POLICIES, PORT_POLICY_SLOTS},
};
use thiserror::Error;

use crate::{
    api::{self, Global, GlobalUpdate, MapFill, PolicyUpdate},
    lists::{List, ListError, ListKind, parse_net},
    policies::{
        DEFAULT_POLICY_NAME, MIN_BYTES_BURST, PolicyError, PolicySpec, PolicyTable, PortSpec,
        RateSpec,
    },
    program::Loaded,
    stats,
};

/// Errors of control operations, each mapped to an HTTP status by the API.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(
        "{net} covers allowlisted {allowed}; allow wins over block, so the block would not apply there. Pass --force to add it anyway"
    )]
    CoversAllowlisted { net: IpNet, allowed: IpNet },
    #[error("writing map {map} failed: {reason}")]
    Map { map: &'static str, reason: String },
}

impl ControlError {
    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::List(ListError::NotListed { .. })
            | ControlError::Policy(PolicyError::Unknown(_)) => 404,
            ControlError::List(ListError::Full { .. }) => 507,
            ControlError::CoversAllowlisted { .. }
            | ControlError::Policy(PolicyError::PortTaken { .. }) => 409,
            ControlError::List(ListError::Kernel { .. }) | ControlError::Map { .. } => 500,
            ControlError::List(_) | ControlError::Policy(_) => 400,
        }
    }
}

pub struct Shield {
    pub loaded: Loaded,
    pub policies: PolicyTable,
    pub interfaces: Vec<api::InterfaceStatus>,
    pub pin_dir: String,
}

impl Shield {
    /// Wrap a freshly loaded program: install the built-in default policy on fresh maps, and
    /// read back the policies of adopted ones.
    pub fn new(loaded: Loaded, pin_dir: String) -> Result<Shield, ControlError> {
        let mut shield =
            Shield { loaded, policies: PolicyTable::default(), interfaces: Vec::new(), pin_dir };
        shield.policies = shield.read_policies();
        if shield.policies.find(DEFAULT_POLICY_NAME).is_none() {
            shield.write_policy(&PolicySpec::builtin_default())?;
        }
        Ok(shield)
    }

    /// Rebuild the policy table from the maps (after adopting pinned maps).
    fn read_policies(&self) -> PolicyTable {
        let maps = &self.loaded.maps;
        let mut ports: Vec<Vec<PortSpec>> = vec![Vec::new(); MAX_POLICIES as usize];
        for slot in 0..PORT_POLICY_SLOTS {
            if let Ok(id) = maps.port_policy.get(&slot, 0)
                && id != DEFAULT_POLICY_ID
                && let Some(list) = ports.get_mut(id as usize)
            {
                let (proto, port) = if slot < 65_536 {
                    (shield_common::policy::IPPROTO_TCP, slot as u16)
                } else {
                    (shield_common::policy::IPPROTO_UDP, (slot - 65_536) as u16)
                };
                list.push(PortSpec { proto, port });
            }
        }
        let mut table = PolicyTable::default();
        for (id, ports) in ports.into_iter().enumerate() {
            if let Ok(p) = maps.policies.get(&(id as u32), 0)
                && p.enabled()
            {
                table.apply(id as u32, PolicySpec::from_kernel(&p, ports));
            }
        }
        table
    }

    fn list(&mut self, kind: ListKind) -> List<'_> {
        let maps = &mut self.loaded.maps;
        match kind {
            ListKind::Allow => List {
                kind,
                v4: &mut maps.allow_v4,
                v6: &mut maps.allow_v6,
                v4_capacity: ALLOW_V4_CAPACITY,
                v6_capacity: ALLOW_V6_CAPACITY,
            },
            ListKind::Block => List {
                kind,
                v4: &mut maps.block_v4,
                v6: &mut maps.block_v6,
                v4_capacity: BLOCK_V4_CAPACITY,
                v6_capacity: BLOCK_V6_CAPACITY,
            },
        }
    }

    /// Add to a list. A block that would cover allowlisted addresses is refused unless forced.
    pub fn list_add(&mut self, kind: ListKind, req: &api::ListAdd) -> Result<IpNet, ControlError> {
        let net = parse_net(&req.net)?;
        if kind == ListKind::Block && !req.force {
            let overlapping = self
                .list(ListKind::Allow)
                .listed()
                .into_iter()
                .find(|a| a.net.contains(&net) || net.contains(&a.net));
            if let Some(allowed) = overlapping {
                return Err(ControlError::CoversAllowlisted { net, allowed: allowed.net });
            }
        }
        let ttl = req.ttl_secs.map(Duration::from_secs);
        self.list(kind).insert(net, ttl, Origin::Manual)?;
        tracing::info!(list = kind.noun(), %net, ttl_secs = req.ttl_secs, "entry added");
        Ok(net)
    }

    pub fn list_delete(
        &mut self,
        kind: ListKind,
        req: &api::ListDelete,
    ) -> Result<IpNet, ControlError> {
        let net = parse_net(&req.net)?;
        self.list(kind).remove(net)?;
        tracing::info!(list = kind.noun(), %net, "entry deleted");
        Ok(net)
    }

    pub fn list_entries(&mut self, kind: ListKind) -> api::ListEntries {
        api::ListEntries { kind, entries: self.list(kind).listed() }
    }

    /// Remove expired entries from both lists.
    pub fn expire(&mut self) -> usize {
        let removed = self.list(ListKind::Block).remove_expired()
            + self.list(ListKind::Allow).remove_expired();
        if removed > 0 {
            tracing::info!(removed, "expired list entries removed");
        }
        removed
    }

    /// Create or change a policy; validated completely before anything is written.
    pub fn policy_set(
        &mut self,
        name: &str,
        update: &PolicyUpdate,
    ) -> Result<PolicySpec, ControlError> {
        let base = match self.policies.find(name) {
            Some((_, p)) => p.clone(),
            None => PolicySpec { name: name.to_owned(), ..PolicySpec::builtin_default() },
        };
        let spec = merge(base, update);
        self.write_policy(&spec)?;
        tracing::info!(policy = name, ?spec, "policy set");
        Ok(spec)
    }

    fn write_policy(&mut self, spec: &PolicySpec) -> Result<(), ControlError> {
        let change = self.policies.plan_set(spec)?;
        let maps = &mut self.loaded.maps;
        let map_err =
            |map, e: aya::maps::MapError| ControlError::Map { map, reason: e.to_string() };
        // Policy first, then its ports: a port never points at a slot without its policy.
        maps.policies.set(change.slot, change.policy, 0).map_err(|e| map_err("POLICIES", e))?;
        for slot in &change.claim {
            maps.port_policy.set(*slot, change.slot, 0).map_err(|e| map_err("PORT_POLICY", e))?;
        }
        for slot in &change.release {
            maps.port_policy
                .set(*slot, DEFAULT_POLICY_ID, 0)
                .map_err(|e| map_err("PORT_POLICY", e))?;
        }
        self.policies.apply(change.slot, spec.clone());
        Ok(())
    }

    pub fn policy_list(&self) -> api::Policies {
        api::Policies { policies: self.policies.policies().cloned().collect() }
    }

    pub fn global(&self) -> Global {
        let config = self.loaded.maps.config.get(&0, 0).unwrap_or_default();
        Global { monitor: config.monitor(), drop_malformed: config.drop_malformed() }
    }

    pub fn global_set(&mut self, update: &GlobalUpdate) -> Result<Global, ControlError> {
        let mut global = self.global();
        if let Some(m) = update.monitor {
            global.monitor = m;
        }
        if let Some(d) = update.drop_malformed {
            global.drop_malformed = d;
        }
        let flags = if global.monitor { CONFIG_MONITOR } else { 0 }
            | if global.drop_malformed { CONFIG_DROP_MALFORMED } else { 0 };
        self.loaded
            .maps
            .config
            .set(0, RuntimeConfig { flags, _reserved: 0 }, 0)
            .map_err(|e| ControlError::Map { map: "CONFIG", reason: e.to_string() })?;
        tracing::info!(
            monitor = global.monitor,
            drop_malformed = global.drop_malformed,
            "global settings changed"
        );
        Ok(global)
    }

    pub fn stats(&self) -> api::Stats {
        api::Stats { counters: stats::counter_rows(&stats::read_counters(&self.loaded.maps)) }
    }

    pub fn status(&mut self) -> api::Status {
        let program_id = self.loaded.xdp().ok().and_then(|x| x.info().ok()).map(|i| i.id());
        let maps = &self.loaded.maps;
        let fill = |name: &str, entries: usize, capacity: u32| MapFill {
            name: name.to_owned(),
            entries,
            capacity,
        };
        let map_fill = vec![
            fill("allow_v4", maps.allow_v4.keys().count(), ALLOW_V4_CAPACITY),
            fill("allow_v6", maps.allow_v6.keys().count(), ALLOW_V6_CAPACITY),
            fill("block_v4", maps.block_v4.keys().count(), BLOCK_V4_CAPACITY),
            fill("block_v6", maps.block_v6.keys().count(), BLOCK_V6_CAPACITY),
            fill("sources", maps.buckets.keys().count(), BUCKETS_CAPACITY),
        ];
        api::Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            program_id,
            pin_dir: self.pin_dir.clone(),
            interfaces: self.interfaces.clone(),
            global: self.global(),
            policies: self.policies.policies().count(),
            maps: map_fill,
        }
    }
}

/// Apply the fields of `update` that are set. A rate given without a burst gets one second's
/// worth (and a bytes burst always fits a full-size frame).
fn merge(mut spec: PolicySpec, u: &PolicyUpdate) -> PolicySpec {
    if let Some(p) = &u.ports {
        spec.ports = p.clone();
    }
    let set = |target: &mut RateSpec, rate: Option<u64>, burst: Option<u64>, floor: u64| {
        if let Some(r) = rate {
            target.rate = r;
            target.burst = burst.unwrap_or(r.max(floor));
        } else if let Some(b) = burst {
            target.burst = b;
        }
        if target.rate == 0 {
            target.burst = 0;
        }
    };
    set(&mut spec.packets, u.packets_rate, u.packets_burst, 1);
    set(&mut spec.bytes, u.bytes_rate, u.bytes_burst, MIN_BYTES_BURST);
    set(&mut spec.syn, u.syn_rate, u.syn_burst, 1);
    if let Some(v) = u.v4_prefix {
        spec.v4_prefix = v;
    }
    if let Some(v) = u.v6_prefix {
        spec.v6_prefix = v;
    }
    if let Some(v) = u.monitor {
        spec.monitor = v;
    }
    spec
}
