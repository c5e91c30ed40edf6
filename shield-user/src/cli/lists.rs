//! `shield block ...` and `shield allow ...`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use super::{
    Client,
    output::{self, Format, Table},
};
use crate::{
    api::{self, Import, ImportResult, ListAdd, ListDelete, ListEntries},
    lists::{ListKind, parse_net},
};

#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Block addresses or CIDRs (IPv4 or IPv6).
    Add {
        /// Addresses or CIDRs, e.g. 198.18.0.7 198.18.0.0/24 2001:db8::/48.
        #[arg(required = true, value_name = "NET")]
        nets: Vec<String>,
        /// Remove the block after this long (e.g. 30s, 10m, 1h30m); default: permanent.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Block even a range that covers allowlisted addresses.
        #[arg(long)]
        force: bool,
        /// Why (kept in the state file, shown by `list`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete blocks (exact address or CIDR as added).
    Delete {
        #[arg(required = true, value_name = "NET")]
        nets: Vec<String>,
    },
    /// List blocks in force.
    List,
    /// Import a blocklist feed (one address or CIDR per line, # and ; comments, e.g. the
    /// Spamhaus DROP or FireHOL lists). All lines are checked first; any bad line refuses the
    /// whole file, nothing changes.
    Import {
        /// The file, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// Entries expire after this long (e.g. 24h); default: permanent.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Replace the previous import: its entries not in this file are removed (after the new
        /// ones are in place, so nothing in both is ever unprotected).
        #[arg(long)]
        replace: bool,
        /// Check and report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Import even ranges that cover allowlisted addresses.
        #[arg(long)]
        force: bool,
        /// Why (kept with every imported entry), e.g. the feed's name.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Allow addresses or CIDRs: never limited, never blocked (allow wins over block).
    Add {
        #[arg(required = true, value_name = "NET")]
        nets: Vec<String>,
        /// Remove the entry after this long (e.g. 30s, 10m, 1h30m); default: permanent.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Why (kept in the state file, shown by `list`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delete allowlist entries (exact address or CIDR as added).
    Delete {
        #[arg(required = true, value_name = "NET")]
        nets: Vec<String>,
    },
    /// List allowlist entries in force.
    List,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 30s, 10m, 1h30m"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("ttl '{s}' is below one second"));
    }
    Ok(d)
}

pub fn block(client: &Client, format: Format, cmd: &BlockCommand) -> anyhow::Result<()> {
    match cmd {
        BlockCommand::Add { nets, ttl, force, reason } => {
            add(client, ListKind::Block, nets, *ttl, *force, reason.clone())
        }
        BlockCommand::Delete { nets } => delete(client, ListKind::Block, nets),
        BlockCommand::List => list(client, format, ListKind::Block),
        BlockCommand::Import { file, ttl, replace, dry_run, force, reason } => {
            let options = Import {
                nets: Vec::new(),
                ttl_secs: ttl.map(|d| d.as_secs()),
                replace: *replace,
                dry_run: *dry_run,
                force: *force,
                reason: reason.clone(),
            };
            import(client, format, file, options)
        }
    }
}

pub fn allow(client: &Client, format: Format, cmd: &AllowCommand) -> anyhow::Result<()> {
    match cmd {
        AllowCommand::Add { nets, ttl, reason } => {
            add(client, ListKind::Allow, nets, *ttl, false, reason.clone())
        }
        AllowCommand::Delete { nets } => delete(client, ListKind::Allow, nets),
        AllowCommand::List => list(client, format, ListKind::Allow),
    }
}

/// Validate every argument before sending any, so a typo in the third changes nothing.
fn validate(nets: &[String]) -> anyhow::Result<()> {
    for n in nets {
        parse_net(n)?;
    }
    Ok(())
}

fn add(
    client: &Client,
    kind: ListKind,
    nets: &[String],
    ttl: Option<Duration>,
    force: bool,
    reason: Option<String>,
) -> anyhow::Result<()> {
    validate(nets)?;
    for net in nets {
        let req = ListAdd {
            net: net.clone(),
            ttl_secs: ttl.map(|d| d.as_secs()),
            force,
            reason: reason.clone(),
        };
        let added: ipnet::IpNet = client.send("POST", api::list_path(kind), &req)?;
        let until =
            ttl.map_or(String::new(), |d| format!(" for {}", output::duration(d.as_secs())));
        println!("added {added} to the {}{until}", kind.noun());
    }
    Ok(())
}

fn delete(client: &Client, kind: ListKind, nets: &[String]) -> anyhow::Result<()> {
    validate(nets)?;
    for net in nets {
        let deleted: ipnet::IpNet =
            client.send("DELETE", api::list_path(kind), &ListDelete { net: net.clone() })?;
        println!("deleted {deleted} from the {}", kind.noun());
    }
    Ok(())
}

fn list(client: &Client, format: Format, kind: ListKind) -> anyhow::Result<()> {
    let entries: ListEntries = client.get(api::list_path(kind))?;
    output::print(format, &entries, |e| {
        let mut t = Table::new(&["net", "expires in", "origin", "created", "reason"]);
        for n in &e.entries {
            t.row(vec![
                n.net.to_string(),
                n.expires_in_secs.map_or("never".into(), output::duration),
                n.origin.clone(),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(n.created_at_unix),
                )
                .to_string(),
                n.reason.clone().unwrap_or_default(),
            ]);
        }
        t
    })
}

/// Largest bad-line report printed.
const MAX_REPORTED_LINES: usize = 20;

fn import(client: &Client, format: Format, file: &str, options: Import) -> anyhow::Result<()> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
    };
    let nets = match crate::import::parse_list(&text) {
        Ok(nets) => nets,
        Err(errors) => {
            for e in errors.iter().take(MAX_REPORTED_LINES) {
                eprintln!("{file}: {e}");
            }
            if errors.len() > MAX_REPORTED_LINES {
                eprintln!("{file}: ... and {} more bad lines", errors.len() - MAX_REPORTED_LINES);
            }
            anyhow::bail!("{file}: {} bad lines; nothing was imported", errors.len());
        }
    };
    let req = Import { nets: nets.iter().map(ToString::to_string).collect(), ..options };
    let result: ImportResult = client.send("POST", api::BLOCK_IMPORT, &req)?;
    match format {
        Format::Json => output::print(format, &result, |_| Table::new(&[])),
        Format::Table => {
            let verb = if result.dry_run { "would import" } else { "imported" };
            println!(
                "{verb} {} entries from {file}: {} new, {} already listed, {} removed; the blocklist {} {} entries",
                nets.len(),
                result.added,
                result.updated,
                result.removed,
                if result.dry_run { "would hold" } else { "holds" },
                result.total
            );
            Ok(())
        }
    }
}
