//! `dvip lab`: a cluster on this machine, made of network namespaces. The operator's `dvip`
//! parses the command line ([`LabCommand`]) and hands it to [`run`].
//!
//! Owns the lab's life: `up` builds the network (see [`dvip_netns::Topology`]), starts
//! corosync and dvipd on every node and waits until the addresses are spread; `status`,
//! `kill`, `start` and `down` act on what the state file ([`state`]) records. It must not
//! touch anything outside the lab's namespaces and processes.

mod bench;
mod chaos;
mod cli;
mod follow;
mod handle;
mod interrupt;
mod keepalived;
mod logbench;
mod logging;
mod measure;
mod plot;
mod replbench;
mod state;
mod steady;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dvip_netns::LabError;
use serde_json::{json, Value};

pub use self::cli::{lab_name, FaultArg, LabCommand};
use self::handle::Lab;
use self::state::{LabState, Process, System};

/// How a lab command ended; `dvip` turns it into its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// It failed, and said why.
    Failed,
    /// Ctrl-C stopped it; the report of what was done came first.
    Interrupted,
}

/// Prints a report as indented JSON.
pub(crate) fn print_json(report: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("reports hold only plain data")
    );
}

/// Builds a lab from `spec`, measures it, removes it whatever the measure did; prints the
/// report as text, or as JSON with `json_out`. The shape of every measuring command that
/// brings its own lab.
pub(crate) fn measure_on_a_lab<R: serde::Serialize>(
    spec: Spec,
    json_out: bool,
    measure: impl FnOnce(&mut LabState) -> Result<R, LabError>,
    print: impl FnOnce(&R),
) -> Result<(), LabError> {
    let name = spec.name.clone();
    up(spec)?;
    let measured = LabState::load(&name).and_then(|mut state| measure(&mut state));
    down(&name);
    let report = measured?;
    if json_out {
        print_json(&report);
    } else {
        print(&report);
    }
    Ok(())
}

/// The first lab address; the others follow it.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// The prefix every lab address is in (the topology the nodes' configurations name).
const LAB_RANGE: &str = "198.18.0.0/15";

/// The port of the lab's listeners, and where dvipd forwards them on each node (a server of
/// the bench's there answers `220 NODE`; with keepalived it listens on the wildcard's port 25
/// instead, as an MTA would).
pub(crate) const LISTENER_PORT: u16 = 25;
pub(crate) const FORWARD_TO: &str = "127.0.0.1:2525";

/// Whether the `k`-th address is a listener: every (addresses / listeners)-th, so they are
/// spread over the range and every node holds some after any rebalance.
pub(crate) fn is_listener(state: &LabState, k: usize) -> bool {
    let (count, listeners) = (state.addresses as usize, state.listeners as usize);
    if listeners == 0 {
        return false;
    }
    let stride = (count / listeners).max(1);
    k % stride == 0 && k / stride < listeners
}

/// The lab's DuraVIP addresses.
pub(crate) fn addresses(count: u32) -> impl Iterator<Item = Ipv4Addr> {
    (0..count).map(|k| Ipv4Addr::from(u32::from(FIRST_ADDRESS) + k))
}

