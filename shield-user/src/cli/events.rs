//! `shield events` and `shield top`.

use std::time::{Duration, UNIX_EPOCH};

use super::{
    Client,
    output::{self, Format, Table},
};
use crate::api::{self, Events, Top};

pub fn events(client: &Client, format: Format, limit: usize) -> anyhow::Result<()> {
    let events: Events = client.get(&format!("{}?limit={limit}", api::EVENTS))?;
    output::print(format, &events, |e| {
        let mut t =
            Table::new(&["time", "event", "source", "reason", "port", "policy", "ban", "offence"]);
        for ev in &e.events {
            t.row(vec![
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(ev.time_unix))
                    .to_string(),
                ev.kind.clone(),
                ev.source.map_or("-".into(), |s| s.to_string()),
                ev.reason.clone(),
                if ev.dst_port == 0 { "-".into() } else { ev.dst_port.to_string() },
                ev.policy.clone().unwrap_or_else(|| "-".into()),
                ev.ban_secs.map_or("-".into(), output::duration),
                ev.offences.map_or("-".into(), |o| o.to_string()),
            ]);
        }
        t
    })
}

pub fn top(
    client: &Client,
    format: Format,
    interval: Duration,
    limit: usize,
) -> anyhow::Result<()> {
    let top: Top =
        client.get(&format!("{}?interval_ms={}&limit={limit}", api::TOP, interval.as_millis()))?;
    output::print(format, &top, |t| {
        let mut table = Table::new(&[
            "source",
            "policy",
            "packets/s",
            "limited/s",
            "packets",
            "limited",
            "offences",
        ]);
        for s in &t.sources {
            table.row(vec![
                s.source.to_string(),
                s.policy.clone(),
                format!("{:.0}", s.packets_per_sec),
                format!("{:.0}", s.limited_per_sec),
                s.packets.to_string(),
                s.limited.to_string(),
                s.offences.to_string(),
            ]);
        }
        table
    })
}
