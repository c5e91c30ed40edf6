//! `shield config check|show`: validate or print a configuration file, locally.

use std::path::PathBuf;

use clap::Subcommand;

use super::output::Format;
use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without applying it (exit 0 when valid).
    Check {
        #[arg(default_value = DEFAULT_CONFIG_PATH)]
        file: PathBuf,
    },
    /// Print the effective configuration (every key, defaults filled in).
    Show {
        #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

pub fn run(format: Format, cmd: &ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let checked = Config::load(file)?;
            println!(
                "{}: valid ({} policies, {} management, {} allow, {} block entries)",
                file.display(),
                checked.policies.len(),
                checked.management.len(),
                checked.allow.len(),
                checked.block.len()
            );
            Ok(())
        }
        ConfigCommand::Show { config } => {
            let checked = Config::load_or_default(config)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&checked.file)?),
                Format::Table => print!("{}", checked.to_toml()),
            }
            Ok(())
        }
    }
}