/// Draws the results of a saved `bench --json` report.
fn plot_saved(from: &std::path::Path, out: &std::path::Path) -> Result<(), LabError> {
    let text =
        std::fs::read_to_string(from).map_err(|e| LabError(format!("{}: {e}", from.display())))?;
    let report: Value = serde_json::from_str(&text)
        .map_err(|e| LabError(format!("{}: not a bench report: {e}", from.display())))?;
    let rows: Vec<bench::BenchRow> = serde_json::from_value(report["results"].clone())
        .map_err(|e| {
            LabError(format!(
                "{}: its `results` are not a bench's ({e}): is it what `dvip lab bench --json` printed?",
                from.display()
            ))
        })?;
    let title = format!(
        "failover seen from the client, {} nodes ({})",
        report["nodes"],
        from.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    std::fs::write(out, plot::svg(&rows, &title))
        .map_err(|e| LabError(format!("{}: {e}", out.display())))
}

/// Carries out `command` on the lab called `name`.
pub fn run(name: &str, command: LabCommand) -> Outcome {
    // The long commands stop cleanly on a first Ctrl-C: report, then remove the lab.
    let stops = match command {
        LabCommand::Bench { .. } => Some("after this run, with the report of the runs so far"),
        LabCommand::Chaos { .. } => {
            Some("after this round and a last one that repairs and checks all")
        }
        LabCommand::Steady { .. } | LabCommand::LogBench { .. } | LabCommand::ReplBench { .. } => {
            Some("now, with the report of the time so far")
        }
        _ => None,
    };
    if let Some(stops) = stops {
        if let Err(e) = interrupt::arm(name, stops) {
            eprintln!("dvip lab: cannot catch Ctrl-C ({e}); it will end the command at once");
        }
    }
    let result = match command {
        LabCommand::Up {
            nodes,
            addresses,
            address_lifetime,
            dvipd,
            keepalived,
            no_crypto,
            listeners,
            replication,
            timing,
        } => timing
            .timing()
            .and_then(|timing| {
                up(Spec {
                    address_lifetime,
                    system: System::chosen(keepalived, no_crypto),
                    listeners,
                    replication,
                    timing,
                    ..Spec::new(name, usize::from(nodes), addresses, dvipd)
                })
            })
            .and_then(|()| LabState::load(name))
            .map(|state| status(&state, false)),
        LabCommand::Status { json } => LabState::load(name).map(|s| status(&s, json)),
        LabCommand::Kill {
            node,
            how,
            measure,
            json,
        } => kill(name, &node, &how, measure, json),
        LabCommand::Start { node } => start(name, node.as_deref()),
        LabCommand::Bench {
            nodes,
            sizes,
            faults,
            runs,
            json,
            dvipd,
            keepalived,
            no_crypto_baseline,
            listeners,
            keep_slow,
            plot,
            replay_baseline,
            replication_baseline,
            with_leases,
            with_pre_plumbing,
            timing,
        } => timing.leases(with_leases).and_then(|with_leases| {
            let timing = timing.timing()?;
            bench::run(
                &bench::BenchPlan {
                    name: name.to_owned(),
                    nodes: usize::from(nodes),
                    sizes,
                    faults,
                    runs,
                    dvipd,
                    keepalived,
                    no_crypto_baseline,
                    listeners,
                    keep_slow,
                    plot,
                    replay_baseline,
                    replication_baseline,
                    timing,
                    with_leases,
                    with_pre_plumbing,
                },
                json,
            )
        }),
        LabCommand::Plot { from, out } => plot_saved(&from, &out),
        LabCommand::Chaos {
            seed,
            duration,
            nodes,
            addresses,
            dvipd,
            keep,
            logs,
            json,
            timing,
        } => timing.timing().and_then(|timing| {
            chaos::run(
                &chaos::ChaosPlan {
                    name: name.to_owned(),
                    seed,
                    duration: Duration::from_secs(duration),
                    nodes: usize::from(nodes),
                    addresses,
                    dvipd,
                    keep,
                    logs,
                    timing,
                },
                json,
            )
        }),
        LabCommand::LogBench {
            nodes,
            rate,
            seconds,
            dvipd,
            json,
        } => logbench::run(
            &logbench::LogBenchPlan {
                name: name.to_owned(),
                nodes: usize::from(nodes),
                rate,
                duration: Duration::from_secs(seconds),
                dvipd,
            },
            json,
        ),
        LabCommand::ReplBench {
            nodes,
            seconds,
            idle_samples,
            dvipd,
            json,
        } => replbench::run(
            &replbench::ReplBenchPlan {
                name: name.to_owned(),
                nodes: usize::from(nodes),
                duration: Duration::from_secs(seconds),
                idle_samples: idle_samples as usize,
                dvipd,
            },
            json,
        ),
        LabCommand::Steady {
            nodes,
            addresses,
            seconds,
            busy,
            keepalived,
            dvipd,
            keep_logs,
            json,
            timing,
        } => timing.timing().and_then(|timing| {
            steady::run(
                &steady::SteadyPlan {
                    name: name.to_owned(),
                    nodes: usize::from(nodes),
                    addresses,
                    duration: Duration::from_secs(seconds),
                    busy: usize::from(busy),
                    dvipd,
                    system: System::chosen(keepalived, false),
                    timing,
                    keep_logs,
                },
                json,
            )
        }),
        LabCommand::Down => {
            down(name);
            Ok(())
        }
    };
    match result {
        Ok(()) if interrupt::requested() => {
            eprintln!("dvip lab: interrupted; the report above holds what was done before");
            Outcome::Interrupted
        }
        Ok(()) => Outcome::Ok,
        Err(e) => {
            eprintln!("dvip lab: {e}");
            Outcome::Failed
        }
    }
}

fn err(text: impl Into<String>) -> LabError {
    LabError(text.into())
}

/// `node2` or `2`, checked against the lab's size; `busiest` is the running node holding the
/// most addresses (the first of them on a tie).
fn node_index(state: &LabState, node: &str) -> Result<usize, LabError> {
    if node == "busiest" {
        let topology = state.topology();
        return running(state)
            .into_iter()
            .map(|i| (topology.held(i).len(), std::cmp::Reverse(i)))
            .max()
            .map(|(_, std::cmp::Reverse(i))| i)
            .ok_or_else(|| err(format!("no node of lab `{}` is running", state.name)));
    }
    let number = node.strip_prefix("node").unwrap_or(node);
    match number.parse::<usize>() {
        Ok(i) if (1..=state.nodes).contains(&i) => Ok(i),
        _ => Err(err(format!(
            "no node `{node}` in lab `{}`: it has node1 to node{}",
            state.name, state.nodes
        ))),
    }
}

/// What `up` builds.
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) nodes: usize,
    pub(crate) addresses: u32,
    /// `None`: dvipd's own choice.
    pub(crate) address_lifetime: Option<u64>,
    /// `None`: the dvipd next to this dvip.
    pub(crate) dvipd: Option<PathBuf>,
    pub(crate) system: System,
    /// How many of the addresses are forwarded SMTP listeners.
    pub(crate) listeners: u32,
    /// Nodes serve a journal each and an aggregator collects them.
    pub(crate) logs: bool,
    /// Every kind is replicated and each node serves the local API.
    pub(crate) replication: bool,
    /// corosync's membership timing.
    pub(crate) timing: dvip_netns::Timing,
}

