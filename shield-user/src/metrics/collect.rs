//! What `/metrics` shows, read at scrape time: verdict counters from the per-CPU map, list and
//! source-map fill, bans, health counters, reloads, attach state, build info and the
//! process's own metrics. Labels are bounded; a source address is never a label.

use prometheus::{Encoder as _, TextEncoder, process_collector::ProcessCollector};
use shield_common::{
    counters::{POLICY_NONE, slot_labels},
    events::Health,
    maps::{
        ALLOW_V4_CAPACITY, ALLOW_V6_CAPACITY, BLOCK_V4_CAPACITY, BLOCK_V6_CAPACITY,
        BUCKETS_CAPACITY,
    },
};

use super::exposition::{Exposition, Kind};
use crate::{agent::shield::Shield, lists::ListKind, stats};

/// Which number of a counter a family shows.
type CounterField = fn(&shield_common::counters::Counter) -> u64;

/// The whole exposition for one scrape.
pub fn collect(shield: &Shield) -> String {
    let mut e = Exposition::default();
    traffic(shield, &mut e);
    lists(shield, &mut e);
    health(shield, &mut e);
    agent(shield, &mut e);
    e.raw(&process_metrics());
    e.finish()
}

fn traffic(shield: &Shield, e: &mut Exposition) {
    let slots = stats::read_counters(&shield.loaded.maps);
    let policies = shield.policy_names();
    let policy_label = |slot: u32| -> Option<&str> {
        if slot == POLICY_NONE {
            return Some("none");
        }
        policies.iter().find(|(s, _)| *s == slot).map(|(_, n)| n.as_str())
    };
    // Only the slots of attached interfaces and defined policies: every series there, zeros
    // included, so dashboards and rates see them from the first scrape.
    let mut rows = Vec::new();
    for (slot, c) in slots.iter().enumerate() {
        let Some((iface, policy, reason, action)) = slot_labels(slot as u32) else { continue };
        let Some(interface) = shield.interfaces.iter().find(|i| i.slot == iface) else { continue };
        let Some(policy) = policy_label(policy) else { continue };
        // Frames without a policy are never passed or limited, and vice versa.
        let reached_policy = matches!(
            reason,
            shield_common::counters::Reason::Passed
                | shield_common::counters::Reason::RateLimitedPackets
                | shield_common::counters::Reason::RateLimitedBytes
                | shield_common::counters::Reason::RateLimitedSyn
        );
        if reached_policy == (policy == "none") && c.packets == 0 {
            continue;
        }
        rows.push((interface.name.as_str(), policy, reason.name(), action.name(), *c));
    }
    let families: [(&str, &str, CounterField); 2] = [
        (
            "shield_packets_total",
            "Frames by verdict: interface, policy (none before policy selection), reason and action (pass, drop, would_drop in monitor mode).",
            |c| c.packets,
        ),
        (
            "shield_bytes_total",
            "Bytes of the frames in shield_packets_total (whole frames, Ethernet header included).",
            |c| c.bytes,
        ),
    ];
    for (name, help, value) in families {
        e.family(name, Kind::Counter, help);
        for (interface, policy, reason, action, c) in &rows {
            let labels = [
                ("interface", *interface),
                ("policy", *policy),
                ("reason", *reason),
                ("action", *action),
            ];
            e.sample(name, &labels, value(c) as f64);
        }
    }
}

fn lists(shield: &Shield, e: &mut Exposition) {
    let counts = shield.list_counts();
    let capacity = |kind: ListKind, v4: bool| match (kind, v4) {
        (ListKind::Allow, true) => ALLOW_V4_CAPACITY,
        (ListKind::Allow, false) => ALLOW_V6_CAPACITY,
        (ListKind::Block, true) => BLOCK_V4_CAPACITY,
        (ListKind::Block, false) => BLOCK_V6_CAPACITY,
    };
    let labels = |kind: ListKind, v4: bool| {
        [
            ("list", if kind == ListKind::Allow { "allow" } else { "block" }),
            ("family", if v4 { "ipv4" } else { "ipv6" }),
        ]
    };
    e.family(
        "shield_list_entries",
        Kind::Gauge,
        "Entries in the allowlist and blocklist (configured, manual, imported and auto-bans).",
    );
    for (kind, v4, n) in counts {
        e.sample("shield_list_entries", &labels(kind, v4), n as f64);
    }
    e.family("shield_list_capacity", Kind::Gauge, "Capacity of the allowlist and blocklist maps.");
    for (kind, v4, _) in counts {
        e.sample("shield_list_capacity", &labels(kind, v4), f64::from(capacity(kind, v4)));
    }
    let prefilter = &shield.loaded.maps.prefilter;
    let (allow_slots, block_slots) = prefilter.slots_set();
    e.family(
        "shield_prefilter_slots",
        Kind::Gauge,
        "Prefilter slots (IPv4 /24s, hashed IPv6 /48s) whose sources get the list's lookups; all others skip them.",
    );
    e.sample("shield_prefilter_slots", &[("list", "allow")], allow_slots as f64);
    e.sample("shield_prefilter_slots", &[("list", "block")], block_slots as f64);
    let (bypass_v4, bypass_v6) = prefilter.bypassed();
    e.family(
        "shield_prefilter_bypass",
        Kind::Gauge,
        "1 while every source of a family gets the blocklist lookups (a ban wider than a slot, until the next rebuild).",
    );
    e.sample("shield_prefilter_bypass", &[("family", "ipv4")], f64::from(u8::from(bypass_v4)));
    e.sample("shield_prefilter_bypass", &[("family", "ipv6")], f64::from(u8::from(bypass_v6)));
    let (bans_v4, bans_v6) = shield.active_bans();
    e.family("shield_bans_active", Kind::Gauge, "Automatic bans in force.");
    e.sample("shield_bans_active", &[("family", "ipv4")], bans_v4 as f64);
    e.sample("shield_bans_active", &[("family", "ipv6")], bans_v6 as f64);
    e.family(
        "shield_sources_tracked",
        Kind::Gauge,
        "Source prefixes in the per-source bucket map (counted every few seconds).",
    );
    e.sample("shield_sources_tracked", &[], shield.sources_tracked as f64);
    e.family("shield_sources_capacity", Kind::Gauge, "Capacity of the per-source bucket map (least recently seen sources are evicted beyond it).");
    e.sample("shield_sources_capacity", &[], f64::from(BUCKETS_CAPACITY));
}

