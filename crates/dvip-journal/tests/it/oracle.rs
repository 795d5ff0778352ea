//! The jlog oracle (scripts/jlog-oracle.sh): built once per test run if it is not there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn oracle() -> &'static Path {
    static ORACLE: OnceLock<PathBuf> = OnceLock::new();
    ORACLE.get_or_init(|| {
        if let Some(path) = std::env::var_os("DVIP_JLOG_ORACLE") {
            return PathBuf::from(path);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(root.join("scripts/jlog-oracle.sh"))
            .output()
            .expect("run scripts/jlog-oracle.sh");
        assert!(
            out.status.success(),
            "building the jlog oracle failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
    })
}

/// Runs the oracle; panics with its stderr if it fails. Returns its stdout.
pub(crate) fn run(args: &[&str]) -> String {
    let out = Command::new(oracle())
        .args(args)
        .output()
        .expect("run the jlog oracle");
    assert!(
        out.status.success(),
        "jlog-oracle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Starts the oracle in the background.
pub(crate) fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(oracle())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the jlog oracle")
}

/// One record as the oracle prints it: id, time, payload.
pub(crate) fn parse_line(line: &str) -> (String, String, String) {
    let mut parts = line.splitn(3, ' ');
    let mut next = || parts.next().expect("three fields").to_owned();
    (next(), next(), next())
}