impl Spec {
    /// `nodes` nodes of dvipd sharing `addresses` bindings, nothing else.
    pub(crate) fn new(name: &str, nodes: usize, addresses: u32, dvipd: Option<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            nodes,
            addresses,
            address_lifetime: None,
            dvipd,
            system: System::default(),
            listeners: 0,
            logs: false,
            replication: false,
            timing: dvip_netns::Timing::default(),
        }
    }
}

fn up(spec: Spec) -> Result<(), LabError> {
    let Spec {
        name,
        nodes,
        addresses: count,
        address_lifetime,
        dvipd,
        system,
        listeners,
        logs,
        replication,
        timing,
    } = spec;
    let name = name.as_str();
    if matches!(system, System::Keepalived { .. }) && !keepalived::installed() {
        return Err(err(
            "keepalived is not installed (apt-get install keepalived, or scripts/setup.sh)",
        ));
    }
    if LabState::dir_of(name).join("state.json").exists() {
        return Err(err(format!(
            "lab `{name}` is already up (`dvip lab status`); `dvip lab down` removes it"
        )));
    }
    // What a lab cut short left (a node's kept standby among it) must not reach this one.
    logging::unmount(&LabState::dir_of(name));
    let _ = std::fs::remove_dir_all(LabState::dir_of(name));
    let dvipd = match dvipd {
        Some(path) => path,
        None => std::env::current_exe()
            .ok()
            .and_then(|me| me.parent().map(|dir| dir.join("dvipd")))
            .filter(|p| p.exists())
            .ok_or_else(|| err("no dvipd next to this dvip; give one with --dvipd PATH"))?,
    };
    let state = LabState {
        name: name.to_owned(),
        nodes,
        addresses: count,
        address_lifetime,
        dvipd,
        processes: Default::default(),
        system,
        listeners: listeners.min(count),
        logs: logs && system.runs_dvipd(),
        replication: replication && system.runs_dvipd(),
        timing,
    };
    // Recorded before anything is made, so `down` can clean up whatever a failure leaves.
    state.save()?;
    let started = Instant::now();
    let mut lab = Lab::new(state)?;
    let built = build(&mut lab.state).and_then(|()| lab.wait_spread());
    if let Err(e) = built {
        let logs = last_lines(&lab.state);
        down(name);
        return Err(err(format!("{e}\n{logs}")));
    }
    eprintln!("lab {name}: up in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Builds the network and starts every node's processes; [`Lab::wait_spread`] then waits for
/// them to share the addresses.
fn build(state: &mut LabState) -> Result<(), LabError> {
    let topology = state.topology();
    eprintln!(
        "lab {}: {} nodes on a bridge, a client, {} addresses",
        state.name, state.nodes, state.addresses
    );
    topology.build(true)?;
    if let System::Keepalived { advert_ms } = state.system {
        for i in 1..=state.nodes {
            keepalived::start(state, i, advert_ms)?;
        }
        return Ok(());
    }
    let authkey = state.dir().join("authkey");
    let crypto = state.system == System::Dvip { crypto: true };
    if crypto {
        dvip_netns::write_authkey(&authkey)?;
    }
    let conf = topology.corosync_conf_timed(crypto.then_some(authkey.as_path()), &state.timing);
    if state.logs {
        logging::prepare(state)?;
    }
    for i in 1..=state.nodes {
        std::fs::write(state.dir().join(format!("corosync-{i}.conf")), &conf)
            .map_err(|e| err(format!("corosync.conf: {e}")))?;
        write_dvip_conf(state, i, 0..0)?;
        start_corosync(state, i)?;
    }
    wait_for(
        "corosync to form one ring",
        Duration::from_secs(20),
        state,
        |s| (1..=s.nodes).all(|i| topology.ring_size(i) == s.nodes),
    )?;
    for i in 1..=state.nodes {
        start_dvipd(state, i)?;
    }
    if state.logs {
        logging::start_aggregator(state)?;
    }
    Ok(())
}

fn write_dvip_conf(
    state: &LabState,
    i: usize,
    without: std::ops::Range<usize>,
) -> Result<(), LabError> {
    let mut text = format!(
        "# dvip lab `{}`, node{i}\ncluster {{ nodename = node{i}  Topology \"{LAB_RANGE}\" {{ interface = \"eth0\" }}\n{}{}}}\n",
        state.name,
        logging::node_conf(state, i),
        replication_conf(state),
    );
    if state.replication {
        text.push_str(&format!(
            "Replication_Listener {{ Listen \"{}\" {{ mode = \"0600\" }} }}\n",
            state.api_socket(i).display()
        ));
    }
    let mut listeners = String::new();
    for (k, address) in addresses(state.addresses)
        .enumerate()
        .filter(|(k, _)| !without.contains(k))
    {
        if is_listener(state, k) {
            listeners.push_str(&format!(
                "  Listen \"{address}:{LISTENER_PORT}\" {{ Enable_Duravip = true  Duravip_Forward = \"{FORWARD_TO}\" }}\n"
            ));
        } else {
            text.push_str(&format!(
                "Binding \"sender-{}\" {{ Enable_Duravip = true  Bind_Address = {address} }}\n",
                k + 1
            ));
        }
    }
    if !listeners.is_empty() {
        text.push_str(&format!("ESMTP_Listener {{\n{listeners}}}\n"));
    }
    std::fs::write(state.dir().join(format!("dvip-{i}.conf")), text)
        .map_err(|e| err(format!("dvip config: {e}")))
}

/// The replicate sets of a lab with replication: every kind, and a cache sent whole to joiners.
fn replication_conf(state: &LabState) -> &'static str {
    if !state.replication {
        return "";
    }
    "  Replicate \"inbound_cidr\" { }\n  Replicate \"outbound_cidr\" { }\n  Replicate \"outbound_domains\" { }\n  Replicate \"shared_named_throttles\" { }\n  Replicate \"seen\" { type = \"cache\" max_size = 1000000 parameters = \"snapshot\" }\n"
}

/// Starts `command` in a process group of its own (a Ctrl-C at the terminal does not reach
/// it), logging to `log`, and records it as `key`.
fn spawn(state: &mut LabState, key: String, mut command: Command) -> Result<(), LabError> {
    use std::os::unix::process::CommandExt;
    // Appended to: a node started again keeps what it logged before.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.dir().join(format!("{key}.log")))
        .map_err(|e| err(format!("{key}.log: {e}")))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| err(format!("cannot start {key}: {e}")))?;
    let process = Process::of(child.id()).ok_or_else(|| err(format!("{key} died at once")))?;
    // A long bench or chaos run kills and restarts nodes many times: reap each child when it
    // ends so none stays a zombie. A lab left running outlives this thread; init reaps then.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    state.processes.insert(key, process);
    state.save()
}

