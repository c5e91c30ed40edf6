//! `shield status` and `shield stats`.

use super::{
    Client,
    output::{self, Format, Table},
};
use crate::api::{self, Stats, Status};

pub fn status(client: &Client, format: Format) -> anyhow::Result<()> {
    let status: Status = client.get(api::STATUS)?;
    match format {
        Format::Json => output::print(format, &status, |_| Table::new(&[])),
        Format::Table => {
            println!("shield {} (agent pid {})", status.version, status.pid);
            println!("program id: {}", status.program_id.map_or("-".into(), |i| i.to_string()));
            println!("pins:       {}", status.pin_dir);
            println!(
                "global:     monitor {}, malformed frames {}",
                if status.global.monitor { "on" } else { "off" },
                if status.global.drop_malformed { "dropped" } else { "passed" }
            );
            println!("policies:   {}", status.policies);
            println!("config:     {}", status.config);
            println!("state:      {}", status.state_dir);
            println!("auto-ban:   {}", if status.autoban { "on" } else { "off" });
            if let Some(ok) = status.reload.last_ok {
                println!(
                    "reload:     last {} ({} ok, {} failed){}",
                    if ok { "succeeded" } else { "FAILED" },
                    status.reload.succeeded,
                    status.reload.failed,
                    status.reload.last_error.as_ref().map_or(String::new(), |e| format!(": {e}"))
                );
            }
            let health: Vec<String> =
                status.health.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("health:     {}", health.join(", "));
            println!();
            let mut t = Table::new(&["interface", "ifindex", "mode"]);
            for i in &status.interfaces {
                t.row(vec![i.name.clone(), i.ifindex.to_string(), i.mode.clone()]);
            }
            print!("{}", t.render());
            println!();
            let mut t = Table::new(&["map", "entries", "capacity", "fill"]);
            for m in &status.maps {
                let fill = 100.0 * m.entries as f64 / f64::from(m.capacity.max(1));
                t.row(vec![
                    m.name.clone(),
                    m.entries.to_string(),
                    m.capacity.to_string(),
                    format!("{fill:.1}%"),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
    }
}

pub fn stats(client: &Client, format: Format) -> anyhow::Result<()> {
    let stats: Stats = client.get(api::STATS)?;
    output::print(format, &stats, |s| {
        let mut t = Table::new(&["reason", "action", "packets", "bytes"]);
        for c in s.counters.iter().filter(|c| c.packets > 0) {
            t.row(vec![
                c.reason.clone(),
                c.action.clone(),
                c.packets.to_string(),
                c.bytes.to_string(),
            ]);
        }
        t
    })
}

pub fn reload(client: &Client, format: Format) -> anyhow::Result<()> {
    let status: Status = client.post(api::RELOAD)?;
    match format {
        Format::Json => output::print(format, &status, |_| Table::new(&[])),
        Format::Table => {
            println!("configuration {} reloaded ({} policies)", status.config, status.policies);
            Ok(())
        }
    }
}
