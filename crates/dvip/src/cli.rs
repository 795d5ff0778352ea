//! The command line, defined once: help text and parsing come from these types.
//!
//! Owns the names and documentation of every subcommand and flag. It must not do any work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// dvip keeps a cluster's virtual IP addresses alive.
#[derive(Debug, Parser)]
#[command(name = "dvip", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check configuration files and show what dvip makes of them.
    ///
    /// Exit status: 0 when every file is valid (warnings allowed), 1 when any file is invalid
    /// or unreadable, 2 on a usage error.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Print the effective model (or the errors) as JSON on stdout instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,

    /// After each valid file's summary, print its DuraVIP addresses as a table.
    #[arg(long, conflicts_with = "json")]
    pub(crate) addresses: bool,

    /// Check as the node with this name, instead of the config's `nodename` or the host name.
    #[arg(long, value_name = "NAME", value_parser = dvip_config::check_node_name)]
    pub(crate) nodename: Option<String>,

    /// The configuration files to check (each is checked on its own, with its includes).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}