fn start_corosync(state: &mut LabState, i: usize) -> Result<(), LabError> {
    dvip_netns::reap_stale();
    let conf = state.dir().join(format!("corosync-{i}.conf"));
    let command = state.topology().corosync_command(i, &conf);
    spawn(state, format!("corosync-{i}"), command)
}

/// The UDP port of dvipd's own heartbeats in the lab (corosync's knet is on 5405).
const HEARTBEAT_PORT: u16 = 5409;

fn start_dvipd(state: &mut LabState, i: usize) -> Result<(), LabError> {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &state.topology().node(i)])
        .arg(&state.dvipd)
        .arg("--config")
        .arg(state.dir().join(format!("dvip-{i}.conf")))
        .arg("--socket")
        .arg(state.socket(i))
        .arg("--state-dir")
        .arg(state.dir())
        .args(
            state
                .address_lifetime
                .iter()
                .flat_map(|s| ["--address-lifetime".to_owned(), s.to_string()]),
        )
        .args(logging::dvipd_args(state))
        .args(state.timing.heartbeats.iter().flat_map(|h| {
            [
                "--heartbeat-port".to_owned(),
                HEARTBEAT_PORT.to_string(),
                "--heartbeat-interval".to_owned(),
                h.interval_ms.to_string(),
                "--heartbeat-suspect-after".to_owned(),
                h.suspect_after_ms.to_string(),
            ]
            .into_iter()
            .chain(h.pre_plumb.then(|| "--pre-plumb".to_owned()))
        }));
    spawn(state, format!("dvipd-{i}"), command)
}

