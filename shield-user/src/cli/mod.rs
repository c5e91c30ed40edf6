//! The `shield` command line: `shield run` starts the agent; every other subcommand is a
//! client of the agent's control socket. `shield <noun> <verb>`, tables or `-o json`.

mod client;
mod config;
mod events;
mod lists;
mod output;
mod policy;
mod status;

use std::path::PathBuf;

use clap::{CommandFactory as _, Parser, Subcommand};

pub use self::client::Client;
use crate::{agent::RunArgs, api};

/// shield: a kernel-level (XDP) traffic shield for the APIs of this host.
#[derive(Debug, Parser)]
#[command(name = "shield", version, about, propagate_version = true)]
pub struct Cli {
    /// The agent's control socket [default: /run/shield/shield.sock, or agent.socket of the
    /// configuration for `shield run`].
    #[arg(long, global = true, env = "SHIELD_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Output format of commands that print data.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: output::Format,
    /// Log format of the agent.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: load and attach the XDP program, serve the control socket.
    Run(RunArgs),
    /// Show interfaces, attach mode, program id, map fill and global settings.
    Status,
    /// Show verdict counters by reason and action.
    Stats,
    /// Manage the blocklist (addresses and CIDRs that are dropped).
    #[command(subcommand)]
    Block(lists::BlockCommand),
    /// Manage the allowlist (addresses and CIDRs never limited or blocked).
    #[command(subcommand)]
    Allow(lists::AllowCommand),
    /// Show and change rate policies and global settings.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Check or show a configuration file (no agent needed).
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Reload the agent's configuration file: validated first, nothing applied on error.
    Reload,
    /// Show recent events: bans and sampled drops.
    Events {
        /// How many, newest last.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show the heaviest sources now (packets/s over a short interval).
    Top {
        /// Measuring interval (e.g. 1s, 500ms).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// How many sources.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Run a client command (everything but `run`).
pub fn execute(cli: &Cli) -> anyhow::Result<()> {
    let socket = cli.socket.clone().unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET));
    let client = Client::new(&socket);
    let format = cli.output;
    match &cli.command {
        Command::Run(_) => unreachable_run(),
        Command::Status => status::status(&client, format),
        Command::Stats => status::stats(&client, format),
        Command::Block(c) => lists::block(&client, format, c),
        Command::Allow(c) => lists::allow(&client, format, c),
        Command::Policy(c) => policy::run(&client, format, c),
        Command::Config(c) => config::run(format, c),
        Command::Reload => status::reload(&client, format),
        Command::Events { limit } => events::events(&client, format, *limit),
        Command::Top { interval, limit } => events::top(&client, format, *interval, *limit),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "shield", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn unreachable_run() -> anyhow::Result<()> {
    anyhow::bail!("`shield run` is handled by main")
}
