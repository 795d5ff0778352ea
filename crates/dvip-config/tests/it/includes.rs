//! `include`: relative to the including file, errors at the include line, cycles refused.

use std::path::Path;

use dvip_config::{load, Code, LoadOptions, MemoryFiles};

use crate::HOSTNAME;

fn files(list: &[(&str, &str)]) -> MemoryFiles {
    let mut files = MemoryFiles::new();
    for (path, text) in list {
        files.insert(*path, *text);
    }
    files
}

#[test]
fn an_include_is_relative_to_the_file_that_includes_it() {
    let files = files(&[
        ("/etc/dvip/main.conf", "include \"conf.d/cluster.conf\"\nBinding \"a\" { Enable_Duravip = true Bind_Address = 198.51.100.10 }\n"),
        ("/etc/dvip/conf.d/cluster.conf", "cluster {\n  include \"../hints/lan\"\n}\n"),
        ("/etc/dvip/hints/lan", "198.51.100.0/24 [ interface = \"eth0\" ]\n"),
    ]);
    let checked = load(
        Path::new("/etc/dvip/main.conf"),
        &LoadOptions::new(HOSTNAME),
        &files,
    );
    assert!(checked.is_valid(), "{:?}", checked.diagnostics);
    assert_eq!(checked.config.addresses[0].managed.plumb.interface, "eth0");
    assert_eq!(checked.sources.len(), 3);
}

#[test]
fn an_error_inside_an_include_points_into_the_included_file() {
    let files = files(&[
        ("/c/main.conf", "cluster {\n  include \"hints\"\n}\n"),
        (
            "/c/hints",
            "\n198.51.100.0/24 [ interface = \"eth0\" cidrmask = 40 ]\n",
        ),
    ]);
    let checked = load(
        Path::new("/c/main.conf"),
        &LoadOptions::new(HOSTNAME),
        &files,
    );
    let d = &checked.diagnostics[0];
    assert_eq!(d.code, Code::BadCidrmask);
    let at = checked.sources.location(d.span.expect("located"));
    assert_eq!(
        (at.path.to_str(), at.line, at.column),
        (Some("/c/hints"), 2, 49)
    );
}

#[test]
fn a_cycle_through_two_files_is_refused_at_the_closing_include() {
    let files = files(&[
        ("/c/a.conf", "include \"b.conf\"\n"),
        ("/c/b.conf", "\n\ninclude \"a.conf\"\n"),
    ]);
    let checked = load(Path::new("/c/a.conf"), &LoadOptions::new(HOSTNAME), &files);
    assert_eq!(checked.diagnostics.len(), 1, "{:?}", checked.diagnostics);
    let d = &checked.diagnostics[0];
    assert_eq!(d.code, Code::IncludeCycle);
    assert!(
        d.message
            .contains("/c/a.conf includes /c/b.conf includes /c/a.conf"),
        "{}",
        d.message
    );
    let at = checked.sources.location(d.span.expect("located"));
    assert_eq!((at.path.to_str(), at.line), (Some("/c/b.conf"), 3));
}

#[test]
fn the_same_file_may_be_included_twice_without_a_cycle() {
    let files = files(&[
        (
            "/c/a.conf",
            "Security { include \"common\" }\nOther { include \"common\" }\n",
        ),
        ("/c/common", "user = ecuser\n"),
    ]);
    let checked = load(Path::new("/c/a.conf"), &LoadOptions::new(HOSTNAME), &files);
    // Only the note that nothing here is DuraVIP: no cycle.
    let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::NoAddresses], "{:?}", checked.diagnostics);
}

#[test]
fn a_missing_top_level_file_is_one_error_naming_it() {
    let checked = load(
        Path::new("/nowhere.conf"),
        &LoadOptions::new(HOSTNAME),
        &MemoryFiles::new(),
    );
    assert!(!checked.is_valid());
    let rendered = checked.diagnostics[0].render(&checked.sources);
    assert!(
        rendered.starts_with("/nowhere.conf: error: cannot read `/nowhere.conf`"),
        "{rendered}"
    );
}

/// Loads `top` from disk on a thread; fails if it takes longer than a few seconds.
fn load_within(top: &Path) -> dvip_config::Checked {
    let top = top.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load(
            &top,
            &LoadOptions::new(HOSTNAME),
            &dvip_config::DiskFiles,
        ));
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the configuration is read within 5 s")
}

#[test]
fn an_include_of_a_fifo_or_a_device_is_refused_at_once() {
    let dir = std::env::temp_dir().join(format!("dvip-includes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    for target in [fifo.to_str().expect("utf-8"), "/dev/zero"] {
        let top = dir.join("top.conf");
        std::fs::write(&top, format!("include \"{target}\"\n")).expect("written");
        let checked = load_within(&top);
        let refused = checked
            .diagnostics
            .iter()
            .find(|d| d.code == Code::Unreadable);
        assert!(
            refused.is_some_and(|d| d.message.contains("not a regular file")),
            "{target}: {:?}",
            checked.diagnostics
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_included_directory_is_read_in_name_order_without_hidden_files_or_subdirectories() {
    let binding = |address: &str| {
        format!("Binding \"a\" {{ Enable_Duravip = true  Bind_Address = {address} }}\n")
    };
    let files = files(&[
        (
            "/c/main.conf",
            "readonly_include \"conf.d\"\ncluster { Topology \"198.51.100.0/24\" { interface = \"eth0\" } }\n",
        ),
        ("/c/conf.d/20-b.conf", &binding("198.51.100.20")),
        ("/c/conf.d/10-a.conf", &binding("198.51.100.10")),
        ("/c/conf.d/.hidden.conf", "not a configuration at all"),
        ("/c/conf.d/sub/x.conf", "not read either"),
    ]);
    let checked = load(
        Path::new("/c/main.conf"),
        &LoadOptions::new(HOSTNAME),
        &files,
    );
    let found: Vec<(Code, String)> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let at = checked.sources.location(d.span.expect("located"));
            (d.code, format!("{}:{}", at.path.display(), at.line))
        })
        .collect();
    // 10-a.conf is read first, so the binding named twice is refused in 20-b.conf; the
    // subdirectory is reported at the include, and the hidden file is never read.
    assert_eq!(
        found,
        [
            (Code::Unreadable, "/c/main.conf:1".to_owned()),
            (Code::Duplicate, "/c/conf.d/20-b.conf:1".to_owned()),
        ]
    );
    assert_eq!(checked.sources.len(), 3);
}