/// Polls `done` every 50 ms; past `within`, fails naming `what` with the end of the logs.
pub(crate) fn wait_for(
    what: &str,
    within: Duration,
    state: &LabState,
    mut done: impl FnMut(&LabState) -> bool,
) -> Result<Duration, LabError> {
    let start = Instant::now();
    let mut said = Instant::now();
    while !done(state) {
        if start.elapsed() > within {
            return Err(err(format!(
                "timed out after {} s waiting for {what}",
                within.as_secs(),
            )));
        }
        if said.elapsed() > Duration::from_secs(5) {
            eprintln!("lab {}: still waiting for {what}...", state.name);
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(start.elapsed())
}

/// The addresses each node holds, from the kernel.
fn held(state: &LabState) -> Vec<Vec<String>> {
    let topology = state.topology();
    (1..=state.nodes).map(|i| topology.held(i)).collect()
}

/// Every address held once, by nodes whose dvipd runs, loads within one.
/// The nodes whose daemon runs and whose link is up.
pub(crate) fn running(state: &LabState) -> Vec<usize> {
    let topology = state.topology();
    (1..=state.nodes)
        .filter(|&i| state.alive(state.daemon(), i) && topology.port_up(i))
        .collect()
}

pub(crate) fn spread(state: &LabState) -> bool {
    let up = running(state);
    if up.is_empty() {
        return false;
    }
    let held = held(state);
    let mut all: Vec<&String> = held.iter().flatten().collect();
    let total = all.len();
    all.sort();
    all.dedup();
    let loads: Vec<usize> = up.iter().map(|&i| held[i - 1].len()).collect();
    let (min, max) = (
        loads.iter().min().copied().unwrap_or(0),
        loads.iter().max().copied().unwrap_or(0),
    );
    all.len() == total && total == state.addresses as usize && max - min <= 1
}

/// One node of `dvip lab status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct NodeStatus {
    node: String,
    namespace: String,
    link: bool,
    corosync: bool,
    dvipd: bool,
    system: &'static str,
    held: usize,
    mac: String,
    socket: PathBuf,
}

/// The lab's client on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct ClientStatus {
    namespace: String,
    address: &'static str,
}

