//! The running shield: the loaded program, its maps, its policies, configuration and durable
//! state, and every operation the control API offers on them. All map and state writes go
//! through here.

use std::{
    collections::{BTreeSet, VecDeque},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use shield_common::{
    config::{CONFIG_AUTOBAN, CONFIG_DROP_MALFORMED, CONFIG_MONITOR, RuntimeConfig},
    counters::Reason,
    events::{Event, EventKind, Health},
    gcra::Limit,
    lists::{ListEntry, Origin},
    maps::{
        ALLOW_V4_CAPACITY, ALLOW_V6_CAPACITY, BLOCK_V4_CAPACITY, BLOCK_V6_CAPACITY,
        BUCKETS_CAPACITY,
    },
    policy::{DEFAULT_POLICY_ID, Policy},
    source::FAMILY_V4,
};
use thiserror::Error;

use crate::{
    api::{
        self, EventRecord, Global, GlobalUpdate, ImportResult, MapFill, PolicyUpdate, ReloadStatus,
    },
    clock,
    config::{Checked, Config, ConfigError, MalformedVerdict},
    lists::{self, List, ListError, ListKind, parse_net},
    policies::{MIN_BYTES_BURST, PolicyError, PolicySpec, PolicyTable, RateSpec},
    program::Loaded,
    state::{State, StateError, StoredEntry, StoredOrigin},
    stats,
};

/// Errors of control operations, each mapped to an HTTP status by the API.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "{net} covers allowlisted {allowed}; allow wins over block, so the block would not apply there. Pass --force to add it anyway"
    )]
    CoversAllowlisted { net: IpNet, allowed: IpNet },
    #[error(
        "{net} is a management address from the configuration; it cannot be deleted at run time (edit the configuration and reload)"
    )]
    Management { net: IpNet },
    #[error(
        "the import does not fit: the blocklist would hold {needed} {family} entries, its capacity is {capacity}; nothing was imported"
    )]
    ImportTooLarge { family: &'static str, needed: usize, capacity: u32 },
    #[error("writing map {map} failed: {reason}")]
    Map { map: &'static str, reason: String },
    #[error("the reason must be printable text of at most {max} characters")]
    BadReason { max: usize },
}

impl ControlError {
    /// HTTP status for the API.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::List(ListError::NotListed { .. })
            | ControlError::Policy(PolicyError::Unknown(_)) => 404,
            ControlError::List(ListError::Full { .. }) | ControlError::ImportTooLarge { .. } => 507,
            ControlError::CoversAllowlisted { .. }
            | ControlError::Management { .. }
            | ControlError::Policy(PolicyError::PortTaken { .. }) => 409,
            ControlError::List(ListError::Kernel { .. })
            | ControlError::Map { .. }
            | ControlError::State(_) => 500,
            ControlError::List(_)
            | ControlError::Policy(_)
            | ControlError::Config(_)
            | ControlError::BadReason { .. } => 400,
        }
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> ControlError {
    move |e| ControlError::Map { map, reason: e.to_string() }
}

pub struct Shield {
    pub loaded: Loaded,
    pub policies: PolicyTable,
    pub interfaces: Vec<api::InterfaceStatus>,
    pub pin_dir: String,
    pub config: Checked,
    pub config_path: PathBuf,
    pub state: State,
    pub state_dir: PathBuf,
    /// Auto-bans recorded in `state` but not yet written (flushed within a second).
    state_dirty: bool,
    pub events: VecDeque<EventRecord>,
    /// Runtime changes of the global settings (until the next reload).
    global_override: GlobalUpdate,
    pub reload: ReloadStatus,
    /// Sources in the bucket map, counted by the housekeeping task (counting walks the map).
    pub sources_tracked: usize,
    /// Events received from the kernel: [bans, drop samples].
    pub events_received: [u64; 2],
    /// When the running configuration was loaded (start or last successful reload).
    pub config_loaded_unix: u64,
    /// The lost-events count at the last full sweep of the maps.
    events_lost_swept: u64,
    /// When the list prefilter was last rebuilt.
    prefilter_rebuilt: std::time::Instant,
}

/// Least time between rebuilds of the list prefilter (each reads every list key).
const PREFILTER_REBUILD_INTERVAL: Duration = Duration::from_secs(30);

impl Shield {
    /// Take over a freshly loaded program: apply the configuration, then restore the durable
    /// state into the maps.
    pub fn new(
        loaded: Loaded,
        pin_dir: String,
        config: Checked,
        config_path: PathBuf,
        state_dir: PathBuf,
        global_override: GlobalUpdate,
    ) -> Result<Shield, ControlError> {
        let state = State::load(&state_dir)?;
        let mut shield = Shield {
            loaded,
            policies: PolicyTable::default(),
            interfaces: Vec::new(),
            pin_dir,
            config: config.clone(),
            config_path,
            state,
            state_dir,
            state_dirty: false,
            events: VecDeque::new(),
            global_override,
            reload: ReloadStatus::default(),
            sources_tracked: 0,
            events_received: [0, 0],
            config_loaded_unix: clock::unix_now(),
            events_lost_swept: 0,
            prefilter_rebuilt: std::time::Instant::now(),
        };
        shield.policies = shield.read_policies();
        shield.apply_config(config)?;
        shield.restore_state()?;
        Ok(shield)
    }

    /// Rebuild the policy table from the maps (after adopting pinned maps).
    fn read_policies(&self) -> PolicyTable {
        let maps = &self.loaded.maps;
        let mut ports: Vec<Vec<crate::policies::PortSpec>> =
            vec![Vec::new(); shield_common::policy::MAX_POLICIES as usize];
        for slot in 0..shield_common::policy::PORT_POLICY_SLOTS {
            if let Ok(id) = maps.port_policy.get(&slot, 0)
                && id != DEFAULT_POLICY_ID
                && let Some(list) = ports.get_mut(id as usize)
            {
                let (proto, port) = if slot < 65_536 {
                    (shield_common::policy::IPPROTO_TCP, slot as u16)
                } else {
                    (shield_common::policy::IPPROTO_UDP, (slot - 65_536) as u16)
                };
                list.push(crate::policies::PortSpec { proto, port });
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
        self.loaded.maps.list(kind)
    }

    // ---- configuration ----

    /// Apply a checked configuration: policies (with the CLI's overrides from the state),
    /// static and management list entries, global settings, auto-ban and event sampling.
    /// Counters, buckets and dynamic entries are left as they are.
    fn apply_config(&mut self, config: Checked) -> Result<(), ControlError> {
        let desired = self.desired_policies(&config)?;
        self.install_policies(&desired)?;
        let mut allow: Vec<IpNet> = config.management.clone();
        allow.extend(&config.allow);
        self.sync_config_entries(ListKind::Allow, &allow)?;
        self.sync_config_entries(ListKind::Block, &config.block)?;
        self.config = config;
        self.write_runtime_config()?;
        Ok(())
    }

    /// The configuration's policies with the CLI's changes (from the state) laid over them.
    fn desired_policies(&self, config: &Checked) -> Result<Vec<PolicySpec>, ControlError> {
        let mut desired = config.policies.clone();
        for o in &self.state.policies {
            match desired.iter_mut().find(|p| p.name == o.name) {
                Some(p) => *p = o.clone(),
                None => desired.push(o.clone()),
            }
        }
        Ok(desired)
    }

    /// Move the kernel to exactly `desired`: new and changed policies first, then ports, then
    /// released ports and removed slots, so no port ever points at a missing policy.
    fn install_policies(&mut self, desired: &[PolicySpec]) -> Result<(), ControlError> {
        let table = self.policies.assign(desired)?;
        let maps = &mut self.loaded.maps;
        let mut new_ports = BTreeSet::new();
        for (slot, spec) in table.slots.iter().enumerate() {
            if let Some(spec) = spec {
                maps.policies
                    .set(slot as u32, spec.to_kernel()?, 0)
                    .map_err(map_err("POLICIES"))?;
                for port in &spec.ports {
                    maps.port_policy
                        .set(port.slot(), slot as u32, 0)
                        .map_err(map_err("PORT_POLICY"))?;
                    new_ports.insert(port.slot());
                }
            }
        }
        for old in self.policies.policies().flat_map(|p| p.ports.iter()) {
            if !new_ports.contains(&old.slot()) {
                maps.port_policy
                    .set(old.slot(), DEFAULT_POLICY_ID, 0)
                    .map_err(map_err("PORT_POLICY"))?;
            }
        }
        for (slot, spec) in self.policies.slots.iter().enumerate() {
            if spec.is_some() && table.slots.get(slot).is_none_or(Option::is_none) {
                maps.policies
                    .set(slot as u32, Policy::default(), 0)
                    .map_err(map_err("POLICIES"))?;
            }
        }
        self.policies = table;
        Ok(())
    }

    /// Make the configuration-origin entries of a list exactly `desired`.
    fn sync_config_entries(
        &mut self,
        kind: ListKind,
        desired: &[IpNet],
    ) -> Result<(), ControlError> {
        let mut list = self.list(kind);
        let stale: Vec<IpNet> = list
            .entries()
            .into_iter()
            .filter(|(net, e)| e.origin == Origin::Config as u32 && !desired.contains(net))
            .map(|(net, _)| net)
            .collect();
        for net in desired {
            list.insert(*net, None, Origin::Config)?;
        }
        for net in stale {
            list.remove(net)?;
        }
        Ok(())
    }

    fn global_settings(&self) -> Global {
        let g = &self.config.file.global;
        Global {
            monitor: self.global_override.monitor.unwrap_or(g.monitor),
            drop_malformed: self
                .global_override
                .drop_malformed
                .unwrap_or(g.malformed == MalformedVerdict::Drop),
        }
    }

    fn write_runtime_config(&mut self) -> Result<(), ControlError> {
        let global = self.global_settings();
        let a = &self.config.file.autoban;
        let samples = self.config.file.events.drop_samples_per_sec;
        let sources = &self.config.file.sources;
        let flags = if global.monitor { CONFIG_MONITOR } else { 0 }
            | if global.drop_malformed { CONFIG_DROP_MALFORMED } else { 0 }
            | if a.enabled { CONFIG_AUTOBAN } else { 0 };
        let runtime = RuntimeConfig {
            flags,
            autoban_threshold: a.threshold,
            autoban_window_ns: a.window.as_nanos().min(u64::MAX as u128) as u64,
            autoban_ban_ns: a.ban.as_nanos().min(u64::MAX as u128) as u64,
            autoban_max_ban_ns: a.max_ban.as_nanos().min(u64::MAX as u128) as u64,
            realtime_offset_ns: clock::realtime_offset_ns(),
            drop_samples: Limit::new(samples, samples.max(1)).unwrap_or(Limit::OFF),
            admission: Limit::new(sources.admit_per_sec, sources.admit_burst.max(1))
                .unwrap_or(Limit::OFF),
            aggregate_v4_prefix: sources.aggregate_v4_prefix,
            aggregate_v6_prefix: sources.aggregate_v6_prefix,
            _reserved: [0; 6],
        };
        self.loaded.maps.config.set(0, runtime, 0).map_err(map_err("CONFIG"))
    }

    /// Reload the configuration file: validate all of it, apply nothing on any error.
    pub fn reload(&mut self) -> Result<(), ControlError> {
        let result = Config::load_or_default(&self.config_path)
            .map_err(ControlError::from)
            .and_then(|checked| {
                // Check the policies with the CLI's overrides before touching anything.
                let desired = self.desired_policies(&checked)?;
                self.policies.assign(&desired)?;
                self.global_override = GlobalUpdate::default();
                self.apply_config(checked)
            });
        self.reload.last_unix = Some(clock::unix_now());
        match &result {
            Ok(()) => {
                self.config_loaded_unix = clock::unix_now();
                self.reload.succeeded += 1;
                self.reload.last_ok = Some(true);
                self.reload.last_error = None;
                tracing::info!(config = %self.config_path.display(), "configuration reloaded");
            }
            Err(e) => {
                self.reload.failed += 1;
                self.reload.last_ok = Some(false);
                self.reload.last_error = Some(e.to_string());
                tracing::error!(config = %self.config_path.display(), error = %e, "reload refused; the previous configuration stays in force");
            }
        }
        result
    }

    // ---- durable state ----

    /// Put the state's entries into the maps. Entries in the maps that the state does not know
    /// are removed (the CLI was never told they were done), except auto-bans, which the kernel
    /// writes itself: those are adopted into the state.
    fn restore_state(&mut self) -> Result<(), ControlError> {
        let now_unix = clock::unix_now();
        self.state.remove_expired(now_unix);
        for e in self.state.entries.values().cloned().collect::<Vec<_>>() {
            let ttl = e.expires_at_unix.map(|t| Duration::from_secs(t.saturating_sub(now_unix)));
            let origin = e.origin.to_kernel();
            self.list(e.list).insert_entry(e.net, lists::entry(ttl, origin, e.created_at_unix))?;
        }
        for kind in [ListKind::Allow, ListKind::Block] {
            let known: BTreeSet<IpNet> =
                self.state.entries.keys().filter(|(k, _)| *k == kind).map(|(_, n)| *n).collect();
            let in_map = self.list(kind).entries();
            for (net, entry) in in_map {
                match Origin::from_u32(entry.origin) {
                    Some(Origin::Config) => {}
                    Some(Origin::Auto)
                        if !known.contains(&net) && entry.active_at(clock::monotonic_ns()) =>
                    {
                        self.state.upsert(stored(kind, net, &entry, None));
                    }
                    _ if !known.contains(&net) => {
                        self.list(kind).remove(net)?;
                        tracing::info!(list = kind.noun(), %net, "removed an entry the state file does not hold");
                    }
                    _ => {}
                }
            }
        }
        self.state.save(&self.state_dir)?;
        Ok(())
    }

    /// Write the state file now.
    fn persist(&mut self) -> Result<(), ControlError> {
        self.state.save(&self.state_dir)?;
        self.state_dirty = false;
        Ok(())
    }

    /// Write the state file if auto-bans changed it.
    pub fn flush(&mut self) {
        if self.state_dirty
            && let Err(e) = self.persist()
        {
            tracing::error!(error = %e, "writing the state file failed; will retry");
        }
    }

    // ---- lists ----

    fn allowlisted_overlap(&mut self, net: IpNet) -> Option<IpNet> {
        self.list(ListKind::Allow)
            .listed()
            .into_iter()
            .map(|a| a.net)
            .find(|a| a.contains(&net) || net.contains(a))
    }

    /// Add to a list; recorded in the state file before returning. A block that would cover
    /// allowlisted addresses is refused unless forced.
    pub fn list_add(&mut self, kind: ListKind, req: &api::ListAdd) -> Result<IpNet, ControlError> {
        let net = parse_net(&req.net)?;
        let reason = check_reason(req.reason.as_deref())?;
        if kind == ListKind::Block
            && !req.force
            && let Some(allowed) = self.allowlisted_overlap(net)
        {
            return Err(ControlError::CoversAllowlisted { net, allowed });
        }
        let ttl = req.ttl_secs.map(Duration::from_secs);
        let entry = lists::entry(ttl, Origin::Manual, clock::unix_now());
        let previous = self.list(kind).get(net);
        if previous.is_some_and(|p| p.origin == Origin::Config as u32) {
            return Err(ControlError::Management { net });
        }
        self.list(kind).insert_entry(net, entry)?;
        self.state.upsert(StoredEntry { reason, ..stored(kind, net, &entry, None) });
        if let Err(e) = self.persist() {
            // Not durable, so not done: undo the map write.
            self.state.remove(kind, net);
            match previous {
                Some(p) => self.list(kind).insert_entry(net, p)?,
                None => self.list(kind).remove(net)?,
            }
            return Err(e);
        }
        tracing::info!(list = kind.noun(), %net, ttl_secs = req.ttl_secs, "entry added");
        Ok(net)
    }

    pub fn list_delete(
        &mut self,
        kind: ListKind,
        req: &api::ListDelete,
    ) -> Result<IpNet, ControlError> {
        let net = parse_net(&req.net)?;
        let current = self.list(kind).get(net);
        if current.is_some_and(|e| e.origin == Origin::Config as u32) {
            return Err(ControlError::Management { net });
        }
        self.list(kind).remove(net)?;
        self.state.remove(kind, net);
        self.persist()?;
        tracing::info!(list = kind.noun(), %net, "entry deleted");
        Ok(net)
    }

    pub fn list_entries(&mut self, kind: ListKind) -> api::ListEntries {
        let mut entries = self.list(kind).listed();
        for e in &mut entries {
            e.reason = self.state.entries.get(&(kind, e.net)).and_then(|s| s.reason.clone());
        }
        api::ListEntries { kind, entries }
    }

    /// Import a blocklist: everything is checked first (addresses, lockout, capacity); then
    /// all entries are written, and only then, with `replace`, the previous import's entries
    /// that are not in this one are removed. The state file is written before returning.
    pub fn import(&mut self, req: &api::Import) -> Result<ImportResult, ControlError> {
        let reason = check_reason(req.reason.as_deref())?;
        let nets: Vec<IpNet> = req
            .nets
            .iter()
            .map(|n| parse_net(n))
            .collect::<Result<BTreeSet<_>, _>>()?
            .into_iter()
            .collect();
        if !req.force {
            let allowed: Vec<IpNet> =
                self.list(ListKind::Allow).listed().into_iter().map(|a| a.net).collect();
            for net in &nets {
                if let Some(a) = allowed.iter().find(|a| a.contains(net) || net.contains(*a)) {
                    return Err(ControlError::CoversAllowlisted { net: *net, allowed: *a });
                }
            }
        }
        // What the blocklist holds, from the state and the configuration (no map walk: the
        // blocklist may hold a million entries).
        let mut present: BTreeSet<IpNet> = self
            .state
            .entries
            .keys()
            .filter(|(k, _)| *k == ListKind::Block)
            .map(|(_, n)| *n)
            .collect();
        present.extend(&self.config.block);
        let new: BTreeSet<IpNet> = nets.iter().copied().collect();
        let previous_import: Vec<IpNet> = self
            .state
            .entries
            .iter()
            .filter(|((k, n), e)| {
                *k == ListKind::Block && e.origin == StoredOrigin::Import && !new.contains(n)
            })
            .map(|((_, n), _)| *n)
            .collect();
        let removed = if req.replace { previous_import.len() } else { 0 };
        let added = nets.iter().filter(|n| !present.contains(n)).count();
        let is_v4 = |n: &&IpNet| matches!(n, IpNet::V4(_));
        for (family, capacity, v4) in
            [("IPv4", BLOCK_V4_CAPACITY, true), ("IPv6", BLOCK_V6_CAPACITY, false)]
        {
            let needed = present.iter().filter(|n| is_v4(n) == v4).count()
                + nets.iter().filter(|n| is_v4(n) == v4 && !present.contains(n)).count();
            if needed > capacity as usize {
                return Err(ControlError::ImportTooLarge { family, needed, capacity });
            }
        }
        let result = ImportResult {
            dry_run: req.dry_run,
            added,
            updated: nets.len() - added,
            removed,
            total: present.len() + added - removed,
        };
        if req.dry_run {
            return Ok(result);
        }
        let started = std::time::Instant::now();
        let ttl = req.ttl_secs.map(Duration::from_secs);
        let entry = lists::entry(ttl, Origin::Import, clock::unix_now());
        if let Err(e) = self.list(ListKind::Block).insert_many(&nets, entry) {
            // All or nothing: take back what this import added.
            for net in nets.iter().filter(|n| !present.contains(n)) {
                let _ = self.list(ListKind::Block).remove(*net);
            }
            return Err(e.into());
        }
        let map_secs = started.elapsed().as_secs_f64();
        let record =
            stored(ListKind::Block, "0.0.0.0/32".parse().unwrap_or_default(), &entry, None);
        for net in &nets {
            let record = StoredEntry { net: *net, ..record.clone() };
            self.state.upsert(StoredEntry { reason: reason.clone(), ..record });
        }
        if req.replace {
            for net in &previous_import {
                let _ = self.list(ListKind::Block).remove(*net);
                self.state.remove(ListKind::Block, *net);
            }
        }
        let state_started = std::time::Instant::now();
        self.persist()?;
        tracing::info!(
            added = result.added,
            updated = result.updated,
            removed = result.removed,
            map_secs,
            state_secs = state_started.elapsed().as_secs_f64(),
            total_secs = started.elapsed().as_secs_f64(),
            "blocklist imported"
        );
        Ok(result)
    }

    /// Remove expired entries from the maps and the state (found from the state, not by
    /// walking maps that may hold a million entries; the kernel ignores expired entries from
    /// the moment they expire); refresh the tries' in-use flags and the kernel's wall-clock
    /// offset. When the kernel lost events, auto-bans may be missing from the state, so the
    /// maps are swept once.
    pub fn expire(&mut self) -> usize {
        let expired = self.state.expired(clock::unix_now());
        for (kind, net) in &expired {
            let _ = self.list(*kind).remove(*net);
            self.state.remove(*kind, *net);
        }
        let mut removed = expired.len();
        let lost = self
            .health()
            .iter()
            .find(|(n, _)| n == Health::EventsLost.name())
            .map_or(0, |(_, v)| *v);
        if lost > self.events_lost_swept {
            self.events_lost_swept = lost;
            removed += self.list(ListKind::Block).remove_expired();
        }
        if removed > 0 {
            tracing::info!(removed, "expired list entries removed");
            self.state_dirty = true;
        }
        self.list(ListKind::Block).refresh_in_use();
        self.list(ListKind::Allow).refresh_in_use();
        if self.loaded.maps.prefilter.is_stale()
            && self.prefilter_rebuilt.elapsed() >= PREFILTER_REBUILD_INTERVAL
        {
            self.rebuild_prefilter();
        }
        if let Ok(mut runtime) = self.loaded.maps.config.get(&0, 0) {
            runtime.realtime_offset_ns = clock::realtime_offset_ns();
            let _ = self.loaded.maps.config.set(0, runtime, 0);
        }
        self.flush();
        removed
    }

    /// Clear the prefilter bits of removed entries (reads every list entry's key from the
    /// maps, so it runs at most every [`PREFILTER_REBUILD_INTERVAL`]).
    fn rebuild_prefilter(&mut self) {
        let started = std::time::Instant::now();
        let (outcome, entries) = self.loaded.maps.rebuild_prefilter();
        self.prefilter_rebuilt = std::time::Instant::now();
        tracing::debug!(
            ?outcome,
            entries,
            secs = started.elapsed().as_secs_f64(),
            "prefilter rebuilt"
        );
    }

    // ---- events ----

    /// Record an event from the kernel: log it, keep it for `shield events`, and persist bans.
    pub fn on_event(&mut self, event: &Event) {
        let Some(kind) = EventKind::from_u8(event.kind) else {
            return;
        };
        let record = self.event_record(kind, event);
        self.events_received[if kind == EventKind::Ban { 0 } else { 1 }] += 1;
        match kind {
            EventKind::Ban => {
                tracing::warn!(source = ?record.source, policy = ?record.policy, reason = %record.reason, ban_secs = ?record.ban_secs, offences = ?record.offences, "source banned");
                if let Some(net) = record.source {
                    let expires = record.time_unix + record.ban_secs.unwrap_or(0);
                    self.state.upsert(StoredEntry {
                        list: ListKind::Block,
                        net,
                        origin: StoredOrigin::Auto,
                        created_at_unix: record.time_unix,
                        expires_at_unix: Some(expires),
                        offences: record.offences,
                        reason: Some(format!(
                            "auto-ban: {} (offence {})",
                            record.reason,
                            record.offences.unwrap_or(1)
                        )),
                    });
                    self.state_dirty = true;
                }
            }
            EventKind::Drop => {
                tracing::info!(source = ?record.source, reason = %record.reason, dst_port = record.dst_port, "drop (sampled)");
            }
        }
        let keep = self.config.file.events.keep;
        if keep == 0 {
            return;
        }
        while self.events.len() >= keep {
            self.events.pop_front();
        }
        self.events.push_back(record);
    }

    fn event_record(&self, kind: EventKind, e: &Event) -> EventRecord {
        let age_ns = clock::monotonic_ns().saturating_sub(e.ts_ns);
        let source = match e.family {
            FAMILY_V4 => {
                let [a, b, c, d, ..] = e.addr;
                ipnet::Ipv4Net::new([a, b, c, d].into(), e.prefix_len.min(32)).ok().map(IpNet::V4)
            }
            6 => ipnet::Ipv6Net::new(e.addr.into(), e.prefix_len.min(128)).ok().map(IpNet::V6),
            _ => None,
        };
        let reason = Reason::ALL.get(e.reason as usize).map_or("unknown", |r| r.name());
        let ban = kind == EventKind::Ban;
        EventRecord {
            time_unix: clock::unix_now().saturating_sub(age_ns / 1_000_000_000),
            kind: kind.name().to_owned(),
            reason: reason.to_owned(),
            source,
            policy: ban.then(|| self.policy_name(e.policy as u32)),
            l4_proto: e.l4_proto,
            dst_port: e.dst_port,
            ban_secs: ban.then_some(e.ban_ns / 1_000_000_000),
            offences: ban.then_some(e.offences),
        }
    }

    fn policy_name(&self, slot: u32) -> String {
        self.policies
            .slots
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map_or_else(|| format!("#{slot}"), |p| p.name.clone())
    }

    pub fn recent_events(&self, limit: usize) -> api::Events {
        let skip = self.events.len().saturating_sub(limit);
        api::Events { events: self.events.iter().skip(skip).cloned().collect() }
    }

    // ---- policies and global settings ----

    /// Create or change a policy; validated completely before anything is written, recorded in
    /// the state file (it overrides the configuration's policy of that name).
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
        let mut desired: Vec<PolicySpec> = self.policies.policies().cloned().collect();
        match desired.iter_mut().find(|p| p.name == spec.name) {
            Some(p) => *p = spec.clone(),
            None => desired.push(spec.clone()),
        }
        self.install_policies(&desired)?;
        self.state.policies.retain(|p| p.name != spec.name);
        self.state.policies.push(spec.clone());
        self.persist()?;
        tracing::info!(policy = name, ?spec, "policy set");
        Ok(spec)
    }

    pub fn policy_list(&self) -> api::Policies {
        api::Policies { policies: self.policies.policies().cloned().collect() }
    }

    pub fn global(&self) -> Global {
        self.global_settings()
    }

    pub fn global_set(&mut self, update: &GlobalUpdate) -> Result<Global, ControlError> {
        if update.monitor.is_some() {
            self.global_override.monitor = update.monitor;
        }
        if update.drop_malformed.is_some() {
            self.global_override.drop_malformed = update.drop_malformed;
        }
        self.write_runtime_config()?;
        let global = self.global_settings();
        tracing::info!(
            monitor = global.monitor,
            drop_malformed = global.drop_malformed,
            "global settings changed"
        );
        Ok(global)
    }

    // ---- reading ----

    pub fn stats(&self) -> api::Stats {
        api::Stats { counters: stats::counter_rows(&stats::read_counters(&self.loaded.maps)) }
    }

    pub fn health(&self) -> Vec<(String, u64)> {
        Health::ALL
            .iter()
            .map(|h| {
                let n = self
                    .loaded
                    .maps
                    .health
                    .get(&(*h as u32), 0)
                    .map(|v| v.iter().sum::<u64>())
                    .unwrap_or(0);
                (h.name().to_owned(), n)
            })
            .collect()
    }

    pub fn status(&mut self) -> api::Status {
        let program_id = self.loaded.xdp(0).ok().and_then(|x| x.info().ok()).map(|i| i.id());
        let fill = |name: &str, entries: usize, capacity: u32| MapFill {
            name: name.to_owned(),
            entries,
            capacity,
        };
        // One pass over the state (it may hold a million entries), not one per map.
        let counts = self.list_counts();
        let count =
            |kind, v4| counts.iter().find(|(k, f, _)| *k == kind && *f == v4).map_or(0, |c| c.2);
        let (allow_v4, allow_v6) = (count(ListKind::Allow, true), count(ListKind::Allow, false));
        let (block_v4, block_v6) = (count(ListKind::Block, true), count(ListKind::Block, false));
        let sources = self.sources_tracked;
        let map_fill = vec![
            fill("allow_v4", allow_v4, ALLOW_V4_CAPACITY),
            fill("allow_v6", allow_v6, ALLOW_V6_CAPACITY),
            fill("block_v4", block_v4, BLOCK_V4_CAPACITY),
            fill("block_v6", block_v6, BLOCK_V6_CAPACITY),
            fill("sources", sources, BUCKETS_CAPACITY),
        ];
        api::Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            program_id,
            pin_dir: self.pin_dir.clone(),
            config: self.config_path.display().to_string(),
            state_dir: self.state_dir.display().to_string(),
            interfaces: self.interfaces.clone(),
            global: self.global(),
            autoban: self.config.file.autoban.enabled,
            policies: self.policies.policies().count(),
            maps: map_fill,
            health: self.health(),
            reload: self.reload.clone(),
        }
    }

    /// Per-source counters now: (source, policy slot, packets, limited, offences).
    pub fn source_counters(&self) -> Vec<(IpNet, u8, u64, u64, u64)> {
        self.loaded
            .maps
            .buckets
            .iter()
            .flatten()
            .filter_map(|(k, s)| {
                let net = if k.family == FAMILY_V4 {
                    let [a, b, c, d, ..] = k.addr;
                    IpNet::V4(ipnet::Ipv4Net::new([a, b, c, d].into(), k.prefix_len.min(32)).ok()?)
                } else {
                    IpNet::V6(ipnet::Ipv6Net::new(k.addr.into(), k.prefix_len.min(128)).ok()?)
                };
                Some((net, k.policy, s.packets, s.limited, s.offences))
            })
            .collect()
    }

    pub fn policy_name_of(&self, slot: u8) -> String {
        self.policy_name(slot as u32)
    }

    /// Dynamic and configured entries per (list, IPv4?) without walking the maps: the state
    /// and the configuration hold every entry the agent wrote (auto-bans arrive as events).
    pub fn list_counts(&self) -> [(ListKind, bool, usize); 4] {
        let mut counts = [
            (ListKind::Allow, true, 0),
            (ListKind::Allow, false, 0),
            (ListKind::Block, true, 0),
            (ListKind::Block, false, 0),
        ];
        let mut bump = |kind: ListKind, net: &IpNet| {
            let v4 = matches!(net, IpNet::V4(_));
            for c in counts.iter_mut() {
                if c.0 == kind && c.1 == v4 {
                    c.2 += 1;
                }
            }
        };
        for (kind, net) in self.state.entries.keys() {
            bump(*kind, net);
        }
        let mut allow: BTreeSet<IpNet> = self.config.management.iter().copied().collect();
        allow.extend(&self.config.allow);
        for net in
            allow.iter().filter(|n| !self.state.entries.contains_key(&(ListKind::Allow, **n)))
        {
            bump(ListKind::Allow, net);
        }
        for net in self
            .config
            .block
            .iter()
            .filter(|n| !self.state.entries.contains_key(&(ListKind::Block, **n)))
        {
            bump(ListKind::Block, net);
        }
        counts
    }

    /// Auto-bans in force, per (IPv4?) family.
    pub fn active_bans(&self) -> (usize, usize) {
        let bans = self
            .state
            .entries
            .iter()
            .filter(|((k, _), e)| *k == ListKind::Block && e.origin == StoredOrigin::Auto);
        bans.fold(
            (0, 0),
            |(v4, v6), ((_, n), _)| {
                if matches!(n, IpNet::V4(_)) { (v4 + 1, v6) } else { (v4, v6 + 1) }
            },
        )
    }

    /// Policy names by slot (for metric labels).
    pub fn policy_names(&self) -> Vec<(u32, String)> {
        self.policies
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|p| (i as u32, p.name.clone())))
            .collect()
    }
}

/// Longest reason text kept.
const MAX_REASON_LEN: usize = 200;

/// A reason as given, checked: printable, at most 200 characters.
fn check_reason(reason: Option<&str>) -> Result<Option<String>, ControlError> {
    let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if r.chars().count() > MAX_REASON_LEN || r.chars().any(char::is_control) {
        return Err(ControlError::BadReason { max: MAX_REASON_LEN });
    }
    Ok(Some(r.to_owned()))
}

/// The state record of a map entry.
fn stored(kind: ListKind, net: IpNet, e: &ListEntry, offences: Option<u64>) -> StoredEntry {
    StoredEntry {
        list: kind,
        net,
        origin: StoredOrigin::from_kernel(e.origin),
        created_at_unix: e.created_at_unix,
        expires_at_unix: clock::remaining(e.expires_at_ns)
            .map(|d| clock::unix_now() + d.as_secs().max(1)),
        offences,
        reason: None,
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
