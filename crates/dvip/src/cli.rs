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
    /// Inspect and clean up the addresses dvip put on this machine's interfaces.
    ///
    /// dvip marks every address it adds (address protocol 0xd5) and gives it a finite
    /// lifetime, so these commands never touch an address dvip did not add.
    Plumb {
        #[command(subcommand)]
        command: PlumbCommand,
    },
    /// Work with this node's journals (jlog's format): append lines, show backlogs, read as a
    /// subscriber, add and remove subscribers, repair and clean.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Run an aggregator in the foreground: pull every node's logs over the log service into
    /// files named by time, log and node, each line once, whatever crashes.
    ///
    /// FILE holds one `Logs` stanza (the files' template and modes) with a `Manager` per
    /// aggregator listing its nodes (see docs/log-service.md). Stops on SIGTERM or Ctrl-C.
    Collect {
        #[command(subcommand)]
        command: Option<CollectCommand>,
        /// The aggregator's file.
        #[arg(
            long,
            global = true,
            value_name = "FILE",
            default_value = "/etc/dvip/collect.conf"
        )]
        config: PathBuf,
        /// Which Manager of the file this aggregator is; by default the only one.
        #[arg(long, global = true, value_name = "NAME")]
        name: Option<String>,
        /// Check the file and exit: 0 valid, 1 not.
        #[arg(long)]
        check: bool,
        /// Serve Prometheus metrics at http://ADDRESS:PORT/metrics: each node's log's
        /// connection, lag and lines written.
        #[arg(long, value_name = "ADDRESS:PORT")]
        metrics: Option<std::net::SocketAddr>,
        /// With --check or status, print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Make the cluster's certificates: a CA, then one certificate per node and aggregator,
    /// for the log service's mutual TLS.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// The whole cluster on one screen: every configured node (online, standby, silent or
    /// offline), what each owns and holds, addresses in transit or not plumbed, marked
    /// addresses with what each member says, and the last ownership changes with their
    /// reasons.
    Status {
        /// Print the JSON report instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show the running node's view of the cluster: every address, its owner and why.
    Show {
        /// Print the daemon's JSON report instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show the current view: its members, whether it settled, how long it and the
    /// configuration have stood.
    Membership {
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show the local dvipd itself: version, configuration, bus, what it holds and serves.
    Info {
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Run a console command on every node (over the control group) and show each reply:
    /// `show`, `membership`, `info`, `arp show`, `cluster duravip announce view`.
    Broadcast {
        /// The command's words, e.g. `cluster duravip announce view`.
        #[arg(required = true, num_args = 1.., value_name = "COMMAND")]
        words: Vec<String>,
        /// Print the gathered JSON replies, by node.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// A cluster on this machine: network namespaces on a bridge, corosync and dvipd in each
    /// node, and a client on the same LAN (root only).
    Lab {
        #[command(subcommand)]
        command: dvip_lab::LabCommand,
        /// The lab's name: several labs may run side by side.
        #[arg(long, global = true, default_value = "lab", value_parser = dvip_lab::lab_name)]
        name: String,
    },
    /// Announcements (gratuitous ARP, neighbour advertisements) of the local dvipd.
    Arp {
        #[command(subcommand)]
        command: ArpCommand,
    },
    /// Connection counts by client prefix, as the local dvipd's replica knows them (the
    /// cluster's when `inbound_cidr` is replicated).
    Cidr {
        #[command(subcommand)]
        command: CidrCommand,
    },
    /// Outbound connections per destination domain, as the local dvipd's replica knows them
    /// (the cluster's when `outbound_domains` is replicated).
    Domains {
        #[command(subcommand)]
        command: DomainsCommand,
    },
    /// Named throttles and their hits (the cluster's when `shared_named_throttles` is
    /// replicated).
    Throttle {
        #[command(subcommand)]
        command: ThrottleCommand,
    },
    /// The named caches shared by the cluster: list them, read, write or delete a key.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Stream what the local dvipd does (views, acquisitions, releases, marks, drops), one
    /// line per event (time, what, why), until it stops or you do.
    Events {
        /// One JSON object per line instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Have every node announce its state again and re-plan (after reloading configurations).
    AnnounceView {
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Drain a node for maintenance (this one, or the one named, reached over the control
    /// group): its addresses move to the others, and it stays drained across restarts of its
    /// dvipd until `dvip online`.
    Standby {
        /// The node (default: the local one).
        node: Option<String>,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Undo `standby` (on this node, or the one named): it takes its share again.
    Online {
        /// The node (default: the local one).
        node: Option<String>,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Have the local dvipd read its configuration again, as SIGHUP does, and say how it went.
    Reload {
        /// Apply a configuration that defines no DuraVIP address although some run now (it
        /// releases them all); refused without this, since an empty or cut-short file reads
        /// the same.
        #[arg(long)]
        force: bool,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// The spec's spellings of the console commands (`cluster duravip show`, ...).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Print shell completions for dvip: `dvip completions bash > /etc/bash_completion.d/dvip`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write dvip's man pages (dvip.1 and one per subcommand) into DIR; the package does.
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Move an address to a node until the move is cleared (`dvip move ADDRESS to NODE`),
    /// or clear it (`dvip move clear ADDRESS`). A standing move holds across views and
    /// restarts: the address goes to NODE whenever NODE is a candidate.
    Move {
        /// `ADDRESS to NODE`, or `clear ADDRESS`.
        #[arg(required = true, num_args = 2..=3, value_name = "WORDS")]
        words: Vec<String>,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// The spec's spellings: `dvip cluster duravip show`, `dvip cluster duravip announce view`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// DuraVIP commands.
    Duravip {
        #[command(subcommand)]
        command: DuravipCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DuravipCommand {
    /// Same as `dvip show`.
    Show {
        /// Print the daemon's JSON report instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// `announce view`: same as `dvip announce-view`.
    Announce {
        /// The word `view`.
        #[arg(value_parser = ["view"], hide_possible_values = true)]
        what: String,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ArpCommand {
    /// Every held address with its interface and how often it was announced.
    Show {
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CidrCommand {
    /// `count for PREFIX in inbound|outbound [cidrsize N [to M]] [order by cidr|count]
    /// [limit N] [threshold N] [window SECONDS]`: connections open now and made in the window
    /// (60 s) under PREFIX, a row per prefix of each size.
    Show {
        /// The query's words.
        #[arg(required = true, num_args = 1.., value_name = "QUERY")]
        words: Vec<String>,
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DomainsCommand {
    /// Every domain with connections: open now and made in the window, busiest first.
    Show {
        /// One binding group's connections only.
        #[arg(long, value_name = "GROUP")]
        group: Option<String>,
        /// One node's connections instead of the cluster's.
        #[arg(long, value_name = "NODE")]
        from: Option<String>,
        /// The window of the recent counts, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = dvip_replicate::WINDOW_DEFAULT_S)]
        window: u64,
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ThrottleCommand {
    /// Every throttle asked so far: its rate, the hits in its window, and this node's share.
    Show {
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Every cache configured, with its keys, bound and whether joiners get a snapshot.
    Show {
        /// Print the daemon's JSON report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Print one key's value (exit 1 when there is no such key).
    Get {
        cache: String,
        key: String,
        /// Print the daemon's JSON report, with the time left.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Write one key, for the whole cluster.
    Set {
        cache: String,
        key: String,
        value: String,
        /// Expire after this long: seconds, or `5M`, `2H` (default: never).
        #[arg(long, value_name = "TTL", value_parser = ttl_seconds)]
        ttl: Option<u64>,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Delete one key, for the whole cluster.
    Del {
        cache: String,
        key: String,
        /// Print the reply (or the error) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// A time to live as caches write it, in seconds (`0`: never).
fn ttl_seconds(text: &str) -> Result<u64, String> {
    dvip_replicate::parse_ttl(text).map(|ttl| ttl.map_or(0, |t| t.as_secs()))
}

/// Where the daemon's console socket is.
#[derive(Debug, Args)]
pub(crate) struct SocketArg {
    /// The console socket of the local dvipd.
    #[arg(long, value_name = "PATH", env = dvip_console::SOCKET_ENV, default_value = dvip_console::SOCKET_DEFAULT)]
    pub(crate) socket: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CollectCommand {
    /// What the running aggregator says of each node's log: connected or not, the last
    /// record written, and how far behind (records, bytes, seconds). Exits 1 when the
    /// aggregator has not written its status for 5 seconds (it is not running).
    Status,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TlsCommand {
    /// Make the cluster's CA: DIR/ca.pem and DIR/ca.key (mode 0600).
    ///
    /// Run once, on one machine; copy ca.pem to every node and aggregator. Refuses to replace
    /// an existing CA without --force, since every certificate it issued stops being trusted.
    Init {
        /// A name for the cluster, put in the CA's subject.
        #[arg(long, default_value = "dvip")]
        cluster: String,
        #[command(flatten)]
        common: TlsArgs,
        /// How long the CA is valid.
        #[arg(long, default_value_t = dvip_tls::CA_DAYS_DEFAULT)]
        days: u32,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue DIR/NAME.pem and DIR/NAME.key for a node or an aggregator, signed by DIR's CA.
    ///
    /// NAME is the node's name (as in the cluster configuration) or the aggregator's; the
    /// certificate serves both ends of a connection. Copy the pair to that machine's DIR.
    Issue {
        #[arg(value_name = "NAME")]
        name: String,
        /// Another name or address the holder is reached by (repeatable).
        #[arg(long, value_name = "NAME|ADDRESS")]
        also: Vec<String>,
        #[command(flatten)]
        common: TlsArgs,
        /// How long the certificate is valid.
        #[arg(long, default_value_t = dvip_tls::ISSUE_DAYS_DEFAULT)]
        days: u32,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TlsArgs {
    /// The certificate directory.
    #[arg(long, value_name = "DIR", default_value = dvip_tls::TLS_DIR_DEFAULT)]
    pub(crate) dir: PathBuf,
    /// Print what was made as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Append each line of standard input to a journal as one record.
    ///
    /// URI is `cluster:///DIR=>SUBSCRIBER`, `cluster:///DIR?subscribers=A,B` (or `jlog://`),
    /// or a plain directory. The journal and the URI's subscribers are made if missing. Lines
    /// that have arrived together go out in one write; the command returns once all of
    /// standard input is written (and, with --durability disk, synced).
    Write {
        #[arg(value_name = "URI")]
        uri: String,
        /// process: a record survives this command's crash once written; disk: it is
        /// fdatasync'd too and survives a power loss.
        #[arg(long, value_enum, default_value = "process")]
        durability: DurabilityArg,
        /// Print what was written as JSON on exit.
        #[arg(long)]
        json: bool,
    },
    /// Follow a log file an MTA writes (Exim's mainlog, say) into a journal, one record a line.
    ///
    /// Follows through rename rotation and copytruncate. The position is kept in the journal
    /// directory, so a restart (or a crash) neither loses nor repeats a line. A last line with
    /// no newline yet waits for its newline.
    Follow {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The journal, as for `dvip log write`.
        #[arg(value_name = "URI")]
        uri: String,
        /// Take what the file holds now, then exit.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value = "process")]
        durability: DurabilityArg,
        /// Print what was taken as JSON (on exit with --once, else one object per change).
        #[arg(long)]
        json: bool,
    },
    /// Show journals: segments, size, subscribers with their checkpoints and backlogs.
    ///
    /// Without PATH, shows every journal the configuration names (the cluster's `logs` and
    /// every `cluster://` or `jlog://` destination).
    Show {
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The configuration naming the journals, when no PATH is given.
        #[arg(long, value_name = "FILE", default_value = "/etc/dvip/dvip.conf")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the records after a subscriber's checkpoint, one per line.
    ///
    /// The checkpoint moves only with --checkpoint, after the records are printed; a crash
    /// between the two prints them again next time, never skips them.
    Read {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long, value_name = "NAME")]
        subscriber: String,
        /// Keep waiting for new records.
        #[arg(long)]
        follow: bool,
        /// Move the subscriber's checkpoint past what was printed.
        #[arg(long)]
        checkpoint: bool,
        /// Stop after this many records.
        #[arg(long, value_name = "N")]
        max: Option<usize>,
        /// One JSON object a line: id, time, payload (as text when it is UTF-8).
        #[arg(long)]
        json: bool,
    },
    /// Add or remove a subscriber.
    Subscriber {
        #[command(subcommand)]
        command: SubscriberCommand,
    },
    /// Cut a half-written record off the segment being written and repair closed segments
    /// that do not parse, reporting the byte ranges lost.
    Repair {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove the segments every subscriber has read.
    Clean {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubscriberCommand {
    /// Add a subscriber, reading from the oldest record kept or from the next one written.
    Add {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_enum, default_value = "begin")]
        from: StartArg,
    },
    /// Remove a subscriber; segments only it held go at the next checkpoint or clean.
    Remove {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum DurabilityArg {
    Process,
    Disk,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum StartArg {
    Begin,
    End,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PlumbCommand {
    /// List the addresses dvip added on this machine, with the seconds each has left.
    List {
        /// Print JSON: `[{"address", "prefix_len", "interface_index", "valid_secs"}]`.
        #[arg(long)]
        json: bool,
    },
    /// Remove every address dvip added on this machine (after a crash, or when a host leaves
    /// the cluster for good). Run it only where dvipd is stopped.
    Clean,
    /// Add one address by hand, marked as dvip's, with a lifetime (for tests and drills).
    Add {
        /// ADDRESS/PREFIX, such as 198.51.100.7/32.
        #[arg(value_name = "ADDRESS/PREFIX", value_parser = address_prefix)]
        address: (std::net::IpAddr, u8),
        /// The interface to put it on.
        #[arg(long, value_name = "NAME")]
        interface: String,
        /// Seconds until the kernel drops it by itself.
        #[arg(long, value_name = "SECONDS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=86_400))]
        lifetime: u32,
    },
    /// Remove one address dvip added (an address dvip did not add is left alone).
    Remove {
        /// The address.
        address: std::net::IpAddr,
    },
}

fn address_prefix(text: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or("write ADDRESS/PREFIX, such as 198.51.100.7/32")?;
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IP address"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if (1..=max).contains(&p) => Ok((address, p)),
        _ => Err(format!("`{prefix}` is not a prefix length from 1 to {max}")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// A node and its configuration file, as NAME=FILE. Give one per node.
    #[arg(long = "node", value_name = "NAME=FILE", required = true, value_parser = node_file)]
    pub(crate) nodes: Vec<(String, PathBuf)>,

    /// What a node holds now, as NAME=ADDRESS,ADDRESS,... (repeatable).
    #[arg(long = "holds", value_name = "NAME=ADDRESSES", value_parser = holdings)]
    pub(crate) holds: Vec<(String, Vec<std::net::IpAddr>)>,

    /// What if NODE failed: plan with every node, then without NODE, and show the moves
    /// of the second step (repeatable).
    #[arg(long = "fail", value_name = "NODE")]
    pub(crate) fail: Vec<String>,

    /// What if NODE went on standby: plan with every node, then with NODE drained, and show
    /// the moves of the second step (repeatable).
    #[arg(long = "standby", value_name = "NODE")]
    pub(crate) standby: Vec<String>,

    /// Exit 1 when any address is marked (BROKEN, CONFLICT or UNSAFE).
    #[arg(long)]
    pub(crate) strict: bool,

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

    /// The configuration files to check (each is checked on its own, with its includes);
    /// `-` reads one from standard input.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}
