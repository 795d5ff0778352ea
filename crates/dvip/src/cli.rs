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
    /// Show, offline, who would own each address if these nodes formed a cluster.
    ///
    /// Loads each node's configuration, forms a view of those nodes holding what --holds
    /// says, and runs the election the daemons run until the cluster settles (the view has
    /// matured and every planned move is done). Exit status: 0 when every configuration is
    /// valid, 1 when one is not, 2 on a usage error.
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// A node and its configuration file, as NAME=FILE. Give one per node.
    #[arg(long = "node", value_name = "NAME=FILE", required = true, value_parser = node_file)]
    pub(crate) nodes: Vec<(String, PathBuf)>,

    /// What a node holds now, as NAME=ADDRESS,ADDRESS,... (repeatable).
    #[arg(long = "holds", value_name = "NAME=ADDRESSES", value_parser = holdings)]
    pub(crate) holds: Vec<(String, Vec<std::net::IpAddr>)>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

fn node_file(text: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = text
        .split_once('=')
        .ok_or("write NAME=FILE, such as node1=/etc/dvip/node1.conf")?;
    let name = dvip_config::check_node_name(name)?;
    if file.is_empty() {
        return Err("the file after `=` is missing".to_owned());
    }
    Ok((name, PathBuf::from(file)))
}

fn holdings(text: &str) -> Result<(String, Vec<std::net::IpAddr>), String> {
    let (name, list) = text
        .split_once('=')
        .ok_or("write NAME=ADDRESS,ADDRESS, such as node1=198.51.100.1")?;
    let addresses = list
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| format!("`{a}` is not an IP address"))
        })
        .collect::<Result<_, _>>()?;
    Ok((dvip_config::check_node_name(name)?, addresses))
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
