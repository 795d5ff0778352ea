//! Integration tests of the configuration reader, one binary with a module per concern.

mod collect;
mod golden;
mod includes;
mod invalid;
mod limits;
mod model;
mod props;

use std::path::Path;

use dvip_config::{load, Checked, DiskFiles, LoadOptions};

/// The host name every test pretends to run on.
pub(crate) const HOSTNAME: &str = "node1.example.com";

pub(crate) fn check_file(path: &Path) -> Checked {
    load(path, &LoadOptions::new(HOSTNAME), &DiskFiles)
}

/// Files of `dir` (relative to the crate) ending in `.conf`, sorted.
pub(crate) fn conf_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .conf files in {dir}");
    files
}