/// What `dvip lab status --json` prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct LabStatus {
    name: String,
    addresses: u32,
    first_address: Ipv4Addr,
    client: ClientStatus,
    dir: PathBuf,
    system: System,
    nodes: Vec<NodeStatus>,
}

fn status(state: &LabState, json: bool) {
    let topology = state.topology();
    let nodes: Vec<NodeStatus> = (1..=state.nodes)
        .map(|i| NodeStatus {
            node: format!("node{i}"),
            namespace: topology.node(i),
            link: topology.port_up(i),
            corosync: state.alive("corosync", i),
            dvipd: state.alive(state.daemon(), i),
            system: state.daemon(),
            held: topology.held(i).len(),
            mac: topology.mac(i),
            socket: state.socket(i),
        })
        .collect();
    if json {
        print_json(&LabStatus {
            name: state.name.clone(),
            addresses: state.addresses,
            first_address: FIRST_ADDRESS,
            client: ClientStatus {
                namespace: topology.client(),
                address: dvip_netns::CLIENT_ADDRESS,
            },
            dir: state.dir(),
            system: state.system,
            nodes,
        });
        return;
    }
    let yes = |up: bool| if up { "up" } else { "DOWN" };
    println!(
        "lab {} ({}): {} addresses from {FIRST_ADDRESS}; client {} in {}",
        state.name,
        state.system.label(),
        state.addresses,
        dvip_netns::CLIENT_ADDRESS,
        topology.client()
    );
    // A keepalived lab runs neither corosync nor dvipd: its one daemon gets the column.
    let dvip = state.system.runs_dvipd();
    let (daemon, corosync, socket) = if dvip {
        ("DVIPD", "COROSYNC", "SOCKET")
    } else {
        ("KEEPALIVED", "", "")
    };
    println!(
        "{:<7} {:<5} {:<9} {:<10} {:>5}  {socket}",
        "NODE", "LINK", corosync, daemon, "HELD"
    );
    for n in &nodes {
        println!(
            "{:<7} {:<5} {:<9} {:<10} {:>5}  {}",
            n.node,
            yes(n.link),
            if dvip { yes(n.corosync) } else { "" },
            yes(n.dvipd),
            n.held,
            if dvip {
                n.socket.display().to_string()
            } else {
                String::new()
            },
        );
    }
}

/// How a lab node fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// The host dies: link cut, then every process of the node killed (-9), dvipd's guardian too.
    Host,
    /// The link is cut; the processes run on.
    Link,
    /// dvipd is killed (-9).
    Daemon,
    /// corosync is killed (-9).
    Corosync,
    /// dvipd is stopped cleanly (SIGTERM).
    Stop,
}

impl Fault {
    pub(crate) fn of(how: &FaultArg) -> Self {
        match (how.daemon, how.corosync, how.link, how.stop) {
            (true, ..) => Self::Daemon,
            (_, true, ..) => Self::Corosync,
            (_, _, true, _) => Self::Link,
            (.., true) => Self::Stop,
            _ => Self::Host,
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Daemon => "daemon killed (kill -9)",
            Self::Corosync => "corosync killed (kill -9)",
            Self::Link => "link cut",
            Self::Stop => "daemon stopped (SIGTERM)",
            Self::Host => "host death (link cut, then every process killed)",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::Corosync => "corosync",
            Self::Link => "link",
            Self::Stop => "stop",
            Self::Host => "host",
        }
    }

