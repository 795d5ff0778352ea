//! Integration tests of the `dvip` command line, run as a user would run it.

mod collect;
mod config_check;
mod console;
mod lab;
mod log;
mod plan;
mod plumb;
mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where `examples/` lives.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn dvip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dvip"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the dvip binary runs")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
