//! `dvip`: the operator's console and tool.
//!
//! Owns argument parsing and exit codes; each command lives in its own module and returns
//! an [`Outcome`]. Exit codes: 0 success, 1 the input is invalid or a check failed, 2 usage.

/// Prints one line of a report on standard output, as `println!` would, except that a reader
/// that went away (`dvip ... | head`) ends the command quietly instead of with a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say_line(format_args!($($arg)*))
    };
}

mod cli;
mod collect;
mod config_check;
mod console;
mod log;
mod plan;
mod plumb;
mod replication;
mod status;
mod tls;

use std::process::ExitCode;

/// See [`say!`].
pub(crate) fn say_line(args: std::fmt::Arguments<'_>) {
    say_text(&format!("{args}\n"));
}

/// Prints `text` as it is, ending the command quietly if the reader went away.
pub(crate) fn say_text(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("dvip: cannot write the report: {e}");
        std::process::exit(1);
    }
}

use clap::Parser as _;
use dvip_console::Request;

/// How a command ended, mapped to the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Everything asked for is fine: exit 0.
    Ok,
    /// The input is invalid or a check failed: exit 1.
    Failed,
    /// The command line is wrong in a way only visible after parsing it: exit 2.
    Usage,
    /// Ctrl-C or SIGTERM stopped a long command early: exit 130, as a shell reports it.
    Interrupted,
}

/// `ADDRESS to NODE` or `clear ADDRESS` as a request.
fn move_request(words: &[String]) -> Result<Request, String> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let address = |text: &str| {
        text.parse()
            .map_err(|_| format!("`{text}` is not an IP address"))
    };
    match words.as_slice() {
        ["clear", a] => Ok(Request::MoveClear {
            address: address(a)?,
        }),
        [a, "to", node] => Ok(Request::Move {
            address: address(a)?,
            to: (*node).to_owned(),
        }),
        _ => Err("write `dvip move ADDRESS to NODE` or `dvip move clear ADDRESS`".to_owned()),
    }
}

/// Writes dvip's man pages into `dir`: `dvip.1`, and `dvip-SUBCOMMAND.1` for each command.
fn man(dir: &std::path::Path) -> Outcome {
    let command = <cli::Cli as clap::CommandFactory>::command();
    let written =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir));
    match written {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            eprintln!("dvip man: {}: {e}", dir.display());
            Outcome::Failed
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Config {
            command: cli::ConfigCommand::Check(args),
        } => config_check::run(&args),
        cli::Command::Plan(args) => plan::run(&args),
        cli::Command::Plumb { command } => plumb::run(command),
        cli::Command::Log { command } => log::run(command),
        cli::Command::Tls { command } => tls::run(command),
        cli::Command::Collect {
            command: Some(cli::CollectCommand::Status),
            config,
            name,
            json,
            ..
        } => collect::status(&config, name.as_deref(), json),
        cli::Command::Collect {
            command: None,
            config,
            name,
            check,
            json,
            metrics,
        } => collect::run(&config, name.as_deref(), check, json, metrics),
        cli::Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <cli::Cli as clap::CommandFactory>::command(),
                "dvip",
                &mut script,
            );
            // A closed pipe (`| head`) is the reader's choice, not a failure worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            Outcome::Ok
        }
        cli::Command::Man { dir } => man(&dir),
        cli::Command::Show { json, socket } => console::show(&socket.socket, json),
        cli::Command::Status { json, socket } => status::run(&socket.socket, json),
        cli::Command::Events { json, socket } => console::events(&socket.socket, json),
        cli::Command::Membership { json, socket } => console::membership(&socket.socket, json),
        cli::Command::Info { json, socket } => console::info(&socket.socket, json),
        cli::Command::Broadcast {
            words,
            json,
            socket,
        } => console::broadcast(&socket.socket, &words, json),
        cli::Command::Lab { command, name } => match dvip_lab::run(&name, command) {
            dvip_lab::Outcome::Ok => Outcome::Ok,
            dvip_lab::Outcome::Failed => Outcome::Failed,
            dvip_lab::Outcome::Interrupted => Outcome::Interrupted,
        },
        cli::Command::Arp {
            command: cli::ArpCommand::Show { json, socket },
        } => console::arp_show(&socket.socket, json),
        cli::Command::Cidr {
            command:
                cli::CidrCommand::Show {
                    words,
                    json,
                    socket,
                },
        } => replication::cidr_show(&socket.socket, &words, json),
        cli::Command::Domains {
            command:
                cli::DomainsCommand::Show {
                    group,
                    from,
                    window,
                    json,
                    socket,
                },
        } => {
            let request = Request::Domains {
                group,
                from,
                window_s: window,
            };
            replication::domains_show(&socket.socket, &request, json)
        }
        cli::Command::Throttle {
            command: cli::ThrottleCommand::Show { json, socket },
        } => replication::throttles_show(&socket.socket, json),
        cli::Command::Cache { command } => cache(command),
        cli::Command::AnnounceView { json, socket }
        | cli::Command::Cluster {
            command:
                cli::ClusterCommand::Duravip {
                    command: cli::DuravipCommand::Announce { json, socket, .. },
                },
        } => console::command(&socket.socket, &Request::AnnounceView, json),
        cli::Command::Standby { node, json, socket } => {
            console::command(&socket.socket, &Request::Standby { node }, json)
        }
        cli::Command::Online { node, json, socket } => {
            console::command(&socket.socket, &Request::Online { node }, json)
        }
        cli::Command::Reload {
            force,
            json,
            socket,
        } => console::command(&socket.socket, &Request::Reload { force }, json),
        cli::Command::Cluster {
            command:
                cli::ClusterCommand::Duravip {
                    command: cli::DuravipCommand::Show { json, socket },
                },
        } => console::show(&socket.socket, json),
        cli::Command::Move {
            words,
            json,
            socket,
        } => match move_request(&words) {
            Ok(request) => console::command(&socket.socket, &request, json),
            Err(why) => {
                eprintln!("dvip move: {why}");
                Outcome::Usage
            }
        },
    };
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(1),
        Outcome::Usage => ExitCode::from(2),
        Outcome::Interrupted => ExitCode::from(130),
    }
}

/// `dvip cache ...`.
fn cache(command: cli::CacheCommand) -> Outcome {
    match command {
        cli::CacheCommand::Show { json, socket } => replication::caches_show(&socket.socket, json),
        cli::CacheCommand::Get {
            cache,
            key,
            json,
            socket,
        } => replication::cache_get(&socket.socket, &Request::CacheGet { cache, key }, json),
        cli::CacheCommand::Set {
            cache,
            key,
            value,
            ttl,
            json,
            socket,
        } => {
            let request = Request::CacheSet {
                cache,
                key,
                value,
                ttl_s: ttl.filter(|&s| s > 0),
            };
            console::command(&socket.socket, &request, json)
        }
        cli::CacheCommand::Del {
            cache,
            key,
            json,
            socket,
        } => console::command(&socket.socket, &Request::CacheDelete { cache, key }, json),
    }
}