    /// The fault in a report's words: "host death", "dvipd kill -9"...
    pub(crate) fn in_words(self) -> &'static str {
        match self {
            Self::Host => "host death",
            Self::Daemon => "dvipd kill -9",
            Self::Corosync => "corosync kill -9",
            Self::Stop => "dvipd stop",
            Self::Link => "link down",
        }
    }
}

/// SIGTERM, then wait (up to 10 s) until the process is gone: a daemon still shutting down
/// when the node is started again would not be started again.
fn stop(process: Option<Process>) {
    let Some(process) = process else {
        return;
    };
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while process.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn inject(state: &LabState, i: usize, fault: Fault) -> Result<(), LabError> {
    let topology = state.topology();
    let kill = |what: &str| {
        if let Some(p) = state.process(what, i) {
            p.kill();
        }
    };
    // Every process of the node at once: killed one by one, keepalived's children would see
    // their parent go and shut down cleanly, and dvipd's guardian would clean up after a host
    // that is dead, neither of which is the crash the fault stands for.
    let kill_all = || {
        let all = state::processes_in(&topology.node(i));
        for process in &all {
            process.signal(nix::sys::signal::Signal::SIGKILL);
        }
        for process in all {
            process.kill();
        }
    };
    if !state.system.runs_dvipd() {
        match fault {
            Fault::Daemon => kill_all(),
            Fault::Stop => stop(state.process("keepalived", i)),
            Fault::Link => topology.set_port(i, false)?,
            Fault::Host => {
                topology.set_port(i, false)?;
                kill_all();
            }
            Fault::Corosync => return Err(err("a keepalived lab runs no corosync")),
        }
        return Ok(());
    }
    match fault {
        Fault::Daemon => kill("dvipd"),
        Fault::Corosync => kill("corosync"),
        Fault::Link => topology.set_port(i, false)?,
        Fault::Stop => stop(state.process("dvipd", i)),
        Fault::Host => {
            // A dead host runs nothing, dvipd's guardian included: on the lab's one kernel a
            // guardian left running would remove the dead node's addresses under the lock the
            // survivors need to add them.
            topology.set_port(i, false)?;
            kill_all();
        }
    }
    Ok(())
}

fn kill(name: &str, node: &str, how: &FaultArg, measure: bool, json: bool) -> Result<(), LabError> {
    let state = LabState::load(name)?;
    let i = node_index(&state, node)?;
    let fault = Fault::of(how);
    if !measure {
        let fault_at_ms = measure::now_ms();
        inject(&state, i, fault)?;
        if json {
            print_json(&json!({
                "node": format!("node{i}"),
                "fault": fault.describe(),
                "fault_at_ms": fault_at_ms,
            }));
        } else {
            eprintln!("lab {name}: node{i}: {}", fault.describe());
        }
        return Ok(());
    }
    let report = measure::fault(&state, i, fault.describe(), false, || {
        inject(&state, i, fault)
    })?;
    if json {
        print_json(&report);
    } else {
        measure::print(&report);
    }
    Ok(())
}

fn start(name: &str, node: Option<&str>) -> Result<(), LabError> {
    let mut lab = Lab::load(name)?;
    let state = &mut lab.state;
    let topology = state.topology();
    let nodes: Vec<usize> = match node {
        Some(node) => vec![node_index(state, node)?],
        None => (1..=state.nodes)
            .filter(|&i| {
                let corosync = !state.system.runs_dvipd() || state.alive("corosync", i);
                !(topology.port_up(i) && corosync && state.alive(state.daemon(), i))
            })
            .collect(),
    };
    for &i in &nodes {
        start_node(state, i)?;
    }
    let took = lab.wait_spread()?;
    let names: Vec<String> = nodes.iter().map(|i| format!("node{i}")).collect();
    eprintln!(
        "lab {name}: {} back; addresses spread again after {:.1} s",
        if names.is_empty() {
            "every node was already".to_owned()
        } else {
            names.join(", ")
        },
        took.as_secs_f64()
    );
    Ok(())
}

fn start_node(state: &mut LabState, i: usize) -> Result<(), LabError> {
    let topology = state.topology();
    if !state.alive(state.daemon(), i) {
        // A rebooted host comes back with none of the addresses it held; a node of the lab
        // keeps them in its namespace (after a host death nothing ran to remove them), and
        // with its link up again it would answer for addresses the survivors hold now.
        let _ = dvip_netns::try_ip(&["-n", &topology.node(i), "addr", "flush", "to", LAB_RANGE]);
    }
    if let System::Keepalived { advert_ms } = state.system {
        if !topology.port_up(i) {
            topology.set_port(i, true)?;
        }
        if !state.alive("keepalived", i) {
            state::processes_in(&topology.node(i))
                .into_iter()
                .for_each(Process::kill);
            keepalived::start(state, i, advert_ms)?;
        }
        return Ok(());
    }
    if !topology.port_up(i) {
        topology.set_port(i, true)?;
    }
    if !state.alive("corosync", i) {
        start_corosync(state, i)?;
        wait_for(
            &format!("node{i}'s corosync to join the ring"),
            Duration::from_secs(20),
            state,
            |s| {
                s.topology().ring_size(i)
                    == (1..=s.nodes)
                        .filter(|&n| s.alive("corosync", n) && s.topology().port_up(n))
                        .count()
            },
        )?;
    }
    if !state.alive("dvipd", i) {
        start_dvipd(state, i)?;
    }
    Ok(())
}

/// The last lines of every log of the lab, for an error that tears it down.
fn last_lines(state: &LabState) -> String {
    let mut out = String::new();
    for key in state.processes.keys() {
        let text =
            std::fs::read_to_string(state.dir().join(format!("{key}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {key}.log (last lines):\n"));
        for line in &lines[lines.len().saturating_sub(8)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Kills the lab's processes (by recorded pid and start time) and removes its namespaces and
/// state, whatever is left of them.
fn down(name: &str) {
    let state = LabState::load(name).ok();
    if let Some(state) = &state {
        for process in state.processes.values() {
            process.kill();
        }
    }
    dvip_netns::reap_stale();
    // Namespaces by the lab's prefix, also when the state file is gone or incomplete.
    let prefix = LabState::prefix_of(name);
    let listed = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut removed = 0;
    for ns in listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&prefix))
    {
        // Anything still running in one of the lab's namespaces was started by the lab.
        for process in state::processes_in(ns) {
            process.kill();
        }
        if dvip_netns::try_ip(&["netns", "del", ns]).is_ok() {
            removed += 1;
        }
    }
    logging::unmount(&LabState::dir_of(name));
    let _ = std::fs::remove_dir_all(LabState::dir_of(name));
    eprintln!("lab {name}: down ({removed} namespaces removed)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(addresses: u32, listeners: u32) -> LabState {
        LabState {
            name: "t".into(),
            nodes: 3,
            addresses,
            address_lifetime: None,
            dvipd: PathBuf::new(),
            processes: Default::default(),
            system: System::default(),
            listeners,
            logs: false,
            replication: false,
            timing: dvip_netns::Timing::default(),
        }
    }

    fn listeners(state: &LabState) -> Vec<usize> {
        (0..state.addresses as usize)
            .filter(|&k| is_listener(state, k))
            .collect()
    }

    #[test]
    fn listeners_are_spread_over_the_addresses() {
        assert_eq!(listeners(&lab(100, 6)), [0, 16, 32, 48, 64, 80]);
        assert_eq!(listeners(&lab(4, 4)), [0, 1, 2, 3]);
        assert_eq!(listeners(&lab(1024, 6)).len(), 6);
        assert_eq!(listeners(&lab(12, 0)), Vec::<usize>::new());
    }
}