fn health(shield: &Shield, e: &mut Exposition) {
    let health = shield.health();
    let get = |h: Health| health.iter().find(|(n, _)| n == h.name()).map_or(0, |(_, v)| *v);
    e.family(
        "shield_events_lost_total",
        Kind::Counter,
        "Events (bans, drop samples) the kernel could not queue because the ring buffer was full.",
    );
    e.sample("shield_events_lost_total", &[], get(Health::EventsLost) as f64);
    e.family(
        "shield_map_update_errors_total",
        Kind::Counter,
        "Map writes the kernel program could not make: bans (blocklist full) and new sources.",
    );
    e.sample(
        "shield_map_update_errors_total",
        &[("map", "blocklist")],
        get(Health::BanWriteFailed) as f64,
    );
    e.sample(
        "shield_map_update_errors_total",
        &[("map", "sources")],
        get(Health::SourceWriteFailed) as f64,
    );
    e.family(
        "shield_events_total",
        Kind::Counter,
        "Events received from the kernel, by kind (ban, drop sample).",
    );
    e.sample("shield_events_total", &[("kind", "ban")], shield.events_received[0] as f64);
    e.sample("shield_events_total", &[("kind", "drop")], shield.events_received[1] as f64);
    e.family(
        "shield_sources_aggregated_total",
        Kind::Counter,
        "Frames of new sources beyond the admission budget (sources.admit_per_sec), charged to their aggregate prefix: a flood of new, likely spoofed, sources.",
    );
    e.sample("shield_sources_aggregated_total", &[], get(Health::SourcesAggregated) as f64);
}

fn agent(shield: &Shield, e: &mut Exposition) {
    let r = &shield.reload;
    e.family("shield_config_reloads_total", Kind::Counter, "Configuration reloads, by result.");
    e.sample("shield_config_reloads_total", &[("result", "success")], r.succeeded as f64);
    e.sample("shield_config_reloads_total", &[("result", "failure")], r.failed as f64);
    e.family(
        "shield_config_last_reload_successful",
        Kind::Gauge,
        "1 if the last reload (or the start) applied the configuration, 0 if it was refused.",
    );
    e.sample(
        "shield_config_last_reload_successful",
        &[],
        if r.last_ok == Some(false) { 0.0 } else { 1.0 },
    );
    e.family(
        "shield_config_last_reload_timestamp_seconds",
        Kind::Gauge,
        "When the last reload was attempted (or the agent started), Unix time.",
    );
    e.sample(
        "shield_config_last_reload_timestamp_seconds",
        &[],
        r.last_unix.unwrap_or(shield.config_loaded_unix) as f64,
    );
    e.family(
        "shield_monitor_mode",
        Kind::Gauge,
        "1 when global monitor mode is on (nothing is dropped).",
    );
    e.sample("shield_monitor_mode", &[], if shield.global().monitor { 1.0 } else { 0.0 });
    e.family(
        "shield_program_attached",
        Kind::Gauge,
        "1 while the XDP program is attached to the interface, 0 if its link was detached.",
    );
    let pin_dir = std::path::Path::new(&shield.pin_dir);
    for i in &shield.interfaces {
        let pin = crate::agent::attach::link_pin(pin_dir, &i.name);
        let attached = crate::agent::attach::link_attached(&pin).unwrap_or(false);
        e.sample(
            "shield_program_attached",
            &[("interface", &i.name), ("mode", &i.mode)],
            if attached { 1.0 } else { 0.0 },
        );
    }
    e.family("shield_build_info", Kind::Gauge, "Build information; the value is always 1.");
    let layout = shield_common::maps::LAYOUT_VERSION.to_string();
    e.sample(
        "shield_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("map_layout", &layout)],
        1.0,
    );
}

/// The agent's own process metrics (CPU, memory, file descriptors, start time).
fn process_metrics() -> String {
    let registry = prometheus::Registry::new();
    if registry.register(Box::new(ProcessCollector::for_self())).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    if TextEncoder::new().encode(&registry.gather(), &mut out).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
