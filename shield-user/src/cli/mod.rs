//! The `shield` command line: `shield run` starts the agent; every other subcommand is a
//! client of the agent's control socket. `shield <noun> <verb>`, tables or `-o json`.

mod client;
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
    /// The agent's control socket.
    #[arg(long, global = true, env = "SHIELD_SOCKET", default_value = api::DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,
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
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Run a client command (everything but `run`).
pub fn execute(cli: &Cli) -> anyhow::Result<()> {
    let client = Client::new(&cli.socket);
    let format = cli.output;
    match &cli.command {
        Command::Run(_) => unreachable_run(),
        Command::Status => status::status(&client, format),
        Command::Stats => status::stats(&client, format),
        Command::Block(c) => lists::block(&client, format, c),
        Command::Allow(c) => lists::allow(&client, format, c),
        Command::Policy(c) => policy::run(&client, format, c),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "shield", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn unreachable_run() -> anyhow::Result<()> {
    anyhow::bail!("`shield run` is handled by main")
}
