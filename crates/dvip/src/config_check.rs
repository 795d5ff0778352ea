//! `dvip config check`: validate configuration files and print the effective model.
//!
//! Owns the report format, text and JSON. It must not interpret configuration itself; that is
//! all `dvip-config`.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use dvip_config::{load, Checked, Config, DiskFiles, Files, LoadOptions, Severity};
use serde_json::json;

/// `-` on the command line: the configuration comes on standard input.
const STDIN: &str = "-";

/// Standard input under the name `-`, every other file from the disk (an include in a
/// configuration read from stdin is relative to the working directory).
struct StdinAndDisk {
    stdin: Option<String>,
}

impl Files for StdinAndDisk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        match &self.stdin {
            Some(text) if path == Path::new(STDIN) => Ok(text.clone()),
            _ => DiskFiles.read(path),
        }
    }

    fn identity(&self, path: &Path) -> std::io::Result<PathBuf> {
        if self.stdin.is_some() && path == Path::new(STDIN) {
            return Ok(PathBuf::from(STDIN));
        }
        DiskFiles.identity(path)
    }

    fn directory(&self, path: &Path) -> Option<std::io::Result<Vec<PathBuf>>> {
        DiskFiles.directory(path)
    }
}

use crate::cli::CheckArgs;
use crate::Outcome;

pub(crate) fn run(args: &CheckArgs) -> Outcome {
    let mut options = LoadOptions::new(gethostname::gethostname().to_string_lossy());
    options.nodename.clone_from(&args.nodename);
    let stdin = if args.files.iter().any(|f| f == Path::new(STDIN)) {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("dvip config check: cannot read standard input: {e}");
            return Outcome::Failed;
        }
        Some(text)
    } else {
        None
    };
    let files = StdinAndDisk { stdin };
    let mut all_valid = true;
    let mut reports = Vec::new();
    for path in &args.files {
        let checked = load(path, &options, &files);
        all_valid &= checked.is_valid();
        if args.json {
            let mut report = checked.to_json();
            report["file"] = json!(path.display().to_string());
            reports.push(report);
        } else {
            print_text(&path.display().to_string(), &checked);
            if args.addresses && checked.is_valid() {
                crate::say_text(&address_table(&checked.config));
            }
        }
    }
    if args.json {
        // One shape however many files: their reports in argument order, and the verdict.
        let out = json!({"valid": all_valid, "files": reports});
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (e.g. piped to `head`) is not worth a panic.
        let _ = serde_json::to_writer_pretty(&mut stdout, &out);
        let _ = writeln!(stdout);
    }
    if all_valid {
        Outcome::Ok
    } else {
        Outcome::Failed
    }
}

fn print_text(name: &str, checked: &Checked) {
    let mut stderr = std::io::stderr().lock();
    for diagnostic in &checked.diagnostics {
        let _ = writeln!(stderr, "{}", diagnostic.render(&checked.sources));
    }
    let count = |severity| checked.of(severity).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let plural = |n: usize, word: &str| {
        let suffix = match (n, word.ends_with('s')) {
            (1, _) => "",
            (_, true) => "es",
            (_, false) => "s",
        };
        format!("{n} {word}{suffix}")
    };
    if errors > 0 {
        say!(
            "{name}: invalid: {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
        return;
    }
    let config = &checked.config;
    let bindings: usize = config
        .addresses
        .iter()
        .map(|a| a.managed.bindings.len())
        .sum();
    let ports: usize = config
        .addresses
        .iter()
        .map(|a| a.managed.listener_ports.len())
        .sum();
    say!(
        "{name}: valid: node {}, {} ({}, {}), {}, {}",
        config.nodename,
        plural(config.addresses.len(), "DuraVIP address"),
        plural(bindings, "binding"),
        plural(ports, "listener port"),
        plural(config.topology.len(), "topology hint"),
        plural(warnings, "warning"),
    );
}

/// One row per DuraVIP address: where it is plumbed, what runs on it, where it wants to be.
fn address_table(config: &Config) -> String {
    let join = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(",")
        }
    };
    let mut rows = vec![[
        "ADDRESS".to_owned(),
        "INTERFACE".to_owned(),
        "BINDINGS".to_owned(),
        "PORTS".to_owned(),
        "PREFERENCE".to_owned(),
        "FOLLOWS".to_owned(),
        "NOTE".to_owned(),
    ]];
    for a in &config.addresses {
        let m = &a.managed;
        rows.push([
            m.address.to_string(),
            format!("{}/{}", m.plumb.interface, m.plumb.cidrmask),
            join(m.bindings.iter().cloned().collect()),
            join(m.listener_ports.iter().map(u16::to_string).collect()),
            m.preference.clone().unwrap_or_else(|| "-".to_owned()),
            m.follow.as_ref().map_or_else(
                || "-".to_owned(),
                // A target given by name also shows the address it resolves to.
                |f| match f.target.parse::<std::net::IpAddr>() {
                    Ok(_) => f.target.clone(),
                    Err(_) => format!("{} ({})", f.target, f.address),
                },
            ),
            if a.upgraded {
                "upgraded".to_owned()
            } else {
                String::new()
            },
        ]);
    }
    dvip_core::election::table::columns(&rows)
}
